"""Figures render to RGB uint8 arrays; the retrieval mosaic's frames are checked pixel by pixel."""

import os

import cv2
import numpy as np
import pytest

from cvft_tf.data.preprocess import VGG_MEAN_BGR
from cvft_tf.evaluation import figures


def assert_rgb_with_content(image):
    assert image.dtype == np.uint8
    assert image.ndim == 3 and image.shape[-1] == 3
    assert image.shape[0] > 50 and image.shape[1] > 50
    assert image.min() < 128 and len(np.unique(image.reshape(-1, 3), axis=0)) > 10


def bgr_minus_mean(rgb):
    """The original preprocessing applied to an RGB uint8 image."""
    return rgb[..., ::-1].astype(np.float32) - np.float32(VGG_MEAN_BGR)


def test_to_display_rgb_inverts_preprocessing():
    rgb = np.random.default_rng(0).integers(0, 256, size=(6, 10, 3), dtype=np.uint8)
    np.testing.assert_array_equal(figures.to_display_rgb(bgr_minus_mean(rgb)), rgb)
    np.testing.assert_array_equal(figures.to_display_rgb(rgb), rgb)
    clipped = figures.to_display_rgb(np.full((1, 1, 3), 500.0, np.float32))
    np.testing.assert_array_equal(clipped, [[[255, 255, 255]]])


MATPLOTLIB_FIRST_COLORS = ((31, 119, 180), (255, 127, 14))
"""RGB of matplotlib's first two cycle colours (C0, C1): the first and second curve."""


def pixels_of_color(image, rgb, tolerance=30):
    """Row and column indices of the pixels within ``tolerance`` (L1) of ``rgb``."""
    return np.nonzero(np.abs(image.astype(int) - np.array(rgb)).sum(-1) <= tolerance)


def test_recall_curve_figure_draws_each_curve_at_its_height():
    low, high = np.full(50, 20.0), np.full(50, 80.0)
    image = figures.recall_curve_figure({"low": low, "high": high}, title="CVUSA")
    assert_rgb_with_content(image)
    (low_rows, low_columns), (high_rows, high_columns) = (pixels_of_color(image, c) for c in MATPLOTLIB_FIRST_COLORS)
    assert np.median(high_rows) < np.median(low_rows) - image.shape[0] / 4  # 80 % is drawn well above 20 %
    for columns in (low_columns, high_columns):
        assert columns.max() - columns.min() > image.shape[1] / 2  # each spans the axes, K = 1..50
    swapped = figures.recall_curve_figure({"high": high, "low": low})
    assert np.median(pixels_of_color(swapped, MATPLOTLIB_FIRST_COLORS[0])[0]) < np.median(low_rows)
    assert pixels_of_color(figures.recall_curve_figure({}), MATPLOTLIB_FIRST_COLORS[0])[0].size == 0


def test_retrieval_figure_frames_correct_green_and_wrong_red():
    rng = np.random.default_rng(1)
    tile_size, border, gap = 40, 3, 2
    ground = [
        bgr_minus_mean(rng.integers(0, 256, size=(14, 77, 3), dtype=np.uint8)) for _ in range(2)
    ]
    aerial = rng.integers(0, 256, size=(10, 32, 32, 3), dtype=np.uint8)
    top_indices = np.array([[3, 1, 4, 5, 9], [2, 6, 5, 3, 0]])
    image = figures.retrieval_figure(
        ground,
        aerial,
        top_indices,
        true_index=[3, 5],
        tile_size=tile_size,
        border=border,
        gap=gap,
    )
    panorama_width = round(tile_size * 77 / 14)
    assert image.dtype == np.uint8
    width = 2 * gap + panorama_width + 5 * (tile_size + gap)
    assert image.shape == (gap + 2 * (tile_size + gap), width, 3)

    expected_correct = np.array([[1, 0, 0, 0, 0], [0, 0, 1, 0, 0]], bool)
    for q in range(2):
        y = gap + q * (tile_size + gap)
        for j in range(5):
            x = 2 * gap + panorama_width + j * (tile_size + gap)
            color = figures.CORRECT_COLOR if expected_correct[q, j] else figures.WRONG_COLOR
            tile = image[y : y + tile_size, x : x + tile_size]
            for frame in (tile[:border], tile[-border:], tile[:, :border], tile[:, -border:]):
                assert (frame == color).all()
            inside = tile[border:-border, border:-border]
            inner = tile_size - 2 * border
            expected_inside = cv2.resize(
                aerial[top_indices[q, j]], (inner, inner), interpolation=cv2.INTER_AREA
            )
            np.testing.assert_array_equal(inside, expected_inside)
        panorama = image[y : y + tile_size, gap : gap + panorama_width]
        np.testing.assert_array_equal(
            panorama,
            cv2.resize(
                figures.to_display_rgb(ground[q]),
                (panorama_width, tile_size),
                interpolation=cv2.INTER_AREA,
            ),
        )
    assert (image[:gap] == figures.BACKGROUND_COLOR).all()


