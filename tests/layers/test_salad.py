"""SALAD aggregation vs a numpy forward of the authors' PyTorch code, and its transport plan."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.layers.salad import SALAD, TORCH_PARAMETER_NAMES, dustbin_log_marginals, load_torch_state_dict

SMALL = dict(num_clusters=5, cluster_dim=6, token_dim=7, hidden_dim=16)


def logsumexp(x, axis):
    peak = x.max(axis=axis, keepdims=True)
    return np.squeeze(peak, axis) + np.log(np.exp(x - peak).sum(axis=axis))


def numpy_matching_log_probs(scores, dustbin, num_iterations=3):
    """The spec's ``get_matching_probs``: u/v log-domain Sinkhorn with a dustbin row, float64."""
    batch, m, n = scores.shape
    augmented = np.concatenate([scores, np.full((batch, 1, n), dustbin)], axis=1).astype(np.float64)
    norm = -math.log(n + m)
    log_a = np.full(m + 1, norm)
    log_a[-1] += math.log(n - m)
    log_b = np.full(n, norm)
    u, v = np.zeros((batch, m + 1)), np.zeros((batch, n))
    for _ in range(num_iterations):
        u = log_a - logsumexp(augmented + v[:, None, :], axis=2)
        v = log_b - logsumexp(augmented + u[:, :, None], axis=1)
    return augmented + u[:, :, None] + v[:, None, :] - norm


def normalize(x, axis):
    return x / np.maximum(np.linalg.norm(x, axis=axis, keepdims=True), 1e-12)


def numpy_salad_forward(params, x_nchw, token, num_clusters, cluster_dim):
    """The authors' ``SALAD.forward`` (eval mode) in numpy, with PyTorch weight layouts."""

    def conv1x1(x, weight, bias):  # x [B, C, H, W], weight [O, C, 1, 1]
        return np.einsum("bchw,oc->bohw", x, weight[:, :, 0, 0]) + bias[None, :, None, None]

    def relu(x):
        return np.maximum(x, 0.0)

    batch = x_nchw.shape[0]
    f = conv1x1(relu(conv1x1(x_nchw, *params["cluster_features.0"])), *params["cluster_features.3"])
    p = conv1x1(relu(conv1x1(x_nchw, *params["score.0"])), *params["score.3"])
    f, p = f.reshape(batch, cluster_dim, -1), p.reshape(batch, num_clusters, -1)  # .flatten(2)
    hidden = relu(token @ params["token_features.0"][0].T + params["token_features.0"][1])
    t = hidden @ params["token_features.2"][0].T + params["token_features.2"][1]
    p = np.exp(numpy_matching_log_probs(p, params["dust_bin"]))[:, :-1, :]
    p = np.repeat(p[:, None], cluster_dim, axis=1)  # p.unsqueeze(1).repeat(1, l, 1, 1)
    f = np.repeat(f[:, :, None], num_clusters, axis=2)  # f.unsqueeze(2).repeat(1, 1, m, 1)
    aggregated = normalize((f * p).sum(axis=-1), axis=1).reshape(batch, -1)  # [B, l, m].flatten(1)
    return normalize(np.concatenate([normalize(t, axis=-1), aggregated], axis=-1), axis=-1)


def random_torch_params(rng, channels, hidden, num_clusters, cluster_dim, token_dim):
    def layer(out_dim, in_dim, conv):
        shape = (out_dim, in_dim, 1, 1) if conv else (out_dim, in_dim)
        return rng.normal(0.0, 1.0 / math.sqrt(in_dim), shape), rng.normal(0.0, 0.1, out_dim)

    return {
        "token_features.0": layer(hidden, channels, False),
        "token_features.2": layer(token_dim, hidden, False),
        "cluster_features.0": layer(hidden, channels, True),
        "cluster_features.3": layer(cluster_dim, hidden, True),
        "score.0": layer(hidden, channels, True),
        "score.3": layer(num_clusters, hidden, True),
        "dust_bin": 0.7,
    }


def as_state_dict(params, prefix):
    state = {prefix + "dust_bin": np.asarray(params["dust_bin"])}
    for name, value in params.items():
        if name != "dust_bin":
            state[f"{prefix}{name}.weight"], state[f"{prefix}{name}.bias"] = value
    return state


def built_salad(height, width, channels, **kwargs):
    layer = SALAD(**{**SMALL, **kwargs})
    layer.build((None, height, width, channels), (None, channels))
    return layer


