"""Loads the original CVFT's TF1 checkpoints (``tf.train.Saver``) into a :class:`CrossViewModel`.

The checkpoint is read with ``tf.train.load_checkpoint`` (no graph is built). Every model
variable has exactly one TF1 name (see ``docs/original.md``)::

    VGG_grd/conv{b}_{i}/weights [3, 3, in, out]  ->  ground_branch/vgg16/block{b}_conv{i}/kernel
    VGG_grd/conv{b}_{i}/biases  [out]            ->  ground_branch/vgg16/block{b}_conv{i}/bias
    VGG_sat/...                                  ->  aerial_branch/vgg16/...
    grd_conv/weights|biases   [3, 3, 512, 64]    ->  ground_branch/ground_reduction/kernel|bias
    sat_conv/weights|biases                      ->  aerial_branch/aerial_reduction/kernel|bias
    ot_grd_branchot_conv/weights|biases [1, 1, 64, 1]  ->  ground_branch/cost_regression/conv/...
    ot_grd_branchot_fc/weights [64, 4096], biases [4096] ->  ground_branch/cost_regression/fc/...

TF1 and Keras store convolution kernels as ``[kh, kw, in, out]`` and dense kernels as
``[in, out]``, so values are copied as they are. ``grd_conv``/``sat_conv`` exist for
``cvft`` and ``vgg_conv``, ``ot_grd_branch*`` for ``cvft`` only.

Optimizer state is skipped: Adam slots (``<var>/Adam``, ``<var>/Adam_1``), ``beta1_power``,
``beta2_power``, ``global_step``, anything under ``train/``, and the original's global step,
an unnamed scalar ``tf.Variable(0)`` saved as ``Variable``. Any other difference between the
checkpoint and the model (a missing, unexpected or wrong-shape variable) is refused with a
:class:`CheckpointMismatchError` that lists all of them.
"""

import dataclasses
import os
import re

import tensorflow as tf
from absl import logging

from cvft_tf.data.preprocess import AERIAL_SIZE, GROUND_SIZE
from cvft_tf.models.cross_view import CrossViewModel
from cvft_tf.models.vgg16 import VGG16_BLOCK_WIDTHS
from cvft_tf.output_dirs import atomic_path
from cvft_tf.progress import Progress

_BRANCH_SCOPES = (("ground", "grd"), ("aerial", "sat"))
"""(port branch, TF1 abbreviation) pairs: scopes ``VGG_grd``/``grd_conv`` and ``VGG_sat``/``sat_conv``."""

COST_CONV_SCOPE = "ot_grd_branchot_conv"
"""TF1 scope of the cost regression's 1x1 convolution (``ot(..., name='ot_grd_branch')``)."""

COST_FC_SCOPE = "ot_grd_branchot_fc"
"""TF1 scope of the cost regression's dense layer."""

_OPTIMIZER_VARIABLE = re.compile(r"(^train/)|(/Adam(_\d+)?$)|(^(beta1_power|beta2_power|global_step)(_\d+)?$)")
_UNNAMED_STEP = re.compile(r"^Variable(_\d+)?$")


class CheckpointMismatchError(ValueError):
    """A TF1 checkpoint whose variables do not match the model's.

    Attributes:
        missing: ``[(tf1_name, model_shape, keras_path)]`` model variables absent from the checkpoint.
        unexpected: ``[(tf1_name, checkpoint_shape)]`` non-optimizer checkpoint variables the
            model has no place for.
        wrong_shape: ``[(tf1_name, checkpoint_shape, model_shape, keras_path)]``.
    """

    def __init__(self, prefix, missing, unexpected, wrong_shape):
        self.prefix = prefix
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.wrong_shape = list(wrong_shape)
        lines = [f"TF1 checkpoint {prefix} does not match the model:"]
        if self.missing:
            lines.append(f"  {len(self.missing)} missing (in the model, not in the checkpoint):")
            lines += [f"    {name} {shape} -> {path}" for name, shape, path in self.missing]
        if self.unexpected:
            lines.append(
                f"  {len(self.unexpected)} unexpected (in the checkpoint, not in the model; "
                "optimizer slots are already ignored):"
            )
            lines += [f"    {name} {shape}" for name, shape in self.unexpected]
        if self.wrong_shape:
            lines.append(f"  {len(self.wrong_shape)} with a wrong shape:")
            lines += [
                f"    {name}: checkpoint {found}, model {expected} ({path})"
                for name, found, expected, path in self.wrong_shape
            ]
        lines.append(
            "Build the model with the variant (cvft / vgg_conv / vgg_gp) and map size of the run "
            "that wrote the checkpoint."
        )
        super().__init__("\n".join(lines))


