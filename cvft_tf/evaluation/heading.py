"""Heading error of the queries a model retrieves correctly (DSM's orientation metrics).

A map matcher (``models.matchers.HeadingCorrelation``) estimates where each query looks.
The error of an estimate is the absolute angle between it and the true heading, wrapped
to [0, 180] degrees. As in DSM, the errors are reported over the queries whose own aerial
tile is ranked first (a heading found on the wrong tile means nothing).
"""

import numpy as np

HEADING_THRESHOLDS_DEG = (10, 20)
"""The reported shares of correctly retrieved queries within these errors."""


def angular_error_deg(estimated, true):
    """``|estimated - true|`` wrapped to [0, 180] degrees, element-wise (float64)."""
    difference = (np.asarray(estimated, np.float64) - np.asarray(true, np.float64)) % 360.0
    return np.minimum(difference, 360.0 - difference)


def summarize_heading(errors, correct):
    """DSM's heading numbers.

    Args:
        errors: float [n] heading errors of all queries, degrees (:func:`angular_error_deg`).
        correct: bool [n], True where the query's own tile is ranked first.

    Returns:
        dict: ``num_correct``; and, when it is above 0, ``median_error_deg`` and
        ``within_10deg`` / ``within_20deg`` (percent of the correct queries).
    """
    errors = np.asarray(errors, np.float64)[np.asarray(correct, bool)]
    summary = {"num_correct": int(errors.size)}
    if errors.size:
        summary["median_error_deg"] = float(np.median(errors))
        for threshold in HEADING_THRESHOLDS_DEG:
            summary[f"within_{threshold}deg"] = float(100.0 * np.mean(errors <= threshold))
    return summary
