"""The polar transform against a direct formula, scipy's bilinear sampling, and known pictures."""

import keras
import numpy as np
import pytest
import scipy.ndimage

from cvft_tf.layers.polar import PolarTransform

TILE = 32
POLAR = (8, 64)


def _polar(images, polar_size=POLAR):
    return keras.ops.convert_to_numpy(PolarTransform(polar_size)(np.asarray(images, np.float32)))


def _direct_points(tile, polar_size):
    """The sample of polar pixel (i, j), from the formula written out pixel by pixel."""
    height, width = polar_size
    rows, columns = np.zeros(polar_size), np.zeros(polar_size)
    for i in range(height):
        for j in range(width):
            radius = tile / 2 * (height - i - 0.5) / height
            azimuth = np.deg2rad(360 * (j + 0.5) / width - 180)
            rows[i, j] = tile / 2 - radius * np.cos(azimuth) - 0.5
            columns[i, j] = tile / 2 + radius * np.sin(azimuth) - 0.5
    return rows, columns


def test_polar_transform_equals_scipy_bilinear_sampling_at_the_formulas_points():
    image = np.random.default_rng(0).uniform(0, 255, (TILE, TILE, 3))
    rows, columns = _direct_points(TILE, POLAR)
    expected = np.stack(
        [scipy.ndimage.map_coordinates(image[..., c], [rows, columns], order=1, mode="nearest") for c in range(3)],
        axis=-1,
    )
    np.testing.assert_allclose(_polar(image[None])[0], expected, atol=1e-3)


def test_a_linear_ramp_gives_the_sample_coordinates_exactly():
    rows_of, columns_of = np.mgrid[0:TILE, 0:TILE].astype(np.float64)
    polar = _polar(np.stack([rows_of, columns_of, np.zeros_like(rows_of)], axis=-1)[None])[0]
    rows, columns = _direct_points(TILE, POLAR)
    np.testing.assert_allclose(polar[..., 0], np.clip(rows, 0, TILE - 1), atol=1e-3)
    np.testing.assert_allclose(polar[..., 1], np.clip(columns, 0, TILE - 1), atol=1e-3)


def test_compass_quadrants_land_in_the_panorama_columns_of_their_azimuths():
    """A tile painted by compass direction (N, E, S, W quadrants seen from the centre): the
    polar image's columns hold the colour of their azimuth, north in the middle."""
    y, x = np.mgrid[0:TILE, 0:TILE] + 0.5 - TILE / 2
    bearing = np.rad2deg(np.arctan2(x, -y))  # clockwise from north (up)
    quadrant = np.round(bearing / 90.0) % 4  # 0 N, 1 E, 2 S, 3 W
    polar = _polar(np.repeat(quadrant[None, :, :, None], 3, axis=-1))[0, :-2, :, 0]  # rings near the centre blur
    azimuth = 360 * (np.arange(POLAR[1]) + 0.5) / POLAR[1] - 180
    expected = np.round(azimuth / 90.0) % 4
    clear = np.abs((azimuth + 45) % 90 - 45) < 30  # away from the quadrant borders
    np.testing.assert_allclose(polar[:, clear], np.broadcast_to(expected[clear], polar[:, clear].shape), atol=1e-5)


def test_top_row_is_the_tiles_edge_and_bottom_row_its_centre():
    y, x = np.mgrid[0:TILE, 0:TILE] + 0.5 - TILE / 2
    distance = np.hypot(x, y)
    polar = _polar(np.repeat(distance[None, :, :, None], 3, axis=-1), (16, 32))[0, :, :, 0]
    expected_radius = TILE / 2 * (16 - np.arange(16) - 0.5) / 16
    np.testing.assert_allclose(polar.mean(axis=1), expected_radius, atol=0.6)
    assert np.all(np.diff(polar.mean(axis=1)) < 0)


def test_polar_transform_serializes_and_keeps_shapes_static():
    layer = PolarTransform((4, 16), name="polar")
    clone = PolarTransform.from_config(layer.get_config())
    assert clone.polar_size == (4, 16)
    inputs = keras.Input((TILE, TILE, 3), dtype="uint8")
    assert tuple(clone(inputs).shape) == (None, 4, 16, 3)


@pytest.mark.parametrize("polar_size", [(0, 8), (4,)])
def test_a_bad_polar_size_is_refused(polar_size):
    with pytest.raises(ValueError, match="polar_size"):
        PolarTransform(polar_size)
