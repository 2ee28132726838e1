"""The SALAD authors' PyTorch weights -> this port's Keras DINOv2 + SALAD models.

Sources (read with ``torch.load(..., weights_only=True)``; torch is needed here only):

* the authors' checkpoint (serizba/salad, ``dino_salad.ckpt``): the state dict of their
  ``VPRModel`` (``vpr_model.py``), plain as released (``hubconf.py`` loads it with
  ``model.load_state_dict``) or inside a PyTorch Lightning checkpoint ``{"state_dict": ...}``.
  Its keys are ``backbone.model.<DINOv2 key>`` (``models/backbones/dinov2.py`` keeps the torch
  hub ViT as ``self.model``) and ``aggregator.<SALAD key>`` (``models/aggregators/salad.py``);
* optionally, the official DINOv2 weights (facebookresearch/dinov2,
  ``dinov2_vitb14_pretrain.pth``): the same DINOv2 keys without prefix. Backbone keys of the
  checkpoint override them.

DINOv2 keys (``dinov2/models/vision_transformer.py``, ``layers/block.py``,
``layers/attention.py``, ``layers/mlp.py``, ``layers/layer_scale.py``) -> keras-hub
``DINOV2Backbone`` layers (C channels, h heads of d = C / h):

=====================================  =================================================  ===================
DINOv2 key                             Keras weight                                       transform
=====================================  =================================================  ===================
``cls_token`` [1, 1, C]                ``embeddings.cls_token``                           as is
``mask_token`` [1, C]                  ``embeddings.mask_token``                          as is
``register_tokens`` [1, R, C]          ``embeddings.register_tokens``                     as is
``pos_embed`` [1, 1 + M*M, C]          ``embeddings.position_embeddings``                 as is
``patch_embed.proj.weight`` [C,3,p,p]  ``embeddings.patch_embeddings.projection.kernel``  ``W.transpose(2,3,1,0)``
``blocks.i.norm1|norm2.weight|bias``   ``encoder.layers_i.norm1|norm2.gamma|beta``        as is
``blocks.i.attn.qkv.weight`` [3C, C]   ``...attention.attention.query|key|value.kernel``  rows ``[kC:(k+1)C]``,
                                       [C, h, d]                                          ``.T.reshape(C, h, d)``
``blocks.i.attn.qkv.bias`` [3C]        ``...query|key|value.bias`` [h, d]                 ``[kC:(k+1)C]``, reshape
``blocks.i.attn.proj.weight`` [C, C]   ``...attention.attention.attention_output.kernel``  ``W.T.reshape(h, d, C)``
``blocks.i.ls1|ls2.gamma`` [C]         ``encoder.layers_i.layer_scale1|2.lambda1``        as is
``blocks.i.mlp.fc1|fc2.weight``        ``encoder.layers_i.mlp.fc1|fc2.kernel``            ``W.T``
``norm.weight|bias``                   ``layernorm.gamma|beta``                           as is
=====================================  =================================================  ===================

(qkv rows are ordered ``[q | k | v]``, each head-major: ``reshape(B, N, 3, h, d)`` in their
``Attention.forward``.) Chunked blocks (``blocks.<chunk>.<i>.``, ``block_chunks > 0``) are
read as ``blocks.<i>.``. The SALAD keys map as ``layers.salad.TORCH_PARAMETER_NAMES`` says.

The architecture comes from the shapes: C, p, M, R, the number of blocks, the MLP width and
SALAD's m, l, g and hidden width. The number of heads is not in any shape: it is C / 64 (every
DINOv2 ViT has 64-channel heads) unless given. The ViT-g SwiGLU MLP is not supported.
Position embeddings are interpolated as the authors' DINOv2 does (``position_interpolation
= "torch"``, :mod:`cvft_tf.models.dinov2_positions`), so the descriptors match at any size.

Every key must be used and every shape must fit: missing, wrong-shape and unexpected keys
are refused together in one :class:`SaladConversionError` (unexpected ones only listed with
``ignore_extra``).
"""

import dataclasses
import os
import re

import numpy as np

from cvft_tf.layers.salad import TORCH_PARAMETER_NAMES
from cvft_tf.models import dinov2

