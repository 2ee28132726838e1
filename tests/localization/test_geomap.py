"""Geo-referencing: pixel <-> map coordinates <-> latitude/longitude, and reading maps."""

import json
import os

import numpy as np
import pytest

from cvft_tf.localization import geomap
from cvft_tf.localization.errors import MapError
from tests.localization.fixtures import UTM_32N, write_png_map

rasterio = pytest.importorskip("rasterio")


def meridian_arc_wgs84(latitude_deg):
    """Distance in metres from the equator along a meridian of the WGS 84 ellipsoid (Helmert's
    series in the third flattening n, to n^4: sub-millimetre)."""
    a, f = 6378137.0, 1 / 298.257223563
    n = f / (2 - f)
    phi = np.deg2rad(latitude_deg)
    series = (
        (1 + n**2 / 4 + n**4 / 64) * phi
        - 1.5 * (n - n**3 / 8) * np.sin(2 * phi)
        + 15 / 16 * (n**2 - n**4 / 4) * np.sin(4 * phi)
        - 35 / 48 * n**3 * np.sin(6 * phi)
        + 315 / 512 * n**4 * np.sin(8 * phi)
    )
    return a / (1 + n) * series


def test_known_points_to_latitude_and_longitude():
    # On the equator at the central meridian of zone 32 (9 degrees east) the false easting is
    # 500 km and the northing 0, by the definition of UTM.
    latitude, longitude = geomap.to_lat_lon(UTM_32N, [500000.0], [0.0])
    np.testing.assert_allclose([latitude[0], longitude[0]], [0.0, 9.0], atol=1e-9)
    # On the central meridian the northing is 0.9996 times the meridian arc from the equator.
    for degrees in (30.0, 45.0, 60.0):
        northing = 0.9996 * meridian_arc_wgs84(degrees)
        latitude, longitude = geomap.to_lat_lon(UTM_32N, [500000.0], [northing])
        np.testing.assert_allclose([latitude[0], longitude[0]], [degrees, 9.0], atol=1e-8)
        x, y = geomap.from_lat_lon(UTM_32N, [degrees], [9.0])
        np.testing.assert_allclose([x[0], y[0]], [500000.0, northing], atol=1e-3)
    assert meridian_arc_wgs84(45.0) == pytest.approx(4984944.378, abs=0.01)


def test_pixel_map_and_lat_lon_round_trip(tmp_path):
    path = write_png_map(str(tmp_path), size=(40, 50), metres_per_pixel=2.5, origin=(499950.0, 100.0))
    opened = geomap.open_map(path)
    assert (opened.height, opened.width, opened.metres_per_pixel) == (40, 50, 2.5)
    # The centre of pixel (row 0, col 20) is 20.5 pixels east and half a pixel south of the corner.
    x, y = opened.pixel_to_map(0.5, 20.5)
    assert (x, y) == (499950.0 + 20.5 * 2.5, 100.0 - 0.5 * 2.5)
    rows, cols = np.array([0.5, 13.25, 39.5]), np.array([0.5, 20.0, 49.5])
    latitude, longitude = geomap.to_lat_lon(opened.crs, *opened.pixel_to_map(rows, cols))
    back_rows, back_cols = opened.map_to_pixel(*geomap.from_lat_lon(opened.crs, latitude, longitude))
    np.testing.assert_allclose(back_rows, rows, atol=1e-4)
    np.testing.assert_allclose(back_cols, cols, atol=1e-4)
    # Pixel (row 0, col 20) lies 1.25 m north of the equator and 1.25 m east of 9 E.
    latitude, longitude = geomap.to_lat_lon(opened.crs, *opened.pixel_to_map(0.5, 20.5))
    assert latitude == pytest.approx(98.75 / 110574.0, rel=1e-3)
    assert longitude == pytest.approx(9.0 + 1.25 / 111320.0, rel=1e-6)


def write_geotiff(path, image_rgb, transform, crs=UTM_32N):
    """A 3-band uint8 GeoTIFF of ``image_rgb`` [h, w, 3]."""
    with rasterio.open(
        path, "w", driver="GTiff", width=image_rgb.shape[1], height=image_rgb.shape[0], count=3,
        dtype="uint8", crs=crs, transform=transform, tiled=True, blockxsize=16, blockysize=16,
    ) as dataset:  # fmt: skip
        dataset.write(np.transpose(image_rgb, (2, 0, 1)))


def test_a_geotiff_is_read_window_by_window(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    path = str(tmp_path / "map.tif")
    write_geotiff(path, image, rasterio.transform.from_origin(300000.0, 5000000.0, 1.5, 1.5))
    opened = geomap.open_map(path)
    assert opened.crs == UTM_32N and opened.transform == (1.5, 0.0, 300000.0, 0.0, -1.5, 5000000.0)
    np.testing.assert_array_equal(opened.read_window(5, 7, 20), image[5:25, 7:27, ::-1])
    assert opened.overview(32).shape == (24, 32, 3)
    opened.close()


def test_a_geotiff_without_geo_reference_is_refused(tmp_path):
    path = str(tmp_path / "plain.tif")
    image = np.zeros((32, 32, 3), np.uint8)
    with rasterio.open(path, "w", driver="GTiff", width=32, height=32, count=3, dtype="uint8") as dataset:
        dataset.write(np.transpose(image, (2, 0, 1)))
    with pytest.raises(MapError, match="plain.tif has no geo-reference"):
        geomap.open_map(path)


def test_a_truncated_geotiff_is_refused(tmp_path):
    path = str(tmp_path / "cut.tif")
    image = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    write_geotiff(path, image, rasterio.transform.from_origin(300000.0, 5000000.0, 1.0, 1.0))
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)
    with pytest.raises(MapError, match="cut.tif"):
        geomap.open_map(path)


