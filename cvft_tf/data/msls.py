"""The ``msls`` layout: Mapillary Street-Level Sequences (Warburg et al., CVPR 2020) as released,
evaluated image to image as the authors' ``mapillary_sls`` code does (``datasets/msls.py`` in
``mode="val"``, ``task="im2im"``, ``subtask="all"``; ``evaluate.py``).

Under the dataset root, each city has ``train_val/<city>/{query,database}/`` with
``images/<key>.jpg`` and, row for row, the files read here:

* ``postprocessed.csv``: ``key``, ``easting``, ``northing`` (UTM metres);
* ``raw.csv``: ``pano`` (panoramas are left out of both queries and database);
* ``subtask_index.csv``: ``all`` (the images of the evaluation; it selects the queries).

The validation cities are ``cph`` and ``sf``, in that order. The positives of a query are the
database images of its city within 25 m (``evaluate.py --threshold``, distance <= radius as
scikit-learn's ``radius_neighbors``); queries without any are left out of the evaluation, as the
authors' ``qIdx`` does (SALAD's MSLS-val lists likewise evaluate 740 of their 747 query images).
"""

import csv
import os

import numpy as np

from cvft_tf.data.place_sets import PlaceSet, PlaceSetError, radius_positives

VAL_CITIES = ("cph", "sf")
"""Cities of MSLS-val, in the order of the authors' code (``default_cities["val"]``)."""

POSITIVE_RADIUS_M = 25.0
"""Default positive radius of the MSLS evaluation (``evaluate.py --threshold``)."""

SUBTASK = "all"
"""Column of ``subtask_index.csv`` selecting the evaluated images (every condition)."""

_TRUTH = {"true": True, "false": False, "1": True, "0": False}


def read_msls(root, cities=VAL_CITIES, positive_radius=POSITIVE_RADIUS_M):
    """The :class:`PlaceSet` of MSLS cities (module docstring); names relative to ``root``.

    Raises:
        FileNotFoundError: a city folder or one of its csv files is missing.
        PlaceSetError: a csv file without the needed columns, with unreadable values, or whose
            rows do not match those of ``postprocessed.csv``.
    """
    query_names, database_names, positives, excluded = [], [], [], 0
    for city in cities:
        queries, query_utm = _read_side(root, city, "query")
        database, database_utm = _read_side(root, city, "database")
        for query, found in zip(queries, radius_positives(query_utm, database_utm, positive_radius)):
            if found.size:
                query_names.append(query)
                positives.append(found + len(database_names))
            else:
                excluded += 1
        database_names.extend(database)
    if not query_names or not database_names:
        counts = f"{len(query_names)} queries with positives and {len(database_names)} database images"
        raise PlaceSetError(f"MSLS cities {','.join(cities)} under {root} give {counts}")
    return PlaceSet("msls", root, root, query_names, database_names, positives, excluded_queries=excluded)


def _read_side(root, city, side):
    """Image names (relative to ``root``) and ``[n, 2]`` UTM of one city's query or database
    images that are in the subtask and are not panoramas."""
    folder = os.path.join(root, "train_val", city, side)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"MSLS folder {folder!r} not found (expected ROOT/train_val/<city>/{side})")
    processed_path = os.path.join(folder, "postprocessed.csv")
    processed = _read_csv(processed_path, ("key", "easting", "northing"))
    keys = [row["key"] for row in processed]
    panorama = _flags(os.path.join(folder, "raw.csv"), "pano", keys)
    in_subtask = _flags(os.path.join(folder, "subtask_index.csv"), SUBTASK, keys)
    selected = np.flatnonzero(in_subtask & ~panorama)
    try:
        utm = np.asarray([[float(processed[i]["easting"]), float(processed[i]["northing"])] for i in selected])
    except ValueError as error:
        raise PlaceSetError(f"{processed_path} has an easting or northing that is not a number ({error})") from None
    names = [f"train_val/{city}/{side}/images/{keys[i]}.jpg" for i in selected]
    return names, utm.reshape(-1, 2)


def _read_csv(path, columns):
    """The rows of a csv file with a header, as dicts; ``columns`` must be among its columns."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MSLS file {path!r} not found")
    try:
        with open(path, newline="", encoding="utf-8") as file:
            reader = csv.DictReader(file)
            rows = list(reader)
            header = reader.fieldnames or []
    except (ValueError, csv.Error) as error:
        raise PlaceSetError(f"{path} is not a readable CSV file ({error})") from None
    missing = [column for column in columns if column not in header]
    if missing:
        raise PlaceSetError(f"{path} has no column {', '.join(missing)} (columns: {header})")
    return rows


def _flags(path, column, keys):
    """The True/False ``column`` of a csv file whose rows are those of ``postprocessed.csv``."""
    rows = _read_csv(path, (column,))
    if len(rows) != len(keys):
        raise PlaceSetError(f"{path} has {len(rows)} rows, but postprocessed.csv has {len(keys)}")
    for line, (row, key) in enumerate(zip(rows, keys), start=2):
        if row.get("key", key) != key:
            raise PlaceSetError(f"{path} line {line}: key {row['key']!r}, but postprocessed.csv has {key!r}")
    values = [_TRUTH.get((row[column] or "").strip().lower()) for row in rows]
    if None in values:
        line = values.index(None)
        raise PlaceSetError(f"{path} line {line + 2}: {column} is {rows[line][column]!r}, expected True or False")
    return np.asarray(values, bool)
