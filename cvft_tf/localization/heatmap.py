"""The heatmap of one query's scores over a map, with its matches and the truth marked.

Over a map the scores are a grid of cells, one per window, drawn over a picture of the map.
A tile folder has no picture and its tiles need not lie on a grid: each tile's score is a
square marker at its centre on a blank canvas.
"""

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cvft_tf.localization.index import grid_of, is_tiles
from cvft_tf.localization.geomap import pixel_to_map


def map_extent(entry):
    """``(west, east, south, north)`` of a map entry's image (of its tiles' centres widened by
    half a window, for a tile folder), map coordinates."""
    if is_tiles(entry):
        return tuple(entry["extent"])
    identity = entry["map"]
    west, north = pixel_to_map(identity["transform"], 0, 0)
    east, south = pixel_to_map(identity["transform"], identity["height"], identity["width"])
    return float(west), float(east), float(south), float(north)


def score_grid(entry, scores):
    """Scores [windows] of a map entry's windows -> ([rows, cols] grid, its extent in map
    coordinates, each cell centred on its window's centre)."""
    grid = grid_of(entry)
    rows, cols = grid.centres([0, len(grid) - 1]).T
    (west, east), (north, south) = pixel_to_map(entry["map"]["transform"], rows, cols)
    half = entry["stride_m"] / 2
    return np.reshape(scores, (grid.rows, grid.cols)), (west - half, east + half, south - half, north + half)


def heatmap_figure(entry, scores, overview_rgb=None, matches=(), truth=None, title="", dpi=100, positions=None):
    """A query's scores over one map as an RGB image.

    Args:
        entry: the map's manifest entry.
        scores: float [windows], the query's score for each of the map's windows.
        overview_rgb: uint8 [h, w, 3] picture of the map drawn below the scores, or None.
        matches: ``(x, y)`` of the top matches, best first (the first is drawn larger).
        truth: ``(x, y)`` of the true position, or None.
        title: the axes' title.
        positions: float [windows, 2], the windows' centres ``(x, y)``; needed for a tile folder.

    Returns:
        uint8 [height, width, 3].
    """
    scores = np.asarray(scores, np.float64)
    figure = Figure(figsize=(6.4, 5.6), dpi=dpi)
    axes = figure.add_subplot()
    if overview_rgb is not None:
        axes.imshow(overview_rgb, extent=map_extent(entry), interpolation="bilinear")
    if is_tiles(entry):
        points = np.asarray(positions, np.float64)
        shown = axes.scatter(points[:, 0], points[:, 1], c=scores, cmap="inferno", marker="s", s=40)
    else:
        grid, extent = score_grid(entry, scores)
        shown = axes.imshow(grid, extent=extent, cmap="inferno", alpha=0.55 if overview_rgb is not None else 1.0,
                            interpolation="nearest")  # fmt: skip
    figure.colorbar(shown, ax=axes, label="score (ground . aerial)", shrink=0.8)
    if len(matches):
        points = np.asarray(matches, np.float64)
        axes.scatter(points[1:, 0], points[1:, 1], s=30, facecolors="none", edgecolors="cyan", label="top-K")
        axes.scatter(points[:1, 0], points[:1, 1], s=140, marker="X", color="cyan", edgecolors="black", label="top-1")
    if truth is not None:
        axes.scatter([truth[0]], [truth[1]], s=260, marker="*", color="lime", edgecolors="black", label="truth")
    west, east, south, north = map_extent(entry)
    axes.set_xlim(west, east)
    axes.set_ylim(south, north)
    axes.set_xlabel("easting (m)")
    axes.set_ylabel("northing (m)")
    axes.ticklabel_format(useOffset=False, style="plain")
    axes.legend(loc="upper right", fontsize=8)
    if title:
        axes.set_title(title, fontsize=9)
    figure.tight_layout()
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
