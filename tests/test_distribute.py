"""The strategy a config names, and who writes: the chief into the workdir, other workers into a scratch folder."""

import os
import tempfile
import types

import pytest

from cvft_tf import distribute
from cvft_tf.directory_lock import DirectoryInUseError


def fake_strategy(chief, task_id=1):
    """What ``writing_directory`` reads of a strategy: ``extended.should_checkpoint`` and the task id."""
    return types.SimpleNamespace(
        extended=types.SimpleNamespace(should_checkpoint=chief),
        cluster_resolver=types.SimpleNamespace(task_id=task_id),
    )


def test_the_chief_writes_into_the_workdir(tmp_path):
    workdir = tmp_path / "run"
    with distribute.writing_directory(str(workdir), fake_strategy(chief=True)) as output:
        assert output == str(workdir) and workdir.is_dir()
        with pytest.raises(DirectoryInUseError, match=f"in use by another run \\(pid {os.getpid()}: "):
            with distribute.writing_directory(str(workdir), fake_strategy(chief=True)):
                pass
    assert workdir.is_dir()


def test_another_worker_writes_into_a_scratch_folder_that_is_removed(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    workdir = tmp_path / "run"
    with distribute.writing_directory(str(workdir), fake_strategy(chief=False, task_id=3)) as output:
        assert os.path.dirname(output) == str(tmp_path / "scratch")
        assert os.path.basename(output).startswith("cvft-worker-3-")
        with open(os.path.join(output, "history.csv"), "w") as handle:
            handle.write("epoch\n")
    assert not workdir.exists()
    assert os.listdir(tmp_path / "scratch") == []


def test_the_default_strategy_is_one_chief_replica():
    strategy = distribute.make_strategy("default")
    assert strategy.num_replicas_in_sync == 1
    assert distribute.is_chief(strategy)


def test_an_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="Unknown strategy 'horovod'"):
        distribute.make_strategy("horovod")
