"""The trainer: a resumed run is the uninterrupted run, config.json survives a refused resume,
Adam's epsilon is the original's, the best model follows the documented order."""

import json
import os
import types

import keras
import numpy as np
import pytest

from cvft_tf.configs import synthetic as synthetic_config
from cvft_tf import checkpoints, training
from cvft_tf.config_schema import ConfigError
from cvft_tf.training_checkpoints import TrainingCheckpoints
from tests.data.fixtures import write_cvusa_train_val

RAW_GROUND = (32, 176)


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return write_cvusa_train_val(str(tmp_path_factory.mktemp("cvusa")), RAW_GROUND)


def tiny_config(root, epochs, feature_cache=True):
    config = synthetic_config.get_config("smoke")
    config.data.root = root
    config.data.raw_ground_size = RAW_GROUND
    config.train.epochs = epochs
    config.train.deterministic = True
    config.train.feature_cache = feature_cache
    config.train.learning_rate = 1e-3
    return config


def final_weights(workdir, epoch):
    model = checkpoints.load_model(os.path.join(workdir, "checkpoints", f"epoch-{epoch:04d}.keras"))
    return model, [w.numpy() for w in model.weights]


@pytest.mark.large
@pytest.mark.parametrize("feature_cache", [True, False])
def test_a_run_stopped_after_epoch_1_and_resumed_is_the_uninterrupted_run(dataset_root, tmp_path, feature_cache):
    whole, resumed = str(tmp_path / "whole"), str(tmp_path / "resumed")
    training.train(tiny_config(dataset_root, 2, feature_cache), whole)
    training.train(tiny_config(dataset_root, 1, feature_cache), resumed)
    training.train(tiny_config(dataset_root, 2, feature_cache), resumed)
    whole_history, resumed_history = training.read_history(whole), training.read_history(resumed)
    assert resumed_history["epoch"] == [0.0, 1.0]
    np.testing.assert_allclose(resumed_history["loss"], whole_history["loss"], rtol=1e-6)
    np.testing.assert_allclose(resumed_history["val_loss"], whole_history["val_loss"], rtol=1e-6)
    assert whole_history["loss"][0] != whole_history["loss"][1]
    whole_model, whole_values = final_weights(whole, 2)
    resumed_model, resumed_values = final_weights(resumed, 2)
    assert int(resumed_model.optimizer.iterations) == int(whole_model.optimizer.iterations) == 4
    for got, want in zip(resumed_values, whole_values):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert os.path.exists(os.path.join(whole, training.LEARNING_CURVE_PNG))


def test_a_refused_resume_leaves_config_json_as_it_was(dataset_root, tmp_path):
    workdir = str(tmp_path / "run")
    training.train(tiny_config(dataset_root, 1), workdir)
    with open(os.path.join(workdir, "config.json")) as handle:
        written = handle.read()
    other = tiny_config(dataset_root, 2)
    other.model.aggregator.reduced_channels = 32
    with pytest.raises(checkpoints.CheckpointError, match="reduced_channels: checkpoint has 64, config asks for 32"):
        training.train(other, workdir)
    with open(os.path.join(workdir, "config.json")) as handle:
        assert handle.read() == written
    assert json.loads(written)["model"]["aggregator"]["reduced_channels"] == 64


def test_adam_epsilon_is_the_originals():
    config = synthetic_config.get_config("smoke")
    assert config.train.adam_epsilon == 1e-8
    config.model.variant = "vgg_gp"
    config.train.init = ""
    model = training.new_model(config)
    assert model.optimizer.epsilon == 1e-8


def test_fit_segments_finish_a_started_epoch_first():
    assert training.fit_segments(0, 0, 3, 4) == [(0, 3, 4)]
    assert training.fit_segments(1, 3, 3, 4) == [(1, 2, 1), (2, 3, 4)]
    assert training.fit_segments(2, 1, 3, 4) == [(2, 3, 3)]
    assert training.fit_segments(3, 0, 3, 4) == []
    with pytest.raises(checkpoints.CheckpointError, match="at step 4 of epoch 2, but an epoch now has 4 steps"):
        training.fit_segments(1, 4, 3, 4)


def test_fit_segments_with_several_steps_per_call_resume_on_a_call_boundary():
    assert training.fit_segments(1, 2, 3, 4, steps_per_execution=2) == [(1, 2, 2), (2, 3, 4)]
    with pytest.raises(checkpoints.CheckpointError, match="not a multiple of config.train.steps_per_execution=2"):
        training.fit_segments(1, 3, 3, 4, steps_per_execution=2)


def test_a_global_batch_that_the_replicas_cannot_share_is_refused():
    config = synthetic_config.get_config("smoke")
    three_replicas = types.SimpleNamespace(num_replicas_in_sync=3)
    with pytest.raises(ConfigError, match=r"batch_size=4 \(the global batch\) must be a multiple of the 3 replicas"):
        training.check_distribution(config, three_replicas, steps_per_epoch=2)
    config.train.steps_per_execution = 3
    with pytest.raises(ConfigError, match="steps_per_execution=3 must divide the 2 steps of an epoch"):
        training.check_distribution(config, types.SimpleNamespace(num_replicas_in_sync=2), steps_per_epoch=2)


def test_checkpoint_positions_count_every_step_of_a_multi_step_call():
    saved = []
    callback = TrainingCheckpoints(
        "unused", steps_per_epoch=8, epochs=1, backup_every_steps=3, keep=1, counter=None,
        best_r1=lambda: None, stop=types.SimpleNamespace(requested=None),
        resume_state={"epoch": 0, "step_in_epoch": 2, "batches": 2},
    )  # fmt: skip
    callback._save = lambda: saved.append((callback.step_in_epoch, callback.batches))
    callback._metrics_to_restore = None
    callback.on_epoch_begin(0)
    for end_step in (1, 3, 5):  # Keras' end_step of each call of 2 steps, in a fit of the 6 steps left
        callback.on_train_batch_end(end_step)
    assert (callback.step_in_epoch, callback.batches) == (8, 8)
    assert saved == [(4, 4), (6, 6)]  # the calls that reach steps 3 and 6


def test_a_resumed_run_drops_the_history_rows_it_will_log_again(tmp_path):
    path = tmp_path / training.HISTORY_CSV
    path.write_text("epoch,loss\n0,1.5\n1,1.25\n2,1.0\n")
    training.trim_history(str(tmp_path), 2)
    assert training.read_history(str(tmp_path)) == {"epoch": [0.0, 1.0], "loss": [1.5, 1.25]}


def test_a_bfloat16_run_trains_its_backbone_in_bfloat16(dataset_root, tmp_path):
    config = tiny_config(dataset_root, 1)
    config.train.mixed_precision = "bfloat16"
    workdir = str(tmp_path / "run")
    try:
        training.train(config, workdir)
        model, _ = final_weights(workdir, 1)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert np.isfinite(training.read_history(workdir)["loss"]).all()
    trunk = model.ground_branch.get_layer("vgg16")
    assert trunk.get_layer("block4_conv1").compute_dtype == "bfloat16"
    assert model.ground_branch.get_layer("cost_regression").compute_dtype == "float32"
