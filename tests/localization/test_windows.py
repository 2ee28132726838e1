"""The window grid slid over a map."""

import numpy as np
import pytest

from cvft_tf.localization.errors import MapError
from cvft_tf.localization.geomap import open_map
from cvft_tf.localization.windows import window_grid
from tests.localization.fixtures import write_png_map


@pytest.fixture
def small_map(tmp_path):
    return open_map(write_png_map(str(tmp_path), size=(60, 80), metres_per_pixel=2.0))


def test_windows_cover_the_map_every_stride(small_map):
    grid = window_grid(small_map, footprint_m=40.0, stride_m=10.0)
    # 20 px windows every 5 px: (60 - 20) / 5 + 1 = 9 rows, (80 - 20) / 5 + 1 = 13 columns.
    assert (grid.side, grid.stride, grid.rows, grid.cols) == (20, 5.0, 9, 13)
    corners = grid.top_left([0, 12, 13, len(grid) - 1])
    np.testing.assert_array_equal(corners, [[0, 0], [0, 60], [5, 0], [40, 60]])
    np.testing.assert_array_equal(grid.centres([0]), [[10.0, 10.0]])


def test_a_fractional_stride_stays_inside_the_map(small_map):
    grid = window_grid(small_map, footprint_m=40.0, stride_m=7.0)
    corners = grid.top_left(np.arange(len(grid)))
    assert corners.min() == 0
    assert (corners[:, 0] + grid.side).max() <= 60 and (corners[:, 1] + grid.side).max() <= 80
    assert grid.rows == 12 and grid.cols == 18  # floor(40 / 3.5) + 1, floor(60 / 3.5) + 1


def test_a_window_larger_than_the_map_is_refused(small_map):
    with pytest.raises(MapError, match=r"the window \(130 m, 65 px\) is larger than the map \(160 x 120 m"):
        window_grid(small_map, footprint_m=130.0, stride_m=5.0)


def test_a_stride_larger_than_the_map_is_refused(small_map):
    with pytest.raises(MapError, match=r"the stride \(500 m\) is larger than the map"):
        window_grid(small_map, footprint_m=40.0, stride_m=500.0)
    with pytest.raises(MapError, match="must be positive"):
        window_grid(small_map, footprint_m=40.0, stride_m=0.0)
