"""The port against the original network written here in TF1 graph ops, through a TF1 checkpoint.

Nothing of the port is trusted: the TF1 graph below is written from ``docs/original.md``
(the original's ``script/ot_net.py`` and ``script/VGG.py``) with ``tf.compat.v1`` ops and the
original's variable scopes (``VGG_grd/conv1_1/weights``, ``grd_conv``, ``ot_grd_branchot_fc``,
...). It is initialised with random weights, run once, and saved by ``tf.compat.v1.train.Saver`` together with real Adam
slots (``.../Adam``, ``.../Adam_1``, ``beta1_power``, ``beta2_power``) and the original's
unnamed global step ``Variable``. The checkpoint is converted (by ``python -m cvft_tf.cli.convert`` for
``cvft``, by the library for the others) and the port's descriptors must equal the graph's.

Sizes: aerial 256x256 as the original, so the aerial map is 8x8 by itself (VGG /16, then the
stride-2 reduction) and the transport plan is 64x64, the original's; the dense layer of the
cost regression then has the original's [64, 4096] weights. Ground 64x320 instead of 112x616
keeps the test fast: its map is 2x10 and the TF1 bilinear resize to 8x8 is exercised in both
directions (rows 2 -> 8 enlarged, columns 10 -> 8 shrunk at fractional positions). Batch 2.

Weights: He-normal convolutions (std sqrt(2 / fan_in)) and N(0, 0.1) biases keep activations
O(1) (RMS about 2) through the 13 ReLU layers for N(0, 1) inputs. The cost regression's dense
layer keeps the original's truncated-normal(0.005) weights and identity bias; its 1x1
convolution gets small weights (std 0.05) and a bias near 1 so that its ReLU is alive: with
zero-mean He weights all 64 scores came out negative, the cost was the identity and the plan
uniform off the diagonal, which would hide a transposed transport. With these, the Sinkhorn
plan (scale -100) is peaked (max about 0.8), asymmetric and different per image, but not a
permutation; ``test_tf1_graph_is_not_degenerate`` asserts all of that.
"""

import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.interop import tf1_checkpoint
from cvft_tf.interop.imagenet import WeightsMismatchError, initialize_weights
from cvft_tf.models.cross_view import CrossViewModel

v1 = tf.compat.v1
GROUND_SIZE = (64, 320)
AERIAL_SIZE = (256, 256)
BATCH = 2
BIAS_STD = 0.1
VGG_WIDTHS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
OT_CONV_STD = 0.05
OT_CONV_BIAS = 1.0
TOLERANCE = 1e-5
OT_VARIABLES = {
    "ot_grd_branchot_conv/weights",
    "ot_grd_branchot_conv/biases",
    "ot_grd_branchot_fc/weights",
    "ot_grd_branchot_fc/biases",
}


def tf1_conv(x, scope, kernel, out_channels, stride=1, weight_std=None, bias_mean=0.0):
    """The original's conv_layer: SAME convolution + bias + ReLU, variables ``weights``/``biases``.

    Weights are He-normal unless ``weight_std`` is given; biases N(bias_mean, BIAS_STD).
    """
    in_channels = x.shape[-1]
    if weight_std is None:
        weight_std = np.sqrt(2.0 / (kernel * kernel * in_channels))
    with v1.variable_scope(scope):
        weights = v1.get_variable(
            "weights",
            [kernel, kernel, in_channels, out_channels],
            initializer=v1.random_normal_initializer(stddev=weight_std),
        )
        biases = v1.get_variable(
            "biases", [out_channels], initializer=v1.random_normal_initializer(mean=bias_mean, stddev=BIAS_STD)
        )
    return tf.nn.relu(tf.nn.conv2d(x, weights, strides=[1, stride, stride, 1], padding="SAME") + biases)


def tf1_vgg16(x, keep_prob, scope):
    """conv1_1 ... conv5_3, max-pool 2x2/2 SAME after blocks 1-4, dropout after conv4_x/conv5_x."""
    with v1.variable_scope(scope):
        for block, widths in enumerate(VGG_WIDTHS, start=1):
            for index, width in enumerate(widths, start=1):
                x = tf1_conv(x, f"conv{block}_{index}", 3, width)
                if block >= 4:
                    x = v1.nn.dropout(x, keep_prob=keep_prob)
            if block < 5:
                x = v1.nn.max_pool(x, ksize=[1, 2, 2, 1], strides=[1, 2, 2, 1], padding="SAME")
    return x


