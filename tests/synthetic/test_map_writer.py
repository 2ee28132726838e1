"""Tests of the synthetic localization map: geo-reference, query positions, determinism."""

import csv
import json
import os

import cv2
import numpy as np
import pytest

from cvft_tf.synthetic import map_writer, world, writer

TINY = writer.ImageSpec(aerial_size=16, aerial_extent=40.0, ground_height=16, ground_width=88)
"""2.5 m per pixel, 40 m tiles, small panoramas."""


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    summary = map_writer.write_localization_map(str(root), 3, TINY, origin=(1000.0, 200.0), extent=120.0, num_queries=4)
    return root, summary


def test_the_orthophoto_is_geo_referenced_at_the_tiles_resolution(written):
    root, summary = written
    image = cv2.imread(summary["map"])
    assert image.shape == (48, 48, 3) and summary["size"] == 48
    with open(os.path.join(root, "map", "orthophoto.json")) as handle:
        georeference = json.load(handle)
    assert georeference == {
        "crs": map_writer.MAP_CRS,
        "origin": [writer.UTM_ORIGIN[0] + 1000.0, writer.UTM_ORIGIN[1] + 200.0 + 120.0],
        "metres_per_pixel": 2.5,
    }


def test_the_pixels_show_the_world_where_the_geo_reference_puts_it(written):
    root, summary = written
    image = cv2.imread(summary["map"])[..., ::-1].astype(np.float64) / 255
    centres = 1000.0 + (np.arange(48) + 0.5) * 2.5
    east, north = np.meshgrid(centres, 320.0 - (np.arange(48) + 0.5) * 2.5)
    material = world.CityWorld(3).evaluate(east, north).material
    greenness = image[..., 1] - image[..., 0]
    green = np.isin(material, [world.Material.GRASS, world.Material.TREE])
    grey = np.isin(material, [world.Material.ROAD, world.Material.SIDEWALK])
    assert green.sum() > 20 and grey.sum() > 20
    assert greenness[green].mean() > greenness[grey].mean() + 0.05


def test_queries_lie_inside_the_map_away_from_its_edge(written):
    root, _ = written
    with open(os.path.join(root, "map", "queries.csv")) as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4
    for row in rows:
        x = float(row["x"]) - writer.UTM_ORIGIN[0]
        y = float(row["y"]) - writer.UTM_ORIGIN[1]
        assert 1020.0 <= x <= 1100.0 and 220.0 <= y <= 300.0
        assert cv2.imread(os.path.join(root, "map", row["image"])).shape == (16, 88, 3)
    positions = {(row["x"], row["y"]) for row in rows}
    assert len(positions) == 4


def test_the_same_seed_gives_the_same_bytes(written, tmp_path):
    root, summary = written
    again = map_writer.write_localization_map(str(tmp_path), 3, TINY, (1000.0, 200.0), 120.0, 4)
    for relative in ("orthophoto.png", "queries.csv", "queries/0001.jpg"):
        with open(os.path.join(root, "map", relative), "rb") as first:
            with open(os.path.join(tmp_path, "map", relative), "rb") as second:
                assert first.read() == second.read()
    assert again["size"] == summary["size"]


def test_the_area_lies_east_of_the_validation_area():
    east, north = map_writer.localization_origin(1600, 100, 100.0)
    validation_east, _ = writer.held_out_origin(1600, 100.0)
    assert east == validation_east + 1000.0 + 3 * 120.0 and north == 0.0


def test_a_map_smaller_than_a_tile_is_refused(tmp_path):
    with pytest.raises(ValueError, match="larger than an aerial tile"):
        map_writer.write_localization_map(str(tmp_path), 0, TINY, (0.0, 0.0), 30.0, 1)
