"""Two writers on one directory: a second ``cvft-train`` on a workdir, a second ``cvft-index``
on an index, while another process holds it.

The test process holds the directory's lock (:mod:`cvft_tf.directory_lock`), as a first run
would; the second command must end with status 2 naming the holder's pid, and leave every
file as it was. Once the holder is gone (a killed run's lock is released by the kernel),
the directory is free again.
"""

import os

import pytest

from cvft_tf import directory_lock
from tests.faults.harness import assert_exit, digests, run
from tests.faults.test_localize_faults import built, index_args  # noqa: F401 - the shared index fixture
from tests.faults.test_train_faults import train_args, world  # noqa: F401 - the shared world fixture
from tests.faults.worlds import copy_tree
from tests.localization.fixtures import write_tile_folder

pytestmark = pytest.mark.large


def test_a_second_training_run_on_a_held_workdir_exits_2(world, tmp_path):  # noqa: F811
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text("{}")  # stands for the first run's files
    with directory_lock.hold(str(workdir), "workdir"):
        before = digests(workdir)
        result = run("cvft-train", *train_args(world, workdir))
        assert digests(workdir) == before
    assert_exit(result, 2, f"error: the workdir {workdir} is in use by another run (pid {os.getpid()}: ")
    assert (workdir / directory_lock.LOCK_NAME).read_text() == ""


def test_a_second_index_run_on_a_held_index_exits_2(built, tmp_path):  # noqa: F811
    index_dir = copy_tree(built / "index", tmp_path / "index")
    tiles, _ = write_tile_folder(str(tmp_path / "tiles"), [(15, 15), (40, 30)])
    with directory_lock.hold(str(index_dir), "index directory"):
        before = digests(index_dir)
        result = run("cvft-index", *index_args(built / "run", tiles, index_dir))
        assert digests(index_dir) == before
    assert_exit(result, 2, f"error: the index directory {index_dir} is in use by another run (pid {os.getpid()}: ")


def test_a_lock_left_by_a_process_that_ended_is_free(tmp_path):
    (tmp_path / directory_lock.LOCK_NAME).write_text("pid 1: cvft-train --workdir run (killed)\n")
    with directory_lock.hold(str(tmp_path), "workdir"):
        assert (tmp_path / directory_lock.LOCK_NAME).read_text().startswith(f"pid {os.getpid()}: ")