def tf1_sinkhorn(log_alpha, iterations=20):
    n = log_alpha.shape[1]
    for _ in range(iterations):
        log_alpha -= tf.reshape(tf.reduce_logsumexp(log_alpha, axis=2), [-1, n, 1])
        log_alpha -= tf.reshape(tf.reduce_logsumexp(log_alpha, axis=1), [-1, 1, n])
    return tf.exp(log_alpha)


def tf1_cost_regression_and_transport(features):
    """ot_grd_branch: 1x1 conv 64->1 + ReLU, fc 64 -> 64*64, Sinkhorn(-100 C), then transport."""
    _, height, width, channels = features.shape
    n = height * width
    scores = tf1_conv(features, "ot_grd_branchot_conv", 1, 1, weight_std=OT_CONV_STD, bias_mean=OT_CONV_BIAS)
    with v1.variable_scope("ot_grd_branchot_fc"):
        weights = v1.get_variable("weights", [n, n * n], initializer=v1.truncated_normal_initializer(stddev=0.005))
        biases = v1.get_variable("biases", [n * n], initializer=v1.constant_initializer(np.eye(n).reshape(-1)))
    cost = tf.reshape(tf.matmul(tf.reshape(scores, [-1, n]), weights) + biases, [-1, n, n])
    plan = tf1_sinkhorn(cost * -100.0)
    moved = tf.einsum("bci,bio->bco", tf.transpose(tf.reshape(features, [-1, n, channels]), [0, 2, 1]), plan)
    return tf.reshape(tf.transpose(moved, [0, 2, 1]), [-1, height, width, channels]), plan


def l2_flat(features):
    return tf.nn.l2_normalize(tf.reshape(features, [-1, int(np.prod(features.shape[1:]))]), axis=1)


def global_max_pool(features):
    _, height, width, channels = features.shape
    return tf.reshape(v1.nn.max_pool(features, [1, height, width, 1], [1, 1, 1, 1], padding="VALID"), [-1, channels])


def variant_variables(variant, names):
    """The TF1 variables of one network: both VGG16s, + grd_conv/sat_conv, + ot_grd_branch* (cvft)."""
    owned = {name for name in names if name.startswith(("VGG_grd/", "VGG_sat/"))}
    if variant != "vgg_gp":
        owned |= {f"{scope}_conv/{kind}" for scope in ("grd", "sat") for kind in ("weights", "biases")}
    if variant == "cvft":
        owned |= OT_VARIABLES
    return owned


def slot_owner(name):
    """``x/Adam`` and ``x/Adam_1`` belong to ``x``; other names to themselves."""
    return re.sub(r"/Adam(_1)?$", "", name)


def run_tf1_original(ground, aerial, checkpoint_root):
    """Builds the three networks on shared variables, runs them, saves one checkpoint per variant.

    Returns:
        ``(outputs, prefixes)``: ``outputs[variant] = (ground, aerial)`` descriptors plus
        ``"maps"`` statistics; ``prefixes[variant]`` a checkpoint prefix laid out as the
        original's ``Model/CVUSA/<network>/<epoch>/model.ckpt``.
    """
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(7)
        grd_x = v1.placeholder(tf.float32, [None, *GROUND_SIZE, 3])
        sat_x = v1.placeholder(tf.float32, [None, *AERIAL_SIZE, 3])
        keep_prob = v1.placeholder(tf.float32, [])
        grd_vgg = tf1_vgg16(grd_x, keep_prob, "VGG_grd")
        sat_vgg = tf1_vgg16(sat_x, keep_prob, "VGG_sat")
        grd_reduced = tf1_conv(grd_vgg, "grd_conv", 3, 64, stride=2)
        sat_reduced = tf1_conv(sat_vgg, "sat_conv", 3, 64, stride=2)
        height, width = sat_reduced.shape[1:3]
        grd_resized = v1.image.resize_bilinear(
            grd_reduced, [height, width], align_corners=False, half_pixel_centers=False
        )
        grd_transported, plan = tf1_cost_regression_and_transport(grd_resized)
        fetches = {
            "cvft": (l2_flat(grd_transported), l2_flat(sat_reduced)),
            "vgg_conv": (l2_flat(grd_resized), l2_flat(sat_reduced)),
            "vgg_gp": (
                tf.nn.l2_normalize(global_max_pool(grd_vgg), axis=1),
                tf.nn.l2_normalize(global_max_pool(sat_vgg), axis=1),
            ),
            "maps": (sat_vgg, grd_resized, plan),
        }
        loss = -tf.reduce_sum(fetches["cvft"][0] * fetches["cvft"][1])
        model_variables = {v.op.name: v for v in v1.global_variables()}
        step = v1.Variable(0, trainable=False)
        with tf.name_scope("train"):
            slotted_names = ["VGG_sat/conv5_3/biases", "sat_conv/biases", *sorted(OT_VARIABLES)]
            slotted = [model_variables[name] for name in slotted_names]
            v1.train.AdamOptimizer(1e-5, 0.9, 0.999).minimize(loss, global_step=step, var_list=slotted)
        prefixes = {}
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            outputs = session.run(fetches, {grd_x: ground, sat_x: aerial, keep_prob: 1.0})
            for variant, network in (("cvft", "CVFT"), ("vgg_conv", "VGG_conv"), ("vgg_gp", "VGG_gp")):
                owned = variant_variables(variant, model_variables)
                saved = [
                    v
                    for v in v1.global_variables()
                    if slot_owner(v.op.name) in owned or slot_owner(v.op.name) not in model_variables
                ]
                directory = os.path.join(checkpoint_root, "Model", "CVUSA", network, "0")
                os.makedirs(directory)
                prefixes[variant] = v1.train.Saver(saved).save(
                    session, os.path.join(directory, "model.ckpt"), write_meta_graph=False
                )
    return outputs, prefixes


