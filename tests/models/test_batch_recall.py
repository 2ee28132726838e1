"""In-batch recall@1 of the training steps against a plain numpy count, eager and under XLA."""

import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.models.batch_recall import in_batch_place_recall_at_1, recall_at_1


def test_cross_view_recall_at_1_matches_numpy_under_xla():
    rng = np.random.default_rng(2)
    ground, aerial = (rng.choice(np.float32([-0.25, 0.25]), size=(32, 4)) for _ in range(2))
    ground[:8] = aerial[:8]  # +-1/4 entries: exact products, so ties are exact
    distance = (2 - 2 * aerial.astype(np.float64) @ ground.astype(np.float64).T).astype(np.float32)
    expected = np.mean([not any(distance[k, i] < distance[i, i] for k in range(32)) for i in range(32)])
    assert 0.0 < expected < 1.0
    value = tf.function(recall_at_1, jit_compile=True)(tf.constant(distance))
    assert value.dtype == tf.float32
    assert float(value) == pytest.approx(expected, abs=1e-7)
    assert float(recall_at_1(distance)) == pytest.approx(expected, abs=1e-7)


def test_place_recall_at_1_counts_nearest_other_image_of_the_same_label():
    descriptors = np.eye(4, dtype=np.float32)[[0, 0, 1, 2, 2, 3]]
    labels = tf.constant([7, 7, 8, 9, 9, 8])
    assert float(in_batch_place_recall_at_1(descriptors, labels)) == pytest.approx(4 / 6)
    compiled = tf.function(in_batch_place_recall_at_1, jit_compile=True)
    assert float(compiled(descriptors, labels)) == pytest.approx(4 / 6)
