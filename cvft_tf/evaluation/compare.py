"""Several evaluated runs side by side: mean and spread per method, a markdown table, a plot.

Each run is the evaluation folder that ``cvft-eval`` writes (``metrics.json`` and the
descriptors); runs with the same label (the same variant trained with different seeds, say)
are one row: the mean of each r@K and its spread, the lowest and highest value over the runs.
"""

import dataclasses
import json
import os

import numpy as np

from cvft_tf.evaluation import figures, recall

REPORTED = recall.REPORTED_METRICS


@dataclasses.dataclass(frozen=True)
class MethodSummary:
    """One method's results over its runs.

    Attributes:
        label: the method's name (a row of the table).
        runs: number of runs.
        mean: dict r@K -> mean percentage.
        low, high: dict r@K -> lowest and highest percentage.
        curve: mean r@K for K = 1.. (the shortest run's length).
        num_queries: queries of each run (they must agree).
    """

    label: str
    runs: int
    mean: dict
    low: dict
    high: dict
    curve: list
    num_queries: int


METRICS_FILES = ("metrics.json", "ground_descriptors.npy", "aerial_descriptors.npy")
"""What ``cvft-eval`` writes that a comparison reads."""


def read_run(eval_dir, max_k):
    """A run's ``metrics.json``, its ``curve`` recomputed for K = 1..``max_k`` (at most N)
    from the saved descriptors (``metrics.json`` keeps it only up to the r@1% K).

    Raises:
        FileNotFoundError: ``eval_dir`` lacks ``metrics.json`` or the descriptors.
    """
    paths = {name: os.path.join(eval_dir, name) for name in METRICS_FILES}
    for path in paths.values():
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing: run cvft-eval on that run first.")
    with open(paths["metrics.json"]) as handle:
        metrics = json.load(handle)
    ground = np.load(paths["ground_descriptors.npy"])
    aerial = np.load(paths["aerial_descriptors.npy"])
    ranks = recall.match_ranks(ground, aerial)
    metrics["curve"] = (100.0 * recall.recall_curve(ranks, min(max_k, len(aerial)))).tolist()
    return metrics


def summarize_runs(runs_by_label):
    """Summaries per label.

    Args:
        runs_by_label: dict label -> list of metrics dicts (``cvft-eval``'s ``metrics.json``).

    Returns:
        list of :class:`MethodSummary`, in the order of ``runs_by_label``.

    Raises:
        ValueError: a label without runs, or runs of one label over different query counts.
    """
    summaries = []
    for label, runs in runs_by_label.items():
        if not runs:
            raise ValueError(f"{label}: no runs")
        counts = {run["num_queries"] for run in runs}
        if len(counts) != 1:
            raise ValueError(f"{label}: runs were evaluated on different query counts {sorted(counts)}")
        values = {key: np.array([run[key] for run in runs], np.float64) for key in REPORTED}
        length = min(len(run["curve"]) for run in runs)
        curve = np.mean([run["curve"][:length] for run in runs], axis=0)
        summaries.append(
            MethodSummary(
                label=label,
                runs=len(runs),
                mean={key: float(v.mean()) for key, v in values.items()},
                low={key: float(v.min()) for key, v in values.items()},
                high={key: float(v.max()) for key, v in values.items()},
                curve=curve.tolist(),
                num_queries=counts.pop(),
            )
        )
    return summaries


def markdown_table(summaries, chance=None):
    """A markdown table: one row per method, ``mean (low-high)`` per r@K, plus a chance row.

    Args:
        summaries: list of :class:`MethodSummary`.
        chance: optional dict r@K -> chance percentage.
    """
    lines = [
        "| method | runs | " + " | ".join(REPORTED) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in REPORTED) + " |",
    ]
    for summary in summaries:
        cells = []
        for key in REPORTED:
            cell = f"{summary.mean[key]:.1f}"
            if summary.runs > 1:
                cell += f" ({summary.low[key]:.0f}-{summary.high[key]:.0f})"
            cells.append(cell)
        lines.append(f"| {summary.label} | {summary.runs} | " + " | ".join(cells) + " |")
    if chance:
        lines.append("| chance | | " + " | ".join(f"{chance[key]:.1f}" for key in REPORTED) + " |")
    return "\n".join(lines) + "\n"


def recall_plot(summaries, title=""):
    """The mean r@K curves of the methods on one plot (RGB uint8 [h, w, 3])."""
    return figures.recall_curve_figure({s.label: s.curve for s in summaries}, title=title)
