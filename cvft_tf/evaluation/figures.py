"""Figures of the CVFT paper as RGB uint8 arrays [height, width, 3].

Every function returns an image rather than a matplotlib figure, so the same picture goes to
a PNG (``save_png``) and to TensorBoard (``tf.summary.image(name, image[None])``).
Matplotlib is used through its Agg canvas directly (no pyplot, no display, no global
backend switch); the retrieval mosaic is plain numpy so its pixels are exact.

- ``recall_curve_figure``: r@K against K for several runs (paper Figures 5 and 6).
- ``retrieval_figure``: each ground query and its top-5 aerial tiles, framed green when
  correct and red when not (paper Figure 9).
- ``feature_alignment_figure``: ground, aerial and transported ground feature maps, a few
  channels (paper Figure 7).
- ``transport_plan_figure``: the transport plan P as a heat map (Eq. 3-4 of CVFT).
- ``learning_curve_figure``: training and validation loss, and validation recall, per epoch.
"""

import os
import uuid

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from cvft_tf.data.preprocess import VGG_MEAN_BGR

CORRECT_COLOR = (0, 200, 0)
"""RGB frame of a correct retrieval (green)."""

WRONG_COLOR = (220, 0, 0)
"""RGB frame of a wrong retrieval (red)."""

BACKGROUND_COLOR = (255, 255, 255)
"""RGB of the space between the panels of the retrieval mosaic."""


