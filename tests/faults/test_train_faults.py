"""cvft-train under faults: killed at any step, stopped by signals, killed mid-write, bad files.

Every run is the installed ``cvft-train`` on a tiny world, deterministic, with dropout (so
its RNG state matters), a step backup after every step and 4 steps an epoch. A run that is
interrupted and resumed must end with exactly the weights and optimizer state of the
uninterrupted run.
"""

import os
import random
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from cvft_tf import checkpoints, training
from tests.faults.harness import assert_exit, command_path, data_overrides, digests, run, truncate, write_world

pytestmark = pytest.mark.large
EPOCHS = 2
STEPS_PER_EPOCH = 4  # 16 training pairs, batches of 4


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_world(tmp_path_factory.mktemp("world"), num_train=16)


def train_args(world, workdir, *overrides, epochs=EPOCHS):
    return [
        "--config=configs/synthetic.py:smoke", f"--workdir={workdir}", *data_overrides(world),
        "--config.train.deterministic=True", "--config.model.backbone.dropout_rate=0.2",
        f"--config.train.epochs={epochs}",
        "--config.train.backup_every_steps=1", "--config.train.keep_checkpoints=2", *overrides,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def uninterrupted(world, tmp_path_factory):
    """The workdir of a run that was never interrupted."""
    workdir = tmp_path_factory.mktemp("uninterrupted") / "run"
    assert_exit(run("cvft-train", *train_args(world, workdir)), 0)
    return workdir


@pytest.fixture
def workdir(tmp_path):
    """A fresh workdir, removed after the test (checkpoints are hundreds of MB)."""
    yield tmp_path / "run"
    shutil.rmtree(tmp_path, ignore_errors=True)


def start(args, log_path):
    """Starts ``cvft-train args`` with stdout and stderr in ``log_path``."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    with open(log_path, "w") as log:
        return subprocess.Popen([command_path("cvft-train"), *args], env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_until(condition, process, timeout=240, interval=0.05):
    """Polls ``condition()`` until it is true; fails if ``process`` ends first or time runs out."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        if process.poll() is not None:
            pytest.fail(f"cvft-train ended (status {process.returncode}) before the awaited moment")
        time.sleep(interval)
    process.kill()
    pytest.fail("the awaited moment did not come")


def freeze(process):
    """Stops ``process`` with SIGSTOP and waits until every thread of it is stopped, so the
    files it writes stay as they are while the test looks at them."""
    process.send_signal(signal.SIGSTOP)
    tasks = f"/proc/{process.pid}/task"
    while True:
        states = []
        for thread in os.listdir(tasks):
            with open(os.path.join(tasks, thread, "stat")) as stat:
                states.append(stat.read().rsplit(")", 1)[1].split()[0])
        if all(state in "TtZX" for state in states):
            return
        time.sleep(0.001)


def saved_batches(workdir):
    """Batches read by the newest checkpoint of ``workdir`` (0 before the first)."""
    state = checkpoints.latest_state(str(workdir))
    return 0 if state is None else state["batches"]


def final_checkpoint(workdir):
    return os.path.join(workdir, "checkpoints", f"epoch-{EPOCHS:04d}.keras")


def assert_same_run(workdir, reference):
    """The final checkpoint and the history of ``workdir`` are exactly those of ``reference``."""
    got = checkpoints.load_model(final_checkpoint(workdir))
    want = checkpoints.load_model(final_checkpoint(reference))
    assert int(got.optimizer.iterations) == int(want.optimizer.iterations) == EPOCHS * STEPS_PER_EPOCH
    for mine, theirs in zip(got.weights + got.optimizer.variables, want.weights + want.optimizer.variables):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)
    assert training.read_history(str(workdir)) == training.read_history(str(reference))


def test_sigkill_at_a_random_step_then_resume_gives_the_uninterrupted_run(world, uninterrupted, workdir):
    kill_after = random.Random().randrange(1, EPOCHS * STEPS_PER_EPOCH - 1)
    process = start(train_args(world, workdir), workdir.parent / "killed.log")
    wait_until(lambda: saved_batches(workdir) >= kill_after, process)
    process.kill()
    process.wait()
    killed_at = saved_batches(workdir)
    assert 0 < killed_at < EPOCHS * STEPS_PER_EPOCH, f"killed after step {kill_after}, saved {killed_at}"
    resumed = run("cvft-train", *train_args(world, workdir))
    assert_exit(resumed, 0)
    assert f"Resuming from {workdir}/checkpoints/" in resumed.stderr
    assert_same_run(workdir, uninterrupted)


def stop_after_the_first_backup(number, world, workdir):
    """Starts a run, sends it signal ``number`` once a step is saved; returns its output."""
    log_path = workdir.parent / "stopped.log"
    process = start(train_args(world, workdir), log_path)
    wait_until(lambda: saved_batches(workdir) >= 1, process)
    process.send_signal(number)
    assert process.wait(timeout=120) == 128 + number
    with open(log_path) as log:
        return log.read()


