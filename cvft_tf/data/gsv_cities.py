"""GSV-Cities (Ali-bey et al., Neurocomputing 2022): its layout, its places and the P x K batch order.

The layout, as ``dataloaders/train/GSVCitiesDataset.py`` of amaralibey/gsv-cities (and
serizba/salad's copy, ``dataloaders/GSVCitiesDataset.py``) reads it, under the root:

- ``Dataframes/<City>.csv``: one row per image with at least the columns
  :data:`REQUIRED_COLUMNS`; ``place_id`` counts within the city;
- ``Images/<city_id>/<name>``, ``name`` from the row (:func:`image_name`).

Place ids are made unique over the cities as the authors do: the ``i``-th city of the list
(from 0) adds ``i * 10**5`` (:data:`PLACE_ID_STRIDE`) to its ids; places with fewer than
``min_images_per_place`` images are dropped. This module reads the layout and orders the
training batches; ``place_pipeline`` decodes the images.

Batches (``GSVCitiesDataModule`` with ``shuffle_all=False`` and a reload every epoch, as
SALAD's ``main.py`` trains): each epoch lists the cities in order and each city's places in
a fresh random order, and cuts that list into batches of P places; each place gives K of its
images drawn at random without replacement (``random_sample_from_each_place=True``). Most
batches so hold places of one city, whose negatives are harder. Unlike the authors'
``DataLoader`` (``drop_last=False``), the last incomplete batch of an epoch is dropped, so
every batch has P x K images.
"""

import csv
import dataclasses
import os

import numpy as np

from cvft_tf.data.pipeline import FileIndex, raise_problems

PLACE_ID_STRIDE = 10**5
"""City ``i`` of the list adds ``i * PLACE_ID_STRIDE`` to its place ids (at most 99,999 per city)."""

REQUIRED_COLUMNS = ("place_id", "year", "month", "northdeg", "city_id", "lat", "lon", "panoid")
"""Columns :func:`image_name` and :func:`read_places` need."""

MIN_IMAGES_PER_PLACE = 4
"""Places with fewer images are dropped (SALAD's ``min_img_per_place``)."""

IMAGES_PER_PLACE = 4
"""K, images of each place in a batch (SALAD's ``img_per_place``)."""


def _float_text(value):
    """A coordinate as pandas then ``str`` print it: Python's shortest repr of the float."""
    return str(float(value))


def _int_text(value, width):
    """An integer column zero-padded to ``width`` (``str(int).zfill``)."""
    return str(int(value)).zfill(width)


def image_name(row):
    """The file name of an image from its dataframe row (``GSVCitiesDataset.get_img_name``).

    ``<city_id>_<place_id:07d>_<year:04d>_<month:02d>_<northdeg:03d>_<lat>_<lon>_<panoid>.jpg``,
    with ``place_id`` the city's own id (without the city prefix) and ``lat`` / ``lon`` the
    shortest text of the float (``51.5074``, ``-0.1278``).

    Args:
        row: mapping with the keys of :data:`REQUIRED_COLUMNS` (values as text or numbers).
    """
    parts = (
        str(row["city_id"]),
        _int_text(row["place_id"], 7),
        _int_text(row["year"], 4),
        _int_text(row["month"], 2),
        _int_text(row["northdeg"], 3),
        _float_text(row["lat"]),
        _float_text(row["lon"]),
        str(row["panoid"]),
    )
    return "_".join(parts) + ".jpg"


@dataclasses.dataclass(frozen=True, eq=False)
class Places:
    """The images of a set of places.

    Attributes:
        name: for messages, e.g. ``"GSV-Cities /data/gsv (London, Boston)"``.
        paths: N image paths, grouped by place (places in order of their ids).
        labels: int64 [N], the unique place id of each image.
        sources: N strings ``"<csv>:<line>"`` saying where each image is listed.
        starts: int64 [num_places + 1], the images of place ``p`` are ``starts[p]:starts[p+1]``.
    """

    name: str
    paths: tuple
    labels: np.ndarray
    sources: tuple
    starts: np.ndarray

    def __len__(self):
        return len(self.paths)

    @property
    def num_places(self):
        return len(self.starts) - 1

    @property
    def place_ids(self):
        """int64 [num_places], the unique id of each place."""
        return self.labels[self.starts[:-1]]

    @property
    def cities(self):
        """int64 [num_places], the index of each place's city in the list read."""
        return self.place_ids // PLACE_ID_STRIDE


