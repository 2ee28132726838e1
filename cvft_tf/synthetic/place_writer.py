"""Writes places of the synthetic world in the GSV-Cities layout, for single-view place recognition.

GSV-Cities (Ali-bey et al., 2022; ``dataloaders/train/GSVCitiesDataset.py`` in
amaralibey/gsv-cities) has, under its root:

- ``Dataframes/<City>.csv``: one row per image, columns
  ``place_id,year,month,northdeg,city_id,lat,lon,panoid`` (``place_id`` counts within the city);
- ``Images/<City>/<City>_<place_id:07d>_<year:04d>_<month:02d>_<northdeg:03d>_<lat>_<lon>_<panoid>.jpg``
  (``cvft_tf.data.gsv_cities.image_name``).

Here a place is a location on open ground of the synthetic world (``sample_locations``,
``spacing`` metres apart as GSV-Cities' places are at least 100 m apart) and its
``views_per_place`` images are what a street-level camera sees there at different times:
each view is rendered from its own point (up to ``POSITION_JITTER_M`` metres from the place),
with its own light, sky and colour (``Appearance.random``, so its own year and month), and
looks towards the place's heading turned by up to ``HEADING_JITTER_DEG`` degrees: a
``image_size`` x ``image_size`` crop of 90 degrees out of a north-aligned panorama of 90
degrees of elevation. The training places are split among ``TRAIN_CITIES`` (areas of the
world of their own); the held-out places lie in ``HELD_OUT_CITY``, an area that no training
image shows (``writer.held_out_origin``).

For ``cvft-eval-place``, the held-out places are also written as ``eval/query/`` (each place's
first image), ``eval/database/`` (its other images; hard links to the files under ``Images/``)
and ``eval/ground_truth.json`` (query name -> its place's database names): the protocol of
the trainer's validation (``gsv_cities.query_database_split``).

Each place is rendered from its own generator seeded by (seed, city, place), so the same
arguments give the same bytes. About 0.3 s per place of 4 views at 128 pixels on one core.
"""

import json
import os
import time

import numpy as np

from cvft_tf.data.gsv_cities import REQUIRED_COLUMNS, image_name, query_database_split, read_places
from cvft_tf.synthetic.render import MAX_DISTANCE, Appearance, render_panorama
from cvft_tf.synthetic.world import CityWorld, sample_locations
from cvft_tf.synthetic.writer import SPACING, _pano_ids, _prepare, _write_jpeg, held_out_origin

TRAIN_CITIES = ("SynthNorth", "SynthSouth")
"""Cities of the training places (each an area of the world)."""

HELD_OUT_CITY = "SynthHeldOut"
"""City of the held-out places."""

VIEW_FOV_DEG = 90.0
"""Horizontal and vertical field of view of a view, degrees."""

POSITION_JITTER_M = 2.0
"""Largest offset (east and north) of a view's camera from its place, metres."""

HEADING_JITTER_DEG = 20.0
"""Largest turn of a view from its place's heading, degrees."""

ORIGIN_LAT_LON = (45.0, 7.0)
"""Latitude and longitude of the world's (0, 0), for the ``lat`` / ``lon`` columns."""

_METRES_PER_DEGREE = 111320.0
_PLACE_STREAM = 4


def crop_view(panorama, heading_deg, fov_deg=VIEW_FOV_DEG):
    """The columns of a north-aligned panorama that look at ``heading_deg`` +- ``fov_deg / 2``.

    Args:
        panorama: ``[H, W, 3]``, column ``x`` looking at azimuth ``360 (x + 0.5) / W - 180``
            (``render`` module docstring).
        heading_deg: azimuth of the view's centre, degrees clockwise from north.
        fov_deg: horizontal field of view, degrees.

    Returns:
        ``[H, round(W fov / 360), 3]``, wrapping around the panorama's edges.
    """
    width = panorama.shape[1]
    crop = int(round(width * fov_deg / 360.0))
    centre = width / 2 + heading_deg / 360.0 * width
    start = int(round(centre - crop / 2)) % width
    return np.take(panorama, np.arange(start, start + crop) % width, axis=1)


def lat_lon(east, north):
    """``(lat, lon)`` degrees of a world position (metres), rounded to 6 decimals (0.1 m)."""
    lat0, lon0 = ORIGIN_LAT_LON
    lat = lat0 + north / _METRES_PER_DEGREE
    lon = lon0 + east / (_METRES_PER_DEGREE * np.cos(np.deg2rad(lat0)))
    return round(float(lat), 6), round(float(lon), 6)


def _views(world, center, rng, views_per_place, image_size):
    """The place's views: ``(image uint8 [s, s, 3] RGB, northdeg, year, month, (east, north))``."""
    half_extent = MAX_DISTANCE + POSITION_JITTER_M + 8.0
    scene = world.scene(center, half_extent)
    heading = rng.uniform(0.0, 360.0)
    views = []
    for _ in range(views_per_place):
        position = np.asarray(center) + rng.uniform(-POSITION_JITTER_M, POSITION_JITTER_M, 2)
        northdeg = int(round(heading + rng.uniform(-HEADING_JITTER_DEG, HEADING_JITTER_DEG))) % 360
        year, month = int(rng.integers(2008, 2022)), int(rng.integers(1, 13))
        panorama = render_panorama(
            scene, position, image_size, 4 * image_size, VIEW_FOV_DEG, Appearance.random(rng, "ground")
        )
        views.append((crop_view(panorama, northdeg), northdeg, year, month, position))
    return views


