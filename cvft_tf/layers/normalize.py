"""L2 normalisation of descriptors, as the original's ``tf.nn.l2_normalize``."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="cvft_tf")
class L2Normalize(keras.layers.Layer):
    """``tf.nn.l2_normalize`` over the last axis, in float32: ``[B, D] -> [B, D]``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        return tf.nn.l2_normalize(tf.cast(inputs, tf.float32), axis=-1)
