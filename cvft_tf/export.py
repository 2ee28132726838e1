"""SavedModel export with serving signatures for both branches.

Four signatures, each returning ``{"descriptor": [N, D]}`` float32 unit-norm descriptors:

* ``ground`` / ``aerial``: uint8 RGB images ``[N, H, W, 3]`` of any size; the original's
  resize (area) and preprocessing (BGR, VGG mean subtracted) run inside the graph
  (:func:`cvft_tf.data.preprocess.preprocess_ground_tf`).
* ``ground_preprocessed`` / ``aerial_preprocessed``: float32 ``[N, Hg, Wg, 3]`` /
  ``[N, Ha, Wa, 3]`` images already at model size and preprocessed as the original.

Reload with ``tf.saved_model.load(path).signatures["ground"](images=...)``.
"""

import os
import shutil

import keras
import tensorflow as tf

from cvft_tf.data.preprocess import preprocess_aerial_tf, preprocess_ground_tf

SIGNATURES = ("ground", "aerial", "ground_preprocessed", "aerial_preprocessed")


def export_saved_model(model, path):
    """Writes ``model``'s two encoders as a SavedModel with the :data:`SIGNATURES`.

    The export is written next to ``path`` and moved into place at the end, so an
    interrupted export never leaves a half-written SavedModel at ``path``.

    Args:
        model: a built :class:`cvft_tf.models.cross_view.CrossViewModel`.
        path: output directory (replaced if it exists).

    Returns:
        ``path``.
    """
    ground_size, aerial_size = model.ground_size, model.aerial_size

    def describe(encoder, images):
        return {"descriptor": encoder(images, training=False)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        name="ground",
        fn=lambda images: describe(model.ground_encoder, preprocess_ground_tf(images, ground_size)),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.add_endpoint(
        name="aerial",
        fn=lambda images: describe(model.aerial_encoder, preprocess_aerial_tf(images, aerial_size)),
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.add_endpoint(
        name="ground_preprocessed",
        fn=lambda images: describe(model.ground_encoder, images),
        input_signature=[tf.TensorSpec([None, *ground_size, 3], tf.float32, name="images")],
    )
    archive.add_endpoint(
        name="aerial_preprocessed",
        fn=lambda images: describe(model.aerial_encoder, images),
        input_signature=[tf.TensorSpec([None, *aerial_size, 3], tf.float32, name="images")],
    )
    path = os.fspath(path)
    staging = path.rstrip("/") + ".partial"
    shutil.rmtree(staging, ignore_errors=True)
    archive.write_out(staging, verbose=False)
    shutil.rmtree(path, ignore_errors=True)
    os.replace(staging, path)
    return path
