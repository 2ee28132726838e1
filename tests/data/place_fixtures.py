"""Tiny place recognition benchmarks in the released layouts, written by the tests.

Each query image is a byte copy of one database image (its "twin"), so any model gives it
distance 0 to that image: the expected recalls follow from the layout's positives alone.
"""

import csv
import json
import os
import shutil

import cv2
import numpy as np
import scipy.io

DATABASE = ["a/0.png", "a/1.png", "b/2.jpg", "b/3.png", "c/4.png", "c/5.png"]
"""Database images of the ``lists`` layout (sorted: their indices are their positions)."""

QUERIES = {"q0.png": ["a/0.png"], "q1.png": ["b/2.jpg", "a/1.png"], "q2.png": ["c/4.png"]}
"""Query -> positives of the ``lists`` layout; each query is a copy of its first positive."""


def write_lists(root):
    """``root/database``, ``root/queries`` (plus a text file, not an image) and ``root/gt.json``."""
    for index, name in enumerate(DATABASE):
        write_image(os.path.join(root, "database", name), seed=index, size=(40 + 4 * index, 50))
    os.makedirs(os.path.join(root, "queries"))
    for query, positives in QUERIES.items():
        image = cv2.imread(os.path.join(root, "database", positives[0]))
        cv2.imwrite(os.path.join(root, "queries", query), image)
    with open(os.path.join(root, "queries", "notes.txt"), "w") as file:
        file.write("not an image")
    with open(os.path.join(root, "gt.json"), "w") as file:
        json.dump(QUERIES, file)


PITTSBURGH_DATABASE = {
    "000/000000_pitch1_yaw1.png": (0.0, 0.0),
    "000/000000_pitch1_yaw2.png": (10.0, 0.0),
    "000/000001_pitch1_yaw1.png": (20.0, 0.0),
    "001/000002_pitch1_yaw1.png": (30.0, 40.0),
    "001/000003_pitch1_yaw1.png": (40.0, 0.0),
    "001/000004_pitch1_yaw1.png": (100.0, 0.0),
}
"""Database image name -> UTM (easting, northing) in metres."""

PITTSBURGH_QUERIES = {
    "000/000100_pitch1_yaw1.png": ((0.0, 0.0), "000/000000_pitch1_yaw2.png"),
    "000/000101_pitch1_yaw1.png": ((100.0, -25.0), "001/000004_pitch1_yaw1.png"),
    "001/000102_pitch1_yaw1.png": ((300.0, 0.0), "001/000002_pitch1_yaw1.png"),
}
"""Query name -> (UTM, database twin). Positives within 25 m: [0, 1, 2], [5] (exactly 25 m),
none (the third query: a miss whatever the model)."""

PITTSBURGH_POSITIVES = [[0, 1, 2], [5], []]