BACKBONE_PREFIX = "backbone.model."
"""Prefix of the DINOv2 keys in the authors' checkpoints (``VPRModel.backbone.model``)."""

AGGREGATOR_PREFIX = "aggregator."
"""Prefix of the SALAD keys in the authors' checkpoints (``VPRModel.aggregator``)."""

DINOV2_HEAD_DIM = 64
"""Channels per attention head of every DINOv2 ViT (S/14: 6 heads, B/14: 12, L/14: 16, g/14: 24)."""

_CHUNKED_BLOCK = re.compile(r"^blocks\.\d+\.(\d+\.)")

_DINOV2_PARTS = ("embeddings", "encoder", "layernorm")
"""Layers of a ``dinov2_features`` model that hold DINOv2's weights."""

_SALAD_HIDDEN = {"token_features": 2, "cluster_features": 4, "score": 4}
"""SALAD's three MLPs and the rank of their weights (Linear 2, 1x1 Conv2d 4)."""


class SaladWeightsError(ValueError):
    """A weights file that cannot be read as a PyTorch state dict; the message names it."""


class SaladConversionError(ValueError):
    """State dicts that do not fit the model: every missing, wrong-shape and unexpected key.

    Attributes:
        missing: ``[(key, expected_shape)]``; wrong_shape: ``[(key, found, expected)]``;
        unexpected: ``[(key, shape)]``.
    """

    def __init__(self, sources, missing=(), wrong_shape=(), unexpected=(), problem=None):
        self.missing = list(missing)
        self.wrong_shape = list(wrong_shape)
        self.unexpected = list(unexpected)
        lines = [f"{sources} cannot be converted to DINOv2 + SALAD" + (f": {problem}" if problem else ":")]
        if self.missing:
            lines.append(f"  {len(self.missing)} missing:")
            lines += [f"    {key} {list(shape)}" for key, shape in self.missing]
        if self.wrong_shape:
            lines.append(f"  {len(self.wrong_shape)} with a wrong shape:")
            lines += [f"    {key}: file {list(found)}, model {list(want)}" for key, found, want in self.wrong_shape]
        if self.unexpected:
            lines.append(f"  {len(self.unexpected)} unexpected (no place in the model; --ignore_extra skips them):")
            lines += [f"    {key} {list(shape)}" for key, shape in self.unexpected]
        super().__init__("\n".join(lines))


@dataclasses.dataclass
class Sources:
    """The state dicts to convert, split by role, and where they came from.

    Attributes:
        backbone: DINOv2 key (no prefix) -> array; the checkpoint's over the ``.pth``'s.
        aggregator: SALAD key (no prefix) -> array.
        other: checkpoint keys outside both prefixes -> array.
        origin: ``(role, key)``, role ``"backbone"`` / ``"aggregator"`` / ``"other"`` -> the key
            as written in its file (with the file's flag for ``--dinov2`` keys).
        names: the files, for messages (``"--ckpt A and --dinov2 B"``).
    """

    backbone: dict
    aggregator: dict
    other: dict
    origin: dict
    names: str


@dataclasses.dataclass(frozen=True)
class Row:
    """One converted array: the source key, the Keras weight it went to, its Keras shape."""

    key: str
    keras_path: str
    shape: tuple


def import_torch():
    """torch, which only reading ``.pth`` / ``.ckpt`` files needs (the ``torch`` extra)."""
    try:
        import torch
    except ImportError:
        raise SaladWeightsError(
            "reading PyTorch checkpoints needs torch: pip install -e '.[torch]' (the CPU build is enough; "
            "the converted .weights.h5 then loads without it)"
        ) from None
    return torch


