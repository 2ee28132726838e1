"""cvft-export under faults: no model to export, an unreadable model, an output location in the way.

The output location is checked before the model is loaded, so these cases need no model;
what was at ``--out`` before must be there unchanged afterwards.
"""

import os

import pytest

from tests.faults.harness import SMOKE, assert_exit, digests, run
from tests.faults.worlds import assert_unchanged

pytestmark = pytest.mark.large


def export(workdir, out):
    return run("cvft-export", f"--config={SMOKE}", f"--workdir={workdir}", f"--out={out}")


def test_a_workdir_with_no_model(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    result = export(workdir, tmp_path / "saved")
    assert_exit(result, 2, f"error: No trained model in {workdir} (no best.keras, no checkpoints/)")
    assert not (tmp_path / "saved").exists()


def test_an_output_that_is_a_regular_file(tmp_path):
    out = tmp_path / "saved"
    out.write_text("keep me")
    result = export(tmp_path / "run", out)
    assert_exit(result, 2, f"error: --out {out} is a file, not a SavedModel directory")
    assert out.read_text() == "keep me"
    assert os.listdir(tmp_path) == ["saved"]  # nothing half-written beside it


def test_an_output_below_a_regular_file(tmp_path):
    blocker = tmp_path / "models"
    blocker.write_text("keep me")
    result = export(tmp_path / "run", blocker / "saved")
    assert_exit(result, 2, f"error: cannot write to the folder of --out {blocker}: it is a file, not a directory")
    assert blocker.read_text() == "keep me"


def test_an_output_directory_of_other_files_is_not_replaced(tmp_path):
    out = tmp_path / "results"
    (out / "notes").mkdir(parents=True)
    (out / "notes" / "table.md").write_text("| r@1 |")
    before = digests(out)
    result = export(tmp_path / "run", out)
    assert_exit(result, 2, f"error: --out {out} is a directory that holds no saved_model.pb")
    assert_unchanged(out, before)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only directory")
def test_an_output_in_a_read_only_directory(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    result = export(tmp_path / "run", locked / "saved")
    assert_exit(result, 2, f"error: cannot write to the folder of --out {locked}: Permission denied")
