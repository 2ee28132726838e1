"""The best-model record: which validation wins, and a record that survives any kill."""

import json
import os

import keras
import numpy as np
import pytest

from cvft_tf import checkpoints
from cvft_tf.models.cross_view import CrossViewModel
from tests.tiny_models import TINY as SIZES

TINY = dict(SIZES, dropout_rate=0.0)


def record(r1, r5=50.0, r10=60.0, loss=0.5, epoch=1):
    return {"epoch": epoch, "r@1": r1, "r@5": r5, "r@10": r10, "r@1%": r1, "val_loss": loss}


def test_better_is_r1_then_r5_then_r10_then_lower_loss():
    assert checkpoints.is_better(record(1.0), None)
    assert checkpoints.is_better(record(3.0, r5=0.0), record(2.0, r5=90.0))
    assert not checkpoints.is_better(record(2.0, r5=10.0), record(3.0))
    assert checkpoints.is_better(record(3.0, r5=51.0), record(3.0, r5=50.0))
    assert checkpoints.is_better(record(3.0, r10=61.0), record(3.0, r10=60.0))
    assert checkpoints.is_better(record(3.0, loss=0.4), record(3.0, loss=0.5))
    assert not checkpoints.is_better(record(3.0, loss=0.6), record(3.0, loss=0.5))
    assert not checkpoints.is_better(record(3.0), record(3.0))


@pytest.fixture
def model():
    model = CrossViewModel("vgg_gp", **TINY)
    model.compile(optimizer=keras.optimizers.Adam())
    return model


def test_the_record_travels_inside_best_keras(model, tmp_path):
    workdir = str(tmp_path)
    assert checkpoints.read_best_record(workdir) is None
    checkpoints.save_best_model(model, workdir, record(4.0, epoch=2))
    assert checkpoints.read_best_record(workdir) == record(4.0, epoch=2)
    with open(tmp_path / "best.json") as handle:
        assert json.load(handle) == record(4.0, epoch=2)
    reloaded = keras.saving.load_model(tmp_path / "best.keras")
    for saved, original in zip(reloaded.weights, model.weights):
        np.testing.assert_array_equal(saved.numpy(), original.numpy())


def test_a_kill_before_the_rename_leaves_the_old_model_with_its_own_record(model, tmp_path, monkeypatch):
    workdir = str(tmp_path)
    checkpoints.save_best_model(model, workdir, record(4.0, epoch=1))
    old_bytes = (tmp_path / "best.keras").read_bytes()

    def killed(*args):
        raise KeyboardInterrupt("killed between writing and publishing")

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_best_model(model, workdir, record(9.0, epoch=2))
    monkeypatch.undo()
    assert (tmp_path / "best.keras").read_bytes() == old_bytes
    assert checkpoints.read_best_record(workdir) == record(4.0, epoch=1)


def test_a_kill_after_the_rename_leaves_the_new_model_with_its_own_record(model, tmp_path, monkeypatch):
    workdir = str(tmp_path)
    checkpoints.save_best_model(model, workdir, record(4.0, epoch=1))

    def killed(*args):
        raise KeyboardInterrupt("killed before best.json")

    monkeypatch.setattr(checkpoints, "write_json_atomic", killed)
    with pytest.raises(KeyboardInterrupt):
        checkpoints.save_best_model(model, workdir, record(9.0, epoch=2))
    assert checkpoints.read_best_record(workdir) == record(9.0, epoch=2)  # best.json is stale, the record is not


def test_a_best_keras_without_record_is_a_clear_error(model, tmp_path):
    model.save(tmp_path / "best.keras")
    with pytest.raises(checkpoints.CheckpointError, match="has no best-model record and there is no best.json"):
        checkpoints.read_best_record(str(tmp_path))
    (tmp_path / "best.keras").write_bytes(b"PK not a zip")
    with pytest.raises(checkpoints.CheckpointError, match="is not a readable .keras archive"):
        checkpoints.read_best_record(str(tmp_path))