@pytest.mark.parametrize("batch,m,n", [(1, 3, 4), (2, 5, 12), (3, 8, 29)])
def test_transport_plan_matches_numpy_uv_iterations(batch, m, n):
    rng = np.random.default_rng(n)
    scores = rng.normal(0.0, 2.0, size=(batch, m, n)).astype(np.float32)
    layer = built_salad(1, n, 4, num_clusters=m)
    layer.sinkhorn.dustbin_score.assign(-0.4)
    log_plan = layer.log_transport_plan(tf.constant(scores)).numpy()
    expected = numpy_matching_log_probs(scores, -0.4)
    assert log_plan.shape == (batch, m + 1, n)
    np.testing.assert_allclose(np.exp(log_plan), np.exp(expected), atol=1e-5, rtol=0)


def test_marginals_are_the_specs():
    n, m = 12, 5
    norm, log_a, log_b = (t.numpy() for t in dustbin_log_marginals(n, m))
    assert norm == pytest.approx(-math.log(n + m))
    np.testing.assert_allclose(log_a, [-math.log(17)] * m + [-math.log(17) + math.log(7)], rtol=1e-6)
    np.testing.assert_allclose(log_b, [-math.log(17)] * n, rtol=1e-6)
    assert np.exp(log_a).sum() == pytest.approx(np.exp(log_b).sum(), rel=1e-6)  # balanced: n / (n + m)


def test_plan_columns_and_rows_carry_the_dustbin_mass():
    rng = np.random.default_rng(0)
    height, width, channels = 3, 4, 10
    n, m = height * width, SMALL["num_clusters"]
    x = rng.normal(size=(2, height, width, channels)).astype(np.float32)
    token = rng.normal(size=(2, channels)).astype(np.float32)
    plan = built_salad(height, width, channels)(x, token)["plan"].numpy()
    assert plan.shape == (2, m + 1, n)
    np.testing.assert_allclose(plan.sum(axis=1), 1.0, atol=1e-5)  # b / exp(norm), dustbin included
    converged = built_salad(height, width, channels, num_iterations=500)
    converged.set_weights(built_salad(height, width, channels).get_weights())
    plan = converged(x, token)["plan"].numpy()
    np.testing.assert_allclose(plan[:, :m].sum(axis=2), 1.0, atol=1e-4)  # a / exp(norm) per cluster
    np.testing.assert_allclose(plan[:, m].sum(axis=1), n - m, rtol=1e-5)  # the dustbin row
    np.testing.assert_allclose(plan.sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("height,width", [(3, 4), (4, 2)])
def test_matches_numpy_forward_of_torch_weights(height, width):
    rng = np.random.default_rng(height * 10 + width)
    channels, batch = 12, 2
    params = random_torch_params(rng, channels, SMALL["hidden_dim"], 5, 6, 7)
    x = rng.normal(size=(batch, height, width, channels)).astype(np.float32)
    token = rng.normal(size=(batch, channels)).astype(np.float32)
    layer = built_salad(height, width, channels)
    load_torch_state_dict(layer, as_state_dict(params, "aggregator."), prefix="aggregator.")
    assert float(layer.sinkhorn.dustbin_score.numpy()) == pytest.approx(0.7)
    descriptor = layer(x, token, training=False)["descriptor"].numpy()
    expected = numpy_salad_forward(params, x.transpose(0, 3, 1, 2).astype(np.float64), token, 5, 6)
    assert descriptor.shape == (batch, 7 + 6 * 5)
    np.testing.assert_allclose(descriptor, expected, atol=1e-5, rtol=0)


def test_torch_mapping_covers_every_weight_and_checks_shapes():
    layer = built_salad(3, 4, 12)
    mapped = {f"{layer.name}/{layer_name}/{weight}" for layer_name, weight in TORCH_PARAMETER_NAMES.values()}
    assert mapped == {w.path for w in layer.weights}
    state = as_state_dict(random_torch_params(np.random.default_rng(1), 11, 16, 5, 6, 7), "")
    with pytest.raises(ValueError, match="does not fit"):
        load_torch_state_dict(layer, state)


def test_default_descriptor_size_and_unit_norm():
    rng = np.random.default_rng(2)
    layer = SALAD()
    out = layer(rng.normal(size=(2, 9, 9, 16)).astype(np.float32), rng.normal(size=(2, 16)).astype(np.float32))
    assert layer.descriptor_size == 256 + 128 * 64 == 8448
    assert out["descriptor"].shape == (2, 8448)
    np.testing.assert_allclose(np.linalg.norm(out["descriptor"].numpy(), axis=1), 1.0, atol=1e-5)
    assert float(layer.sinkhorn.dustbin_score.numpy()) == 1.0


def test_needs_more_features_than_clusters():
    with pytest.raises(ValueError, match="more local features than clusters"):
        built_salad(1, 5, 4)


def unknown_size_call(layer, jit_compile=False):
    spec = tf.TensorSpec([None, None, None, 4], tf.float32)
    return tf.function(
        lambda x, token: layer(x, token)["descriptor"],
        input_signature=[spec, tf.TensorSpec([None, 4], tf.float32)],
        jit_compile=jit_compile,
    )


@pytest.mark.parametrize("height,width", [(1, 5), (2, 2)])
def test_too_few_features_of_unknown_size_fail_at_run_time_not_nan(height, width):
    layer = built_salad(None, None, 4)
    x, token = np.ones((2, height, width, 4), np.float32), np.ones((2, 4), np.float32)
    with pytest.raises(ValueError, match="more local features than clusters"):
        layer(x, token)  # eager: the sizes are known when called
    with pytest.raises(tf.errors.InvalidArgumentError, match="more local features than clusters"):
        unknown_size_call(layer)(x, token)
    enough = np.ones((2, 2, 3, 4), np.float32)
    assert np.isfinite(unknown_size_call(layer)(enough, token).numpy()).all()


def test_xla_which_drops_the_check_gives_finite_descriptors():
    layer = built_salad(None, None, 4)
    x = np.random.default_rng(0).normal(size=(2, 1, 5, 4)).astype(np.float32)
    descriptor = unknown_size_call(layer, jit_compile=True)(x, np.ones((2, 4), np.float32)).numpy()
    assert np.isfinite(descriptor).all()
    np.testing.assert_allclose(np.linalg.norm(descriptor, axis=1), 1.0, atol=1e-5)
    _, log_a, _ = dustbin_log_marginals(5, 5)
    assert np.isfinite(log_a.numpy()).all() and log_a.numpy()[-1] == pytest.approx(-math.log(10))


def test_gradients_are_finite_and_reach_every_weight():
    rng = np.random.default_rng(3)
    layer = built_salad(3, 3, 8)
    x = tf.constant(rng.normal(size=(2, 3, 3, 8)).astype(np.float32))
    token = tf.constant(rng.normal(size=(2, 8)).astype(np.float32))
    target = tf.constant(rng.normal(size=(2, layer.descriptor_size)).astype(np.float32))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, token, training=True)["descriptor"] * target)
    gradients = tape.gradient(loss, layer.trainable_weights)
    assert len(gradients) == len(layer.weights) == 13
    for variable, gradient in zip(layer.trainable_weights, gradients):
        assert np.all(np.isfinite(gradient.numpy())), variable.path
        assert np.any(gradient.numpy() != 0.0), variable.path


