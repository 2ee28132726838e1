"""The original's pixel centring, inside the model: BGR pixels in [0, 255] -> minus the VGG mean.

The original subtracts the per-channel mean in numpy before feeding its graph
(``script/input_data_cvusa.py``: ``img.astype(np.float32)``, then ``img[:, :, 0] -= 103.939``
and so on, in float32).
The port does the same subtraction as the VGG trunk's first layer, so the input pipeline
can ship uint8 images (a quarter of the bytes of float32) and every entry point of the
model (``model(...)``, the encoders, the frozen stems, the SavedModel) takes the same
BGR pixels. The float32 arithmetic is the original's, so the network sees the same numbers.
"""

import keras
import tensorflow as tf

from cvft_tf.data.preprocess import VGG_MEAN_BGR


@keras.saving.register_keras_serializable(package="cvft_tf")
class CenterPixels(keras.layers.Layer):
    """``[B, H, W, 3]`` BGR pixels in [0, 255] (uint8 or float) -> float32 minus ``mean``.

    Args:
        mean: per-channel value subtracted, in the channel order of the input
            (default ``VGG_MEAN_BGR``, the original's).
    """

    def __init__(self, mean=VGG_MEAN_BGR, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.mean = tuple(float(value) for value in mean)

    def call(self, pixels):
        return tf.cast(pixels, tf.float32) - tf.constant(self.mean, tf.float32)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(mean=list(self.mean))
        return config
