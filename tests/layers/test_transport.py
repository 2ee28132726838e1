"""Cost regression and feature transport vs numpy computations written in the tests."""

import numpy as np

from cvft_tf.layers.transport import COST_FC_STDDEV, CostRegression, FeatureTransport


def test_cost_regression_matches_numpy_forward():
    features = np.random.default_rng(0).normal(size=(3, 2, 4, 6)).astype(np.float32)
    layer = CostRegression()
    cost = layer(features).numpy()
    conv_kernel, conv_bias, fc_kernel, fc_bias = [w.numpy() for w in layer.weights]
    scores = np.maximum(np.einsum("bhwc,c->bhw", features, conv_kernel[0, 0, :, 0]) + conv_bias[0], 0.0)
    expected = (scores.reshape(3, 8) @ fc_kernel + fc_bias).reshape(3, 8, 8)
    assert cost.shape == (3, 8, 8)
    np.testing.assert_allclose(cost, expected, atol=1e-5)


def test_cost_regression_initialisers_match_original():
    layer = CostRegression()
    layer.build((None, 8, 8, 64))
    fc_kernel = layer.dense.kernel.numpy()
    assert fc_kernel.shape == (64, 4096)
    np.testing.assert_array_equal(layer.dense.bias.numpy(), np.eye(64).reshape(-1))
    assert np.abs(fc_kernel).max() <= 2 * COST_FC_STDDEV + 1e-7
    assert abs(fc_kernel.std() - 0.88 * COST_FC_STDDEV) < 0.0005
    conv_bias = layer.conv.bias.numpy()
    assert conv_bias.shape == (1,) and conv_bias[0] != 0.0
    assert layer.losses == []


def test_cost_regression_optional_l2_and_config():
    layer = CostRegression(dense_l2=0.01)
    layer(np.ones((1, 2, 2, 3), np.float32))
    expected = 0.01 * np.sum(layer.dense.kernel.numpy() ** 2)
    np.testing.assert_allclose(float(sum(layer.losses)), expected, rtol=1e-5)
    assert CostRegression.from_config(layer.get_config()).dense_l2 == 0.01


def test_feature_transport_matches_loop_and_permutes():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(2, 2, 3, 4)).astype(np.float32)
    plan = rng.uniform(size=(2, 6, 6)).astype(np.float32)
    out = FeatureTransport()(features, plan).numpy()
    flat = features.reshape(2, 6, 4)
    expected = np.zeros_like(flat)
    for b in range(2):
        for o in range(6):
            for i in range(6):
                expected[b, o] += plan[b, i, o] * flat[b, i]
    np.testing.assert_allclose(out, expected.reshape(2, 2, 3, 4), atol=1e-5)

    permutation = np.eye(6, dtype=np.float32)[[5, 0, 1, 2, 3, 4]]
    moved = FeatureTransport()(features[:1], permutation[None]).numpy().reshape(6, 4)
    np.testing.assert_allclose(moved[0], flat[0, 1])
    np.testing.assert_allclose(moved[4], flat[0, 5])


def test_feature_transport_paper_scale_option():
    features = np.ones((1, 2, 2, 1), np.float32)
    plan = np.full((1, 4, 4), 0.25, np.float32)
    layer = FeatureTransport(scale_by_positions=True)
    np.testing.assert_allclose(layer(features, plan).numpy(), 4.0 * np.ones((1, 2, 2, 1)))
    assert FeatureTransport.from_config(layer.get_config()).scale_by_positions is True
