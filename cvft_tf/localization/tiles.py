"""A folder of aerial tiles with a CSV of their centres: each tile is one indexed window.

The folder holds the tile images (JPEG or PNG) and ``tiles.csv``::

    path,x,y
    a/0001.jpg,300085.0,4999915.0
    ...

``path`` is relative to the folder; ``x``, ``y`` are the map coordinates (easting and
northing, metres) of the tile's centre in a projected CRS, given by ``tiles.json`` beside the
CSV (``{"crs": "EPSG:32632"}``) or by the caller (``cvft-index --crs``). Further columns are
ignored. A tile is not slid over: it is the aerial window, resized to the model's aerial
input as the training tiles are, so it should cover the model's footprint
(``config.data.aerial_footprint_m``) north-up, as the training tiles did.

The CSV is checked whole when the folder is opened (every row, every file present and not
empty); an image is decoded only when it is indexed, so a truncated tile stops indexing with
its name, after the chunks before it are saved.
"""

import csv
import hashlib
import json
import os

import numpy as np

from cvft_tf.data.preprocess import ImageError, read_image
from cvft_tf.localization.errors import MapError
from cvft_tf.localization.geomap import check_metric_crs, resolve_crs

CSV_NAME = "tiles.csv"
CRS_NAME = "tiles.json"
COLUMNS = ("path", "x", "y")


def read_tile_csv(csv_path):
    """The rows of a tile CSV: ``(paths, centres)``, paths as written and float64 [n, 2] ``(x, y)``.

    Raises:
        MapError: the file is missing or unreadable, has no ``path,x,y`` header, no row, a
            malformed row or a path listed twice (file and line named).
    """
    try:
        with open(csv_path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            if reader.fieldnames is None or not set(COLUMNS) <= set(reader.fieldnames):
                raise MapError(f"{csv_path}: expected a header with the columns path,x,y, got {reader.fieldnames}")
            rows = list(reader)
    except OSError as error:
        raise MapError(f"cannot read the tile list {csv_path}: {error.strerror}") from None
    except (csv.Error, UnicodeDecodeError) as error:
        raise MapError(f"{csv_path}: not a CSV ({error})") from None
    if not rows:
        raise MapError(f"{csv_path} lists no tile (expected rows path,x,y)")
    paths, centres, first_line = [], [], {}
    for line, row in enumerate(rows, start=2):
        try:
            path, centre = row["path"].strip(), (float(row["x"]), float(row["y"]))
            if not path or not np.all(np.isfinite(centre)):
                raise ValueError
        except (AttributeError, TypeError, ValueError):
            raise MapError(
                f"{csv_path}:{line}: expected path,x,y with a file and two finite numbers, "
                f"got {dict((k, row[k]) for k in COLUMNS)}"
            ) from None
        if path in first_line:
            raise MapError(f"{csv_path}:{line}: the tile {path} is listed twice (first on line {first_line[path]})")
        first_line[path] = line
        paths.append(path)
        centres.append(centre)
    return paths, np.asarray(centres, np.float64)


def _folder_crs(directory):
    """The CRS of ``tiles.json`` in ``directory``, or None without that file."""
    path = os.path.join(directory, CRS_NAME)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            return json.load(handle)["crs"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise MapError(f'{path}: expected {{"crs": "EPSG:..."}} ({type(error).__name__}: {error})') from None


class TileFolder:
    """The tiles of a folder (module docstring).

    Attributes:
        path: the folder.
        crs: the CRS as a string.
        files: the tile images' paths, in CSV order (window number order).
        centres: float64 [n, 2], map coordinates ``(x, y)`` of the tiles' centres.
    """

    def __init__(self, directory, crs=None):
        self.path = directory
        csv_path = os.path.join(directory, CSV_NAME)
        if not os.path.isfile(csv_path):
            raise MapError(
                f"the tile folder {directory} has no {CSV_NAME} (columns path,x,y: each tile's centre, map CRS)"
            )
        names, self.centres = read_tile_csv(csv_path)
        crs = resolve_crs(_folder_crs(directory), crs, csv_path, f"{CRS_NAME} beside it")
        self.crs = check_metric_crs(crs, csv_path)
        self.files = [os.path.join(directory, name) for name in names]
        for line, path in enumerate(self.files, start=2):
            if not os.path.isfile(path) or os.path.getsize(path) == 0:
                state = "empty" if os.path.isfile(path) else "missing"
                raise MapError(f"{csv_path}:{line}: the tile image {path} is {state}")
        with open(csv_path, "rb") as handle:
            self._digest = hashlib.sha256(handle.read()).hexdigest()

    def __len__(self):
        return len(self.files)

    def identity(self):
        """What identifies the folder in an index: its path, CRS, tile count and the CSV's SHA-256."""
        return {"path": os.path.abspath(self.path), "crs": self.crs, "tiles": len(self),
                "csv_sha256": self._digest}  # fmt: skip

    def extent(self, footprint_m):
        """``(west, east, south, north)``: the centres' bounds widened by half a footprint."""
        (west, south), (east, north) = self.centres.min(axis=0), self.centres.max(axis=0)
        half = footprint_m / 2
        return float(west - half), float(east + half), float(south - half), float(north + half)

    def read_tile(self, number):
        """uint8 BGR [h, w, 3]: tile ``number``.

        Raises:
            MapError: the image is unreadable or truncated (named).
        """
        try:
            return read_image(self.files[number])
        except ImageError as error:
            raise MapError(f"unreadable tile: {error}") from None

    def close(self):
        """Nothing to release (as :meth:`GeoMap.close`)."""
