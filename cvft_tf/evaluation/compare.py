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
HEADING_COLUMNS = {
    "median_error_deg": "heading error (median, deg)",
    "within_10deg": "heading <= 10 deg (%)",
    "within_20deg": "heading <= 20 deg (%)",
}
"""Heading numbers of ``evaluation.heading.summarize_heading`` -> their table headers."""


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
        heading: mean over the runs of each heading number (``evaluation.heading``), or None
            for a method that does not estimate headings.
    """

    label: str
    runs: int
    mean: dict
    low: dict
    high: dict
    curve: list
    num_queries: int
    heading: dict | None = None


class EvaluationFolderError(ValueError):
    """An evaluation folder (what ``cvft-eval`` writes) that cannot be read or compared."""


def read_metrics(eval_dir):
    """A run's ``metrics.json``, checked to hold the reported r@K, ``curve`` and ``num_queries``.

    Raises:
        FileNotFoundError: ``eval_dir`` has no ``metrics.json``.
        EvaluationFolderError: it is not JSON, or lacks one of those keys or gives it a non-number.
    """
    path = os.path.join(eval_dir, "metrics.json")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: run cvft-eval on that run first.")
    try:
        with open(path) as handle:
            metrics = json.load(handle)
    except ValueError as error:
        raise EvaluationFolderError(f"{path} is not valid JSON ({error}): run cvft-eval on that run again.") from None
    if not isinstance(metrics, dict):
        raise EvaluationFolderError(f"{path} does not hold a JSON object: run cvft-eval on that run again.")
    bad = [key for key in (*REPORTED, "num_queries") if not _is_number(metrics.get(key))]
    curve = metrics.get("curve")
    if not (isinstance(curve, list) and curve and all(map(_is_number, curve))):
        bad.append("curve")
    if bad:
        raise EvaluationFolderError(f"{path} lacks numbers for {', '.join(bad)}: run cvft-eval on that run again.")
    return metrics


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _read_descriptors(path):
    """float [N, D] descriptors saved by ``cvft-eval``; raises EvaluationFolderError naming ``path``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing: run cvft-eval on that run first.")
    try:
        descriptors = np.load(path)
    except (ValueError, OSError, EOFError) as error:
        raise EvaluationFolderError(f"{path} is not a readable .npy file ({error}): run cvft-eval again.") from None
    if descriptors.ndim != 2 or not np.issubdtype(descriptors.dtype, np.floating):
        raise EvaluationFolderError(
            f"{path} holds {descriptors.dtype} {list(descriptors.shape)}, not float descriptors [N, D]."
        )
    return descriptors


def read_run(eval_dir, max_k):
    """A run's ``metrics.json``, its four numbers and its ``curve`` (K = 1..``max_k``, at most N)
    recomputed from the saved ranks of a map matcher (``ranks.npy``) or else from the saved
    descriptors (``metrics.json`` keeps the curve only up to the r@1% K, and one written
    before cvft_tf 0.2 has r@1% at the training-time K).

    Raises:
        FileNotFoundError: ``eval_dir`` lacks ``metrics.json`` or the descriptors.
        EvaluationFolderError: one of them cannot be read, or the descriptors do not match.
    """
    metrics = read_metrics(eval_dir)
    ranks_path = os.path.join(eval_dir, "ranks.npy")
    ranks = np.load(ranks_path) if os.path.isfile(ranks_path) else _ranks_of_descriptors(eval_dir)
    metrics.update({key: value for key, value in recall.summarize(ranks).items() if key in REPORTED})
    metrics["curve"] = (100.0 * recall.recall_curve(ranks, min(max_k, len(ranks)))).tolist()
    return metrics


def _ranks_of_descriptors(eval_dir):
    """Each query's rank, from the descriptors ``cvft-eval`` saved."""
    ground = _read_descriptors(os.path.join(eval_dir, "ground_descriptors.npy"))
    aerial = _read_descriptors(os.path.join(eval_dir, "aerial_descriptors.npy"))
    if ground.shape != aerial.shape:
        raise EvaluationFolderError(
            f"{eval_dir}: ground descriptors {list(ground.shape)} and aerial descriptors "
            f"{list(aerial.shape)} do not match: run cvft-eval on that run again."
        )
    return recall.match_ranks(ground, aerial)


def summarize_runs(runs_by_label):
    """Summaries per label.

    Args:
        runs_by_label: dict label -> list of metrics dicts (``cvft-eval``'s ``metrics.json``).

    Returns:
        list of :class:`MethodSummary`, in the order of ``runs_by_label``.

    Raises:
        EvaluationFolderError: a label without runs, or runs of one label over different query counts.
    """
    summaries = []
    for label, runs in runs_by_label.items():
        if not runs:
            raise EvaluationFolderError(f"{label}: no runs")
        counts = {run["num_queries"] for run in runs}
        if len(counts) != 1:
            raise EvaluationFolderError(f"{label}: runs were evaluated on different query counts {sorted(counts)}")
        values = {key: np.array([run[key] for run in runs], np.float64) for key in REPORTED}
        length = min(len(run["curve"]) for run in runs)
        curve = np.mean([run["curve"][:length] for run in runs], axis=0)
        headings = [run["heading"] for run in runs if "median_error_deg" in run.get("heading", {})]
        summaries.append(
            MethodSummary(
                label=label,
                runs=len(runs),
                mean={key: float(v.mean()) for key, v in values.items()},
                low={key: float(v.min()) for key, v in values.items()},
                high={key: float(v.max()) for key, v in values.items()},
                curve=curve.tolist(),
                num_queries=counts.pop(),
                heading={key: float(np.mean([h[key] for h in headings])) for key in HEADING_COLUMNS}
                if headings
                else None,
            )
        )
    return summaries


def markdown_table(summaries, chance=None):
    """A markdown table: one row per method, ``mean (low-high)`` per r@K, the heading error
    columns when a method estimates headings ("-" for the others), plus a chance row.

    Args:
        summaries: list of :class:`MethodSummary`.
        chance: optional dict r@K -> chance percentage.
    """
    with_heading = any(summary.heading for summary in summaries)
    headers = [*REPORTED, *(HEADING_COLUMNS.values() if with_heading else ())]
    lines = [
        "| method | runs | " + " | ".join(headers) + " |",
        "| --- | ---: | " + " | ".join("---:" for _ in headers) + " |",
    ]
    for summary in summaries:
        cells = []
        for key in REPORTED:
            cell = f"{summary.mean[key]:.1f}"
            if summary.runs > 1:
                cell += f" ({summary.low[key]:.0f}-{summary.high[key]:.0f})"
            cells.append(cell)
        if with_heading:
            heading = summary.heading or {}
            cells += [f"{heading[key]:.1f}" if key in heading else "-" for key in HEADING_COLUMNS]
        lines.append(f"| {summary.label} | {summary.runs} | " + " | ".join(cells) + " |")
    if chance:
        chance_cells = [f"{chance[key]:.1f}" for key in REPORTED] + ["" for _ in headers[len(REPORTED) :]]
        lines.append("| chance | | " + " | ".join(chance_cells) + " |")
    return "\n".join(lines) + "\n"


def recall_plot(summaries, title=""):
    """The mean r@K curves of the methods on one plot (RGB uint8 [h, w, 3])."""
    return figures.recall_curve_figure({s.label: s.curve for s in summaries}, title=title)
