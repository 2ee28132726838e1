"""cvft-convert-salad under faults: missing, corrupt or foreign PyTorch files, a bad ``--out``.

Runs the installed console script. Files written before at ``--out`` must be unchanged after a failing conversion.
"""

import numpy as np
import pytest

from tests.faults.harness import assert_exit, run, truncate
from tests.interop.test_salad_torch import tiny_checkpoint, torch_save

pytestmark = pytest.mark.large


def convert(*args):
    return run("cvft-convert-salad", *args)


@pytest.fixture
def earlier_output(tmp_path):
    """A ``.weights.h5`` and its JSON written by an earlier conversion (bytes stand in for them)."""
    out = tmp_path / "converted" / "salad.weights.h5"
    out.parent.mkdir()
    out.write_bytes(b"earlier weights")
    (tmp_path / "converted" / "salad.json").write_text("{}")
    return out


def unchanged(out):
    return out.read_bytes() == b"earlier weights" and out.with_name("salad.json").read_text() == "{}"


def test_an_existing_output_needs_overwrite(tmp_path, earlier_output):
    result = convert(f"--ckpt={tmp_path / 'missing.ckpt'}", f"--out={earlier_output}")
    assert_exit(result, 2, f"error: --out {earlier_output} exists; pass --overwrite to replace it.")
    assert unchanged(earlier_output)


def test_a_missing_checkpoint(tmp_path, earlier_output):
    result = convert(f"--ckpt={tmp_path / 'missing.ckpt'}", f"--out={earlier_output}", "--overwrite")
    assert_exit(result, 2, f"error: --ckpt file '{tmp_path / 'missing.ckpt'}' not found")
    assert unchanged(earlier_output)


def test_an_output_below_a_regular_file(tmp_path):
    blocker = tmp_path / "converted"
    blocker.write_text("keep me")
    result = convert(f"--ckpt={tmp_path / 'missing.ckpt'}", f"--out={blocker / 'salad.weights.h5'}")
    assert_exit(result, 2, f"error: cannot write to the folder of --out {blocker}: it is a file, not a directory")
    assert blocker.read_text() == "keep me"


def test_an_output_that_is_not_a_weights_file(tmp_path):
    result = convert(f"--ckpt={tmp_path / 'missing.ckpt'}", f"--out={tmp_path / 'salad.h5'}")
    assert_exit(result, 2, "error: --out must end in .weights.h5 (Keras weights)")


def test_a_truncated_checkpoint(tmp_path, earlier_output):
    pytest.importorskip("torch")
    ckpt = torch_save(tiny_checkpoint(), tmp_path / "dino_salad.ckpt")
    truncate(ckpt, 2000)
    result = convert(f"--ckpt={ckpt}", f"--out={earlier_output}", "--overwrite", "--num_heads=2")
    assert_exit(result, 2, f"error: --ckpt {ckpt} is not a readable PyTorch checkpoint")
    assert unchanged(earlier_output)


def test_a_dinov2_file_that_is_no_state_dict(tmp_path, earlier_output):
    torch = pytest.importorskip("torch")
    ckpt = torch_save(tiny_checkpoint(), tmp_path / "dino_salad.ckpt")
    torch.save([torch.zeros(3)], tmp_path / "dinov2.pth")
    result = convert(f"--ckpt={ckpt}", f"--dinov2={tmp_path / 'dinov2.pth'}", f"--out={earlier_output}", "--overwrite")
    assert_exit(result, 2, f"error: --dinov2 {tmp_path / 'dinov2.pth'} holds no state dict")
    assert unchanged(earlier_output)


def test_a_checkpoint_that_does_not_fit(tmp_path, earlier_output):
    pytest.importorskip("torch")
    checkpoint = tiny_checkpoint()
    del checkpoint["backbone.model.blocks.0.mlp.fc2.bias"]
    checkpoint["aggregator.dust_bin"] = np.ones(2, np.float32)
    ckpt = torch_save(checkpoint, tmp_path / "dino_salad.ckpt")
    result = convert(f"--ckpt={ckpt}", f"--out={earlier_output}", "--overwrite", "--num_heads=2")
    assert_exit(
        result,
        2,
        f"error: --ckpt {ckpt} cannot be converted to DINOv2 + SALAD:",
        "backbone.model.blocks.0.mlp.fc2.bias [32]",
        "aggregator.dust_bin: file [2], model []",
    )
    assert unchanged(earlier_output)
