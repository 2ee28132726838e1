"""cvft-make-synthetic under faults: an ``--out`` in the way or already used, counts that make no dataset."""

import pytest

from tests.faults.harness import assert_exit, digests, run
from tests.faults.worlds import assert_unchanged

pytestmark = pytest.mark.large
TINY = ["--num_train=2", "--num_val=2", "--aerial_size=32", "--ground_height=16", "--ground_width=64"]


def make_synthetic(out, *args):
    """Runs cvft-make-synthetic at tiny sizes; ``args`` come last and win."""
    return run("cvft-make-synthetic", f"--out={out}", *TINY, *args)


def test_an_output_that_is_a_regular_file(tmp_path):
    out = tmp_path / "synthetic"
    out.write_text("keep me")
    result = make_synthetic(out)
    assert_exit(result, 2, f"error: cannot write to the --out directory {out}: it is a file, not a directory")
    assert out.read_text() == "keep me"


def test_an_output_below_a_regular_file(tmp_path):
    blocker = tmp_path / "data"
    blocker.write_text("keep me")
    result = make_synthetic(blocker / "synthetic")
    assert_exit(result, 2, f"error: cannot write to the --out directory {blocker / 'synthetic'}: Not a directory")
    assert blocker.read_text() == "keep me"


def test_an_output_that_holds_a_dataset_already(tmp_path):
    out = tmp_path / "synthetic"
    (out / "splits").mkdir(parents=True)
    (out / "splits" / "train-19zl.csv").write_text("bingmap/19/0000001.jpg,streetview/panos/0000001.jpg,x.png\n")
    before = digests(out)
    result = make_synthetic(out)
    assert_exit(result, 2, f"error: {out} is not empty; pass overwrite=True (--overwrite) to write into it")
    assert_unchanged(out, before)


@pytest.mark.parametrize(
    "counts, message",
    [
        (["--num_train=0", "--num_val=0"], "error: Nothing to write: --num_train, --num_val and --num_test are all 0."),
        (["--format=cvact", "--num_train=0", "--num_val=0", "--num_test=0"], "error: Nothing to write"),
        (["--num_train=-1"], "error: flag --num_train=-1: -1 is not a non-negative integer"),
        (["--num_test=3"], "error: --num_test is for --format=cvact (CVUSA has train and val only)."),
    ],
)
def test_counts_that_make_no_dataset(tmp_path, counts, message):
    out = tmp_path / "synthetic"
    result = make_synthetic(out, *counts)
    assert_exit(result, 2, message)
    assert not out.exists()