def write_image(path, seed, size=(36, 44)):
    """A noise image at ``path`` (its format from the extension; parents created)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8))


def write_pittsburgh(root, mat_name="pitts30k_test.mat"):
    """Images under ``root`` (queries in ``root/queries_real``) and a NetVLAD ``dbStruct`` file
    with the released field order; returns the ``.mat`` path."""
    for seed, name in enumerate(PITTSBURGH_DATABASE):
        write_image(os.path.join(root, name), seed)
    for name, (_, twin) in PITTSBURGH_QUERIES.items():
        os.makedirs(os.path.dirname(os.path.join(root, "queries_real", name)), exist_ok=True)
        shutil.copy(os.path.join(root, twin), os.path.join(root, "queries_real", name))
    struct = {
        "whichSet": "test",
        "dbImageFns": np.array(list(PITTSBURGH_DATABASE), dtype=object).reshape(-1, 1),
        "utmDb": np.array(list(PITTSBURGH_DATABASE.values())).T,
        "qImageFns": np.array(list(PITTSBURGH_QUERIES), dtype=object).reshape(-1, 1),
        "utmQ": np.array([utm for utm, _ in PITTSBURGH_QUERIES.values()]).T,
        "numImages": float(len(PITTSBURGH_DATABASE)),
        "numQueries": float(len(PITTSBURGH_QUERIES)),
        "posDistThr": 25.0,
        "posDistSqThr": 625.0,
        "nonTrivPosDistSqThr": 100.0,
    }
    path = os.path.join(root, mat_name)
    scipy.io.savemat(path, {"dbStruct": struct})
    return path


def write_salad_lists(prefix, query_names, database_names, positives, query_index=None):
    """SALAD's ``prefix_dbImages.npy``, ``_qImages.npy``, ``_pIdx.npy`` or ``_gt.npy`` (without
    ``query_index``) and ``_qIdx.npy``."""
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    np.save(f"{prefix}_dbImages.npy", np.array(database_names))
    np.save(f"{prefix}_qImages.npy", np.array(query_names))
    ground_truth = np.empty(len(positives), dtype=object)
    ground_truth[:] = [np.array(p, np.int64) for p in positives]
    if query_index is None:
        np.save(f"{prefix}_gt.npy", ground_truth, allow_pickle=True)
    else:
        np.save(f"{prefix}_qIdx.npy", np.array(query_index, np.int64))
        np.save(f"{prefix}_pIdx.npy", ground_truth, allow_pickle=True)


MSLS = {
    "cph": {
        "database": [("d0", 0.0, False, True), ("d1", 10.0, False, True), ("d2", 50.0, True, True),
                     ("d3", 1000.0, False, True)],
        "query": [("q0", 5.0, False, True, "d1"), ("q1", 50.0, False, True, "d0"),
                  ("q2", 0.0, False, False, "d0"), ("q3", 0.0, True, True, "d0")],
    },
    "sf": {
        "database": [("e0", 0.0, False, True), ("e1", 29.0, False, True)],
        "query": [("r0", 30.0, False, True, "e1")],
    },
}  # fmt: skip
"""city -> side -> rows (key, easting offset in metres, pano, in subtask "all"[, twin key]).

Kept: cph database d0, d1, d3 (d2 is a panorama), sf e0, e1 -> database indices 0..4. Queries:
cph q0 (positives d0, d1 -> [0, 1]); q1 has no positive (its only neighbour d2 is a panorama:
excluded); q2 is not in the subtask; q3 is a panorama; sf r0 (e1 only, e0 is 30 m away -> [4])."""

MSLS_QUERIES = ["train_val/cph/query/images/q0.jpg", "train_val/sf/query/images/r0.jpg"]
MSLS_POSITIVES = [[0, 1], [4]]
MSLS_NORTHING = {"cph": 6_170_000.0, "sf": 4_180_000.0}


def write_msls(root):
    """The :data:`MSLS` cities under ``root/train_val`` (csv files as released, JPEG images)."""
    for city, sides in MSLS.items():
        for side in ("database", "query"):
            folder = os.path.join(root, "train_val", city, side)
            os.makedirs(os.path.join(folder, "images"), exist_ok=True)
            rows = sides[side]
            for index, row in enumerate(rows):
                image = os.path.join(folder, "images", f"{row[0]}.jpg")
                if side == "database":
                    write_image(image, seed=100 * list(MSLS).index(city) + index)
                else:
                    shutil.copy(os.path.join(folder, "..", "database", "images", f"{row[4]}.jpg"), image)
            _write_csv(
                os.path.join(folder, "postprocessed.csv"),
                ["", "key", "easting", "northing", "night", "view_direction"],
                [[i, row[0], 500_000.0 + row[1], MSLS_NORTHING[city], False, "Forward"] for i, row in enumerate(rows)],
            )
            _write_csv(
                os.path.join(folder, "raw.csv"),
                ["", "key", "lon", "lat", "ca", "captured_at", "pano"],
                [[i, row[0], 12.5, 55.6, 90.0, 1500000000000, row[2]] for i, row in enumerate(rows)],
            )
            _write_csv(
                os.path.join(folder, "subtask_index.csv"),
                ["", "all", "s2w"],
                [[i, row[3], False] for i, row in enumerate(rows)],
            )


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)