def test_sigterm_saves_the_step_exits_143_and_the_resumed_run_is_the_uninterrupted_one(world, uninterrupted, workdir):
    output = stop_after_the_first_backup(signal.SIGTERM, world, workdir)
    state = checkpoints.latest_state(str(workdir))
    assert f"stopped: SIGTERM: training stopped after {'step' if state['step_in_epoch'] else 'epoch'}" in output
    assert f"the state is saved in {workdir}/checkpoints/{state['checkpoint']}: run the same command" in output
    assert "Traceback" not in output
    assert_exit(run("cvft-train", *train_args(world, workdir)), 0)
    assert_same_run(workdir, uninterrupted)


def test_ctrl_c_stops_with_status_130_and_a_loadable_backup(world, workdir):
    output = stop_after_the_first_backup(signal.SIGINT, world, workdir)
    assert "stopped: SIGINT: training stopped after" in output and "Traceback" not in output
    model, state = checkpoints.load_latest(str(workdir))
    assert int(model.optimizer.iterations) == state["batches"] >= 1


def test_sigkill_while_a_checkpoint_is_written_leaves_the_run_resumable(world, uninterrupted, workdir):
    directory = workdir / "checkpoints"
    process = start(train_args(world, workdir), workdir.parent / "killed.log")

    def writing():
        names = os.listdir(directory) if os.path.isdir(directory) else []
        return any(name.startswith(checkpoints.PARTIAL_PREFIX) for name in names) and saved_batches(workdir) >= 1

    while True:  # the write seen may end before the kill: freeze the process, then look again
        wait_until(writing, process, interval=0.002)
        freeze(process)
        if writing():
            break
        process.send_signal(signal.SIGCONT)
    process.kill()
    process.wait()
    assert any(name.startswith(checkpoints.PARTIAL_PREFIX) for name in os.listdir(directory))
    resumed = run("cvft-train", *train_args(world, workdir))
    assert_exit(resumed, 0)
    assert not [name for name in os.listdir(directory) if name.startswith(checkpoints.PARTIAL_PREFIX)]
    assert_same_run(workdir, uninterrupted)


def test_a_truncated_newest_checkpoint_is_passed_over_for_the_one_before(world, uninterrupted, workdir):
    shutil.copytree(uninterrupted, workdir)
    newest = final_checkpoint(workdir)
    truncate(newest, 4096)
    result = run("cvft-train", *train_args(world, workdir))
    assert_exit(result, 0, f"Passing over an unreadable checkpoint: {newest} is not a readable .keras archive")
    assert f"Resuming from {workdir}/checkpoints/epoch-{EPOCHS - 1:04d}.keras" in result.stderr
    assert_same_run(workdir, uninterrupted)


def test_a_truncated_training_image_is_skipped_and_counted(tmp_path, workdir):
    root = write_world(tmp_path / "world", num_train=16)
    bad = os.path.join(root, "streetview", "panos", "0000010.jpg")  # pairs 7-16 are in no validation pair
    truncate(bad)
    result = run("cvft-train", *train_args(root, workdir, "--config.data.max_bad_fraction=0.1", epochs=1))
    assert_exit(result, 0, f"{bad} is truncated (the JPEG has no end-of-image marker)", "1 of 16 pairs bad so far")
    assert training.read_history(str(workdir))["skipped_pairs"] == [1.0]


def test_a_bad_validation_image_exits_2_and_keeps_what_was_written(uninterrupted, tmp_path, workdir):
    root = write_world(tmp_path / "world", num_train=16)
    shutil.copytree(uninterrupted, workdir)
    rewritten = ("checkpoints/state.json", "config.json")  # the new run's own
    kept = {name: digest for name, digest in digests(workdir).items() if name not in rewritten}
    bad = os.path.join(root, "bingmap", "19", "0000002.jpg")
    truncate(bad)
    # the validation files are training files too: training may skip one
    overrides = ("--config.train.backup_every_steps=0", "--config.data.max_bad_fraction=0.1")
    result = run("cvft-train", *train_args(root, workdir, *overrides, epochs=EPOCHS + 1))
    assert_exit(result, 2, f"error: bad image in evaluation: {root}/splits/val-19zl.csv:2: {bad} is truncated")
    after = digests(workdir)
    assert {name: after.get(name) for name in kept} == kept


def test_an_unwritable_workdir_exits_2(world, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = run("cvft-train", *train_args(world, blocker / "run"))
    assert_exit(result, 2, f"error: cannot write to the workdir {blocker}/run: Not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_a_read_only_workdir_exits_2(world, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    result = run("cvft-train", *train_args(world, locked))
    assert_exit(result, 2, f"error: cannot write to the workdir {locked}: Permission denied")


def test_a_scalar_size_and_an_empty_root_are_clean_errors(world, workdir):
    result = run("cvft-train", *train_args(world, workdir, "--config.model.ground_size=3"))
    assert_exit(result, 2, "error: config.model.ground_size must be (height, width), two positive integers; got (3,)")
    result = run("cvft-train", *train_args(world, workdir, "--config.data.root="))
    assert_exit(result, 2, "error: config.data.root is empty: pass --config.data.root=/path/to/dataset")
    assert not os.path.exists(workdir)