def test_retrieval_figure_with_correct_mask():
    rng = np.random.default_rng(2)
    ground = rng.integers(0, 256, size=(1, 20, 40, 3), dtype=np.uint8)
    aerial = rng.integers(0, 256, size=(6, 24, 24, 3), dtype=np.uint8)
    correct = np.array([[False, True, True]])
    image = figures.retrieval_figure(
        ground, aerial, [[0, 1, 2]], correct=correct, tile_size=20, border=2, gap=1
    )
    x_second = 2 * 1 + 40 + 1 * (20 + 1)
    x_first = 2 * 1 + 40
    assert (image[1, x_first : x_first + 20] == figures.WRONG_COLOR).all()
    assert (image[1, x_second : x_second + 20] == figures.CORRECT_COLOR).all()
    with pytest.raises(ValueError):
        figures.retrieval_figure(ground, aerial, [[0, 1, 2]], tile_size=20)


def test_feature_alignment_figure():
    rng = np.random.default_rng(3)
    maps = [rng.uniform(0.0, 4.0, size=(8, 8, 16)).astype(np.float32) for _ in range(3)]
    image = figures.feature_alignment_figure(*maps, channels=(0, 5))
    assert_rgb_with_content(image)
    taller = figures.feature_alignment_figure(*maps, channels=(0, 5, 7, 9))
    assert taller.shape[0] > image.shape[0]


def bright_pixel_slope(image):
    """Correlation of row and column over the heat map's brightest (magma's yellow) pixels."""
    rows, columns = np.nonzero((image.astype(int).sum(-1) > 600) & (image[..., 2] < 230))
    return np.corrcoef(rows, columns)[0, 1]


def test_transport_plan_figure_draws_the_plan_where_it_is():
    plan = np.random.default_rng(4).dirichlet(np.ones(64), size=64)
    assert_rgb_with_content(figures.transport_plan_figure(plan))
    assert bright_pixel_slope(figures.transport_plan_figure(np.eye(16))) > 0.3  # mass on the diagonal
    assert bright_pixel_slope(figures.transport_plan_figure(np.fliplr(np.eye(16)))) < -0.3


def test_save_png_round_trip(tmp_path):
    image = np.random.default_rng(5).integers(0, 256, size=(30, 45, 3), dtype=np.uint8)
    path = os.path.join(tmp_path, "figures", "retrieval.png")
    figures.save_png(image, path)
    read = cv2.imread(path)
    assert read.shape == image.shape
    np.testing.assert_array_equal(read[..., ::-1], image)
    assert os.listdir(os.path.dirname(path)) == ["retrieval.png"]
    plain = os.path.join(tmp_path, "plain")
    open(plain, "wb").close()
    assert os.stat(path).st_mode & 0o777 == os.stat(plain).st_mode & 0o777
    with pytest.raises(ValueError):
        figures.save_png(image.astype(np.float32), path)
