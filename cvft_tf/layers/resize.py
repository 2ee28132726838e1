"""TF1-compatible bilinear resize of feature maps (footnote 1 of CVFT Sec. 4.2).

The original resizes the ground feature map to the aerial map's size with TF1's
``tf.image.resize_bilinear`` (``align_corners=False``, no half-pixel centres): the source
coordinate of output pixel ``y`` is ``y * in_size / out_size``. TF2's ``tf.image.resize``
uses half-pixel centres ``(y + 0.5) * in / out - 0.5`` and gives different numbers, so the
port calls the raw ``ResizeBilinear`` op with the TF1 flags.
"""

import keras
import tensorflow as tf


def resize_bilinear_tf1(images, size):
    """Bilinear resize with TF1 semantics (align_corners=False, half_pixel_centers=False).

    Args:
        images: ``[batch, height, width, channels]`` float tensor.
        size: ``(out_height, out_width)`` Python ints.

    Returns:
        ``[batch, out_height, out_width, channels]`` float32 tensor.
    """
    return tf.raw_ops.ResizeBilinear(
        images=images, size=list(size), align_corners=False, half_pixel_centers=False
    )


@keras.saving.register_keras_serializable(package="cvft_tf")
class ResizeBilinearTF1(keras.layers.Layer):
    """Layer wrapper of :func:`resize_bilinear_tf1` to a fixed ``(height, width)``.

    Input ``[batch, h, w, c]`` -> output ``[batch, height, width, c]`` (static shape).
    """

    def __init__(self, height, width, **kwargs):
        super().__init__(**kwargs)
        self.height = int(height)
        self.width = int(width)

    def call(self, images):
        resized = resize_bilinear_tf1(images, (self.height, self.width))
        return tf.cast(resized, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[3])

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width)
        return config
