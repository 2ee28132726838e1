"""SavedModel export with serving signatures for both branches.

Four signatures, each returning ``{"descriptor": [N, D]}`` float32 unit-norm descriptors:

* ``ground`` / ``aerial``: uint8 RGB images ``[N, H, W, 3]`` of any size; the original's
  resize (area, :func:`cvft_tf.data.preprocess.resize_to_bgr_tf`) and preprocessing (BGR,
  VGG mean subtracted by the model's first layer) run inside the graph. With ``raw_ground="cvact"`` a batch
  of raw CVACT panoramas (width = 2 x height, e.g. 832x1664) is first cut to its middle half of
  rows, as the CVACT loader does (``cvact.ground_rows``); pre-cut panoramas pass unchanged.
  Aerial images must be square (the original's rule): another aspect is an
  ``InvalidArgumentError`` saying so.
* ``ground_resized`` / ``aerial_resized``: float32 ``[N, Hg, Wg, 3]`` / ``[N, Ha, Wa, 3]``
  BGR pixel values in [0, 255], already at the model size (what the input pipelines yield,
  as float32); the model subtracts the VGG mean.

Reload with ``tf.saved_model.load(path).signatures["ground"](images=...)``. The export's
settings (raw-ground handling, sizes, variant) are in ``assets.extra/cvft_export.json``.
"""

import json
import os

import keras
import tensorflow as tf

from cvft_tf.data.preprocess import resize_to_bgr_tf
from cvft_tf.output_dirs import directory_replaced_whole
from cvft_tf.progress import Progress

SIGNATURES = ("ground", "aerial", "ground_resized", "aerial_resized")
RAW_GROUND = {"cvusa": "none", "cvact": "cvact"}
"""Each dataset's raw-ground handling: CVUSA's panoramas are used whole, CVACT's raw ones cut."""
EXPORT_INFO = os.path.join("assets.extra", "cvft_export.json")


def cut_raw_cvact_panoramas_tf(images):
    """uint8 [N, H, W, 3] -> rows ``H // 4`` to ``3 * H // 4`` when ``W == 2 * H`` (raw CVACT
    panoramas, as ``cvact.ground_rows``), else ``images`` unchanged."""
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    return tf.cond(tf.equal(width, 2 * height), lambda: images[:, height // 4 : 3 * height // 4], lambda: images)


def check_square_tf(images):
    """``images`` [N, H, W, 3], after asserting ``H == W`` (aerial tiles are square)."""
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    check = tf.debugging.assert_equal(
        height, width, message="aerial images must be square (height == width), as the original's tiles"
    )
    with tf.control_dependencies([check]):
        return tf.identity(images)


def export_saved_model(model, path, raw_ground="none"):
    """Writes ``model``'s two encoders as a SavedModel with the :data:`SIGNATURES`.

    The export is written into a new folder next to ``path`` and put in place as a whole at
    the end (``output_dirs.directory_replaced_whole``): an interrupted export never leaves a
    half-written SavedModel at ``path``, and an export it replaces is removed only once the
    new one is in place.

    Args:
        model: a built :class:`cvft_tf.models.cross_view.CrossViewModel`.
        path: output directory (replaced if it exists).
        raw_ground: ``"none"`` (CVUSA) or ``"cvact"``: what the ``ground`` signature does to a
            raw panorama before resizing (:data:`RAW_GROUND`).

    Returns:
        ``path``.
    """
    if raw_ground not in RAW_GROUND.values():
        raise ValueError(f"raw_ground must be one of {sorted(set(RAW_GROUND.values()))}, got {raw_ground!r}")
    ground_size, aerial_size = model.ground_size, model.aerial_size
    cut = cut_raw_cvact_panoramas_tf if raw_ground == "cvact" else tf.identity

    def describe(encoder, images):
        return {"descriptor": encoder(images, training=False)}

    progress = Progress(len(SIGNATURES) + 1, unit="step")  # tracing each signature, then writing
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="ground",
        fn=lambda images: describe(model.ground_encoder, resize_to_bgr_tf(cut(images), ground_size)),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    progress.add(1)
    archive.add_endpoint(
        name="aerial",
        fn=lambda images: describe(model.aerial_encoder, resize_to_bgr_tf(check_square_tf(images), aerial_size)),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    progress.add(1)
    archive.add_endpoint(
        name="ground_resized",
        fn=lambda images: describe(model.ground_encoder, images),
        input_signature=[tf.TensorSpec([None, *ground_size, 3], tf.float32, name="images")],
    )
    progress.add(1)
    archive.add_endpoint(
        name="aerial_resized",
        fn=lambda images: describe(model.aerial_encoder, images),
        input_signature=[tf.TensorSpec([None, *aerial_size, 3], tf.float32, name="images")],
    )
    progress.add(1)
    info = {"raw_ground": raw_ground, "ground_size": list(ground_size), "aerial_size": list(aerial_size),
            "variant": model.variant}  # fmt: skip
    with directory_replaced_whole(path) as staging:
        archive.write_out(staging, verbose=False)
        os.makedirs(os.path.join(staging, os.path.dirname(EXPORT_INFO)), exist_ok=True)
        with open(os.path.join(staging, EXPORT_INFO), "w") as handle:
            json.dump(info, handle, indent=2)
    progress.add(1).finish()
    return path
