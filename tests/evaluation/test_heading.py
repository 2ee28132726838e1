"""Heading error metrics, and ranking by a map matcher against brute force."""

import numpy as np
import pytest

from cvft_tf.data.field_of_view import crop_heading_deg
from cvft_tf.evaluation import embed, heading, recall, scoring
from cvft_tf.models.matchers import HeadingCorrelation


def test_angular_error_wraps_around_the_circle():
    np.testing.assert_allclose(
        heading.angular_error_deg([350, -170, 0, 90, 10], [10, 170, 180, 90, -10]), [20, 20, 180, 0, 20]
    )


def test_heading_summary_counts_only_correctly_retrieved_queries():
    errors = np.array([2.0, 15.0, 30.0, 5.0, 100.0])
    correct = np.array([True, True, True, True, False])
    assert heading.summarize_heading(errors, correct) == {
        "num_correct": 4,
        "median_error_deg": 10.0,
        "within_10deg": 50.0,
        "within_20deg": 75.0,
    }
    assert heading.summarize_heading(errors, np.zeros(5, bool)) == {"num_correct": 0}


def _windows_similarity(ground, aerial):
    """[Nq, Ng] best cosine over all circular windows, and the best whole shift, by numpy loops."""
    width = ground.shape[2]
    best = np.full((len(ground), len(aerial)), -np.inf)
    shifts = np.zeros(best.shape, int)
    for q, g in enumerate(ground.astype(np.float64)):
        for a, full in enumerate(aerial.astype(np.float64)):
            for shift in range(aerial.shape[2]):
                window = np.roll(full, -shift, axis=1)[:, :width]
                value = (g * window).sum() / np.linalg.norm(g) / np.linalg.norm(window)
                if value > best[q, a]:
                    best[q, a], shifts[q, a] = value, shift
    return best, shifts


@pytest.mark.parametrize("chunk_size", [3, 64])
def test_map_ranks_and_heading_errors_equal_brute_force(chunk_size):
    rng = np.random.default_rng(0)
    count, columns, crop = 9, 16, 4
    aerial = rng.uniform(size=(count, 2, columns, 5)).astype(np.float32)
    starts = rng.integers(0, columns, count)
    ground = np.stack([np.take(a, (s + np.arange(crop)) % columns, axis=1) for a, s in zip(aerial, starts)])
    ground = (ground + rng.normal(scale=0.4, size=ground.shape)).astype(np.float32)
    true_heading = crop_heading_deg(starts.astype(np.float64), crop, columns)
    metrics = scoring.score(
        embed.Embeddings(ground, aerial, heading=true_heading), chunk_size=chunk_size, matcher=HeadingCorrelation()
    )
    best, shifts = _windows_similarity(ground, aerial)
    ranks = (best > np.diag(best)[:, None] + 1e-6).sum(axis=1)
    np.testing.assert_array_equal(metrics["ranks"], ranks)
    assert {key: metrics[key] for key in recall.REPORTED_METRICS} == {
        key: value for key, value in recall.summarize(ranks).items() if key in recall.REPORTED_METRICS
    }
    correct = ranks == 0
    assert metrics["heading"]["num_correct"] == correct.sum() > 0
    whole_shift_errors = heading.angular_error_deg(crop_heading_deg(np.diag(shifts), crop, columns), true_heading)
    assert metrics["heading"]["median_error_deg"] <= np.median(whole_shift_errors[correct]) + 0.5 * 360 / columns
    assert metrics["heading"]["within_20deg"] == 100.0


def test_top_tiles_of_a_map_matcher_are_its_most_similar():
    rng = np.random.default_rng(1)
    aerial = rng.uniform(size=(6, 2, 8, 3)).astype(np.float32)
    ground = aerial[:, :, :4] + rng.normal(scale=0.1, size=(6, 2, 4, 3)).astype(np.float32)
    top = scoring.top_k_tiles(embed.Embeddings(ground, aerial), 3, 4, HeadingCorrelation())
    best, _ = _windows_similarity(ground[:3], aerial)
    np.testing.assert_array_equal(top, np.argsort(-best, axis=1, kind="stable")[:, :4])