def test_a_best_model_of_the_previous_version_resumes_from_its_best_json(model, tmp_path):
    model.save(tmp_path / "best.keras")
    old = {"epoch": 3, "r@1": 7.0, "r@5": 20.0, "r@10": 30.0, "r@1%": 9.0}
    (tmp_path / "best.json").write_text(json.dumps(old))
    legacy = checkpoints.read_best_record(str(tmp_path))
    assert legacy == {**old, "val_loss": float("inf")}
    assert checkpoints.is_better(record(7.0, r5=20.0, r10=30.0, loss=0.9), legacy)
    assert not checkpoints.is_better(record(6.0, r5=90.0), legacy)


def run_state(epoch, step_in_epoch, batches):
    return {"epoch": epoch, "step_in_epoch": step_in_epoch, "batches": batches, "best_r@1": None}


def test_the_newest_checkpoint_is_the_one_with_most_batches_and_backups_are_pruned(model, tmp_path):
    workdir = str(tmp_path)
    assert checkpoints.latest_state(workdir) is None and checkpoints.load_latest(workdir) == (None, None)
    checkpoints.save_checkpoint(model, workdir, run_state(1, 0, 4))
    checkpoints.save_checkpoint(model, workdir, run_state(1, 2, 6))
    state = checkpoints.latest_state(workdir)
    assert (state["checkpoint"], state["batches"], state["step"]) == ("step-00000006.keras", 6, 6)
    assert checkpoints.read_checkpoint_state(state["path"])["step_in_epoch"] == 2
    with open(os.path.join(workdir, "checkpoints", "state.json")) as handle:
        assert json.load(handle)["checkpoint"] == "step-00000006.keras"
    checkpoints.save_checkpoint(model, workdir, run_state(2, 0, 8), keep=1)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["epoch-0002.keras", "state.json"]


def test_an_unreadable_newest_checkpoint_is_passed_over(model, tmp_path):
    workdir = str(tmp_path)
    checkpoints.save_checkpoint(model, workdir, run_state(1, 0, 4))
    newest = checkpoints.save_checkpoint(model, workdir, run_state(1, 3, 7))
    with open(os.path.join(workdir, "checkpoints", newest["checkpoint"]), "r+b") as handle:
        handle.truncate(1000)
    loaded, state = checkpoints.load_latest(workdir)
    assert state["checkpoint"] == "epoch-0001.keras" and isinstance(loaded, CrossViewModel)
    with open(state["path"], "r+b") as handle:
        handle.truncate(1000)
    with pytest.raises(checkpoints.CheckpointError, match="No checkpoint of .* can be read") as error:
        checkpoints.load_latest(workdir)
    assert "epoch-0001.keras is not a readable .keras archive" in str(error.value)
    assert "step-00000007.keras is not a readable .keras archive" in str(error.value)


def test_unfinished_writes_of_a_killed_run_are_removed(tmp_path):
    os.makedirs(tmp_path / "checkpoints")
    leftovers = [tmp_path / ".partial-best.keras", tmp_path / "checkpoints" / ".partial-epoch-0002.keras",
                 tmp_path / "checkpoints" / "state.json.tmp"]  # fmt: skip
    for path in leftovers + [tmp_path / "best.keras"]:
        path.write_bytes(b"x")
    assert sorted(checkpoints.remove_partial_files(str(tmp_path))) == sorted(map(str, leftovers))
    assert os.listdir(tmp_path / "checkpoints") == [] and os.path.exists(tmp_path / "best.keras")


def test_a_corrupt_state_json_does_not_hide_the_checkpoints(model, tmp_path):
    workdir = str(tmp_path)
    checkpoints.save_checkpoint(model, workdir, run_state(1, 0, 4))
    with open(os.path.join(workdir, "checkpoints", "state.json"), "w") as handle:
        handle.write('{"epoch": 1,')
    assert checkpoints.latest_state(workdir)["checkpoint"] == "epoch-0001.keras"
