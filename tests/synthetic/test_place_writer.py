"""The synthetic world's places in the GSV-Cities layout (``place_writer``)."""

import json
import os

import cv2
import numpy as np

from cvft_tf.data import gsv_cities
from cvft_tf.synthetic import place_writer


def test_crop_view_looks_at_the_heading_and_wraps():
    width = 16
    panorama = np.broadcast_to(np.arange(width)[None, :, None], (2, width, 3))
    # Column x looks at 360 (x + 0.5) / W - 180: north is at columns 7 | 8, south at the edges.
    assert place_writer.crop_view(panorama, 0.0)[0, :, 0].tolist() == [6, 7, 8, 9]
    assert place_writer.crop_view(panorama, 90.0)[0, :, 0].tolist() == [10, 11, 12, 13]
    assert place_writer.crop_view(panorama, 180.0)[0, :, 0].tolist() == [14, 15, 0, 1]


def test_written_places_are_read_by_the_loader_and_held_out_apart(tmp_path):
    summary = place_writer.write_gsv_cities(str(tmp_path), 3, 1, views_per_place=2, image_size=16)
    assert summary["places"] == {"SynthNorth": 2, "SynthSouth": 1, "SynthHeldOut": 1} and summary["images"] == 8
    train = gsv_cities.read_places(str(tmp_path), place_writer.TRAIN_CITIES, min_images_per_place=2)
    held_out = gsv_cities.read_places(str(tmp_path), [place_writer.HELD_OUT_CITY], min_images_per_place=2)
    assert train.place_ids.tolist() == [0, 1, 100000] and held_out.num_places == 1
    views = [cv2.imread(path) for path in train.paths[:2]]
    assert views[0].shape == (16, 16, 3) and not np.array_equal(views[0], views[1])
    lat_lon = lambda path: np.array(os.path.basename(path).split("_")[5:7], float)  # noqa: E731
    assert np.abs(lat_lon(held_out.paths[0]) - lat_lon(train.paths[0])).max() > 300 / 111320
    truth = json.loads((tmp_path / "eval" / "ground_truth.json").read_text())
    query, database = (sorted(os.listdir(tmp_path / "eval" / folder)) for folder in ("query", "database"))
    names = [os.path.basename(path) for path in held_out.paths]
    assert truth == {names[0]: [names[1]]} and query == [names[0]] and database == [names[1]]
    again = tmp_path / "again"
    place_writer.write_gsv_cities(str(again), 3, 1, views_per_place=2, image_size=16)
    first_csv = (tmp_path / "Dataframes" / "SynthNorth.csv").read_text()
    assert (again / "Dataframes" / "SynthNorth.csv").read_text() == first_csv
