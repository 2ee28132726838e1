"""A geo-referenced orthophoto of a held-out area of the synthetic world, and query panoramas.

``write_localization_map`` writes, under ``out_dir/map/``:

- ``orthophoto.png``: one north-up orthographic aerial image of a square area, at the ground
  sampling distance of the dataset's aerial tiles (``ImageSpec.aerial_extent / aerial_size``
  metres per pixel), with one ``Appearance`` (one sun, one haze) for the whole area;
- ``orthophoto.json``: its geo-reference, :data:`GEOREFERENCE_KEYS`: ``crs``
  (:data:`MAP_CRS`), ``origin`` (easting, northing of the image's north-west corner, the
  outer corner of pixel (0, 0), metres) and ``metres_per_pixel``;
- ``queries/{number:04d}.jpg``: north-aligned panoramas (``ImageSpec`` sizes) taken at
  positions inside the area, jittered off any grid, at least half an aerial tile from the
  edge so that a window centred on each lies inside the map;
- ``queries.csv``: ``image,x,y``, each query's file (relative to ``map/``) and its true
  position in the map's CRS (UTM metres).

The area lies east of the validation area (``localization_origin``), beyond the panoramas'
reach from it and from the training area: nothing in it is seen in training or validation.
World position ``(east, north)`` is UTM ``UTM_ORIGIN + (east, north)`` in :data:`MAP_CRS`.
"""

import json
import os

import cv2
import numpy as np

from cvft_tf.synthetic.render import (
    MAX_DISTANCE,
    MAX_SHADOW,
    Appearance,
    default_cell_size,
    render_aerial,
    render_panorama,
)
from cvft_tf.synthetic.world import CityWorld, sample_locations
from cvft_tf.synthetic.writer import UTM_ORIGIN, held_out_origin

MAP_CRS = "EPSG:32632"
"""The CRS of the synthetic map: UTM zone 32N, in which the world's (0, 0) is ``UTM_ORIGIN``."""

GEOREFERENCE_KEYS = ("crs", "origin", "metres_per_pixel")
"""Fields of a PNG/JPEG map's JSON geo-reference (see ``cvft_tf.localization.geomap``)."""

MAP_DIR = "map"
ORTHOPHOTO = "orthophoto.png"
QUERIES_CSV = "queries.csv"
_MAP_STREAM, _QUERY_STREAM = 4, 5
_QUERY_SALT = 3


def localization_origin(num_train, num_val, spacing):
    """South-west corner (east, north) of the localization area, in world metres.

    East of the validation area (``held_out_origin``), three panorama ranges further, as the
    validation area is from the training one.
    """
    val_east, _ = held_out_origin(num_train, spacing)
    val_side = np.ceil(np.sqrt(max(num_val, 1))) * spacing
    return (float(val_east + val_side + 3 * MAX_DISTANCE), 0.0)


def query_positions(world, count, origin, extent, margin):
    """``count`` camera positions on open ground inside a square, ``margin`` metres from its edge.

    ``sample_locations`` over the inner square, with a finer grid while too few of its places
    fall inside (it moves north of its square where a cell has no open ground); an even
    subset of those that do.

    Returns:
      float64 [count, 2], (east, north) in world metres.
    """
    inner = extent - 2 * margin
    low = np.asarray(origin, np.float64) + margin
    for cells in count * 2 ** np.arange(6):
        spacing = inner / int(np.ceil(np.sqrt(cells)))
        places = sample_locations(world, int(cells), spacing, origin=tuple(low), salt=_QUERY_SALT).reshape(-1, 2)
        places = places[np.all((places >= low) & (places <= low + inner), axis=1)]
        if len(places) >= count:
            return places[np.round(np.linspace(0, len(places) - 1, count)).astype(int)]
    raise ValueError(f"fewer than {count} open places in the {inner:.0f} m square at {tuple(low)}")


def write_localization_map(out_dir, seed, images, origin, extent, num_queries, jpeg_quality=95):
    """Writes the orthophoto, its geo-reference and the query panoramas (module docstring).

    Args:
      out_dir: the dataset root; files go under ``out_dir/map/``.
      seed: world and rendering seed (the world of ``write_cvusa`` with the same seed).
      images: ``ImageSpec``: the map's metres per pixel are ``aerial_extent / aerial_size``;
        the panoramas are ``ground_height`` x ``ground_width``.
      origin: (east, north) of the area's south-west corner, world metres.
      extent: side of the area, metres (rounded down to whole pixels).
      num_queries: panoramas to write.
      jpeg_quality: OpenCV JPEG quality of the panoramas.

    Returns:
      dict: ``map`` (path of the PNG), ``size`` (pixels a side), ``metres_per_pixel``,
      ``queries`` (count).

    Raises:
      ValueError: the area is not larger than one aerial tile.
    """
    metres_per_pixel = images.aerial_extent / images.aerial_size
    size = int(extent / metres_per_pixel)
    extent = size * metres_per_pixel
    if extent <= images.aerial_extent:
        raise ValueError(f"the map ({extent:.0f} m) must be larger than an aerial tile ({images.aerial_extent:g} m)")
    world = CityWorld(seed)
    directory = os.path.join(out_dir, MAP_DIR)
    os.makedirs(os.path.join(directory, "queries"), exist_ok=True)
    center = (origin[0] + extent / 2, origin[1] + extent / 2)
    cell_size = default_cell_size(images.aerial_size, images.aerial_extent)
    scene = world.scene(center, extent / 2 + MAX_SHADOW / 4, cell_size)
    look = Appearance.random(np.random.default_rng([seed, _MAP_STREAM]), "aerial")
    orthophoto = render_aerial(scene, center, size, extent, look)
    if not cv2.imwrite(os.path.join(directory, ORTHOPHOTO), orthophoto[..., ::-1]):
        raise OSError(f"cannot write {os.path.join(directory, ORTHOPHOTO)}")
    georeference = {
        "crs": MAP_CRS,
        "origin": [UTM_ORIGIN[0] + origin[0], UTM_ORIGIN[1] + origin[1] + extent],
        "metres_per_pixel": metres_per_pixel,
    }
    with open(os.path.join(directory, ORTHOPHOTO.replace(".png", ".json")), "w") as handle:
        json.dump(georeference, handle, indent=2)

    positions = query_positions(world, num_queries, origin, extent, margin=images.aerial_extent / 2)
    lines = ["image,x,y\n"]
    for number, position in enumerate(positions, start=1):
        rng = np.random.default_rng([seed, _QUERY_STREAM, number])
        near = world.scene(tuple(position), MAX_DISTANCE + 8.0, cell_size)
        panorama = render_panorama(
            near, tuple(position), images.ground_height, images.ground_width, images.vertical_fov,
            Appearance.random(rng, "ground"),
        )  # fmt: skip
        name = f"queries/{number:04d}.jpg"
        path = os.path.join(directory, name)
        if not cv2.imwrite(path, panorama[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality]):
            raise OSError(f"cannot write {path}")
        x, y = UTM_ORIGIN[0] + position[0], UTM_ORIGIN[1] + position[1]
        lines.append(f"{name},{x:.3f},{y:.3f}\n")
    with open(os.path.join(directory, QUERIES_CSV), "w", encoding="utf-8", newline="") as handle:
        handle.writelines(lines)
    return {
        "map": os.path.join(directory, ORTHOPHOTO),
        "size": size,
        "metres_per_pixel": metres_per_pixel,
        "queries": len(positions),
    }
