"""Sinkhorn layer vs an independent multiplicative numpy Sinkhorn and POT."""

import keras
import numpy as np
import ot
import pytest
import tensorflow as tf

from cvft_tf.layers.sinkhorn import Sinkhorn, log_sinkhorn


def numpy_sinkhorn(cost, cost_scale, num_iterations, row_sums=None, col_sums=None):
    """Plain (non-log) Sinkhorn-Knopp in float64: scale rows, then columns, each iteration."""
    plan = np.exp(-cost_scale * cost.astype(np.float64))
    rows = np.ones(plan.shape[:-1]) if row_sums is None else row_sums
    cols = np.ones(plan.shape[:-2] + plan.shape[-1:]) if col_sums is None else col_sums
    for _ in range(num_iterations):
        plan = plan * (rows / plan.sum(axis=-1))[..., :, None]
        plan = plan * (cols / plan.sum(axis=-2))[..., None, :]
    return plan


def random_cost(rng, batch, rows, cols):
    return rng.uniform(0.0, 0.1, size=(batch, rows, cols))


@pytest.mark.parametrize("batch,n", [(1, 4), (3, 16), (2, 64)])
def test_matches_numpy_float64(batch, n):
    cost = random_cost(np.random.default_rng(n), batch, n, n)
    expected = numpy_sinkhorn(cost, 100.0, 20)
    log_plan = log_sinkhorn(tf.constant(-100.0 * cost, tf.float64), 20)
    np.testing.assert_allclose(np.exp(log_plan.numpy()), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("batch,n", [(1, 4), (3, 16), (2, 64)])
def test_layer_matches_numpy_float32(batch, n):
    cost = random_cost(np.random.default_rng(n + 1), batch, n, n)
    expected = numpy_sinkhorn(cost, 100.0, 20)
    plan = Sinkhorn()(tf.constant(cost, tf.float32))
    assert plan.dtype == tf.float32
    np.testing.assert_allclose(plan.numpy(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("batch,n", [(1, 8), (4, 16), (2, 64)])
def test_rows_and_columns_sum_to_one_after_convergence(batch, n):
    cost = random_cost(np.random.default_rng(7), batch, n, n)
    plan = Sinkhorn(num_iterations=300)(tf.constant(cost, tf.float32)).numpy()
    np.testing.assert_allclose(plan.sum(axis=2), 1.0, atol=1e-4)
    np.testing.assert_allclose(plan.sum(axis=1), 1.0, atol=1e-5)


def test_matches_pot_entropic_plan_square():
    n = 12
    rng = np.random.default_rng(3)
    cost = rng.uniform(0.0, 1.0, size=(n, n))
    cost_scale = 10.0
    expected = ot.sinkhorn(
        np.ones(n), np.ones(n), cost, reg=1.0 / cost_scale, method="sinkhorn_log", numItermax=20000, stopThr=1e-13
    )
    plan = Sinkhorn(num_iterations=1000, cost_scale=cost_scale)(tf.constant(cost[None], tf.float32))
    np.testing.assert_allclose(plan.numpy()[0], expected, atol=2e-5)


def test_non_square_with_marginals_matches_pot():
    rows, cols = 17, 29
    rng = np.random.default_rng(5)
    cost = rng.uniform(0.0, 1.0, size=(rows, cols))
    a = rng.uniform(0.5, 1.5, size=rows)
    a /= a.sum()
    b = np.full(cols, 1.0 / cols)
    expected = ot.sinkhorn(a, b, cost, reg=0.2, method="sinkhorn_log", numItermax=20000, stopThr=1e-14)
    plan = Sinkhorn(num_iterations=2000, cost_scale=5.0)(
        tf.constant(cost[None], tf.float32),
        log_row_marginals=tf.constant(np.log(a)[None], tf.float32),
        log_col_marginals=tf.constant(np.log(b)[None], tf.float32),
    ).numpy()[0]
    np.testing.assert_allclose(plan, expected, atol=1e-6)
    np.testing.assert_allclose(plan.sum(axis=0), b, atol=1e-6)
    np.testing.assert_allclose(plan.sum(axis=1), a, atol=1e-5)


def test_batched_equals_per_example_loop():
    cost = random_cost(np.random.default_rng(11), 5, 9, 9).astype(np.float32)
    layer = Sinkhorn()
    batched = layer(tf.constant(cost)).numpy()
    looped = np.stack([layer(tf.constant(c[None])).numpy()[0] for c in cost])
    np.testing.assert_allclose(batched, looped, atol=1e-7)


def test_float64_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    log_alpha = tf.constant(rng.normal(size=(1, 4, 4)), tf.float64)
    weights = tf.constant(rng.normal(size=(1, 4, 4)), tf.float64)

    def objective(x):
        return tf.reduce_sum(weights * tf.exp(log_sinkhorn(x, 5)))

    theoretical, numerical = tf.test.compute_gradient(objective, [log_alpha], delta=1e-6)
    np.testing.assert_allclose(theoretical[0], numerical[0], atol=1e-7)


def test_gradients_finite_at_cost_scale_100_and_x100_costs():
    cost = tf.Variable(np.random.default_rng(0).uniform(0, 10.0, size=(2, 64, 64)).astype(np.float32))
    with tf.GradientTape() as tape:
        plan = Sinkhorn()(cost)
        objective = tf.reduce_sum(plan * tf.range(64, dtype=tf.float32))
    gradient = tape.gradient(objective, cost)
    assert np.all(np.isfinite(plan.numpy()))
    assert np.all(np.isfinite(gradient.numpy()))
    np.testing.assert_allclose(plan.numpy().sum(axis=1), 1.0, atol=1e-5)


def test_mixed_float16_computes_in_float32_with_finite_gradients():
    keras.mixed_precision.set_global_policy("mixed_float16")
    layer = Sinkhorn()
    assert layer.compute_dtype == "float32"
    cost = tf.Variable(np.random.default_rng(1).uniform(0, 0.1, size=(2, 16, 16)).astype(np.float16))
    with tf.GradientTape() as tape:
        plan = layer(cost)
        objective = tf.reduce_sum(plan * plan)
    gradient = tape.gradient(objective, cost)
    assert plan.dtype == tf.float32
    assert np.all(np.isfinite(gradient.numpy()))


def test_dustbin_row_and_marginals():
    rows, cols = 3, 10
    cost = tf.constant(np.random.default_rng(4).normal(size=(2, rows, cols)), tf.float32)
    norm = -np.log(rows + cols)
    log_a = np.full(rows + 1, norm)
    log_a[-1] = norm + np.log(cols - rows)
    log_b = np.full(cols, norm)
    layer = Sinkhorn(num_iterations=200, cost_scale=1.0, dustbin=True, dustbin_init=1.0)
    plan = layer(cost, tf.constant(log_a[None], tf.float32), tf.constant(log_b[None], tf.float32)).numpy()
    assert plan.shape == (2, rows + 1, cols)
    assert len(layer.trainable_weights) == 1
    np.testing.assert_allclose(layer.trainable_weights[0].numpy(), 1.0)
    np.testing.assert_allclose(plan.sum(axis=1), np.tile(np.exp(log_b), (2, 1)), atol=1e-6)
    np.testing.assert_allclose(plan.sum(axis=2), np.tile(np.exp(log_a), (2, 1)), atol=1e-5)


def test_xla_compiles_same_result():
    cost = tf.constant(random_cost(np.random.default_rng(8), 2, 16, 16), tf.float32)
    layer = Sinkhorn()
    eager = layer(cost)
    compiled = tf.function(layer, jit_compile=True)(cost)
    np.testing.assert_allclose(compiled.numpy(), eager.numpy(), atol=1e-6)


def test_get_config_round_trip():
    layer = Sinkhorn(num_iterations=3, cost_scale=1.0, dustbin=True, dustbin_init=0.5, return_log=True)
    clone = Sinkhorn.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert (clone.num_iterations, clone.cost_scale, clone.dustbin, clone.dustbin_init, clone.return_log) == (
        3,
        1.0,
        True,
        0.5,
        True,
    )
