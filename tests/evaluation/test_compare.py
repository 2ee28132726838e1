"""Runs side by side: mean and spread per label, the markdown table, the CLI and the Table 1 script."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cvft_tf.evaluation import compare, recall

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def metrics(r1, r5, r10, r1p, curve, n=100):
    return {"r@1": r1, "r@5": r5, "r@10": r10, "r@1%": r1p, "curve": curve, "num_queries": n}


def test_mean_and_spread_per_label():
    runs = {
        "cvft": [metrics(20, 60, 80, 30, [20, 30, 40]), metrics(10, 50, 70, 20, [10, 20])],
        "vgg_gp": [metrics(5, 25, 40, 9, [5, 9, 12])],
    }
    cvft, vgg_gp = compare.summarize_runs(runs)
    assert cvft.label == "cvft" and cvft.runs == 2 and cvft.num_queries == 100
    assert cvft.mean == {"r@1": 15.0, "r@5": 55.0, "r@10": 75.0, "r@1%": 25.0}
    assert cvft.low["r@1"] == 10 and cvft.high["r@1"] == 20
    assert cvft.curve == [15.0, 25.0]
    table = compare.markdown_table([cvft, vgg_gp], recall.chance_levels(100))
    lines = table.splitlines()
    assert lines[0] == "| method | runs | r@1 | r@5 | r@10 | r@1% |"
    assert lines[2] == "| cvft | 2 | 15.0 (10-20) | 55.0 (50-60) | 75.0 (70-80) | 25.0 (20-30) |"
    assert lines[3] == "| vgg_gp | 1 | 5.0 | 25.0 | 40.0 | 9.0 |"
    assert lines[4] == "| chance | | 1.0 | 5.0 | 10.0 | 1.0 |"
    with pytest.raises(ValueError, match="different query counts"):
        compare.summarize_runs({"x": [metrics(1, 2, 3, 4, [1]), metrics(1, 2, 3, 4, [1], n=50)]})


def test_heading_columns_appear_for_methods_that_estimate_headings():
    with_heading = dict(metrics(30, 60, 80, 30, [30]), heading={"num_correct": 30, "median_error_deg": 8.0,
                                                               "within_10deg": 60.0, "within_20deg": 90.0})  # fmt: skip
    no_correct = dict(metrics(0, 6, 8, 0, [0]), heading={"num_correct": 0})
    summaries = compare.summarize_runs({"dsm": [with_heading, no_correct], "cvft": [metrics(5, 25, 40, 5, [5])]})
    assert summaries[0].heading == {"median_error_deg": 8.0, "within_10deg": 60.0, "within_20deg": 90.0}
    lines = compare.markdown_table(summaries, recall.chance_levels(100)).splitlines()
    assert lines[0].endswith("| r@1% | heading error (median, deg) | heading <= 10 deg (%) | heading <= 20 deg (%) |")
    assert lines[2].endswith("| 8.0 | 60.0 | 90.0 |") and lines[3].endswith("| 5.0 | - | - | - |")
    assert lines[4] == "| chance | | 1.0 | 5.0 | 10.0 | 1.0 |  |  |  |"


def test_a_map_runs_curve_comes_from_its_saved_ranks(tmp_path):
    """No descriptors, stale numbers in metrics.json: the recalls and the curve are the ranks'."""
    eval_dir = tmp_path / "eval"
    eval_dir.mkdir()
    ranks = np.array([0, 0, 3, 12, 1, 0, 7, 30, 2, 0])  # 0-based: four at rank 0, one each at 1, 2, 3, 7
    np.save(eval_dir / "ranks.npy", ranks)
    (eval_dir / "metrics.json").write_text(json.dumps(metrics(0, 0, 0, 0, [0], n=10)))
    run = compare.read_run(str(eval_dir), 10)
    assert (run["r@1"], run["r@5"], run["r@10"]) == (40.0, 70.0, 80.0)
    np.testing.assert_allclose(run["curve"], [40, 50, 60, 70, 70, 70, 70, 80, 80, 80])
    assert len(compare.read_run(str(eval_dir), 4)["curve"]) == 4


def write_eval(workdir, seed, shift):
    """An evaluated run: unit descriptors where ground i is aerial i plus noise."""
    rng = np.random.default_rng(seed)
    aerial = rng.normal(size=(30, 8))
    ground = aerial + shift * rng.normal(size=(30, 8))
    aerial /= np.linalg.norm(aerial, axis=1, keepdims=True)
    ground /= np.linalg.norm(ground, axis=1, keepdims=True)
    eval_dir = os.path.join(workdir, "eval")
    os.makedirs(eval_dir)
    np.save(os.path.join(eval_dir, "ground_descriptors.npy"), ground.astype(np.float32))
    np.save(os.path.join(eval_dir, "aerial_descriptors.npy"), aerial.astype(np.float32))
    summary = recall.summarize(recall.match_ranks(ground, aerial))
    with open(os.path.join(eval_dir, "metrics.json"), "w") as handle:
        json.dump(summary, handle)
    return summary


