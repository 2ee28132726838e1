"""The "our network wo/ CVFT" baseline of CVFT's Table 1: a reduced map, flattened.

The original's ``grd_conv`` / ``sat_conv`` (3x3, stride 2, SAME, ReLU, Xavier init) reduce
conv5_3 to 64 channels; the ground map is resized to the aerial map's size with TF1's
bilinear resize (footnote 1 of Sec. 4.2), the aerial map only when a ``map_size`` differs
from its own; the map is flattened row-major and L2-normalised (8x8x64 = 4096-d at the
original sizes).
"""

import dataclasses

import keras

from cvft_tf.layers.normalize import L2Normalize
from cvft_tf.layers.resize import ResizeBilinearTF1
from cvft_tf.models.parts import Part

REDUCED_CHANNELS = 64
"""Output channels of the reduction convs ``grd_conv`` / ``sat_conv`` (512 -> 64)."""


def reduced_map(features, branch, map_size, reduced_channels):
    """conv5_3 ``[B, h, w, 512]`` -> the reduced map ``[B, *map_size, reduced_channels]``.

    The ground map is always resized (TF1 bilinear), the aerial one only if ``map_size``
    is given and differs from its own (``ceil(h / 2)``, ``ceil(w / 2)``).
    """
    reduced = keras.layers.Conv2D(
        reduced_channels,
        3,
        strides=2,
        padding="same",
        activation="relu",
        kernel_initializer="glorot_uniform",
        bias_initializer="glorot_uniform",
        name=f"{branch}_reduction",
    )(features)
    target = tuple(map_size) if map_size is not None else tuple(reduced.shape[1:3])
    if branch == "ground" or tuple(reduced.shape[1:3]) != target:
        reduced = ResizeBilinearTF1(*target, name=f"{branch}_resize")(reduced)
    return reduced


def flat_descriptor(feature_map):
    """``[B, h, w, c]`` -> ``[B, h * w * c]`` row-major, L2-normalised."""
    return L2Normalize(name="descriptor")(keras.layers.Flatten(name="flatten")(feature_map))


@keras.saving.register_keras_serializable(package="cvft_tf")
@dataclasses.dataclass
class FlatMap(Part):
    """``{"features"}`` -> ``{"feature_map": [B, h, w, c], "descriptor": [B, h * w * c]}``.

    Attributes:
        reduced_channels: channels after the reduction conv (64).
    """

    reduced_channels: int = REDUCED_CHANNELS

    def __call__(self, features, branch, map_size):
        feature_map = reduced_map(features["features"], branch, map_size, self.reduced_channels)
        return {"feature_map": feature_map, "descriptor": flat_descriptor(feature_map)}
