"""Geo-referenced aerial maps: pixel <-> map coordinates <-> latitude / longitude, window reads.

A map is a north-up raster with square pixels in a projected CRS whose unit is the metre
(UTM, a national grid): its geo-reference is the affine transform of rasterio / GDAL,
``x = a * col + c``, ``y = e * row + f`` with ``e = -a``, where ``(col, row)`` are continuous
pixel coordinates (the outer corner of the image is ``(0, 0)``, the centre of pixel ``(r, k)``
is ``(k + 0.5, r + 0.5)``) and ``(x, y)`` are easting and northing in metres.

Three kinds are read (:func:`open_map`):

- a GeoTIFF (``.tif``, ``.tiff``), with rasterio: its CRS and transform come from the file,
  and windows are read from disk one at a time, so a map larger than memory works;
- a PNG or JPEG with a JSON beside it (``map.png`` -> ``map.json``) holding
  ``{"crs": "EPSG:32632", "origin": [x, y], "metres_per_pixel": g}``, ``origin`` being the
  map coordinates of the image's north-west corner; the image is decoded once, whole;
- a PNG or JPEG with a world file beside it (``map.png`` -> ``map.pgw``, ``map.pngw`` or
  ``map.wld``; ``map.jpg`` -> ``map.jgw``, ``map.jpgw`` or ``map.wld``; :func:`read_world_file`).
  A world file holds no CRS: it comes from ``map.prj`` (the WKT that GIS software writes
  beside a world file) or from the caller (``crs``, ``cvft-index --crs``).

A CRS given by the caller for a map whose files state one must be the same CRS.
Latitude and longitude (:func:`to_lat_lon`) come from PROJ through rasterio.
"""

import json
import os
import threading
import warnings

import cv2
import numpy as np

from cvft_tf.data.preprocess import ImageError, read_image
from cvft_tf.localization.errors import MapError, import_optional

GEOTIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
WORLD_FILE_SUFFIXES = {".png": (".pgw", ".pngw", ".wld"), ".jpg": (".jgw", ".jpgw", ".wld"),
                       ".jpeg": (".jgw", ".jpegw", ".wld")}  # fmt: skip
LAT_LON_CRS = "EPSG:4326"


def to_lat_lon(crs, x, y):
    """Map coordinates in ``crs`` -> (latitude, longitude) in degrees (WGS 84), arrays like ``x``."""
    warp = import_optional("rasterio.warp")
    longitude, latitude = warp.transform(crs, LAT_LON_CRS, np.ravel(x).tolist(), np.ravel(y).tolist())
    return np.reshape(latitude, np.shape(x)), np.reshape(longitude, np.shape(x))


def from_lat_lon(crs, latitude, longitude):
    """(latitude, longitude) in degrees -> map coordinates ``(x, y)`` in ``crs``."""
    warp = import_optional("rasterio.warp")
    x, y = warp.transform(LAT_LON_CRS, crs, np.ravel(longitude).tolist(), np.ravel(latitude).tolist())
    return np.reshape(x, np.shape(latitude)), np.reshape(y, np.shape(latitude))


def pixel_to_map(transform, row, col):
    """Continuous pixel coordinates (arrays) -> map coordinates ``(x, y)`` under a north-up
    ``transform`` ``(a, b, c, d, e, f)``."""
    a, _, c, _, e, f = transform
    return a * np.asarray(col, np.float64) + c, e * np.asarray(row, np.float64) + f


def resolve_crs(found, given, source, where):
    """The CRS of a geo-reference: ``found`` in its files, or ``given`` by the caller (``--crs``).

    Args:
        found: the CRS the files state, or None.
        given: the CRS the caller gives, or None.
        source: the file named in errors.
        where: where ``found`` would come from, for the error (``"map.prj beside it"``).

    Raises:
        MapError: neither is known, or both are and they differ.
    """
    if found is None and given is None:
        raise MapError(f"{source} has no CRS: give it in {where} or with --crs (e.g. --crs EPSG:32632)")
    if found is not None and given is not None:
        rasterio_crs = import_optional("rasterio.crs")
        try:
            same = rasterio_crs.CRS.from_user_input(found) == rasterio_crs.CRS.from_user_input(given)
        except Exception as error:  # noqa: BLE001 - rasterio raises CRSError and others
            raise MapError(f"{source}: a CRS that PROJ does not know ({error})") from None
        if not same:
            raise MapError(f"{source}: its CRS {found!r} is not the --crs {given!r}")
    return given if found is None else found


def check_metric_crs(crs, source):
    """Raises :class:`MapError` unless ``crs`` is a projected CRS in metres; returns its string form."""
    rasterio_crs = import_optional("rasterio.crs")
    try:
        parsed = rasterio_crs.CRS.from_user_input(crs)
    except Exception as error:  # noqa: BLE001 - rasterio raises CRSError and others
        raise MapError(f"{source}: the CRS {crs!r} is not a CRS that PROJ knows ({error})") from None
    if not parsed.is_projected or parsed.linear_units not in ("metre", "meter", "m"):
        raise MapError(f"{source}: the CRS {crs!r} is not projected in metres (use a UTM zone or a national grid)")
    return parsed.to_string()