def test_the_command_writes_table_and_plot(tmp_path):
    good = [write_eval(str(tmp_path / f"good{i}"), i, 0.3) for i in range(2)]
    bad = write_eval(str(tmp_path / "bad"), 5, 3.0)
    out = tmp_path / "out"
    runs = [f"--run=good={tmp_path / 'good0'}", f"--run=good={tmp_path / 'good1'}", f"--run=bad={tmp_path / 'bad'}"]
    command = [sys.executable, "-m", "cvft_tf.cli.compare", f"--out={out}", "--max_k=12", "--title=toy", *runs]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
    assert result.returncode == 0, result.stderr[-2000:]
    table = (out / "table.md").read_text()
    mean_r1 = (good[0]["r@1"] + good[1]["r@1"]) / 2
    assert f"| good | 2 | {mean_r1:.1f} (" in table
    assert f"| bad | 1 | {bad['r@1']:.1f} |" in table
    assert table.startswith("toy\n") and table in result.stdout
    assert (out / "recall_curves.png").stat().st_size > 1000
    missing = subprocess.run(command[:-1] + [f"--run=bad={tmp_path / 'nowhere'}"], cwd=REPO, capture_output=True,
                             text=True, env=dict(os.environ, PYTHONPATH=REPO))  # fmt: skip
    assert missing.returncode == 2
    assert f"{tmp_path / 'nowhere' / 'eval' / 'metrics.json'} is missing" in missing.stderr


def test_the_run_curve_is_recomputed_from_the_descriptors(tmp_path):
    write_eval(str(tmp_path / "run"), 0, 0.8)
    run = compare.read_run(str(tmp_path / "run" / "eval"), 12)
    ground = np.load(tmp_path / "run" / "eval" / "ground_descriptors.npy").astype(np.float64)
    aerial = np.load(tmp_path / "run" / "eval" / "aerial_descriptors.npy").astype(np.float64)
    distances = 2 - 2 * aerial @ ground.T
    ranks = [(distances[:, i] < distances[i, i]).sum() for i in range(30)]
    np.testing.assert_allclose(run["curve"], [100 * np.mean(np.array(ranks) < k) for k in range(1, 13)])


@pytest.mark.large
def test_the_table1_script_runs_at_tiny_size(tmp_path):
    env = dict(
        os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", NUM_TRAIN="8", NUM_VAL="6", SEEDS="0", EPOCHS="1",
        CONFIG_ARG=",smoke", AERIAL_SIZE="64", GROUND_HEIGHT="32", GROUND_WIDTH="176",
        EXTRA="--config.data.raw_ground_size=32,176 --config.train.init=hed",
    )  # fmt: skip
    out = tmp_path / "table1"
    result = subprocess.run(["bash", "scripts/table1_synthetic.sh", str(out)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    table = (out / "table.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in table[4:8]] == ["| cvft", "| vgg_conv", "| vgg_gp", "| chance"]
    assert all(line.split(" | ")[1] == "1" for line in table[4:7])
    assert (out / "recall_curves.png").is_file()
    assert len(list((out / "feature_cache").iterdir())) == 1  # same start, one cache for the three variants


def test_broken_evaluation_folders_are_named(tmp_path):
    eval_dir = tmp_path / "run" / "eval"
    write_eval(str(tmp_path / "run"), 0, 0.5)
    metrics = json.loads((eval_dir / "metrics.json").read_text())
    (eval_dir / "metrics.json").write_text(json.dumps({**metrics, "r@5": "n/a", "curve": []}))
    with pytest.raises(
        compare.EvaluationFolderError, match=r"metrics.json lacks numbers for r@5, curve: run cvft-eval"
    ):
        compare.read_run(str(eval_dir), 5)
    (eval_dir / "metrics.json").write_text('{"r@1": 1')
    with pytest.raises(compare.EvaluationFolderError, match=r"metrics.json is not valid JSON \("):
        compare.read_run(str(eval_dir), 5)
    (eval_dir / "metrics.json").write_text(json.dumps(metrics))
    np.save(eval_dir / "aerial_descriptors.npy", np.zeros((29, 8), np.float32))
    with pytest.raises(
        compare.EvaluationFolderError, match=r"ground descriptors \[30, 8\] and aerial descriptors \[29, 8\]"
    ):
        compare.read_run(str(eval_dir), 5)
    with open(eval_dir / "aerial_descriptors.npy", "r+b") as handle:
        handle.truncate(60)
    with pytest.raises(compare.EvaluationFolderError, match="aerial_descriptors.npy is not a readable .npy file"):
        compare.read_run(str(eval_dir), 5)