MEAN_BGR = np.array([103.939, 116.779, 123.6], np.float32)
"""The original's per-channel mean, subtracted in float32 (``script/input_data_cvusa.py``)."""


def pixels_near_the_mean(noise):
    """float32 BGR pixels ``MEAN_BGR + noise``: the TF1 graph gets ``pixels - MEAN_BGR`` (the
    original's preprocessing, about ``noise``: O(1) activations), the port the pixels; the
    subtraction is exact in float32 (Sterbenz), so both networks see identical inputs."""
    return (MEAN_BGR + noise.astype(np.float32)).astype(np.float32)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """Random images, the TF1 graph's outputs and the three checkpoints (removed afterwards)."""
    rng = np.random.default_rng(0)
    ground = pixels_near_the_mean(rng.normal(size=(BATCH, *GROUND_SIZE, 3)))
    aerial = pixels_near_the_mean(rng.normal(size=(BATCH, *AERIAL_SIZE, 3)))
    root = tmp_path_factory.mktemp("tf1")
    outputs, prefixes = run_tf1_original(ground - MEAN_BGR, aerial - MEAN_BGR, str(root))
    yield dict(ground=ground, aerial=aerial, outputs=outputs, prefixes=prefixes, root=root)
    for directory, _, files in os.walk(root):
        for name in files:
            os.remove(os.path.join(directory, name))


def port_descriptors(model, original):
    out = model({"ground": original["ground"], "aerial": original["aerial"]}, training=False)
    return out["ground"].numpy(), out["aerial"].numpy()


def assert_parity(model, original, variant):
    ground, aerial = port_descriptors(model, original)
    expected_ground, expected_aerial = original["outputs"][variant]
    assert ground.shape == expected_ground.shape and aerial.shape == expected_aerial.shape
    differences = {
        "ground": float(np.abs(ground - expected_ground).max()),
        "aerial": float(np.abs(aerial - expected_aerial).max()),
    }
    print(f"{variant}: max |port - TF1| = {differences}")
    assert max(differences.values()) <= TOLERANCE, differences
    return differences


def test_tf1_graph_is_not_degenerate(original):
    """Activations O(1), descriptors mostly non-zero and per image, a plan that really moves features."""
    trunk, resized, plan = original["outputs"]["maps"]
    assert 0.5 < np.sqrt(np.mean(trunk**2)) < 5.0
    assert 0.5 < np.sqrt(np.mean(resized**2)) < 5.0
    for variant in ("cvft", "vgg_conv", "vgg_gp"):
        for descriptors in original["outputs"][variant]:
            assert np.mean(descriptors > 0) > 0.5
            assert np.linalg.norm(descriptors[0] - descriptors[1]) > 0.03
    np.testing.assert_allclose(plan.sum(axis=1), 1.0, atol=1e-4)
    np.testing.assert_allclose(plan.sum(axis=2), 1.0, atol=1e-2)
    assert 0.3 < plan.max() < 0.99 and plan.max(axis=2).min() < 0.5
    assert np.abs(plan - plan.transpose(0, 2, 1)).max() > 0.3
    assert np.abs(plan[0] - plan[1]).max() > 0.01
    transported, untransported = original["outputs"]["cvft"][0], original["outputs"]["vgg_conv"][0]
    assert np.linalg.norm(transported - untransported, axis=1).min() > 0.1


