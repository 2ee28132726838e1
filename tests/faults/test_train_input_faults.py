"""cvft-train on settings it cannot use and on hostile input: each ends as the user's error.

Settings out of range end at start-up with status 2 naming the field and its range, before
anything is written; an image whose header claims a huge size is a counted skip, not decoded;
a resume after the training split changed drops the saved bad-pair list and says so.
"""

import shutil

import pytest

from tests.faults.harness import assert_exit, data_overrides, digests, run, write_world
from tests.faults.worlds import assert_unchanged

pytestmark = pytest.mark.large
HUGE = (9000, 9000)
"""A size claimed by a crafted header: 81 Mpixel, over the default cap of 64 Mpixel."""


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return write_world(tmp_path_factory.mktemp("world"), num_train=16)


def train(world, workdir, *overrides):
    return run(
        "cvft-train", "--config=configs/synthetic.py:smoke", f"--workdir={workdir}", *data_overrides(world),
        "--config.train.backup_every_steps=0", *overrides,
    )  # fmt: skip


@pytest.fixture
def earlier_workdir(tmp_path):
    """A workdir holding a file from before, and its digests."""
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("an earlier run's notes")
    return workdir, digests(workdir)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.batch_size=0", "error: config.train.batch_size must be an integer >= 1; got 0"),
        ("train.epochs=-1", "error: config.train.epochs must be an integer >= 1; got -1"),
        ("train.learning_rate=nan", "error: config.train.learning_rate must be a finite number above 0; got nan"),
        ("train.learning_rate=0", "error: config.train.learning_rate must be a finite number above 0; got 0"),
        (
            "train.keep_checkpoints=-1",
            "error: config.train.keep_checkpoints must be an integer >= 0 (0: keep every epoch checkpoint); got -1",
        ),
        ("train.steps_per_epoch=-2", "error: config.train.steps_per_epoch must be an integer >= 0"),
        ("data.max_bad_fraction=2.0", "error: config.data.max_bad_fraction must be between 0 and 1; got 2.0"),
        ("data.max_image_pixels=0", "error: config.data.max_image_pixels must be a positive integer; got 0"),
    ],
)
def test_a_setting_out_of_range_exits_2_at_start_up(world, earlier_workdir, override, message):
    workdir, before = earlier_workdir
    assert_exit(train(world, workdir, f"--config.{override}"), 2, message)
    assert_unchanged(workdir, before)


def test_a_batch_larger_than_the_split_names_both_numbers(world, earlier_workdir):
    workdir, before = earlier_workdir
    result = train(world, workdir, "--config.train.batch_size=32")
    csv = f"{world}/splits/train-19zl.csv"
    assert_exit(result, 2, f"error: config.train.batch_size=32 is larger than the 16 pairs of CVUSA split {csv}")
    assert "Resuming" not in result.stderr and "checkpoint" not in result.stderr
    assert_unchanged(workdir, before)


def claim_size(path, height, width):
    """Rewrites the size in the baseline JPEG frame header (SOF0) of ``path``."""
    data = bytearray(open(path, "rb").read())
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    open(path, "wb").write(bytes(data))


@pytest.fixture(scope="module")
def skipped_huge(tmp_path_factory):
    """A one-epoch run over a world whose training pair 10 claims a 9000 x 9000 panorama:
    ``(root, workdir, result)``."""
    folder = tmp_path_factory.mktemp("huge")
    root = write_world(folder / "world", num_train=16)
    claim_size(f"{root}/streetview/panos/0000010.jpg", *HUGE)  # pairs 7-16 are in no validation pair
    workdir = folder / "run"
    result = train(root, workdir, "--config.data.max_bad_fraction=0.1", "--config.train.epochs=1")
    return root, workdir, result


def test_an_image_whose_header_is_too_large_is_a_counted_skip(skipped_huge):
    root, _, result = skipped_huge
    bad = f"{root}/streetview/panos/0000010.jpg"
    pixels = f"{bad} has 9000x9000 = 81000000 pixels in its header, more than config.data.max_image_pixels=64000000"
    assert_exit(result, 0, pixels, "1 of 16 pairs bad so far")


def test_a_resume_after_the_split_changed_drops_the_bad_pair_list(skipped_huge, tmp_path):
    root, trained, _ = skipped_huge
    world, workdir = shutil.copytree(root, tmp_path / "world"), shutil.copytree(trained, tmp_path / "run")
    csv = world / "splits" / "train-19zl.csv"
    lines = csv.read_text().splitlines(keepends=True)
    csv.write_text("".join(lines[1:]))
    checkpoint = workdir / "checkpoints" / "epoch-0001.keras"
    before = checkpoint.read_bytes()
    result = train(world, workdir, "--config.data.max_bad_fraction=0.1", "--config.train.epochs=2")
    assert_exit(
        result, 0, f"Resuming from {checkpoint}",
        "The training split changed since the checkpoint (16 pairs then, 15 now): its list of 1 bad pair(s) is dropped",
        "1 of 15 pairs bad so far",
    )  # fmt: skip
    assert checkpoint.read_bytes() == before
