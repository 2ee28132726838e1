"""cvft-convert under faults: a missing, corrupt or foreign TF1 checkpoint, a bad ``--out``.

A ``.weights.h5`` written before at ``--out`` must be unchanged after a failing conversion.
"""

import numpy as np
import pytest

from tests.faults.harness import assert_exit, run, truncate
from tests.interop.test_tf1_checkpoint import save_tf1

pytestmark = pytest.mark.large


@pytest.fixture
def checkpoint(tmp_path):
    """The prefix of a small TF1 checkpoint that holds one variable of the original's network."""
    return save_tf1(str(tmp_path / "tf1"), {"VGG_grd/conv1_1/biases": np.ones(64, np.float32)})


@pytest.fixture
def earlier_output(tmp_path):
    """A ``.weights.h5`` written by an earlier conversion (its bytes stand in for one)."""
    out = tmp_path / "converted" / "cvft.weights.h5"
    out.parent.mkdir()
    out.write_bytes(b"earlier weights")
    return out


def convert(checkpoint, out, *args):
    return run("cvft-convert", f"--tf1_checkpoint={checkpoint}", f"--out={out}", *args)


def test_a_missing_checkpoint_prefix(tmp_path, earlier_output):
    prefix = tmp_path / "Model" / "model.ckpt"
    result = convert(prefix, earlier_output)
    assert_exit(result, 2, f"error: No TF1 checkpoint at {prefix}: expected the prefix of a tf.train.Saver checkpoint")
    assert earlier_output.read_bytes() == b"earlier weights"


def test_a_truncated_checkpoint_index(checkpoint, earlier_output):
    truncate(f"{checkpoint}.index", 20)
    result = convert(checkpoint, earlier_output)
    assert_exit(result, 2, f"error: TF1 checkpoint {checkpoint} cannot be read (truncated or corrupt index)")
    assert earlier_output.read_bytes() == b"earlier weights"


def test_an_output_below_a_regular_file(checkpoint, tmp_path):
    blocker = tmp_path / "converted"
    blocker.write_text("keep me")
    result = convert(checkpoint, blocker / "cvft.weights.h5")
    assert_exit(result, 2, f"error: cannot write to the folder of --out {blocker}: it is a file, not a directory")
    assert blocker.read_text() == "keep me"


def test_an_output_that_is_a_directory(checkpoint, tmp_path):
    out = tmp_path / "cvft.weights.h5"
    out.mkdir()
    result = convert(checkpoint, out)
    assert_exit(result, 2, f"error: --out {out} is a directory; give the path of the .weights.h5 file to write.")