def read_state_dict(path, flag):
    """The tensors of a PyTorch state dict file as float32 numpy arrays.

    Args:
        path: ``.pth`` / ``.ckpt`` written by ``torch.save``: a state dict, or a Lightning
            checkpoint whose ``"state_dict"`` is one.
        flag: the command-line flag that named the file, for messages.

    Raises:
        FileNotFoundError: ``path`` is missing.
        SaladWeightsError: torch is missing, or the file is not a readable state dict.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{flag} file {path!r} not found")
    torch = import_torch()
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises RuntimeError, UnpicklingError, EOFError, ... on bad files
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SaladWeightsError(f"{flag} {path} is not a readable PyTorch checkpoint ({reason})") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not loaded or not all(torch.is_tensor(value) for value in loaded.values()):
        raise SaladWeightsError(
            f"{flag} {path} holds no state dict (a dict of tensors, or a Lightning checkpoint's 'state_dict')"
        )
    return {
        str(key): (value.detach().to(torch.float32) if value.is_floating_point() else value.detach()).numpy()
        for key, value in loaded.items()
    }


def split_sources(checkpoint, checkpoint_name, dinov2_weights=None, dinov2_name=None):
    """Splits the authors' checkpoint by prefix and fills the backbone from the DINOv2 weights.

    Args:
        checkpoint: key -> array of the authors' checkpoint (``backbone.model.*``,
            ``aggregator.*``).
        checkpoint_name: how messages name it (``"--ckpt dino_salad.ckpt"``).
        dinov2_weights: optional key -> array of the official DINOv2 weights (no prefix).
        dinov2_name: how messages name those.

    Returns:
        :class:`Sources`.
    """
    backbone, aggregator, other, origin = {}, {}, {}, {}
    for key, value in (dinov2_weights or {}).items():
        name = _unchunked(key)
        backbone[name], origin[("backbone", name)] = value, f"{key} ({dinov2_name})"
    for key, value in checkpoint.items():
        if key.startswith(BACKBONE_PREFIX):
            name = _unchunked(key[len(BACKBONE_PREFIX) :])
            backbone[name], origin[("backbone", name)] = value, key
        elif key.startswith(AGGREGATOR_PREFIX):
            name = key[len(AGGREGATOR_PREFIX) :]
            aggregator[name], origin[("aggregator", name)] = value, key
        else:
            other[key], origin[("other", key)] = value, key
    names = checkpoint_name if dinov2_weights is None else f"{checkpoint_name} and {dinov2_name}"
    return Sources(backbone, aggregator, other, origin, names)


def _unchunked(key):
    """``blocks.<chunk>.<i>.rest`` -> ``blocks.<i>.rest`` (DINOv2 with ``block_chunks > 0``)."""
    return _CHUNKED_BLOCK.sub(r"blocks.\1", key)


def _shape_of(state, key, sources, ndim):
    """``state[key].shape``, which must have ``ndim`` dimensions."""
    if key not in state:
        raise SaladConversionError(sources.names, problem=f"no {key!r}, needed to infer the architecture")
    shape = tuple(state[key].shape)
    if len(shape) != ndim:
        raise SaladConversionError(sources.names, problem=f"{key} has shape {list(shape)}, expected {ndim} dimensions")
    return shape


def infer_backbone_kwargs(sources, num_heads=None):
    """``DINOV2Backbone`` keyword arguments of the DINOv2 state dict (shapes only).

    Args:
        sources: :class:`Sources`.
        num_heads: attention heads (default C / :data:`DINOV2_HEAD_DIM`, which must divide C).

    Returns:
        dict for ``backbone_kwargs``, with ``position_interpolation="torch"``.

    Raises:
        SaladConversionError: a key the inference needs is missing or has the wrong rank, the
            position grid is not square, or the MLP is SwiGLU.
    """
    state = sources.backbone
    hidden_dim = _shape_of(state, "cls_token", sources, 3)[-1]
    out_channels, in_channels, patch, patch_width = _shape_of(state, "patch_embed.proj.weight", sources, 4)
    if (out_channels, in_channels, patch_width) != (hidden_dim, 3, patch):
        raise SaladConversionError(
            sources.names,
            problem=f"patch_embed.proj.weight {[out_channels, in_channels, patch, patch_width]} is not "
            f"[{hidden_dim}, 3, p, p]",
        )
    positions = _shape_of(state, "pos_embed", sources, 3)[1] - 1
    side = int(round(positions**0.5))
    if side * side != positions:
        raise SaladConversionError(sources.names, problem=f"pos_embed holds {positions} patch positions, not a square")
    if any(".mlp.w12." in key for key in state):
        raise SaladConversionError(sources.names, problem="the SwiGLU MLP (ViT-g/14) is not supported")
    block_ids = {int(key.split(".")[1]) for key in state if re.match(r"^blocks\.\d+\.", key)}
    if not block_ids:
        raise SaladConversionError(sources.names, problem="no transformer blocks (blocks.<i>.*)")
    if not num_heads and hidden_dim % DINOV2_HEAD_DIM:
        raise SaladConversionError(
            sources.names,
            problem=f"{hidden_dim} channels are not a multiple of DINOv2's {DINOV2_HEAD_DIM}-wide heads: "
            "give the number of heads (--num_heads)",
        )
    heads = int(num_heads) if num_heads else hidden_dim // DINOV2_HEAD_DIM
    if heads < 1 or hidden_dim % heads:
        raise SaladConversionError(sources.names, problem=f"{heads} heads do not divide {hidden_dim} channels")
    return dict(
        patch_size=patch,
        num_layers=max(block_ids) + 1,
        hidden_dim=hidden_dim,
        num_heads=heads,
        intermediate_dim=_shape_of(state, "blocks.0.mlp.fc1.weight", sources, 2)[0],
        layer_scale_init_value=1.0,
        num_register_tokens=_shape_of(state, "register_tokens", sources, 3)[1] if "register_tokens" in state else 0,
        use_mask_token="mask_token" in state,
        position_embedding_shape=[side * patch, side * patch, 3],
        position_interpolation="torch",
    )


def infer_salad_kwargs(sources):
    """:class:`~cvft_tf.layers.salad.SALAD` keyword arguments of the aggregator state dict.

    Raises:
        SaladConversionError: a key is missing, or the three MLPs differ in width.
    """
    state = sources.aggregator
    hidden = {key: _shape_of(state, f"{key}.0.weight", sources, ndim)[0] for key, ndim in _SALAD_HIDDEN.items()}
    if len(set(hidden.values())) != 1:
        raise SaladConversionError(sources.names, problem=f"the SALAD MLPs differ in hidden width: {hidden}")
    return dict(
        num_clusters=_shape_of(state, "score.3.weight", sources, 4)[0],
        cluster_dim=_shape_of(state, "cluster_features.3.weight", sources, 4)[0],
        token_dim=_shape_of(state, "token_features.2.weight", sources, 2)[0],
        hidden_dim=hidden["token_features"],
    )



def _as_is(value):
    return value


def _conv_kernel(value):
    return value.transpose(2, 3, 1, 0)


def _dense_kernel(value):
    return value.T


def _qkv(index, heads):
    """The query (0), key (1) or value (2) part of ``attn.qkv``, as a Keras MHA weight."""

    def take(value):
        channels = value.shape[0] // 3
        part = value[index * channels : (index + 1) * channels]
        if part.ndim == 1:
            return part.reshape(heads, channels // heads)
        return part.T.reshape(part.shape[1], heads, channels // heads)

    return take


def _attention_output(heads):
    def take(value):
        return value.T.reshape(heads, value.shape[1] // heads, value.shape[0])

    return take


def dinov2_entries(features, num_heads):
    """``[(dinov2_key, variable, transform)]`` for every weight of a ``dinov2_features`` model
    except the interpolated position embeddings (computed from ``position_embeddings``)."""
    embeddings, encoder, layernorm = (dinov2._backbone_layer(features, name) for name in _DINOV2_PARTS)
    entries = [
        ("cls_token", embeddings.cls_token, _as_is),
        ("pos_embed", embeddings.position_embeddings, _as_is),
        ("patch_embed.proj.weight", embeddings.patch_embeddings.projection.kernel, _conv_kernel),
        ("patch_embed.proj.bias", embeddings.patch_embeddings.projection.bias, _as_is),
        ("norm.weight", layernorm.gamma, _as_is),
        ("norm.bias", layernorm.beta, _as_is),
    ]
    if embeddings.use_mask_token:
        entries.append(("mask_token", embeddings.mask_token, _as_is))
    if embeddings.num_register_tokens:
        entries.append(("register_tokens", embeddings.register_tokens, _as_is))
    for index, block in enumerate(encoder.layers):
        attention = block.attention.attention
        prefix = f"blocks.{index}."
        for part, norm, scale in (("1", block.norm1, block.layer_scale1), ("2", block.norm2, block.layer_scale2)):
            entries += [
                (f"{prefix}norm{part}.weight", norm.gamma, _as_is),
                (f"{prefix}norm{part}.bias", norm.beta, _as_is),
                (f"{prefix}ls{part}.gamma", scale.lambda1, _as_is),
            ]
        for qkv_index, dense in enumerate((attention.query_dense, attention.key_dense, attention.value_dense)):
            entries += [
                (f"{prefix}attn.qkv.weight", dense.kernel, _qkv(qkv_index, num_heads)),
                (f"{prefix}attn.qkv.bias", dense.bias, _qkv(qkv_index, num_heads)),
            ]
        entries += [
            (f"{prefix}attn.proj.weight", attention.output_dense.kernel, _attention_output(num_heads)),
            (f"{prefix}attn.proj.bias", attention.output_dense.bias, _as_is),
        ]
        for fc in ("fc1", "fc2"):
            dense = getattr(block.mlp, fc)
            entries += [
                (f"{prefix}mlp.{fc}.weight", dense.kernel, _dense_kernel),
                (f"{prefix}mlp.{fc}.bias", dense.bias, _as_is),
            ]
    return entries



def salad_entries(salad):
    """``[(salad_key, variable, transform)]`` for every weight of a built SALAD layer."""
    entries = []
    for key, (layer_name, weight_name) in TORCH_PARAMETER_NAMES.items():
        layer = getattr(salad, layer_name)
        if weight_name == "dustbin":
            shape = tuple(layer.dustbin_score.shape)
            entries.append((key, layer.dustbin_score, lambda value, shape=shape: value.reshape(shape)))
        elif weight_name == "kernel":
            kernel = layer.kernel
            entries.append((key, kernel, _conv_kernel if len(kernel.shape) == 4 else _dense_kernel))
        else:
            entries.append((key, getattr(layer, weight_name), _as_is))
    return entries


def branch_entries(branch, num_heads):
    """``[(role, key, variable, transform)]`` for a DINOv2 + SALAD branch model
    (``models.salad_branch.build_salad_branch`` / ``cross_view.build_branch``)."""
    features = branch.get_layer("dinov2")
    salad = branch.get_layer("salad")
    return [("backbone", *entry) for entry in dinov2_entries(features, num_heads)] + [
        ("aggregator", *entry) for entry in salad_entries(salad)
    ]


def assign_weights(entries, sources, ignore_extra=False):
    """Copies the source arrays into the Keras variables of ``entries``.

    Args:
        entries: ``[(role, key, variable, transform)]``, role ``"backbone"`` or ``"aggregator"``
            (one key may feed several variables: ``attn.qkv``; one variable per entry).
        sources: :class:`Sources`.
        ignore_extra: skip source keys no entry uses (they are returned) instead of refusing.

    Returns:
        ``(rows, unused)``: :class:`Row` per variable written, and ``[(key in its file, shape)]``
        of the keys not used.

    Raises:
        SaladConversionError: a key missing, a shape that does not fit after the transform,
            or (without ``ignore_extra``) unused keys; nothing is half-written then.
    """
    missing, wrong_shape, planned, used = [], [], [], set()
    for role, key, variable, transform in entries:
        state = getattr(sources, role)
        full_key = (BACKBONE_PREFIX if role == "backbone" else AGGREGATOR_PREFIX) + key
        if key not in state:
            missing.append((full_key, tuple(variable.shape)))
            continue
        used.add((role, key))
        try:
            value = np.asarray(transform(state[key]), dtype=np.float32)
        except ValueError:  # a reshape or transpose the array's shape does not allow
            value = state[key]
        if tuple(value.shape) != tuple(variable.shape):
            row = (sources.origin[(role, key)], state[key].shape, tuple(variable.shape))
            if not any(row[0] == listed[0] for listed in wrong_shape):  # attn.qkv feeds three variables
                wrong_shape.append(row)
            continue
        planned.append((variable, value, Row(sources.origin[(role, key)], variable.path, tuple(value.shape))))
    unused = [
        (sources.origin[(role, key)], tuple(value.shape))
        for role in ("backbone", "aggregator", "other")
        for key, value in getattr(sources, role).items()
        if (role, key) not in used
    ]
    if missing or wrong_shape or (unused and not ignore_extra):
        raise SaladConversionError(sources.names, missing, wrong_shape, [] if ignore_extra else unused)
    for variable, value, _ in planned:
        variable.assign(value)
    return [row for _, _, row in planned], unused


def refresh_interpolated_positions(branch):
    """Recomputes a branch's interpolated position embeddings from its assigned grid."""
    embeddings = dinov2._backbone_layer(branch.get_layer("dinov2"), "embeddings")
    embeddings.interpolated_position_embeddings.assign(
        embeddings._interpolate_position_embeddings(
            embeddings.position_embeddings,
            patch_size=embeddings.patch_size,
            source_shape=embeddings.position_embedding_shape,
            target_shape=embeddings.image_shape,
            antialias=embeddings.antialias_in_interpolation,
        )
    )


