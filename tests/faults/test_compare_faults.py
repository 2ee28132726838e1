"""cvft-compare under faults: a missing run, a run without or with a broken evaluation, ``--out`` in the way.

The table and plot written by an earlier successful comparison must be unchanged afterwards.
"""

import pytest

from tests.evaluation.test_compare import write_eval
from tests.faults.harness import assert_exit, digests, run, truncate
from tests.faults.worlds import assert_unchanged, built_once, copy_tree

pytestmark = pytest.mark.large


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """Two evaluated runs and their successful comparison: dict ``runs``, ``out``, ``digests``."""
    with built_once(tmp_path_factory, "compared") as (root, build):
        runs, out = [root / "cvft-0", root / "cvft-1"], root / "table"
        if build:
            for seed, workdir in enumerate(runs):
                write_eval(str(workdir), seed, 0.3)
            assert_exit(compare(out, *(f"cvft={workdir}" for workdir in runs)), 0)
    return {"runs": runs, "out": out, "digests": digests(out)}


@pytest.fixture
def earlier_table(compared, tmp_path):
    """A copy of the earlier comparison's folder, for a failing run to write into."""
    return copy_tree(compared["out"], tmp_path / "table")


@pytest.fixture
def broken_run(compared, tmp_path):
    """A copy of an evaluated run, to break."""
    return copy_tree(compared["runs"][0], tmp_path / "broken")


def compare(out, *runs):
    return run("cvft-compare", f"--out={out}", *(f"--run={spec}" for spec in runs))


def test_the_earlier_comparison_is_complete(compared):
    assert set(compared["digests"]) == {"table.md", "recall_curves.png"}
    assert "| cvft | 2 |" in (compared["out"] / "table.md").read_text()


def test_a_run_workdir_that_does_not_exist(compared, earlier_table, tmp_path):
    missing = tmp_path / "no_such_run"
    result = compare(earlier_table, f"cvft={compared['runs'][0]}", f"other={missing}")
    assert_exit(result, 2, f"error: {missing / 'eval' / 'metrics.json'} is missing: run cvft-eval on that run first.")
    assert_unchanged(earlier_table, compared["digests"])


def test_a_run_without_metrics_json(compared, earlier_table, broken_run):
    metrics = broken_run / "eval" / "metrics.json"
    metrics.unlink()
    result = compare(earlier_table, f"cvft={compared['runs'][0]}", f"other={broken_run}")
    assert_exit(result, 2, f"error: {metrics} is missing: run cvft-eval on that run first.")
    assert_unchanged(earlier_table, compared["digests"])


def test_a_truncated_metrics_json(compared, earlier_table, broken_run):
    metrics = broken_run / "eval" / "metrics.json"
    truncate(metrics, 40)
    result = compare(earlier_table, f"cvft={compared['runs'][0]}", f"other={broken_run}")
    assert_exit(result, 2, f"error: {metrics} is not valid JSON (")
    assert_unchanged(earlier_table, compared["digests"])


def test_an_output_that_is_a_regular_file(compared, tmp_path):
    out = tmp_path / "table"
    out.write_text("keep me")
    result = compare(out, f"cvft={compared['runs'][0]}")
    assert_exit(result, 2, f"error: cannot write to the --out directory {out}: it is a file, not a directory")
    assert out.read_text() == "keep me"
