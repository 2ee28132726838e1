"""The ``lists`` layout: image folders and a .json / .csv / .npy ground-truth file."""

import csv
import json

import numpy as np
import pytest

from cvft_tf.data.place_lists import list_images, load_ground_truth, read_lists
from cvft_tf.data.place_sets import PlaceSetError
from tests.data.place_fixtures import DATABASE, QUERIES, write_lists


@pytest.fixture
def folders(tmp_path):
    write_lists(str(tmp_path))
    return tmp_path


def test_read_lists(folders):
    place_set = read_lists(str(folders / "queries"), str(folders / "database"), str(folders / "gt.json"))
    assert place_set.layout == "lists" and place_set.query_names == list(QUERIES)
    assert place_set.database_names == sorted(DATABASE)
    assert place_set.query_paths[1] == str(folders / "queries" / "q1.png")
    assert [p.tolist() for p in place_set.positives] == [[0], [2, 1], [4]]


def test_ground_truth_formats(folders):
    queries, database = (
        list_images(str(folders / "queries")),
        list_images(str(folders / "database")),
    )
    assert queries == ["q0.png", "q1.png", "q2.png"] and database == sorted(DATABASE)
    expected = [[0], [2, 1], [4]]
    with open(folders / "gt.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["query", "positives"])
        writer.writerows([query, *positives] for query, positives in QUERIES.items())
    np.save(folders / "gt.npy", np.array([[0, -1], [2, 1], [4, -1]]))
    np.save(folders / "pickled.npy", np.array([np.array(p) for p in expected], dtype=object), allow_pickle=True)
    for name in ("gt.json", "gt.csv", "gt.npy"):
        names, positives = load_ground_truth(str(folders / name), queries, database)
        assert names == queries
        assert [p.tolist() for p in positives] == expected
    with pytest.raises(PlaceSetError, match="pickled.npy holds pickled Python objects .* --allow_pickle_ground_truth"):
        load_ground_truth(str(folders / "pickled.npy"), queries, database)
    _, positives = load_ground_truth(str(folders / "pickled.npy"), queries, database, allow_pickle=True)
    assert [p.tolist() for p in positives] == expected
    (folders / "bad.json").write_text(json.dumps({"q0.png": ["a/9.png"]}))
    with pytest.raises(PlaceSetError, match="not in the folders"):
        load_ground_truth(str(folders / "bad.json"), queries, database)
    with pytest.raises(FileNotFoundError):
        load_ground_truth(str(folders / "missing.json"), queries, database)


def test_unreadable_ground_truth_files_are_named(folders):
    queries, database = list(QUERIES), sorted(DATABASE)
    for name, content, message in (
        ("gt.json", b'{"q0.png": ["a/0.png"], "q1', "is not valid JSON"),
        ("gt.json", b'{"q0.png": "a/0.png"}', "must hold an object mapping query names to lists of database names"),
        ("gt.npy", bytes(range(256)), "is not a readable .npy array of database indices per query"),
        ("gt.csv", b"q0.png,\xff\xfe\n", "is not a readable CSV file"),
    ):
        (folders / name).write_bytes(content)
        with pytest.raises(PlaceSetError, match=message):
            load_ground_truth(str(folders / name), queries, database)