def read_world_file(path):
    """The north-up transform ``(a, b, c, d, e, f)`` (module docstring) of a world file.

    A world file holds six numbers, one a line: ``A`` (x size of a pixel), ``D``, ``B``
    (rotation terms), ``E`` (y size of a pixel, negative for north-up), ``C``, ``F`` (map
    coordinates of the centre of the upper-left pixel), so that the centre of pixel
    ``(row, col)`` is at ``x = A * col + B * row + C``, ``y = D * col + E * row + F``. The
    transform of the outer corner is then ``c = C - A / 2``, ``f = F - E / 2`` (with
    ``B = D = 0``).

    Raises:
        MapError: the file is unreadable, does not hold six finite numbers, or is rotated
            (``B`` or ``D`` not 0).
    """
    try:
        with open(path) as handle:
            fields = handle.read().split()
    except (OSError, UnicodeDecodeError) as error:
        raise MapError(f"cannot read the world file {path}: {error}") from None
    try:
        values = [float(field) for field in fields]
        if len(values) != 6 or not np.all(np.isfinite(values)):
            raise ValueError
    except ValueError:
        raise MapError(
            f"{path}: a world file holds six numbers, one a line (A, D, B, E, C, F); got {' '.join(fields)[:80]!r}"
        ) from None
    a, d, b, e, c, f = values
    if b or d:
        raise MapError(
            f"{path}: the world file is rotated (B = {b:g}, D = {d:g}); only north-up maps are read: "
            "warp it north-up first (gdalwarp)"
        )
    return (a, 0.0, c - a / 2, 0.0, e, f - e / 2)


class GeoMap:
    """A north-up map: its size, CRS and transform, and reads of square windows.

    Attributes:
        path: the file.
        crs: the CRS as a string (``"EPSG:32632"``).
        transform: ``(a, b, c, d, e, f)``, the affine geo-reference (module docstring).
        width, height: pixels.
    """

    def __init__(self, path, crs, transform, width, height):
        self.path = path
        self.crs = check_metric_crs(crs, path)
        self.transform = tuple(float(t) for t in transform)
        self.width, self.height = int(width), int(height)
        a, b, _, d, e, _ = self.transform
        if b or d or a <= 0 or not np.isclose(e, -a, rtol=1e-6):
            raise MapError(f"{path}: the map must be north-up with square pixels (transform {self.transform})")

    @property
    def metres_per_pixel(self):
        """Ground sampling distance, metres per pixel."""
        return self.transform[0]

    def pixel_to_map(self, row, col):
        """Continuous pixel coordinates (arrays) -> map coordinates ``(x, y)``, metres."""
        return pixel_to_map(self.transform, row, col)

    def map_to_pixel(self, x, y):
        """Map coordinates -> continuous pixel coordinates ``(row, col)``."""
        a, _, c, _, e, f = self.transform
        return (np.asarray(y, np.float64) - f) / e, (np.asarray(x, np.float64) - c) / a

    def identity(self):
        """What identifies the map in an index: its path, size, CRS and transform."""
        return {"path": os.path.abspath(self.path), "crs": self.crs, "transform": list(self.transform),
                "width": self.width, "height": self.height}  # fmt: skip

    def read_window(self, row, col, size):
        """uint8 BGR [size, size, 3], the window whose top-left pixel is ``(row, col)``."""
        raise NotImplementedError

    def overview(self, max_side):
        """uint8 BGR image of the whole map, shrunk so that its longer side is at most ``max_side``."""
        raise NotImplementedError

    def close(self):
        """Releases the file."""


