"""Azimuth correlation (DSM) against numpy, and recovery of known headings on constructed maps."""

import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.data.field_of_view import crop_heading_deg
from cvft_tf.layers.azimuth_correlation import AzimuthCorrelation, best_shift, shift_heading_deg
from cvft_tf.models.matchers import HeadingCorrelation
from cvft_tf import losses


def _reference_similarity(ground, aerial):
    """[Bq, Bg, w_a]: cosine of each ground map with each aerial window, by rolling in numpy."""
    ground_width, aerial_width = ground.shape[2], aerial.shape[2]
    result = np.zeros((len(ground), len(aerial), aerial_width))
    for q, g in enumerate(ground.astype(np.float64)):
        for a, full in enumerate(aerial.astype(np.float64)):
            for shift in range(aerial_width):
                window = np.roll(full, -shift, axis=1)[:, :ground_width]
                result[q, a, shift] = (g * window).sum() / np.linalg.norm(g) / np.linalg.norm(window)
    return result


@pytest.mark.parametrize("ground_width", [3, 5, 12])
def test_similarity_equals_numpy_at_every_shift(ground_width):
    rng = np.random.default_rng(ground_width)
    ground = rng.normal(size=(2, 3, ground_width, 4)).astype(np.float32)
    aerial = rng.normal(size=(3, 3, 12, 4)).astype(np.float32)
    similarity = AzimuthCorrelation()(ground, aerial).numpy()
    assert similarity.shape == (2, 3, 12)
    np.testing.assert_allclose(similarity, _reference_similarity(ground, aerial), atol=1e-5)


@pytest.mark.parametrize("ground_width", [4, 16])
def test_a_ground_map_cut_from_the_aerial_map_is_found_at_its_heading(ground_width):
    rng = np.random.default_rng(0)
    aerial = rng.uniform(size=(1, 3, 16, 8)).astype(np.float32)
    for start in (0, 5, 13):
        ground = np.take(aerial, (start + np.arange(ground_width)) % 16, axis=2)
        ground = ground + rng.normal(scale=0.01, size=ground.shape).astype(np.float32)
        score, shift = best_shift(AzimuthCorrelation()(ground, aerial))
        assert abs(float(shift[0, 0]) - start) <= 0.5
        assert float(score[0, 0]) > 0.99
        heading = float(shift_heading_deg(shift, ground_width, 16)[0, 0])
        expected = crop_heading_deg(start, ground_width, 16)
        assert abs((heading - expected + 180) % 360 - 180) <= 0.5 * 360 / 16


def test_the_refined_shift_finds_a_heading_between_two_columns():
    """A smooth aerial map sampled half-way between columns: the parabola puts the shift
    between them, closer than a whole column would."""
    width, true_shift = 32, 9.4
    columns = np.arange(width)
    phases = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    aerial = np.cos(2 * np.pi * columns[None, :, None] / width + phases[None, None, :])[None].astype(np.float32)
    ground = np.cos(2 * np.pi * (columns[:8] + true_shift)[None, :, None] / width + phases[None, None, :])[None]
    _, shift = best_shift(AzimuthCorrelation()(ground.astype(np.float32), aerial))
    assert abs(float(shift[0, 0]) - true_shift) < 0.15


def test_maps_that_are_not_width_aligned_are_refused():
    with pytest.raises(ValueError, match="same height and channels"):
        AzimuthCorrelation()(np.ones((1, 3, 20, 4), np.float32), np.ones((1, 3, 16, 4), np.float32))
    with pytest.raises(ValueError, match="same height and channels"):
        AzimuthCorrelation()(np.ones((1, 2, 4, 4), np.float32), np.ones((1, 3, 16, 4), np.float32))


def test_azimuth_correlation_serializes():
    layer = AzimuthCorrelation(name="corr")
    assert AzimuthCorrelation.from_config(layer.get_config()).name == "corr"


def test_heading_correlation_loss_is_the_triplet_loss_of_its_distances():
    rng = np.random.default_rng(1)
    descriptors = {
        "ground": tf.constant(rng.normal(size=(4, 2, 3, 5)), tf.float32),
        "aerial": tf.constant(rng.normal(size=(4, 2, 8, 5)), tf.float32),
    }
    matcher = HeadingCorrelation(hard_negatives=0)
    best = _reference_similarity(descriptors["ground"].numpy(), descriptors["aerial"].numpy()).max(axis=2)
    distances = 2 - 2 * best.T
    np.testing.assert_allclose(matcher.distances(descriptors).numpy(), distances, atol=1e-5)
    expected = losses.soft_margin_triplet_loss_of_distances(tf.constant(distances, tf.float32))
    np.testing.assert_allclose(float(matcher.loss(descriptors, {})), float(expected), atol=1e-5)
    gradient = _gradient_norm(matcher, descriptors)
    assert np.isfinite(gradient) and gradient > 0


def _gradient_norm(matcher, descriptors):
    with tf.GradientTape() as tape:
        tape.watch(descriptors["ground"])
        loss = matcher.loss(descriptors, {})
    return float(tf.norm(tape.gradient(loss, descriptors["ground"])))