class CheckpointReadError(ValueError):
    """A TF1 checkpoint whose files cannot be read (truncated, corrupt)."""


@dataclasses.dataclass(frozen=True)
class MappedVariable:
    """One row of the checkpoint map: TF1 name, Keras path and shape of one variable."""

    tf1_name: str
    keras_path: str
    shape: tuple

    def __str__(self):
        return f"{self.tf1_name} -> {self.keras_path} {list(self.shape)}"


def is_optimizer_variable(name, shape=None):
    """Whether a checkpoint variable is optimizer or step state, skipped on loading.

    Args:
        name: TF1 variable name, e.g. ``"VGG_grd/conv4_1/weights/Adam_1"``.
        shape: its shape; a scalar named ``Variable`` (the original's global step) is skipped.
    """
    if _OPTIMIZER_VARIABLE.search(name):
        return True
    return shape is not None and len(shape) == 0 and bool(_UNNAMED_STEP.match(name))


def _layer_or_none(model, name):
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def _entries(model):
    """``[(tf1_name, keras_path, keras.Variable)]`` for every variable of ``model``."""
    entries = []

    def add(scope, path, layer):
        entries.append((f"{scope}/weights", f"{path}/kernel", layer.kernel))
        entries.append((f"{scope}/biases", f"{path}/bias", layer.bias))

    for branch_name, abbreviation in _BRANCH_SCOPES:
        branch = getattr(model, f"{branch_name}_branch")
        trunk = branch.get_layer("vgg16")
        for block, widths in enumerate(VGG16_BLOCK_WIDTHS, start=1):
            for index in range(1, len(widths) + 1):
                name = f"block{block}_conv{index}"
                add(f"VGG_{abbreviation}/conv{block}_{index}", f"{branch.name}/vgg16/{name}", trunk.get_layer(name))
        reduction = _layer_or_none(branch, f"{branch_name}_reduction")
        if reduction is not None:
            add(f"{abbreviation}_conv", f"{branch.name}/{reduction.name}", reduction)
    cost = _layer_or_none(model.ground_branch, "cost_regression")
    if cost is not None:
        prefix = f"{model.ground_branch.name}/{cost.name}"
        add(COST_CONV_SCOPE, f"{prefix}/{cost.conv.name}", cost.conv)
        add(COST_FC_SCOPE, f"{prefix}/{cost.dense.name}", cost.dense)
    return entries


def variable_map(model):
    """Maps each TF1 variable name of the original to the model's variable.

    Args:
        model: a built :class:`~cvft_tf.models.cross_view.CrossViewModel` of any variant.

    Returns:
        ``dict`` ``{tf1_name: keras.Variable}``; 52 entries for ``vgg_gp``, 56 for
        ``vgg_conv`` and 60 for ``cvft``.
    """
    return {tf1_name: variable for tf1_name, _, variable in _entries(model)}


def mapping_rows(model):
    """The map as printable rows: ``[MappedVariable(tf1_name, keras_path, shape)]``."""
    return [MappedVariable(name, path, tuple(variable.shape)) for name, path, variable in _entries(model)]


