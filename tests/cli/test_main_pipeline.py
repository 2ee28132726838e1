"""End to end on a tiny CVUSA-layout dataset: train, kill, resume, evaluate, export."""

import json
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.configs import cvusa as cvusa_config
from cvft_tf import checkpoints, training
from cvft_tf.data.preprocess import resize_image
from cvft_tf.evaluation.recall import REPORTED_METRICS as REPORTED
from tests.data.fixtures import write_cvusa_train_val

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAW_GROUND = (32, 176)
pytestmark = pytest.mark.large


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    return write_cvusa_train_val(str(tmp_path_factory.mktemp("cvusa")), RAW_GROUND)


def config_overrides(root):
    return [f"--config.data.root={root}", f"--config.data.raw_ground_size={RAW_GROUND}"]


def cli(module, *args, check=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    result = subprocess.run(
        [sys.executable, "-m", f"cvft_tf.cli.{module}", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{module} failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-4000:]}")
    return result


def smoke_config(root, epochs):
    config = cvusa_config.get_config("smoke")
    config.data.root = root
    config.data.raw_ground_size = RAW_GROUND
    config.train.epochs = epochs
    return config


def read_state(workdir):
    with open(os.path.join(workdir, "checkpoints", "state.json")) as handle:
        return json.load(handle)


def test_train_killed_then_resumed_continues_epochs_and_optimizer(dataset_root, tmp_path):
    workdir = str(tmp_path / "run")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    process = subprocess.Popen(
        [sys.executable, "-m", "cvft_tf.cli.train", "--config=configs/cvusa.py:smoke", f"--workdir={workdir}",
         "--config.train.epochs=50", *config_overrides(dataset_root)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    state_path = os.path.join(workdir, "checkpoints", "state.json")
    deadline = time.time() + 240
    while not os.path.exists(state_path) and time.time() < deadline and process.poll() is None:
        time.sleep(0.5)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = read_state(workdir)
    assert killed["epoch"] >= 1 and killed["step"] == 2 * killed["epoch"]

    loaded = checkpoints.load_model(os.path.join(workdir, "checkpoints", killed["checkpoint"]))
    assert int(loaded.optimizer.iterations) == killed["step"]
    moments_before = [v.numpy().copy() for v in loaded.optimizer.variables if "momentum" in v.path][:2]
    assert any(np.abs(m).max() > 0 for m in moments_before)

    resumed = training.train(smoke_config(dataset_root, killed["epoch"] + 1), workdir)
    state = read_state(workdir)
    assert state["epoch"] == killed["epoch"] + 1
    assert state["step"] == 2 * state["epoch"]
    assert int(resumed.optimizer.iterations) == state["step"]
    assert os.path.exists(os.path.join(workdir, "best.keras"))

    train = summary_tags(os.path.join(workdir, "tensorboard", "train"))
    assert {"epoch_loss", "epoch_recall@1", "epoch_learning_rate", "epoch_skipped_pairs"} <= train
    validation = summary_tags(os.path.join(workdir, "tensorboard", "validation"))
    assert {"epoch_loss", "epoch_r@1", "epoch_r@5", "epoch_r@10", "epoch_r@1%"} <= validation
    assert {"top5_retrievals", "feature_alignment", "transport_plan"} <= validation


def summary_tags(directory):
    """Every summary tag written in the event files of ``directory``."""
    tags = set()
    for name in os.listdir(directory):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(directory, name)):
            tags |= {value.tag for value in event.summary.value}
    return tags


def test_eval_and_export_commands(dataset_root, tmp_path):
    workdir = str(tmp_path / "run")
    training.train(smoke_config(dataset_root, 1), workdir)

    result = cli("evaluate", "--config=configs/cvusa.py:smoke", f"--workdir={workdir}", *config_overrides(dataset_root))
    assert "r@1%" in result.stdout and "recall (%)" in result.stdout
    eval_dir = os.path.join(workdir, "eval")
    with open(os.path.join(eval_dir, "metrics.json")) as handle:
        metrics = json.load(handle)
    assert {"r@1", "r@5", "r@10", "r@1%", "curve"} <= set(metrics)
    assert metrics["num_queries"] == 6 and len(metrics["curve"]) == 1
    assert all(0.0 <= metrics[k] <= 100.0 for k in ("r@1", "r@5", "r@10", "r@1%"))
    assert metrics["r@1"] <= metrics["r@5"] <= metrics["r@10"] and metrics["r@10"] == 100.0
    ground = np.load(os.path.join(eval_dir, "ground_descriptors.npy"))
    assert ground.shape == (6, 2 * 2 * 64)
    np.testing.assert_allclose(np.linalg.norm(ground, axis=1), 1.0, atol=1e-5)
    for name in ("recall_curve", "retrievals", "feature_alignment", "transport_plan"):
        assert os.path.getsize(os.path.join(eval_dir, f"{name}.png")) > 0
    tf_dir = str(tmp_path / "eval_tf")
    cli("evaluate", "--config=configs/cvusa.py:smoke", f"--workdir={workdir}", "--backend=tensorflow",
        f"--out={tf_dir}", *config_overrides(dataset_root))  # fmt: skip
    with open(os.path.join(tf_dir, "metrics.json")) as handle:
        on_tensorflow = json.load(handle)
    assert (metrics["backend"], on_tensorflow["backend"]) == ("numpy", "tensorflow")
    assert {k: on_tensorflow[k] for k in REPORTED} == {k: metrics[k] for k in REPORTED}

    saved = str(tmp_path / "saved")
    exported = cli("export", "--config=configs/cvusa.py:smoke", f"--workdir={workdir}", f"--out={saved}")
    terminal = exported.stdout + exported.stderr
    assert "5/5 steps" in terminal and terminal.count("5/5 steps") == 1, terminal  # progress, its last line once
    for library_line in ("Function `<lambda>` contains input name", "Assets written to", "Writing fingerprint"):
        assert library_line not in terminal, terminal
    with open(os.path.join(saved, "assets.extra", "cvft_export.json")) as handle:
        assert json.load(handle)["raw_ground"] == "none"  # CVUSA panoramas are used whole
    model = keras.saving.load_model(os.path.join(workdir, "best.keras"))
    rng = np.random.default_rng(0)
    ground_rgb = rng.integers(0, 256, size=(2, *RAW_GROUND, 3), dtype=np.uint8)
    aerial_rgb = rng.integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
    ground_ready = np.stack([resize_image(g[..., ::-1], (32, 176)) for g in ground_rgb])
    aerial_ready = np.stack([resize_image(a[..., ::-1], (64, 64)) for a in aerial_rgb])
    signatures = tf.saved_model.load(saved).signatures
    np.testing.assert_allclose(
        signatures["ground"](images=tf.constant(ground_rgb))["descriptor"].numpy(),
        model.ground_encoder(ground_ready).numpy(),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        signatures["aerial_resized"](images=tf.constant(aerial_ready, tf.float32))["descriptor"].numpy(),
        model.aerial_encoder(aerial_ready).numpy(),
        atol=1e-5,
    )


def test_clear_errors(dataset_root, tmp_path):
    result = cli(
        "train", "--config=configs/cvusa.py:smoke", "--config.train.epoch=3", f"--workdir={tmp_path}", check=False
    )
    assert result.returncode != 0 and 'Did you mean "epochs"' in result.stderr

    result = cli("train", "--config=configs/cvusa.py:smoke", "--config.data.root=/no/such/dir", f"--workdir={tmp_path}",
                 check=False)  # fmt: skip
    assert result.returncode == 2 and "/no/such/dir does not exist" in result.stderr

    result = cli("evaluate", "--config=configs/cvusa.py:smoke", f"--workdir={tmp_path / 'empty'}",
                 *config_overrides(dataset_root), check=False)  # fmt: skip
    assert result.returncode == 2 and "No trained model" in result.stderr

    workdir = str(tmp_path / "run")
    training.train(smoke_config(dataset_root, 1), workdir)
    mismatched = smoke_config(dataset_root, 2)
    mismatched.model.variant = "vgg_conv"
    with pytest.raises(checkpoints.CheckpointError, match="variant: checkpoint has 'cvft', config asks for 'vgg_conv'"):
        training.train(mismatched, workdir)


def test_salad_variant_through_the_training_pipeline(dataset_root, tmp_path):
    config = cvusa_config.get_config("salad,smoke")
    config.data.root = dataset_root
    config.data.raw_ground_size = RAW_GROUND
    config.train.epochs = 1
    workdir = str(tmp_path / "salad")
    model = training.train(config, workdir)
    assert model.variant == "salad"
    state = read_state(workdir)
    position = (state["checkpoint"], state["epoch"], state["step_in_epoch"], state["batches"])
    assert position == ("epoch-0001.keras", 1, 0, 2)
    reloaded = checkpoints.load_model(os.path.join(workdir, "best.keras"), config.model)
    assert reloaded.descriptor_size == 8 + 8 * 4


def test_limited_fov_queries_of_unknown_heading_train_and_evaluate_with_heading_errors(dataset_root, tmp_path):
    workdir = str(tmp_path / "dsm")
    args = ["--config=configs/cvusa.py:dsm,fov90,smoke", f"--workdir={workdir}", "--config.train.epochs=1",
            *config_overrides(dataset_root)]  # fmt: skip
    cli("train", *args)
    printed = cli("evaluate", *args).stdout
    assert "heading error" in printed
    eval_dir = os.path.join(workdir, "eval")
    with open(os.path.join(eval_dir, "metrics.json")) as handle:
        metrics = json.load(handle)
    assert metrics["variant"] == "dsm" and metrics["ground_fov_deg"] == 90.0 and metrics["unknown_heading"]
    assert metrics["heading"]["num_correct"] == round(metrics["r@1"] * metrics["num_queries"] / 100)
    headings = np.load(os.path.join(eval_dir, "headings.npy"))
    assert headings.shape == (metrics["num_queries"],) and np.all((headings >= -180) & (headings < 180))
    assert len(set(headings.tolist())) > 1
    ranks = np.load(os.path.join(eval_dir, "ranks.npy"))
    assert np.mean(ranks == 0) * 100 == pytest.approx(metrics["r@1"])
    cli("evaluate", *args, f"--out={tmp_path / 'again'}")
    np.testing.assert_array_equal(np.load(str(tmp_path / "again" / "headings.npy")), headings)
