"""The TF1 name map, optimizer-slot filtering and checkpoint path handling, on tiny checkpoints.

The full-size conversion against a TF1 graph is in ``test_tf1_parity.py``.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.interop import tf1_checkpoint
from cvft_tf.models.cross_view import CrossViewModel
from tests.tiny_models import TINY


def save_tf1(directory, values):
    """Writes ``{name: array}`` as a TF1 ``Saver`` checkpoint; returns its prefix."""
    graph = tf.Graph()
    with graph.as_default():
        variables = [tf.compat.v1.get_variable(name, initializer=tf.constant(value)) for name, value in values.items()]
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return tf.compat.v1.train.Saver(variables).save(
                session, os.path.join(directory, "model.ckpt"), write_meta_graph=False
            )


@pytest.mark.parametrize(
    "name, shape, skipped",
    [
        ("VGG_grd/conv4_1/weights/Adam", [3, 3, 256, 512], True),
        ("ot_grd_branchot_fc/biases/Adam_1", [4096], True),
        ("beta1_power", [], True),
        ("train/beta2_power", [], True),
        ("global_step", [], True),
        ("Variable", [], True),
        ("Variable", [3], False),
        ("VGG_grd/conv4_1/weights", [3, 3, 256, 512], False),
        ("Adamant/weights", [3], False),
    ],
)
def test_optimizer_variables(name, shape, skipped):
    assert tf1_checkpoint.is_optimizer_variable(name, shape) is skipped


def test_variable_map_per_variant():
    for variant, count in (("vgg_gp", 52), ("vgg_conv", 56), ("cvft", 60)):
        model = CrossViewModel(variant, **TINY)
        mapping = tf1_checkpoint.variable_map(model)
        assert len(mapping) == count
        assert {id(v) for v in mapping.values()} == {id(v) for v in model.weights if "seed_generator" not in v.path}
    ground_trunk = model.ground_branch.get_layer("vgg16")
    assert mapping["VGG_grd/conv4_2/weights"] is ground_trunk.get_layer("block4_conv2").kernel
    assert mapping["VGG_sat/conv1_1/biases"] is model.aerial_branch.get_layer("vgg16").get_layer("block1_conv1").bias
    rows = {row.tf1_name: row for row in tf1_checkpoint.mapping_rows(model)}
    assert str(rows["grd_conv/weights"]) == "grd_conv/weights -> ground_branch/ground_reduction/kernel [3, 3, 512, 64]"
    assert rows["ot_grd_branchot_conv/weights"].keras_path == "ground_branch/cost_regression/conv/kernel"
    assert rows["ot_grd_branchot_fc/biases"].shape == (16,)


def test_tiny_checkpoint_errors_list_every_problem(tmp_path):
    prefix = save_tf1(
        str(tmp_path),
        {
            "VGG_grd/conv1_1/biases": np.ones(64, np.float32),
            "VGG_sat/conv1_1/biases": np.ones(32, np.float32),
            "VGG_grd/conv1_1/weights/Adam": np.ones([3, 3, 3, 64], np.float32),
            "extra/scale": np.ones(3, np.float32),
        },
    )
    for path in (prefix, prefix + ".index", str(tmp_path)):
        assert tf1_checkpoint.resolve_checkpoint_prefix(path) == prefix
    model = CrossViewModel("vgg_gp", **TINY)
    with pytest.raises(tf1_checkpoint.CheckpointMismatchError) as caught:
        tf1_checkpoint.load_tf1_checkpoint(model, prefix)
    error = caught.value
    assert len(error.missing) == 52 - 2
    assert ("VGG_grd/conv1_1/weights", [3, 3, 3, 64], "ground_branch/vgg16/block1_conv1/kernel") in error.missing
    assert error.unexpected == [("extra/scale", [3])]
    assert error.wrong_shape == [("VGG_sat/conv1_1/biases", [32], [64], "aerial_branch/vgg16/block1_conv1/bias")]
    message = str(error)
    assert "50 missing" in message and "extra/scale [3]" in message and "/Adam" not in message
    assert "VGG_sat/conv1_1/biases: checkpoint [32], model [64]" in message
    untouched = model.ground_branch.get_layer("vgg16").get_layer("block1_conv1").bias.numpy()
    assert not np.array_equal(untouched, np.ones(64))


def test_missing_checkpoint_and_bad_output_name(tmp_path):
    with pytest.raises(FileNotFoundError, match="No TF1 checkpoint at .*model.ckpt"):
        tf1_checkpoint.resolve_checkpoint_prefix(tmp_path / "model.ckpt")
    with pytest.raises(FileNotFoundError, match="No TF1 checkpoint in directory"):
        tf1_checkpoint.resolve_checkpoint_prefix(tmp_path)
    with pytest.raises(ValueError, match=r"must end in '\.weights\.h5'"):
        tf1_checkpoint.convert_checkpoint(tmp_path / "model.ckpt", tmp_path / "out.h5")


def test_a_truncated_checkpoint_index_is_named(tmp_path):
    prefix = save_tf1(str(tmp_path), {"VGG_grd/conv1_1/biases": np.ones(64, np.float32)})
    with open(prefix + ".index", "r+b") as handle:
        handle.truncate(20)
    with pytest.raises(tf1_checkpoint.CheckpointReadError, match=f"TF1 checkpoint {prefix} cannot be read"):
        tf1_checkpoint.load_tf1_checkpoint(CrossViewModel("vgg_gp", **TINY), prefix)
