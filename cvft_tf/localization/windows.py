"""The aerial windows slid over a map: the model's footprint, every ``stride_m`` metres.

A window is the square of ground that one aerial tile of the training data covers
(``config.data.aerial_footprint_m``), at the map's own resolution:
``side = round(footprint_m / metres_per_pixel)`` pixels, later resized (INTER_AREA) to the
model's aerial size as the training tiles were. Windows lie on a regular grid of
``rows x cols``; window ``(i, j)`` has its top-left pixel at ``(round(i * s), round(j * s))``
with ``s = stride_m / metres_per_pixel`` and is numbered ``i * cols + j``.
"""

import dataclasses

import numpy as np

from cvft_tf.localization.errors import MapError


@dataclasses.dataclass(frozen=True)
class WindowGrid:
    """Windows over one map.

    Attributes:
        side: window side, pixels.
        stride: grid step, pixels (may be fractional).
        rows, cols: windows along the map's height and width.
    """

    side: int
    stride: float
    rows: int
    cols: int

    def __len__(self):
        return self.rows * self.cols

    def top_left(self, numbers):
        """int64 [n, 2] ``(row, col)`` of the top-left pixel of windows ``numbers`` [n]."""
        numbers = np.asarray(numbers, np.int64)
        i, j = numbers // self.cols, numbers % self.cols
        return np.stack([np.round(i * self.stride), np.round(j * self.stride)], axis=-1).astype(np.int64)

    def centres(self, numbers):
        """float64 [n, 2] ``(row, col)`` continuous pixel coordinates of the windows' centres."""
        return self.top_left(numbers) + self.side / 2.0


def window_grid(geomap, footprint_m, stride_m):
    """The :class:`WindowGrid` of ``footprint_m`` windows every ``stride_m`` metres over ``geomap``.

    Raises:
        MapError: the window or the stride is larger than the map, or not positive.
    """
    if not (footprint_m > 0 and stride_m > 0):  # also NaN
        raise MapError(f"the window ({footprint_m} m) and the stride ({stride_m} m) must be positive numbers")
    metres = geomap.metres_per_pixel
    extent = (geomap.height * metres, geomap.width * metres)
    side = int(round(footprint_m / metres))
    if side > min(geomap.height, geomap.width):
        raise MapError(
            f"{geomap.path}: the window ({footprint_m:g} m, {side} px) is larger than the map "
            f"({extent[1]:.0f} x {extent[0]:.0f} m, {geomap.width} x {geomap.height} px)"
        )
    if stride_m > min(extent):
        raise MapError(
            f"{geomap.path}: the stride ({stride_m:g} m) is larger than the map ({extent[1]:.0f} x {extent[0]:.0f} m)"
        )
    stride = stride_m / metres
    rows = int(np.floor((geomap.height - side) / stride + 1e-9)) + 1
    cols = int(np.floor((geomap.width - side) / stride + 1e-9)) + 1
    return WindowGrid(side=side, stride=stride, rows=rows, cols=cols)