def test_a_png_without_its_json_is_refused(tmp_path):
    path = write_png_map(str(tmp_path))
    os.remove(str(tmp_path / "map.json"))
    with pytest.raises(MapError, match=r"map.png has no geo-reference: expected .*map.json"):
        geomap.open_map(path)


def test_a_truncated_png_is_refused(tmp_path):
    path = write_png_map(str(tmp_path))
    with open(path, "r+b") as handle:
        handle.truncate(200)
    with pytest.raises(MapError, match="map.png is truncated"):
        geomap.open_map(path)


def test_a_map_in_degrees_is_refused(tmp_path):
    path = write_png_map(str(tmp_path), crs="EPSG:4326")
    with pytest.raises(MapError, match="not projected in metres"):
        geomap.open_map(path)


def test_a_broken_geo_reference_names_its_file(tmp_path):
    path = write_png_map(str(tmp_path))
    with open(tmp_path / "map.json", "w") as handle:
        json.dump({"crs": UTM_32N}, handle)
    with pytest.raises(MapError, match="map.json: not a geo-reference"):
        geomap.open_map(path)


def write_world_map(directory, lines, suffix=".pgw", name="map.png"):
    """A PNG map (40 x 50 px) with the world file ``lines`` and no JSON; returns its path."""
    path = write_png_map(str(directory), size=(40, 50), name=name)
    os.remove(os.path.splitext(path)[0] + ".json")
    with open(os.path.splitext(path)[0] + suffix, "w") as handle:
        handle.write("\n".join(map(str, lines)) + "\n")
    return path


# 2.5 m pixels whose upper-left pixel is centred 1.25 m east and south of (300000, 5000000).
WORLD = (2.5, 0.0, 0.0, -2.5, 300001.25, 4999998.75)


def test_a_world_file_places_the_centre_of_the_upper_left_pixel(tmp_path):
    path = write_world_map(tmp_path, WORLD)
    opened = geomap.open_map(path, crs=UTM_32N)
    assert opened.transform == (2.5, 0.0, 300000.0, 0.0, -2.5, 5000000.0)
    # By hand: the centre of pixel (row r, col k) is at (C + A * k, F + E * r).
    x, y = opened.pixel_to_map(np.array([0.5, 3.5, 39.5]), np.array([0.5, 7.5, 49.5]))
    np.testing.assert_allclose(x, [300001.25, 300001.25 + 7 * 2.5, 300001.25 + 49 * 2.5])
    np.testing.assert_allclose(y, [4999998.75, 4999998.75 - 3 * 2.5, 4999998.75 - 39 * 2.5])
    # The same geo-reference as a JSON gives the same map.
    json_map = geomap.open_map(write_png_map(str(tmp_path), size=(40, 50), metres_per_pixel=2.5, name="same.png"))
    assert json_map.transform == opened.transform and json_map.crs == opened.crs


def test_a_world_file_takes_its_crs_from_the_prj_beside_it(tmp_path):
    path = write_world_map(tmp_path, WORLD, suffix=".wld")
    with pytest.raises(MapError, match=r"map.wld has no CRS: give it in .*map.prj \(WKT\) or with --crs"):
        geomap.open_map(path)
    (tmp_path / "map.prj").write_text(rasterio.crs.CRS.from_epsg(32632).to_wkt())
    assert geomap.open_map(path).crs == UTM_32N
    assert geomap.open_map(path, crs=UTM_32N).crs == UTM_32N
    with pytest.raises(MapError, match=r"map.wld: its CRS .* is not the --crs 'EPSG:32633'"):
        geomap.open_map(path, crs="EPSG:32633")


def test_a_jpeg_world_file(tmp_path):
    path = write_world_map(tmp_path, WORLD, suffix=".jgw", name="map.jpg")
    assert geomap.open_map(path, crs=UTM_32N).transform == (2.5, 0.0, 300000.0, 0.0, -2.5, 5000000.0)


@pytest.mark.parametrize("lines, message", [
    ((2.5, 0.1, 0.0, -2.5, 300001.25, 4999998.75), r"map.pgw: the world file is rotated \(B = 0, D = 0.1\)"),
    ((2.5, 0.0, -0.2, -2.5, 300001.25, 4999998.75), r"the world file is rotated \(B = -0.2, D = 0\)"),
    ((2.5, 0.0, 0.0, -2.5, 300001.25), "map.pgw: a world file holds six numbers"),
    ((2.5, 0.0, 0.0, "minus", 300001.25, 4999998.75), "a world file holds six numbers"),
    ((2.5, 0.0, 0.0, 2.5, 300001.25, 4999998.75), "must be north-up with square pixels"),
    ((2.5, 0.0, 0.0, -2.0, 300001.25, 4999998.75), "must be north-up with square pixels"),
])  # fmt: skip
def test_a_rotated_or_malformed_world_file_is_refused(tmp_path, lines, message):
    path = write_world_map(tmp_path, lines)
    with pytest.raises(MapError, match=message):
        geomap.open_map(path, crs=UTM_32N)


def test_a_map_with_a_json_and_a_world_file_is_refused(tmp_path):
    path = write_png_map(str(tmp_path))
    (tmp_path / "map.pgw").write_text("\n".join(map(str, WORLD)))
    with pytest.raises(MapError, match=r"map.png has 2 geo-references \(.*map.json, .*map.pgw\): keep one"):
        geomap.open_map(path)