def _read_city(root, city, city_index, files, problems):
    """Rows ``(unique place id, path, source)`` of ``Dataframes/<city>.csv``; problems appended."""
    csv_path = os.path.join(root, "Dataframes", f"{city}.csv")
    if not os.path.isfile(csv_path):
        problems.append(f"{csv_path}: no such dataframe (city {city!r})")
        return []
    with open(csv_path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        missing = [column for column in REQUIRED_COLUMNS if column not in (reader.fieldnames or ())]
        if missing:
            problems.append(f"{csv_path}: missing columns {missing} (has {reader.fieldnames})")
            return []
        rows = []
        for line, row in enumerate(reader, start=2):
            source = f"{csv_path}:{line}"
            try:
                place_id = int(row["place_id"])
                path = os.path.join(root, "Images", row["city_id"], image_name(row))
            except (TypeError, ValueError) as error:
                problems.append(f"{source}: {error}")
                continue
            if not 0 <= place_id < PLACE_ID_STRIDE:
                problems.append(f"{source}: place_id {place_id} is outside [0, {PLACE_ID_STRIDE})")
            elif not files.exists(path):
                problems.append(f"{source}: image {path} not found")
            else:
                rows.append((place_id + city_index * PLACE_ID_STRIDE, path, source))
    return rows


def read_places(root, cities, min_images_per_place=MIN_IMAGES_PER_PLACE):
    """Reads and checks the places of ``cities`` under a GSV-Cities ``root``.

    Args:
        root: the dataset root (``Dataframes/``, ``Images/``).
        cities: city names, the dataframes to read; their order gives the id prefixes.
        min_images_per_place: places with fewer images are dropped.

    Returns:
        :class:`Places`, places in order of their unique ids, each place's images in
        dataframe order.

    Raises:
        DatasetError: a missing dataframe, column or image, a bad row (all listed), or no
            place left.
    """
    if not cities:
        raise ValueError("cities is empty: name the GSV-Cities dataframes to read")
    name = f"GSV-Cities {root} ({', '.join(cities)})"
    files, problems, rows = FileIndex(), [], []
    for city_index, city in enumerate(cities):
        rows += _read_city(root, city, city_index, files, problems)
    raise_problems(name, problems)
    labels = np.asarray([row[0] for row in rows], np.int64)
    order = np.argsort(labels, kind="stable")
    place_ids, starts, counts = np.unique(labels[order], return_index=True, return_counts=True)
    keep = np.repeat(counts >= min_images_per_place, counts)
    order = order[keep]
    if order.size == 0:
        raise_problems(name, [f"no place has {min_images_per_place} or more images"])
    labels = labels[order]
    starts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1], True])
    return Places(
        name=name,
        paths=tuple(rows[i][1] for i in order),
        labels=labels,
        sources=tuple(rows[i][2] for i in order),
        starts=starts.astype(np.int64),
    )


def epoch_place_order(places, seed, epoch, shuffle_all=False):
    """The places of epoch ``epoch`` in training order: int64 [num_places] place indices.

    ``shuffle_all=False`` (SALAD's): cities in order, each city's places shuffled;
    ``True``: all places shuffled. A function of ``(seed, epoch)`` alone.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(places.num_places)
    if shuffle_all:
        return order.astype(np.int64)
    return order[np.argsort(places.cities[order], kind="stable")].astype(np.int64)


def epoch_batches(places, places_per_batch, images_per_place, seed, epoch, shuffle_all=False):
    """The image indices of every batch of one epoch.

    Args:
        places: :class:`Places`, each with at least ``images_per_place`` images.
        places_per_batch: P.
        images_per_place: K, drawn without replacement from the place's images, anew each epoch.
        seed, epoch: the order is a function of them alone.
        shuffle_all: see :func:`epoch_place_order`.

    Returns:
        int64 ``[num_places // P, P * K]``: batch ``b`` holds P groups of K images, one
        group per place.
    """
    order = epoch_place_order(places, seed, epoch, shuffle_all)
    batches = len(order) // places_per_batch
    rng = np.random.default_rng([seed, epoch, 1])
    indices = np.empty((batches * places_per_batch, images_per_place), np.int64)
    for row, place in enumerate(order[: len(indices)]):
        start, stop = places.starts[place], places.starts[place + 1]
        indices[row] = start + rng.choice(stop - start, images_per_place, replace=False)
    return indices.reshape(batches, places_per_batch * images_per_place)


def query_database_split(places):
    """The held-out protocol: each place's first image is a query, its other images the database.

    Returns:
        ``(query_indices [num_places], database_indices [N - num_places], positives)``:
        image indices into ``places``, and for each query the indices (into the database)
        of its own place's other images.
    """
    queries = places.starts[:-1]
    is_query = np.zeros(len(places), bool)
    is_query[queries] = True
    database = np.flatnonzero(~is_query)
    database_labels = places.labels[database]
    positives = [np.flatnonzero(database_labels == places.labels[q]) for q in queries]
    return queries.astype(np.int64), database.astype(np.int64), positives