def to_display_rgb(image):
    """Undoes the original preprocessing: BGR minus ``VGG_MEAN_BGR`` -> RGB uint8.

    Args:
        image: float [..., 3], BGR with the VGG mean subtracted (``cvft_tf.data.preprocess``),
            or uint8 [..., 3], taken to be RGB already and returned unchanged.

    Returns:
        uint8 [..., 3] RGB, rounded and clipped to [0, 255].
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    bgr = np.clip(np.rint(image + np.asarray(VGG_MEAN_BGR, image.dtype)), 0, 255)
    return bgr[..., ::-1].astype(np.uint8)


def recall_curve_figure(curves, title="", *, size_inches=(6.0, 4.5), dpi=100):
    """r@K (percent) against K = 1, 2, ... for several runs on one plot (Figures 5-6).

    Args:
        curves: dict label -> sequence of recall percentages for K = 1..len (for instance
            ``summarize(ranks)["curve"]``); runs may have different lengths.
        title: axes title.

    Returns:
        uint8 [height, width, 3].
    """
    figure = Figure(figsize=size_inches, dpi=dpi)
    axes = figure.add_subplot()
    for label, curve in curves.items():
        curve = np.asarray(curve, np.float64)
        axes.plot(np.arange(1, curve.size + 1), curve, label=str(label), linewidth=1.5)
    axes.set_xlabel("K (top-K aerial tiles)")
    axes.set_ylabel("recall (%)")
    axes.set_ylim(0, 100)
    axes.set_xlim(left=1)
    axes.grid(True, alpha=0.3)
    if title:
        axes.set_title(title)
    if curves:
        axes.legend(loc="lower right")
    figure.tight_layout()
    return _render(figure)


def learning_curve_figure(history, chance=None, *, size_inches=(9.0, 3.8), dpi=100):
    """Losses (left) and validation recall (right) against the epoch.

    Args:
        history: dict column -> list of per-epoch values, with ``epoch`` (0-based, as Keras'
            CSVLogger writes it), ``loss`` and any of ``val_loss``, ``val_r@1``, ``val_r@5``,
            ``val_r@10``, ``val_r@1%``.
        chance: optional dict ``"r@1"`` ... -> chance level in percent, drawn dotted.

    Returns:
        uint8 [height, width, 3].
    """
    epochs = np.asarray(history["epoch"], np.float64) + 1
    figure = Figure(figsize=size_inches, dpi=dpi)
    losses, recalls = figure.subplots(1, 2)
    for key, label in (("loss", "train loss"), ("val_loss", "validation loss")):
        if key in history:
            losses.plot(epochs, history[key], marker="o", label=label)
    losses.set_xlabel("epoch")
    losses.set_ylabel("soft-margin triplet loss")
    losses.legend()
    for key in ("r@1", "r@5", "r@10", "r@1%"):
        if f"val_{key}" in history:
            line = recalls.plot(epochs, history[f"val_{key}"], marker="o", label=f"val {key}")[0]
            if chance and key in chance:
                recalls.axhline(chance[key], color=line.get_color(), linestyle=":", linewidth=1)
    recalls.set_xlabel("epoch")
    recalls.set_ylabel("validation recall (%)" + (", chance dotted" if chance else ""))
    recalls.set_ylim(0, 100)
    recalls.legend(loc="upper left")
    for axes in (losses, recalls):
        axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return _render(figure)


def retrieval_figure(
    ground_images,
    aerial_images,
    top_indices,
    *,
    true_index=None,
    correct=None,
    tile_size=128,
    border=4,
    gap=4,
):
    """One row per query: the ground panorama, then its top-K aerial tiles (Figure 9).

    Each tile is framed in ``CORRECT_COLOR`` or ``WRONG_COLOR``. Layout, in pixels: row q
    starts at ``y = gap + q * (tile_size + gap)``; the panorama, scaled to height
    ``tile_size`` and width ``round(tile_size * w / h)``, at ``x = gap``; tile j at
    ``x = 2 * gap + panorama_width + j * (tile_size + gap)``, a ``tile_size`` square whose
    outer ``border`` pixels are the frame. The background is ``BACKGROUND_COLOR``.

    Args:
        ground_images: [Q, h, w, 3] panoramas (or a sequence of them), float BGR minus the
            VGG mean or uint8 RGB (see ``to_display_rgb``).
        aerial_images: the gallery, anything indexable by a tile index (an array [N, ...],
            a list, a lazy loader), each image as for ground.
        top_indices: int [Q, K] retrieved tile indices, nearest first
            (``recall.top_k_indices``).
        true_index: int [Q], the matching tile of each query: correct = index equality.
        correct: bool [Q, K], given instead of ``true_index`` (e.g. the CVACT_test rule).

    Returns:
        uint8 [gap + Q * (tile_size + gap), 2 * gap + panorama_width + K * (tile_size +
        gap), 3].
    """
    top_indices = np.asarray(top_indices)
    if top_indices.ndim != 2:
        raise ValueError(f"top_indices must be [Q, K], got shape {top_indices.shape}")
    if (true_index is None) == (correct is None):
        raise ValueError("give exactly one of true_index and correct")
    if correct is None:
        correct = top_indices == np.asarray(true_index)[:, np.newaxis]
    correct = np.asarray(correct, bool)
    if correct.shape != top_indices.shape or len(ground_images) != top_indices.shape[0]:
        raise ValueError(
            f"{len(ground_images)} queries, top_indices {top_indices.shape} and correct "
            f"{correct.shape} do not match"
        )
    num_queries, k = top_indices.shape
    ground_h, ground_w = np.asarray(ground_images[0]).shape[:2]
    panorama_width = round(tile_size * ground_w / ground_h)
    inner = tile_size - 2 * border
    if inner < 1:
        raise ValueError(f"border {border} leaves no room in a {tile_size}-pixel tile")

    height = gap + num_queries * (tile_size + gap)
    width = 2 * gap + panorama_width + k * (tile_size + gap)
    mosaic = np.empty((height, width, 3), np.uint8)
    mosaic[...] = BACKGROUND_COLOR
    for q in range(num_queries):
        y = gap + q * (tile_size + gap)
        mosaic[y : y + tile_size, gap : gap + panorama_width] = _resized_rgb(
            ground_images[q], (panorama_width, tile_size)
        )
        for j in range(k):
            x = 2 * gap + panorama_width + j * (tile_size + gap)
            tile = mosaic[y : y + tile_size, x : x + tile_size]
            tile[...] = CORRECT_COLOR if correct[q, j] else WRONG_COLOR
            tile[border : border + inner, border : border + inner] = _resized_rgb(
                aerial_images[int(top_indices[q, j])], (inner, inner)
            )
    return mosaic


def feature_alignment_figure(
    ground_map,
    aerial_map,
    transported_map,
    channels=(0, 1, 2),
    *,
    cmap="viridis",
    dpi=100,
):
    """Ground, aerial and transported ground feature maps, one row per channel (Figure 7).

    The three panels of a row share one colour scale (min and max over the three), so the
    transported map can be compared with the aerial one directly.

    Args:
        ground_map: [h, w, c] ground-view features (before transport).
        aerial_map: [h, w, c] aerial-view features.
        transported_map: [h, w, c] ground features after optimal feature transport.
        channels: channel indices to show, one row each.

    Returns:
        uint8 [height, width, 3].
    """
    maps = {
        "ground": np.asarray(ground_map, np.float32),
        "aerial": np.asarray(aerial_map, np.float32),
        "transported ground": np.asarray(transported_map, np.float32),
    }
    for name, feature_map in maps.items():
        if feature_map.ndim != 3:
            raise ValueError(f"{name} map must be [h, w, c], got shape {feature_map.shape}")
    channels = list(channels)
    figure = Figure(figsize=(9.0, 2.6 * len(channels)), dpi=dpi, layout="constrained")
    grid = figure.subplots(len(channels), len(maps), squeeze=False)
    for row, channel in zip(grid, channels):
        planes = [feature_map[..., channel] for feature_map in maps.values()]
        low = min(float(plane.min()) for plane in planes)
        high = max(float(plane.max()) for plane in planes)
        for axes, plane in zip(row, planes):
            shown = axes.imshow(plane, cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
            axes.set_xticks([])
            axes.set_yticks([])
        row[0].set_ylabel(f"channel {channel}")
        figure.colorbar(shown, ax=list(row), shrink=0.8)
    for axes, name in zip(grid[0], maps):
        axes.set_title(name)
    return _render(figure)


def transport_plan_figure(plan, title="Transport plan", *, cmap="magma", dpi=100):
    """Heat map of a transport plan P [n_ground, n_aerial] (Eq. 3-4 of CVFT).

    ``P[i, o]`` is the mass moved from ground position i to aerial-grid position o (the
    positions of the 8x8 maps, row-major); the transport computes ``sum_i P[i, o] f[i]``.

    Returns:
        uint8 [height, width, 3].
    """
    plan = np.asarray(plan, np.float32)
    if plan.ndim != 2:
        raise ValueError(f"plan must be [n, m], got shape {plan.shape}")
    figure = Figure(figsize=(5.5, 4.5), dpi=dpi)
    axes = figure.add_subplot()
    shown = axes.imshow(plan, cmap=cmap, interpolation="nearest")
    axes.set_xlabel("aerial position o")
    axes.set_ylabel("ground position i")
    if title:
        axes.set_title(title)
    figure.colorbar(shown, ax=axes)
    figure.tight_layout()
    return _render(figure)


def save_png(image, path):
    """Writes an RGB uint8 [height, width, 3] image to ``path`` as PNG, atomically.

    The bytes go to a temporary file in the same directory, then ``os.replace`` renames it,
    so an interrupted write never leaves a partial PNG at ``path``. Missing parent
    directories are created.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be uint8 [h, w, 3], got {image.dtype} {image.shape}")
    encoded, data = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not encoded:
        raise OSError(f"could not encode a PNG for {path}")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # A unique name opened with "x" (not mkstemp, whose 0600 mode would stick to the PNG).
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as stream:
            stream.write(data.tobytes())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def _resized_rgb(image, size):
    """Display RGB uint8 of ``image`` resized to ``size`` = (width, height), INTER_AREA."""
    rgb = to_display_rgb(image)
    if rgb.shape[1::-1] == tuple(size):
        return rgb
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _render(figure):
    """Draws a matplotlib Figure on an Agg canvas and returns its RGB uint8 pixels."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
