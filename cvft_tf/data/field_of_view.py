"""Limited field of view and unknown heading: cutting a phone-like query out of a panorama.

A north-aligned panorama of width ``W`` looks at the azimuth (degrees clockwise from north)
``360 * (x + 0.5) / W - 180`` with its column ``x``: north is the centre column (CVUSA,
CVACT, the synthetic world). A query with a field of view of ``fov`` degrees is ``w``
consecutive columns of it, wrapping around, with ``w / W = fov / 360``; its heading is the
azimuth its centre looks at. A crop starting at column ``s`` has the heading
``360 * (s + w / 2) / W - 180`` (wrapped to [-180, 180)), exactly, whatever ``s`` is.

The model's ground input is the crop: ``config.model.ground_size`` is ``(h, w)``, and the
pipelines resize each panorama to ``(h, W)`` with ``W = round(360 * w / fov)``
(:func:`panorama_size`) before cutting, so the crop keeps the panorama's resolution. The
field of view really covered is ``360 * w / W`` (equal to ``fov`` up to the rounding of
``W``; :meth:`FieldOfView.covered_deg`).

With ``unknown_heading`` the crop starts at a column drawn uniformly from the ``W`` columns:
in training anew each epoch, in evaluation from ``(seed, pair index)`` so that every run
sees the same headings; the heading travels with the query (``heading_deg`` in the
batches). Without it the crop is centred on north (heading 0 when ``W - w`` is even).
A 360-degree query with an unknown heading is the whole panorama rolled by the drawn column.
"""

import dataclasses

import tensorflow as tf

FULL_CIRCLE_DEG = 360.0


@dataclasses.dataclass(frozen=True)
class FieldOfView:
    """What a ground query sees.

    Attributes:
        fov_deg: horizontal field of view in degrees, in (0, 360] (360: the whole panorama).
        unknown_heading: draw the query's heading (uniform) instead of facing north.
    """

    fov_deg: float = FULL_CIRCLE_DEG
    unknown_heading: bool = False

    def __post_init__(self):
        if not 0.0 < float(self.fov_deg) <= FULL_CIRCLE_DEG:
            raise ValueError(f"The field of view must be in (0, 360] degrees, got {self.fov_deg}.")

    @property
    def is_full_north_aligned(self):
        """True for the datasets' own queries: whole panoramas facing north (nothing to cut)."""
        return float(self.fov_deg) == FULL_CIRCLE_DEG and not self.unknown_heading

    def covered_deg(self, crop_width):
        """The field of view a crop of ``crop_width`` columns really covers, in degrees."""
        return FULL_CIRCLE_DEG * crop_width / panorama_width(crop_width, self.fov_deg)


def panorama_width(crop_width, fov_deg):
    """``W = round(360 * crop_width / fov_deg)``: the panorama width a crop is cut from."""
    return int(round(FULL_CIRCLE_DEG * crop_width / float(fov_deg)))


def panorama_size(ground_size, fov_deg):
    """``(h, W)`` a panorama is resized to before a crop of ``ground_size = (h, w)`` is cut."""
    height, width = ground_size
    return int(height), panorama_width(width, fov_deg)


def crop_heading_deg(start, crop_width, width):
    """Heading of the crop of ``crop_width`` columns starting at ``start`` of a ``width``-wide
    panorama: ``360 * (start + crop_width / 2) / width - 180``, wrapped to [-180, 180).

    Works on numpy and TensorFlow numbers (float64 numpy, float32 TensorFlow).
    """
    degrees = FULL_CIRCLE_DEG * (start + crop_width / 2.0) / width - FULL_CIRCLE_DEG / 2.0
    return (degrees + FULL_CIRCLE_DEG / 2.0) % FULL_CIRCLE_DEG - FULL_CIRCLE_DEG / 2.0


def north_crop_start(crop_width, width):
    """The start column of the crop centred on north (the centre column)."""
    return (width - crop_width) // 2


def crop_columns(panorama, start, crop_width):
    """Columns ``start, start + 1, ..., start + crop_width - 1`` (modulo the width).

    Args:
        panorama: tensor ``[height, W, channels]``.
        start: int32 scalar tensor in [0, W).
        crop_width: int, ``w <= W``.

    Returns:
        tensor ``[height, crop_width, channels]``.
    """
    width = tf.shape(panorama)[1]
    columns = tf.math.floormod(start + tf.range(crop_width, dtype=tf.int32), width)
    return tf.gather(panorama, columns, axis=1)


def crop_query(panorama, field_of_view, crop_width, seed):
    """The query cut from a panorama resized to ``(h, W)``, and its heading.

    Args:
        panorama: uint8 ``[h, W, 3]``.
        field_of_view: :class:`FieldOfView`.
        crop_width: ``w``, the model's ground input width.
        seed: int64 ``[2]`` stateless seed of the start column (unknown heading only).

    Returns:
        ``(crop [h, w, 3], heading_deg float32 scalar)``.
    """
    width = int(panorama.shape[1])
    if field_of_view.unknown_heading:
        start = tf.random.stateless_uniform([], seed=seed, minval=0, maxval=width, dtype=tf.int32)
    else:
        start = tf.constant(north_crop_start(crop_width, width), tf.int32)
    heading = crop_heading_deg(tf.cast(start, tf.float32), float(crop_width), float(width))
    return crop_columns(panorama, start, crop_width), heading