VARIANTS = ("place", "cross_view")
"""What :func:`convert` writes: a ``PlaceRecognitionModel`` (one branch), or the ``salad``
variant of ``CrossViewModel`` with the weights in both its ground and its aerial branch."""


def model_config(variant, backbone_kwargs, salad_kwargs, input_format=None, ground_size=None, aerial_size=None):
    """The JSON-ready keyword arguments of the converted model.

    ``place``: ``PlaceRecognitionModel`` arguments without ``image_size`` (``cvft-eval-place``
    builds the model at its ``--image_size``); ``cross_view``: ``CrossViewModel`` arguments.
    """
    if variant == "place":
        return dict(backbone_kwargs=backbone_kwargs, salad_kwargs=salad_kwargs, input_format=input_format)
    return dict(
        variant="salad",
        ground_size=list(ground_size),
        aerial_size=list(aerial_size),
        backbone=dict(backbone_kwargs=backbone_kwargs),
        aggregator=dict(salad_kwargs=salad_kwargs),
    )


def build_converted_model(variant, config, image_size=dinov2.SALAD_TEST_SIZE):
    """The model of :func:`model_config` ``config`` and its DINOv2 + SALAD branches.

    Returns:
        ``(model, branches)``: ``PlaceRecognitionModel`` at ``image_size`` and ``[branch]``,
        or ``CrossViewModel`` and ``[ground_branch, aerial_branch]``.
    """
    if variant == "place":
        from cvft_tf.models.place_recognition import PlaceRecognitionModel

        model = PlaceRecognitionModel(image_size=image_size, **config)
        return model, [model.branch]
    from cvft_tf.models.cross_view import build_model

    model = build_model(**config)
    return model, [model.ground_branch, model.aerial_branch]


