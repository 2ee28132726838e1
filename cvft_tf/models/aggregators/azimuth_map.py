"""DSM's aggregator (Shi et al., CVPR 2020): a width-aligned feature map, compared at every azimuth.

conv5_3 goes through one 3x3 convolution (stride 1, SAME, no activation) to a few channels
and keeps its size, so a map column still covers the same pixels of the panorama or of
the polar aerial image (``layers.polar``). The map is the branch's descriptor: it is not
flattened, and only a map matcher (``matchers.HeadingCorrelation``) can compare two of them.
"""

import dataclasses

import keras

from cvft_tf.models.parts import Part

AZIMUTH_MAP_CHANNELS = 16
"""Channels of the matched maps."""


@keras.saving.register_keras_serializable(package="cvft_tf")
@dataclasses.dataclass
class AzimuthMap(Part):
    """``{"features": [B, h, w, 512]}`` -> ``{"feature_map", "descriptor"}``, both the map
    ``[B, h, w, map_channels]``; ``map_size`` is not used (the map keeps its width alignment).

    Attributes:
        map_channels: channels of the map (16).
    """

    map_channels: int = AZIMUTH_MAP_CHANNELS

    def __call__(self, features, branch, map_size):
        feature_map = keras.layers.Conv2D(
            self.map_channels, 3, padding="same", kernel_initializer="glorot_uniform", name=f"{branch}_azimuth_map"
        )(features["features"])
        return {"feature_map": feature_map, "descriptor": keras.layers.Identity(name="descriptor")(feature_map)}
