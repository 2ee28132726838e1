"""GSV-Cities layout, places and P x K batches (``gsv_cities``), and their tf.data pipelines (``place_pipeline``)."""

import os

import cv2
import numpy as np
import pytest

from cvft_tf.data import gsv_cities, place_pipeline
from cvft_tf.data.pipeline import DatasetError, dataset_errors
from cvft_tf.models.dinov2 import preprocess_image
from tests.data.fixtures import make_image, write_image

HEADER = "place_id,year,month,northdeg,city_id,lat,lon,panoid\n"


def write_city(root, city, images_per_place, seed=0):
    """``Dataframes/<city>.csv`` and its images: place ``p`` has ``images_per_place[p]`` images."""
    os.makedirs(os.path.join(root, "Dataframes"), exist_ok=True)
    lines = [HEADER]
    for place, count in enumerate(images_per_place):
        for view in range(count):
            row = dict(place_id=place, year=2015 + view, month=view + 1, northdeg=7 * view, city_id=city,
                       lat=51.5 + place / 1000, lon=-0.125, panoid=f"pano{place}x{view}")  # fmt: skip
            lines.append(",".join(str(row[c]) for c in gsv_cities.REQUIRED_COLUMNS) + "\n")
            image = make_image(20, 24, seed + 10 * place + view)
            write_image(os.path.join(root, "Images", city, gsv_cities.image_name(row)), image)
    with open(os.path.join(root, "Dataframes", f"{city}.csv"), "w") as file:
        file.writelines(lines)


@pytest.fixture
def root(tmp_path):
    """Two cities with places 0..; Boston's place 1 has 3 images (dropped at the default minimum 4)."""
    write_city(str(tmp_path), "London", [4, 5, 4])
    write_city(str(tmp_path), "Boston", [4, 3, 6], seed=100)
    return str(tmp_path)


def test_image_name_is_the_authors_format():
    row = dict(place_id="13", year="2017", month="3", northdeg="5", city_id="London",
               lat="51.50740", lon="-0.1278", panoid="AbC-d_9")  # fmt: skip
    assert gsv_cities.image_name(row) == "London_0000013_2017_03_005_51.5074_-0.1278_AbC-d_9.jpg"


def test_place_ids_are_unique_across_cities_and_small_places_are_dropped(root):
    places = gsv_cities.read_places(root, ["London", "Boston"])
    assert places.place_ids.tolist() == [0, 1, 2, 100000, 100002]
    assert places.cities.tolist() == [0, 0, 0, 1, 1]
    assert np.diff(places.starts).tolist() == [4, 5, 4, 4, 6]
    assert len(places) == 23 and places.labels.tolist()[13:17] == [100000] * 4
    assert all(os.path.basename(p).startswith("Boston_0000002_") for p in places.paths[17:])
    assert gsv_cities.read_places(root, ["Boston", "London"]).place_ids.tolist()[:2] == [0, 2]
    assert gsv_cities.read_places(root, ["Boston"], min_images_per_place=3).num_places == 3


def test_missing_files_and_columns_are_listed(root):
    missing = gsv_cities.read_places(root, ["London"]).paths[5]
    os.remove(missing)
    with open(os.path.join(root, "Dataframes", "Bad.csv"), "w") as file:
        file.write("place_id,year\n0,2017\n")
    with pytest.raises(DatasetError) as caught:
        gsv_cities.read_places(root, ["London", "Bad", "Nowhere"])
    message = str(caught.value)
    assert "3 problem(s)" in message and "London.csv:7: image" in message and missing in message
    assert "Bad.csv: missing columns" in message and "Nowhere.csv: no such dataframe" in message


def test_epoch_batches_hold_k_distinct_images_of_p_places_city_by_city(root):
    places = gsv_cities.read_places(root, ["London", "Boston"])
    batches = gsv_cities.epoch_batches(places, 2, 4, seed=3, epoch=0)
    assert batches.shape == (2, 8)
    groups = batches.reshape(-1, 4)
    labels = places.labels[groups]
    assert (labels == labels[:, :1]).all() and len({tuple(sorted(g)) for g in groups}) == 4
    assert all(len(set(g)) == 4 for g in groups)
    for epoch in range(5):
        order = gsv_cities.epoch_place_order(places, 3, epoch)
        assert sorted(order) == list(range(5)) and np.all(np.diff(places.cities[order]) >= 0)
    again = gsv_cities.epoch_batches(places, 2, 4, seed=3, epoch=0)
    other = [gsv_cities.epoch_batches(places, 2, 4, seed=3, epoch=e) for e in range(1, 4)]
    assert np.array_equal(batches, again) and any(not np.array_equal(batches, o) for o in other)


def test_query_database_split_takes_each_places_first_image():
    places = gsv_cities.Places("test", tuple("abcdefg"), np.array([5, 5, 5, 7, 7, 9, 9]), tuple("abcdefg"),
                               np.array([0, 3, 5, 7]))  # fmt: skip
    queries, database, positives = gsv_cities.query_database_split(places)
    assert queries.tolist() == [0, 3, 5] and database.tolist() == [1, 2, 4, 6]
    assert [p.tolist() for p in positives] == [[0, 1], [2], [3]]


def test_train_stream_resumes_where_an_uninterrupted_one_is(root):
    places = gsv_cities.read_places(root, ["London", "Boston"])
    stream = place_pipeline.make_place_train_dataset(places, 2, 4, (14, 28), seed=1)
    first = [batch for batch in stream.take(5)]
    resumed = next(iter(place_pipeline.make_place_train_dataset(places, 2, 4, (14, 28), seed=1, start_batch=3)))
    assert first[0]["images"].shape == (8, 14, 28, 3) and first[0]["labels"].dtype == np.int64
    np.testing.assert_array_equal(resumed["labels"], first[3]["labels"])
    np.testing.assert_array_equal(resumed["images"], first[3]["images"])
    indices = gsv_cities.epoch_batches(places, 2, 4, seed=1, epoch=1)[0]
    np.testing.assert_array_equal(first[2]["labels"], places.labels[indices])
    expected = preprocess_image(cv2.imread(places.paths[indices[0]]), (14, 28))
    np.testing.assert_allclose(first[2]["images"][0], expected, atol=1e-5)


def test_a_bad_image_stops_the_pipeline_naming_file_and_line(root):
    places = gsv_cities.read_places(root, ["London"])
    with open(places.paths[4], "wb") as file:
        file.write(b"not an image")
    dataset = place_pipeline.make_place_eval_dataset(places, np.arange(len(places)), (14, 14), 4)
    with pytest.raises(DatasetError, match=f"London.csv:6: .*{os.path.basename(places.paths[4])}"):
        with dataset_errors():
            list(dataset)


def test_fewer_places_than_a_batch_is_an_error(root):
    places = gsv_cities.read_places(root, ["London"])
    with pytest.raises(DatasetError, match="3 places, fewer than one batch of 4"):
        place_pipeline.make_place_train_dataset(places, 4, 4, (14, 14), seed=0)