def convert(
    sources,
    out,
    variant="place",
    image_size=dinov2.SALAD_TEST_SIZE,
    input_format="imagenet",
    ground_size=None,
    aerial_size=None,
    num_heads=None,
    ignore_extra=False,
):
    """Builds the model of ``sources``' architecture, copies the weights in, saves them to ``out``.

    Args:
        sources: :class:`Sources` (:func:`split_sources`).
        out: ``.weights.h5`` path, written atomically (a temporary name, then a rename).
        variant: one of :data:`VARIANTS`.
        image_size: ``(H, W)`` the place model is built at (the weights fit any size).
        input_format: the place model's ``dinov2.INPUT_FORMATS`` entry (cross-view: ``cvft``).
        ground_size, aerial_size: image sizes of the cross-view model.
        num_heads: attention heads (default C / 64).
        ignore_extra: skip, and return, source keys the model has no place for.

    Returns:
        ``(rows, unused, config)``: :class:`Row` per Keras weight written, ``[(key, shape)]``
        skipped, and the :func:`model_config` of the model.

    Raises:
        SaladConversionError: the state dicts do not fit (see :func:`assign_weights`).
    """
    from cvft_tf.output_dirs import atomic_path

    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; expected one of {VARIANTS}.")
    backbone_kwargs = infer_backbone_kwargs(sources, num_heads)
    salad_kwargs = infer_salad_kwargs(sources)
    config = model_config(variant, backbone_kwargs, salad_kwargs, input_format, ground_size, aerial_size)
    model, branches = build_converted_model(variant, config, image_size)
    entries = [entry for branch in branches for entry in branch_entries(branch, backbone_kwargs["num_heads"])]
    rows, unused = assign_weights(entries, sources, ignore_extra)
    for branch in branches:
        refresh_interpolated_positions(branch)
    with atomic_path(out) as partial:
        model.save_weights(partial)
    return rows, unused, config
