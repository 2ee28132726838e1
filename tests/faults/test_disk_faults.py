"""cvft-train, cvft-eval, cvft-export and cvft-index on a full disk.

Each command writes into a small tmpfs filled up to a few hundred KB: it must end with status
2 and one ``error:`` line naming the file it could not write and the space left, no
traceback, and the file that was on the disk before unchanged. Mounting needs root; without
it the cases are skipped.
"""

import os
import subprocess

import pytest

from tests.faults.harness import SMOKE, assert_exit, data_overrides, digests, run, write_world
from tests.faults.worlds import copy_tree, save_tiny_model
from tests.localization.fixtures import write_png_map

pytestmark = pytest.mark.large
FREE_BYTES = 256 * 1024
"""Room left on the full disk: enough for config.json and the logs, not for a model."""


@pytest.fixture
def full_disk(tmp_path):
    """A tmpfs at ``tmp_path / "disk"`` holding ``earlier.txt`` and a filler that leaves
    :data:`FREE_BYTES` free; unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        (disk / "earlier.txt").write_text("written before the command")
        free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
        with open(disk / "filler", "wb") as filler:
            filler.write(bytes(free - FREE_BYTES))
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def assert_full_disk_error(result, disk, before):
    """Status 2, one line naming a file on ``disk`` and the space left, ``disk`` as in ``before``
    (apart from what the command may keep, which is checked by the caller)."""
    assert_exit(result, 2, f"error: cannot write {disk}/", "No space left on device (", " KiB free there)")
    after = digests(disk)
    assert {name: after.get(name) for name in before} == before


def test_training_on_a_full_disk(tmp_path, full_disk):
    world = write_world(tmp_path / "world", num_train=8)
    before = digests(full_disk)
    workdir = full_disk / "run"
    result = run(
        "cvft-train", "--config=configs/synthetic.py:smoke", f"--workdir={workdir}", *data_overrides(world),
        "--config.train.epochs=1", "--config.train.backup_every_steps=1",
    )  # fmt: skip
    assert_full_disk_error(result, full_disk, before)
    assert f"error: cannot write {workdir}/checkpoints/step-00000001.keras: No space left on device" in result.stderr


def test_export_on_a_full_disk(tmp_path, full_disk):
    workdir = save_tiny_model(str(tmp_path / "run"))
    before = digests(full_disk)
    result = run("cvft-export", f"--config={SMOKE}", f"--workdir={workdir}", f"--out={full_disk / 'saved'}")
    assert_full_disk_error(result, full_disk, before)
    assert sorted(os.listdir(full_disk)) == ["earlier.txt", "filler"]  # the unfinished export is removed


def test_index_on_a_full_disk(tmp_path, full_disk):
    workdir = save_tiny_model(str(tmp_path / "run"))
    map_path = write_png_map(str(tmp_path), size=(60, 80), metres_per_pixel=2.0)
    with open(full_disk / "filler", "r+b") as filler:  # the index of this map is a few KB
        filler.seek(0, os.SEEK_END)
        filler.write(bytes(FREE_BYTES - 8192))
    before = digests(full_disk)
    result = run(
        "cvft-index", f"--config={SMOKE}", "--config.data.aerial_footprint_m=40", f"--workdir={workdir}",
        f"--map={map_path}", f"--out={full_disk / 'index'}", "--stride_m=10",
    )  # fmt: skip
    assert_full_disk_error(result, full_disk, before)


def folder_size(directory):
    """Bytes of the files under ``directory``."""
    return sum(os.path.getsize(os.path.join(parent, name)) for parent, _, names in os.walk(directory) for name in names)


def test_an_evaluation_that_fills_the_disk_keeps_the_earlier_one_whole(tmp_path, full_disk):
    """The new outputs fit only in part: the earlier evaluation (another setting's descriptors and
    metrics) stays as it was, and nothing of the new one is left beside it."""
    world = write_world(tmp_path / "world")
    workdir = save_tiny_model(str(tmp_path / "run"))
    first = tmp_path / "first"
    arguments = [f"--config={SMOKE}", f"--workdir={workdir}", *data_overrides(world)]
    assert_exit(run("cvft-eval", *arguments, f"--out={first}"), 0)
    size = folder_size(first)
    with open(full_disk / "filler", "r+b") as filler:  # room for the earlier evaluation and half a new one
        filler.truncate(max(os.path.getsize(full_disk / "filler") - size - size // 2 + FREE_BYTES, 0))
    earlier = copy_tree(first, full_disk / "eval")
    before = digests(full_disk)
    result = run("cvft-eval", *arguments, f"--out={earlier}", "--orientation_noise_deg=20")
    assert_full_disk_error(result, full_disk, before)
    assert digests(earlier) == digests(first)
    assert sorted(os.listdir(full_disk)) == ["earlier.txt", "eval", "filler"]