def _json_reference(sidecar, crs):
    """``(crs, transform)`` of a map's JSON geo-reference (module docstring)."""
    try:
        with open(sidecar) as handle:
            reference = json.load(handle)
        found, (x, y), size = reference["crs"], reference["origin"], float(reference["metres_per_pixel"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise MapError(
            f"{sidecar}: not a geo-reference ({type(error).__name__}: {error}); it needs "
            '{"crs": "EPSG:...", "origin": [x, y], "metres_per_pixel": g}'
        ) from None
    return resolve_crs(found, crs, sidecar, "it"), (size, 0.0, float(x), 0.0, -size, float(y))


def _world_file_reference(world_file, crs):
    """``(crs, transform)`` of a world file, its CRS from the ``.prj`` beside it or ``crs``."""
    prj = os.path.splitext(world_file)[0] + ".prj"
    found = None
    if os.path.exists(prj):
        try:
            with open(prj) as handle:
                found = handle.read().strip()
        except (OSError, UnicodeDecodeError) as error:
            raise MapError(f"cannot read the CRS {prj}: {error}") from None
    return resolve_crs(found, crs, world_file, f"{prj} (WKT)"), read_world_file(world_file)


class ImageMap(GeoMap):
    """A PNG or JPEG map with a JSON or a world file beside it (module docstring); ``crs``: the
    CRS where the files state none."""

    def __init__(self, path, crs=None):
        stem, suffix = os.path.splitext(path)
        sidecar = stem + ".json"
        world_files = [stem + s for s in WORLD_FILE_SUFFIXES[suffix.lower()] if os.path.exists(stem + s)]
        references = ([sidecar] if os.path.exists(sidecar) else []) + world_files
        if not references:
            raise MapError(
                f"{path} has no geo-reference: expected {sidecar} with crs, origin and metres_per_pixel, "
                f"or a world file ({', '.join(stem + s for s in WORLD_FILE_SUFFIXES[suffix.lower()])}) "
                "(or give a GeoTIFF)"
            )
        if len(references) > 1:
            raise MapError(f"{path} has {len(references)} geo-references ({', '.join(references)}): keep one")
        if world_files:
            crs, transform = _world_file_reference(world_files[0], crs)
        else:
            crs, transform = _json_reference(sidecar, crs)
        try:
            self._image = read_image(path)
        except ImageError as error:
            raise MapError(f"unreadable map: {error}") from None
        height, width = self._image.shape[:2]
        super().__init__(path, crs, transform, width, height)

    def read_window(self, row, col, size):
        return self._image[row : row + size, col : col + size]

    def overview(self, max_side):
        scale = min(1.0, max_side / max(self.width, self.height))
        size = (max(1, round(self.width * scale)), max(1, round(self.height * scale)))
        return cv2.resize(self._image, size, interpolation=cv2.INTER_AREA)


class GeoTiffMap(GeoMap):
    """A GeoTIFF read with rasterio, one window at a time (reads are serialised by a lock);
    ``crs``: the CRS where the file states none."""

    def __init__(self, path, crs=None):
        rasterio = import_optional("rasterio")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
                self._dataset = rasterio.open(path)
        except rasterio.errors.RasterioIOError as error:
            raise MapError(f"unreadable map {path}: {error}") from None
        self._lock = threading.Lock()
        dataset = self._dataset
        if dataset.transform.is_identity or (dataset.crs is None and crs is None):
            dataset.close()
            raise MapError(f"{path} has no geo-reference (no CRS or no geotransform in the GeoTIFF)")
        if dataset.count < 3:
            dataset.close()
            raise MapError(f"{path} has {dataset.count} band(s); an aerial map needs 3 (RGB)")
        try:
            crs = resolve_crs(None if dataset.crs is None else dataset.crs.to_string(), crs, path, "the GeoTIFF")
        except MapError:
            dataset.close()
            raise
        super().__init__(path, crs, tuple(dataset.transform)[:6], dataset.width, dataset.height)
        self.read_window(self.height - 1, self.width - 1, 1)  # a truncated file fails here, not mid-run

    def _read(self, **kwargs):
        rasterio = import_optional("rasterio")
        try:
            with self._lock:
                rgb = self._dataset.read((1, 2, 3), **kwargs)
        except rasterio.errors.RasterioError as error:
            raise MapError(f"unreadable map {self.path} (truncated or corrupt): {error}") from None
        return np.ascontiguousarray(np.transpose(rgb, (1, 2, 0))[..., ::-1]).astype(np.uint8)

    def read_window(self, row, col, size):
        windows = import_optional("rasterio.windows")
        return self._read(window=windows.Window(col, row, size, size))

    def overview(self, max_side):
        enums = import_optional("rasterio.enums")
        scale = min(1.0, max_side / max(self.width, self.height))
        shape = (3, max(1, round(self.height * scale)), max(1, round(self.width * scale)))
        return self._read(out_shape=shape, resampling=enums.Resampling.average)

    def close(self):
        self._dataset.close()


def open_map(path, crs=None):
    """Opens a GeoTIFF, or a PNG/JPEG with its JSON or world file (module docstring).

    Args:
        path: the map file.
        crs: its CRS where the files state none (a world file without ``.prj``), or None.

    Raises:
        MapError: a missing or unreadable file, no geo-reference or two, no CRS or one that
            contradicts ``crs``, a CRS not in metres, a rotated world file, a map that is not
            north-up, or a format that is neither.
    """
    if not os.path.isfile(path):
        raise MapError(f"no map file at {path}")
    suffix = os.path.splitext(path)[1].lower()
    if suffix in GEOTIFF_SUFFIXES:
        return GeoTiffMap(path, crs)
    if suffix in IMAGE_SUFFIXES:
        return ImageMap(path, crs)
    raise MapError(
        f"{path}: a map is a GeoTIFF ({', '.join(GEOTIFF_SUFFIXES)}) or {', '.join(IMAGE_SUFFIXES)} + JSON or "
        "world file, or a folder of tiles with tiles.csv"
    )
