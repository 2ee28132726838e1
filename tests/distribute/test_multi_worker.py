"""Two ``cvft-train`` workers on 127.0.0.1 (MultiWorkerMirroredStrategy, ``TF_CONFIG``) train like one process.

The global batch of 4 is split 2 + 2 between the workers; each scores its pairs against the
whole global batch. The run's losses and its weights after each epoch must match a single
process on the same data within 1e-5, only the chief writes the workdir, and the second
worker's temporary directory is gone at the end. Then both runs are resumed for a second
epoch from their checkpoints and must still agree. Adam at 1e-4 (the synthetic config's
rate) moves the weights by about 1e-4 a step, ten times the tolerance; at 1e-3 the weights
of the two runs differed by 1.2e-5 after two steps, as Adam divides each gradient entry by
its own size and so magnifies the rounding of entries near zero up to the learning rate.
Dropout is off: each replica draws its own masks, so with dropout the runs differ by design.
"""

import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from cvft_tf import checkpoints
from tests.data.fixtures import write_cvusa_train_val

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAW_GROUND = (32, 176)
TOLERANCE = 1e-5
pytestmark = pytest.mark.large


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def train_command(root, workdir, epochs, *extra):
    return [
        sys.executable, "-m", "cvft_tf.cli.train", "--config=configs/cvusa.py:smoke", f"--workdir={workdir}",
        f"--config.data.root={root}", f"--config.data.raw_ground_size={RAW_GROUND}", f"--config.train.epochs={epochs}",
        "--config.train.steps_per_epoch=1", "--config.train.learning_rate=1e-4",
        "--config.model.backbone.dropout_rate=0.0", *extra,
    ]  # fmt: skip


def run_single(root, workdir, epochs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
    done = subprocess.run(train_command(root, workdir, epochs), cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]


def run_two_workers(root, workdir, epochs, scratch):
    """Both workers of a localhost cluster; their stderr, after both ended with status 0."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    processes = []
    for index in range(2):
        tmpdir = scratch / f"worker{index}"
        tmpdir.mkdir(exist_ok=True)
        env = dict(
            os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO, TMPDIR=str(tmpdir),
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
        )  # fmt: skip
        command = train_command(root, workdir, epochs, "--strategy=multi_worker")
        processes.append(subprocess.Popen(command, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True))
    errors = [process.communicate(timeout=900)[1] for process in processes]
    for process, error in zip(processes, errors):
        assert process.returncode == 0, error[-4000:]
    return errors


def history(workdir):
    with open(os.path.join(workdir, "history.csv"), newline="") as handle:
        return list(csv.DictReader(handle))


def assert_same_run(single, multi, epochs):
    single_rows, multi_rows = history(single), history(multi)
    assert len(single_rows) == len(multi_rows) == epochs
    for expected, got in zip(single_rows, multi_rows):
        for key in ("loss", "val_loss"):
            assert abs(float(expected[key]) - float(got[key])) <= TOLERANCE
    name = f"epoch-{epochs:04d}.keras"
    expected = checkpoints.load_model(os.path.join(single, checkpoints.CHECKPOINT_DIR, name))
    got = checkpoints.load_model(os.path.join(multi, checkpoints.CHECKPOINT_DIR, name))
    assert int(got.optimizer.iterations) == int(expected.optimizer.iterations) == epochs
    differences = [np.abs(a - b).max() for a, b in zip(expected.get_weights(), got.get_weights())]
    assert max(differences) <= TOLERANCE
    return expected


def test_two_workers_on_localhost_train_and_resume_like_one_process(tmp_path):
    root = write_cvusa_train_val(str(tmp_path / "world"), RAW_GROUND)
    single, multi = str(tmp_path / "single"), str(tmp_path / "multi")
    run_single(root, single, epochs=1)
    errors = run_two_workers(root, multi, 1, tmp_path)
    assert all("Strategy multi_worker: 2 replica(s) in sync" in error for error in errors)
    first = assert_same_run(single, multi, epochs=1)
    assert sorted(os.listdir(multi)) == sorted(os.listdir(single))
    assert os.listdir(tmp_path / "worker1") == []

    run_single(root, single, epochs=2)
    errors = run_two_workers(root, multi, 2, tmp_path)
    assert all("Resuming from" in error for error in errors)
    second = assert_same_run(single, multi, epochs=2)
    moved = max(np.abs(a - b).max() for a, b in zip(first.get_weights(), second.get_weights()))
    assert moved >= 5e-5
    assert os.listdir(tmp_path / "worker1") == []
