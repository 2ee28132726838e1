"""Embedding a split: descriptors in order, and one trace per model rather than per call."""

import numpy as np
import tensorflow as tf

from cvft_tf.evaluation import embed
from cvft_tf.models.cross_view import build_model


def test_embedding_again_reuses_the_traced_function_and_keeps_the_order():
    model = build_model("vgg_gp", ground_size=(32, 64), aerial_size=(32, 32))
    rng = np.random.default_rng(0)
    pairs = {
        "ground": rng.integers(0, 256, (5, 32, 64, 3)).astype(np.uint8),
        "aerial": rng.integers(0, 256, (5, 32, 32, 3)).astype(np.uint8),
        "heading_deg": np.linspace(-90, 90, 5).astype(np.float32),
    }
    dataset = tf.data.Dataset.from_tensor_slices(pairs).batch(2)
    first = embed.embed_split(model, dataset)
    traces = embed._encoder(model).experimental_get_tracing_count()
    second = embed.embed_split(model, dataset)
    assert embed._encoder(model).experimental_get_tracing_count() == traces
    np.testing.assert_array_equal(second.ground, first.ground)
    np.testing.assert_allclose(first.ground, model.ground_encoder(pairs["ground"]).numpy(), atol=1e-5)
    np.testing.assert_array_equal(first.heading, pairs["heading_deg"])
