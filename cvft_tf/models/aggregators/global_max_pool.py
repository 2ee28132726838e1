"""The "VGG global pooling" baseline of CVFT's Table 1: global max pooling of conv5_3."""

import dataclasses

import keras

from cvft_tf.layers.normalize import L2Normalize
from cvft_tf.models.parts import Part


@keras.saving.register_keras_serializable(package="cvft_tf")
@dataclasses.dataclass
class GlobalMaxPool(Part):
    """``{"features": [B, h, w, c]}`` -> ``{"descriptor": [B, c]}``, max over h and w, L2-normalised."""

    def __call__(self, features, branch, map_size):
        pooled = keras.layers.GlobalMaxPooling2D(name="global_max_pool")(features["features"])
        return {"descriptor": L2Normalize(name="descriptor")(pooled)}
