"""The ``lists`` layout: a folder of query images, a folder of database images, a ground-truth file.

Images: ``.jpg``, ``.jpeg``, ``.png`` files anywhere under each folder, named by their path
relative to it with ``/`` separators, in sorted order. Ground-truth formats (the queries
evaluated are those it lists):

* ``.json``: ``{"query name": ["database name", ...], ...}``;
* ``.csv``: one row per query: the query name, then its positive database names, one per
  column; a first row whose first cell is ``query`` is a header;
* ``.npy``: the database indices of each query, for every query image in sorted order,
  indexing database images in sorted order: a 2-D integer array, one row per query, padded
  with negative numbers (``-1``) where a query has fewer positives. An object array (SALAD's
  lists) is a pickle, which can run code when read: it is refused unless the caller passes
  ``allow_pickle=True`` (``--allow_pickle_ground_truth``); docs/security.md shows how to
  convert one to the padded form.

A query without positives counts as a miss.
"""

import csv
import json
import os
import pickle

import numpy as np

from cvft_tf.data.place_sets import PlaceSet, PlaceSetError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def read_lists(query_dir, database_dir, ground_truth, allow_pickle=False):
    """The :class:`PlaceSet` of two image folders and a ground-truth file (module docstring);
    ``allow_pickle``: accept an object-array ``.npy`` (it can run code).

    Raises:
        FileNotFoundError: a folder without images, or a missing ground-truth file.
        PlaceSetError: a ground-truth file that cannot be read or names other images.
    """
    query_names = list_images(query_dir)
    database_names = list_images(database_dir)
    queries, positives = load_ground_truth(ground_truth, query_names, database_names, allow_pickle)
    return PlaceSet("lists", query_dir, database_dir, queries, database_names, positives)


def list_images(folder):
    """Sorted paths, relative to ``folder`` with ``/`` separators, of its image files."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder {folder!r} not found")
    names = []
    for root, _, files in os.walk(folder):
        for file in files:
            if file.lower().endswith(IMAGE_EXTENSIONS):
                names.append(os.path.relpath(os.path.join(root, file), folder).replace(os.sep, "/"))
    if not names:
        raise FileNotFoundError(f"no {'/'.join(IMAGE_EXTENSIONS)} images under {folder!r}")
    return sorted(names)


def load_ground_truth(path, query_names, database_names, allow_pickle=False):
    """Reads a ground-truth file (formats in the module docstring).

    Args:
        path: ``.json``, ``.csv`` or ``.npy`` file.
        query_names: sorted query image names (from :func:`list_images`).
        database_names: sorted database image names.
        allow_pickle: accept a ``.npy`` object array (a pickle, which can run code).

    Returns:
        ``(queries, positives)``: the query names evaluated, and for each one an int64 array
        of indices into ``database_names``.

    Raises:
        FileNotFoundError: ``path`` is missing.
        PlaceSetError: unknown format, a file that cannot be read as its format, or
            names/indices not among the images.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ground truth file {path!r} not found")
    extension = os.path.splitext(path)[1].lower()
    if extension == ".npy":
        return list(query_names), read_npy_positives(path, len(query_names), len(database_names), allow_pickle)
    readers = {".json": _read_json_rows, ".csv": _read_csv_rows}
    if extension not in readers:
        raise PlaceSetError(f"unknown ground truth format {extension!r} ({path}); expected .json, .csv or .npy")
    rows = readers[extension](path)
    query_set = set(query_names)
    database_index = {name: index for index, name in enumerate(database_names)}
    missing = [query for query, _ in rows if query not in query_set]
    missing += [name for _, names in rows for name in names if name not in database_index]
    if missing:
        raise PlaceSetError(f"{path} names {len(missing)} images not in the folders, e.g. {missing[:3]}")
    return [query for query, _ in rows], [np.asarray([database_index[n] for n in names], np.int64) for _, names in rows]


def read_npy_positives(path, num_queries, num_database, allow_pickle=False):
    """One int64 array of database indices per query from a ``.npy`` file, checked: a 2-D
    integer array padded with negative numbers, or, with ``allow_pickle``, an object array.

    Raises:
        PlaceSetError: not a readable array, an object array without ``allow_pickle``, not
            ``num_queries`` rows, or an index at or above ``num_database``.
    """
    try:
        if npy_dtype(path).hasobject and not allow_pickle:
            raise PlaceSetError(
                f"{path} holds pickled Python objects (an object array), and reading a pickle can run code: "
                "convert it to a 2-D integer array padded with -1 (docs/security.md), or pass "
                "--allow_pickle_ground_truth if you trust whoever wrote it"
            )
        loaded = np.load(path, allow_pickle=allow_pickle)
        if loaded.dtype.hasobject:
            positives = [np.asarray(p, np.int64).reshape(-1) for p in loaded]
        elif loaded.ndim == 2 and loaded.dtype.kind in "iu":
            positives = [row[row >= 0].astype(np.int64) for row in loaded]
        else:
            got = f"{loaded.dtype} {loaded.shape}"
            raise PlaceSetError(f"{path} must be a 2-D integer array (one padded row per query), got {got}")
    except PlaceSetError:
        raise
    except (ValueError, TypeError, OSError, EOFError, pickle.UnpicklingError) as error:
        raise PlaceSetError(f"{path} is not a readable .npy array of database indices per query ({error})") from None
    if len(positives) != num_queries:
        raise PlaceSetError(f"{path} has {len(positives)} rows for {num_queries} query images")
    if any(p.size and (p.min() < 0 or p.max() >= num_database) for p in positives):
        raise PlaceSetError(f"{path} has database indices outside [0, {num_database})")
    return positives


def npy_dtype(path):
    """The dtype a ``.npy`` file's header declares, read without loading (or unpickling) it.

    Raises:
        ValueError: not a ``.npy`` file.
    """
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return read_header(handle)[2]


def _read_json_rows(path):
    """The ``.json`` format: ``[(query name, [database name, ...]), ...]``."""
    try:
        with open(path, encoding="utf-8") as file:
            mapping = json.load(file)
    except ValueError as error:
        raise PlaceSetError(f"{path} is not valid JSON ({error})") from None
    is_mapping = isinstance(mapping, dict) and all(
        isinstance(names, list) and all(isinstance(name, str) for name in names) for names in mapping.values()
    )
    if not is_mapping:
        raise PlaceSetError(f"{path} must hold an object mapping query names to lists of database names")
    return list(mapping.items())


def _read_csv_rows(path):
    """The ``.csv`` format: ``[(query name, [database name, ...]), ...]``, without a header row."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = [(row[0], [name for name in row[1:] if name]) for row in csv.reader(file) if row]
    except (ValueError, csv.Error) as error:
        raise PlaceSetError(f"{path} is not a readable CSV file ({error})") from None
    if rows and rows[0][0].strip().lower() == "query":
        rows = rows[1:]
    return rows