def _write_city(out_dir, seed, world, city_index, city, centers, views_per_place, image_size, jpeg_quality):
    """Renders and writes one city's places; returns its number of images."""
    rows = []
    panoids = iter(_pano_ids(seed * 1000 + city_index, len(centers) * views_per_place))
    image_dir = os.path.join(out_dir, "Images", city)
    os.makedirs(image_dir, exist_ok=True)
    for place_id, center in enumerate(centers):
        rng = np.random.default_rng([seed, _PLACE_STREAM, city_index, place_id])
        for image, northdeg, year, month, position in _views(world, center, rng, views_per_place, image_size):
            lat, lon = lat_lon(*position)
            row = dict(
                place_id=place_id, year=year, month=month, northdeg=northdeg, city_id=city, lat=lat, lon=lon,
                panoid=next(panoids),
            )  # fmt: skip
            _write_jpeg(os.path.join(image_dir, image_name(row)), image, jpeg_quality)
            rows.append(",".join(str(row[column]) for column in REQUIRED_COLUMNS) + "\n")
    with open(os.path.join(out_dir, "Dataframes", f"{city}.csv"), "w", encoding="utf-8", newline="") as file:
        file.write(",".join(REQUIRED_COLUMNS) + "\n")
        file.writelines(rows)
    return len(rows)


def write_eval_folders(out_dir, city):
    """``eval/query``, ``eval/database`` and ``eval/ground_truth.json`` of ``city``'s places
    (module docstring); returns the number of queries."""
    places = read_places(out_dir, [city], min_images_per_place=2)
    queries, database, positives = query_database_split(places)
    folders = {"query": queries, "database": database}
    for folder, indices in folders.items():
        os.makedirs(os.path.join(out_dir, "eval", folder), exist_ok=True)
        for index in indices:
            target = os.path.join(out_dir, "eval", folder, os.path.basename(places.paths[index]))
            if os.path.exists(target):
                os.remove(target)
            os.link(places.paths[index], target)
    name = lambda index: os.path.basename(places.paths[index])  # noqa: E731
    truth = {name(q): [name(database[p]) for p in positive] for q, positive in zip(queries, positives)}
    with open(os.path.join(out_dir, "eval", "ground_truth.json"), "w", encoding="utf-8") as file:
        json.dump(truth, file, indent=1, sort_keys=True)
    return len(queries)


def write_gsv_cities(
    out_dir,
    num_train_places,
    num_val_places,
    views_per_place=4,
    seed=0,
    image_size=128,
    spacing=SPACING,
    overwrite=False,
    jpeg_quality=95,
):
    """Writes synthetic places in the GSV-Cities layout (module docstring).

    Args:
        out_dir: dataset root to create (must be empty unless ``overwrite``).
        num_train_places: places split among :data:`TRAIN_CITIES` (the first cities get one
            more when it does not divide).
        num_val_places: places of :data:`HELD_OUT_CITY`.
        views_per_place: images of each place (GSV-Cities: 4 to 20).
        seed: world and rendering seed.
        image_size: side of the square views, pixels.
        spacing: metres between neighbouring places.
        overwrite: write into a non-empty ``out_dir``.
        jpeg_quality: OpenCV JPEG quality.

    Returns:
        dict: ``out_dir``, ``format`` (``"gsv_cities"``), ``places`` ({city: places}),
        ``images``, ``seconds``.
    """
    if views_per_place < 2:
        raise ValueError(f"views_per_place must be at least 2 (a query and a positive), got {views_per_place}")
    start = time.perf_counter()
    _prepare(out_dir, overwrite)
    os.makedirs(os.path.join(out_dir, "Dataframes"), exist_ok=True)
    world = CityWorld(seed)
    counts = [len(part) for part in np.array_split(np.arange(num_train_places), len(TRAIN_CITIES))]
    area = np.ceil(np.sqrt(max(counts))) * spacing + 3 * MAX_DISTANCE
    cities = [(city, (0.0, index * area), count) for index, (city, count) in enumerate(zip(TRAIN_CITIES, counts))]
    cities.append((HELD_OUT_CITY, held_out_origin(max(counts), spacing), num_val_places))
    places, images = {}, 0
    for city_index, (city, origin, count) in enumerate(cities):
        if count == 0:
            continue
        centers = sample_locations(world, count, spacing, origin=origin, salt=10 + city_index).reshape(-1, 2)
        images += _write_city(
            out_dir, seed, world, city_index, city, centers, views_per_place, image_size, jpeg_quality
        )
        places[city] = count
    if num_val_places:
        write_eval_folders(out_dir, HELD_OUT_CITY)
    return {
        "out_dir": out_dir,
        "format": "gsv_cities",
        "places": places,
        "images": images,
        "seconds": time.perf_counter() - start,
    }