def resolve_checkpoint_prefix(path):
    """Turns what a user passes into a TF1 checkpoint prefix.

    Accepts a prefix (``.../model.ckpt``), one of its files (``model.ckpt.index``,
    ``.meta``, ``.data-00000-of-00001``) or a directory holding a ``checkpoint`` file (the
    latest one is taken, as ``tf.train.latest_checkpoint``).

    Raises:
        FileNotFoundError: when no checkpoint is found there.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        latest = tf.train.latest_checkpoint(path)
        if latest is None:
            raise FileNotFoundError(f"No TF1 checkpoint in directory {path} (no 'checkpoint' file naming one).")
        return latest
    prefix = re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", path)
    if not is_tf1_checkpoint(prefix):
        raise FileNotFoundError(
            f"No TF1 checkpoint at {path}: expected the prefix of a tf.train.Saver checkpoint, "
            f"i.e. {prefix}.index and {prefix}.data-*-of-* next to each other."
        )
    return prefix


def is_tf1_checkpoint(path):
    """Whether ``path`` is the prefix of a TF1 (V2 format, ``.index``) or V1 checkpoint."""
    path = os.fspath(path)
    return os.path.isfile(path + ".index") or tf.compat.v1.train.checkpoint_exists(path)


def load_tf1_checkpoint(model, checkpoint, ignore_extra=False):
    """Copies the original's TF1 checkpoint into ``model`` after checking every variable.

    Args:
        model: a built ``CrossViewModel`` of the checkpoint's variant and map size.
        checkpoint: checkpoint prefix, one of its files, or a directory (see
            :func:`resolve_checkpoint_prefix`).
        ignore_extra: skip non-optimizer checkpoint variables the model has no place for
            (e.g. to take the VGG16 and reductions of a CVFT checkpoint into ``vgg_conv``).
            Missing and wrong-shape variables are always refused.

    Returns:
        ``[MappedVariable]``, one row per copied variable, in model order.

    Raises:
        FileNotFoundError: no checkpoint there.
        CheckpointMismatchError: any missing, unexpected or wrong-shape variable; nothing
            has been assigned then.
        CheckpointReadError: the checkpoint's files cannot be read (some variables may
            have been assigned when its data file is the part that is corrupt).
    """
    prefix = resolve_checkpoint_prefix(checkpoint)
    try:
        reader = tf.train.load_checkpoint(prefix)
    except tf.errors.OpError as error:
        raise CheckpointReadError(
            f"TF1 checkpoint {prefix} cannot be read (truncated or corrupt index): {error.message}"
        ) from None
    stored = {name: tuple(shape) for name, shape in reader.get_variable_to_shape_map().items()}
    entries = _entries(model)
    expected = {name for name, _, _ in entries}
    missing, wrong_shape = [], []
    for name, path, variable in entries:
        shape = tuple(variable.shape)
        if name not in stored:
            missing.append((name, list(shape), path))
        elif stored[name] != shape:
            wrong_shape.append((name, list(stored[name]), list(shape), path))
    unexpected = [
        (name, list(shape))
        for name, shape in sorted(stored.items())
        if name not in expected and not is_optimizer_variable(name, shape)
    ]
    if missing or wrong_shape or (unexpected and not ignore_extra):
        raise CheckpointMismatchError(prefix, missing, [] if ignore_extra else unexpected, wrong_shape)
    logging.info("Skipping %d optimizer variables of %s.", len(stored) - len(expected) - len(unexpected), prefix)
    if unexpected:
        logging.warning("Ignoring unexpected checkpoint variables: %s", ", ".join(name for name, _ in unexpected))
    for name, _, variable in entries:
        try:
            value = reader.get_tensor(name)
        except tf.errors.OpError as error:
            raise CheckpointReadError(
                f"TF1 checkpoint {prefix}: cannot read {name} (corrupt data file): {error.message}"
            ) from None
        variable.assign(value)
    return mapping_rows(model)


def convert_checkpoint(
    checkpoint,
    out,
    variant="cvft",
    ground_size=GROUND_SIZE,
    aerial_size=AERIAL_SIZE,
    map_size=None,
    ignore_extra=False,
):
    """Converts an original TF1 checkpoint into a Keras ``.weights.h5`` file (``cvft-convert``).

    Builds a fresh :class:`CrossViewModel` with these arguments, loads the checkpoint into it
    with :func:`load_tf1_checkpoint` and writes ``model.save_weights`` under a temporary name
    renamed to ``out`` (a file already there is replaced whole or not at all); the file loads
    with ``model.load_weights`` into a model built with the same ``variant`` and ``map_size``
    (image sizes do not change the weights).

    Args:
        checkpoint: TF1 checkpoint prefix, one of its files, or its directory.
        out: output path ending in ``.weights.h5``; parent folders are created.
        variant: ``"cvft"``, ``"vgg_conv"`` or ``"vgg_gp"`` (the original's ``network_type``).
        ground_size, aerial_size: ``(H, W)`` of the model's inputs.
        map_size: ``(h, w)`` output map (``None``: the aerial map's natural size, 8x8).
        ignore_extra: see :func:`load_tf1_checkpoint`.

    Returns:
        The ``[MappedVariable]`` rows copied.
    """
    out = os.fspath(out)
    if not out.endswith(".weights.h5"):
        raise ValueError(f"The output file must end in '.weights.h5' (Keras weights), got {out!r}.")
    progress = Progress(3, unit="step")  # building the model, reading the checkpoint, writing
    model = CrossViewModel(variant, ground_size=ground_size, aerial_size=aerial_size, map_size=map_size)
    progress.add(1)
    rows = load_tf1_checkpoint(model, checkpoint, ignore_extra=ignore_extra)
    progress.add(1)
    directory = os.path.dirname(out)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with atomic_path(out) as partial:
        model.save_weights(partial)
    progress.add(1).finish()
    return rows