def test_mixed_precision_gives_float32_unit_descriptors():
    keras.mixed_precision.set_global_policy("mixed_float16")
    rng = np.random.default_rng(4)
    out = built_salad(3, 3, 8)(rng.normal(size=(2, 3, 3, 8)), rng.normal(size=(2, 8)))
    assert out["descriptor"].dtype == tf.float32
    np.testing.assert_allclose(np.linalg.norm(out["descriptor"].numpy(), axis=1), 1.0, atol=1e-4)


def test_config_and_keras_file_round_trip(tmp_path):
    layer = SALAD(**SMALL, dropout=0.1, num_iterations=4, regularization=0.5, dustbin_init=0.2, name="salad")
    assert SALAD.from_config(layer.get_config()).get_config() == layer.get_config()
    features, token = keras.Input((3, 4, 10)), keras.Input((10,))
    model = keras.Model([features, token], layer(features, token))
    layer.sinkhorn.dustbin_score.assign(0.9)
    path = str(tmp_path / "salad.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    rng = np.random.default_rng(5)
    inputs = [rng.normal(size=(2, 3, 4, 10)).astype(np.float32), rng.normal(size=(2, 10)).astype(np.float32)]
    for key in ("descriptor", "plan"):
        np.testing.assert_array_equal(restored(inputs)[key].numpy(), model(inputs)[key].numpy())
    assert restored.get_layer("salad").get_config() == layer.get_config()
