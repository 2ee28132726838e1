"""Soft-margin triplet loss vs a numpy evaluation of the original's formula."""

import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.losses import same_place_negative_mask, weighted_soft_margin_triplet_loss


def unit_rows(rng, batch, dim):
    x = rng.normal(size=(batch, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def numpy_loss(aerial, ground, gamma, mask=None):
    batch = len(aerial)
    dist = 2 - 2 * aerial @ ground.T
    g2a = a2g = 0.0
    count = 0.0
    for i in range(batch):
        for j in range(batch):
            m = 1.0 if mask is None else mask[i, j]
            g2a += np.log(1 + np.exp(gamma * m * (dist[j, j] - dist[i, j])))
            a2g += np.log(1 + np.exp(gamma * m * (dist[i, i] - dist[i, j])))
            count += m
    if mask is None:
        count = batch * (batch - 1)
    return (g2a / count + a2g / count) / 2


@pytest.mark.parametrize("batch", [2, 5, 12])
def test_matches_numpy_formula(batch):
    rng = np.random.default_rng(batch)
    aerial, ground = unit_rows(rng, batch, 16), unit_rows(rng, batch, 16)
    loss = weighted_soft_margin_triplet_loss(aerial.astype(np.float32), ground.astype(np.float32), gamma=10.0)
    np.testing.assert_allclose(float(loss), numpy_loss(aerial, ground, 10.0), rtol=1e-5)


def test_diagonal_terms_contribute_log2():
    aerial = np.eye(3, dtype=np.float32)
    loss = weighted_soft_margin_triplet_loss(aerial, aerial, gamma=10.0)
    expected = (3 * np.log(2) + 6 * np.log(1 + np.exp(-20.0))) / 6
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_masked_variant_matches_numpy():
    rng = np.random.default_rng(0)
    batch = 6
    aerial, ground = unit_rows(rng, batch, 8), unit_rows(rng, batch, 8)
    positions = rng.uniform(0, 60, size=(batch, 2))
    positions[1] = positions[0] + 3.0
    distance_sq = ((positions[:, None] - positions[None]) ** 2).sum(-1)
    mask = same_place_negative_mask(distance_sq.astype(np.float32), 25.0).numpy()
    assert mask[0, 1] == 0 and mask[1, 0] == 0 and np.all(np.diag(mask) == 0)
    np.testing.assert_array_equal(mask, (distance_sq >= 625).astype(np.float32))
    loss = weighted_soft_margin_triplet_loss(
        aerial.astype(np.float32), ground.astype(np.float32), negative_mask=mask
    )
    np.testing.assert_allclose(float(loss), numpy_loss(aerial, ground, 10.0, mask), rtol=1e-5)


def test_batch_hard_keeps_top_k_per_anchor():
    rng = np.random.default_rng(3)
    batch, k = 5, 2
    aerial, ground = unit_rows(rng, batch, 8), unit_rows(rng, batch, 8)
    dist = 2 - 2 * aerial @ ground.T
    pos = np.diag(dist)
    g2a_terms, a2g_terms = [], []
    for anchor in range(batch):
        others = [o for o in range(batch) if o != anchor]
        g2a = sorted((np.log1p(np.exp(10 * (pos[anchor] - dist[o, anchor]))) for o in others), reverse=True)
        a2g = sorted((np.log1p(np.exp(10 * (pos[anchor] - dist[anchor, o]))) for o in others), reverse=True)
        g2a_terms += g2a[:k]
        a2g_terms += a2g[:k]
    expected = (np.mean(g2a_terms) + np.mean(a2g_terms)) / 2
    loss = weighted_soft_margin_triplet_loss(aerial.astype(np.float32), ground.astype(np.float32), hard_negatives=k)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)


def test_a_batch_with_no_usable_negative_has_zero_loss_and_zero_gradients():
    rng = np.random.default_rng(5)
    aerial = tf.Variable(rng.normal(size=(4, 8)).astype(np.float32))
    ground = tf.math.l2_normalize(rng.normal(size=(4, 8)).astype(np.float32), axis=1)
    everyone_within_25m = same_place_negative_mask(tf.fill([4, 4], 100.0), 25.0)
    assert float(tf.reduce_sum(everyone_within_25m)) == 0
    with tf.GradientTape() as tape:
        loss = weighted_soft_margin_triplet_loss(
            tf.math.l2_normalize(aerial, axis=1), ground, negative_mask=everyone_within_25m
        )
    gradient = tape.gradient(loss, aerial).numpy()
    assert float(loss) == 0.0
    assert np.all(np.isfinite(gradient)) and np.all(gradient == 0)
    one_pair = everyone_within_25m.numpy()
    one_pair[0, 1] = 1.0
    expected = numpy_loss(tf.math.l2_normalize(aerial, axis=1).numpy(), ground.numpy(), 10.0, one_pair)
    got = weighted_soft_margin_triplet_loss(tf.math.l2_normalize(aerial, axis=1), ground, negative_mask=one_pair)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
