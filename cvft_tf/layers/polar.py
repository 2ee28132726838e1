"""The polar transform of an aerial tile (SAFA, Shi et al., NeurIPS 2019), as a fixed sampling grid.

The polar image of a north-up aerial tile has the layout of a ground panorama taken at the
tile's centre: its column ``j`` looks along the azimuth (degrees clockwise from north)
``phi_j = 360 * (j + 0.5) / W - 180`` -- the azimuth of column ``j`` of a north-aligned
panorama (``data.field_of_view``), so north is the centre column -- and its row ``i`` lies
at the distance ``r_i = (S / 2) * (H - i - 0.5) / H`` from the centre: the top row at the
tile's edge (far away, near the horizon), the bottom row at the camera. The sample of pixel
``(i, j)`` is the tile's bilinear interpolation at

    column = S_w / 2 + r_i * sin(phi_j) - 0.5,    row = S_h / 2 - r_i * cos(phi_j) - 0.5

(pixel centres at whole numbers; samples beyond the outermost pixel centres take the edge
pixel's value), with ``S = min(S_h, S_w)``.

SAFA's formula (Eq. 1 of its paper) is the same map with pixel corners instead of centres
and its column 0 facing north; here column 0 faces south, like the panoramas the port
reads, so that a polar aerial map and a ground map are aligned column for column.

The grid is computed once in numpy when the layer is built; the graph only gathers the
four neighbours of each sample and blends them with fixed weights.
"""

import keras
import numpy as np
import tensorflow as tf


def polar_sample_points(aerial_size, polar_size):
    """Where each polar pixel samples the tile.

    Args:
        aerial_size: ``(S_h, S_w)`` of the aerial tile.
        polar_size: ``(H, W)`` of the polar image.

    Returns:
        ``(rows, columns)``, float64 ``[H, W]`` each, in pixel-index coordinates of the tile.
    """
    tile_height, tile_width = aerial_size
    height, width = polar_size
    radius = min(tile_height, tile_width) / 2.0 * (height - np.arange(height) - 0.5) / height
    azimuth = np.deg2rad(360.0 * (np.arange(width) + 0.5) / width - 180.0)
    rows = tile_height / 2.0 - radius[:, None] * np.cos(azimuth)[None, :] - 0.5
    columns = tile_width / 2.0 + radius[:, None] * np.sin(azimuth)[None, :] - 0.5
    return rows, columns


def _bilinear_taps(rows, columns, tile_size):
    """Flat indices ``[4, n]`` (int32) and weights ``[4, n]`` (float32) of bilinear sampling."""
    tile_height, tile_width = tile_size
    rows = np.clip(rows.ravel(), 0.0, tile_height - 1.0)
    columns = np.clip(columns.ravel(), 0.0, tile_width - 1.0)
    top = np.minimum(np.floor(rows).astype(np.int64), tile_height - 2)
    left = np.minimum(np.floor(columns).astype(np.int64), tile_width - 2)
    down = rows - top
    right = columns - left
    corners = [(top, left), (top, left + 1), (top + 1, left), (top + 1, left + 1)]
    indices = np.stack([row * tile_width + column for row, column in corners])
    weights = np.stack([(1 - down) * (1 - right), (1 - down) * right, down * (1 - right), down * right])
    return indices.astype(np.int32), weights.astype(np.float32)


@keras.saving.register_keras_serializable(package="cvft_tf")
class PolarTransform(keras.layers.Layer):
    """North-up aerial tiles ``[B, S_h, S_w, C]`` -> polar images ``[B, H, W, C]`` (float32).

    Args:
        polar_size: ``(H, W)`` of the output, the ground panorama's size at model
            resolution (SAFA uses the panorama's size).
    """

    def __init__(self, polar_size, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.polar_size = tuple(int(side) for side in polar_size)
        if len(self.polar_size) != 2 or min(self.polar_size) < 1:
            raise ValueError(f"polar_size must be two positive integers, got {polar_size!r}")

    def build(self, input_shape):
        tile_size = tuple(int(side) for side in input_shape[1:3])
        if min(tile_size) < 2:
            raise ValueError(f"PolarTransform needs aerial tiles of at least 2x2 pixels, got {tile_size}")
        indices, weights = _bilinear_taps(*polar_sample_points(tile_size, self.polar_size), tile_size)
        self._indices = tf.constant(indices)
        self._weights = tf.constant(weights[..., None])

    def call(self, images):
        images = tf.cast(images, tf.float32)
        shape = tf.shape(images)
        flat = tf.reshape(images, [shape[0], shape[1] * shape[2], images.shape[-1]])
        taps = tf.gather(flat, self._indices, axis=1)
        polar = tf.reduce_sum(taps * self._weights[None], axis=1)
        return tf.reshape(polar, [shape[0], *self.polar_size, images.shape[-1]])

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.polar_size, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(polar_size=list(self.polar_size))
        return config