def test_cvft_through_the_cli_matches_tf1(original, tmp_path):
    out = tmp_path / "converted" / "cvft.weights.h5"
    checkpoint_dir = os.path.dirname(original["prefixes"]["cvft"])
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cvft_tf.cli.convert",
            f"--tf1_checkpoint={checkpoint_dir}",
            "--variant=cvft",
            f"--out={out}",
            "--ground_size=64,320",
            "--aerial_size=256,256",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    row = r"ot_grd_branchot_fc/weights +-> +ground_branch/cost_regression/fc/kernel \[64, 4096\]"
    assert re.search(row, result.stdout)
    assert "VGG_sat/conv5_3/biases" in result.stdout and "Adam" not in result.stdout
    assert "Wrote 60 variables" in result.stdout
    assert "3/3 steps" in result.stdout  # progress, as plain lines in a pipe
    model = CrossViewModel("cvft", ground_size=GROUND_SIZE, aerial_size=AERIAL_SIZE)
    model.load_weights(out)
    assert_parity(model, original, "cvft")
    with pytest.raises(WeightsMismatchError, match="cost_regression"):
        initialize_weights(CrossViewModel("vgg_conv", ground_size=GROUND_SIZE, aerial_size=AERIAL_SIZE), out)
    out.unlink()


@pytest.mark.parametrize("variant", ["vgg_conv", "vgg_gp"])
def test_baselines_through_the_library_match_tf1(original, tmp_path, variant):
    out = tmp_path / f"{variant}.weights.h5"
    rows = tf1_checkpoint.convert_checkpoint(
        original["prefixes"][variant] + ".index", out, variant=variant, ground_size=GROUND_SIZE, aerial_size=AERIAL_SIZE
    )
    assert len(rows) == {"vgg_conv": 56, "vgg_gp": 52}[variant]
    model = CrossViewModel(variant, ground_size=GROUND_SIZE, aerial_size=AERIAL_SIZE)
    initialize_weights(model, out)
    assert_parity(model, original, variant)
    out.unlink()


def test_checkpoint_holds_optimizer_state_that_is_skipped(original):
    stored = tf.train.load_checkpoint(original["prefixes"]["cvft"]).get_variable_to_shape_map()
    skipped = sorted(name for name in stored if tf1_checkpoint.is_optimizer_variable(name, stored[name]))
    assert "ot_grd_branchot_fc/weights/Adam" in skipped and "ot_grd_branchot_fc/weights/Adam_1" in skipped
    assert {"train/beta1_power", "train/beta2_power", "Variable"} <= set(skipped)
    assert len(stored) - len(skipped) == 60
    model = CrossViewModel("cvft", ground_size=GROUND_SIZE, aerial_size=AERIAL_SIZE)
    assert set(tf1_checkpoint.variable_map(model)) == set(stored) - set(skipped)


def test_missing_variables_are_named(original):
    model = CrossViewModel("cvft", ground_size=GROUND_SIZE, aerial_size=AERIAL_SIZE)
    with pytest.raises(tf1_checkpoint.CheckpointMismatchError, match="ot_grd_branchot_fc/weights") as caught:
        tf1_checkpoint.load_tf1_checkpoint(model, original["prefixes"]["vgg_conv"])
    assert {name for name, _, _ in caught.value.missing} == OT_VARIABLES
    assert "4 missing" in str(caught.value)
    assert not caught.value.unexpected and not caught.value.wrong_shape


def test_extra_variables_are_named_unless_ignored(original):
    model = CrossViewModel("vgg_conv", ground_size=GROUND_SIZE, aerial_size=AERIAL_SIZE)
    with pytest.raises(tf1_checkpoint.CheckpointMismatchError, match="ot_grd_branchot_conv/biases") as caught:
        tf1_checkpoint.load_tf1_checkpoint(model, original["prefixes"]["cvft"])
    assert {name for name, _ in caught.value.unexpected} == OT_VARIABLES
    assert not caught.value.missing and not caught.value.wrong_shape
    rows = tf1_checkpoint.load_tf1_checkpoint(model, original["prefixes"]["cvft"], ignore_extra=True)
    assert len(rows) == 56
    assert_parity(model, original, "vgg_conv")


def test_wrong_shapes_are_named(original):
    model = CrossViewModel("cvft", ground_size=GROUND_SIZE, aerial_size=AERIAL_SIZE, map_size=(4, 4))
    with pytest.raises(tf1_checkpoint.CheckpointMismatchError) as caught:
        initialize_weights(model, original["prefixes"]["cvft"])
    assert caught.value.wrong_shape == [
        ("ot_grd_branchot_fc/weights", [64, 4096], [16, 256], "ground_branch/cost_regression/fc/kernel"),
        ("ot_grd_branchot_fc/biases", [4096], [256], "ground_branch/cost_regression/fc/bias"),
    ]
    assert "ot_grd_branchot_fc/weights: checkpoint [64, 4096], model [16, 256]" in str(caught.value)
