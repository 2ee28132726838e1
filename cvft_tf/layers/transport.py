"""Cost regression and feature transport of CVFT (Sec. 4.2, Eqs. 1-5).

``CostRegression`` is the original's ``ot_grd_branch`` block: a 1x1 convolution to one
channel with ReLU (scope ``ot_grd_branchot_conv``), flattened to ``n = h * w`` values, and a
dense layer ``n -> n * n`` (scope ``ot_grd_branchot_fc``) reshaped to an ``[n, n]`` cost
matrix per image. ``FeatureTransport`` applies a plan ``P`` to a feature map.
"""

import keras
import numpy as np
import tensorflow as tf

COST_FC_STDDEV = 0.005
"""Std of the truncated-normal init of the cost regression's dense weights (original)."""


@keras.saving.register_keras_serializable(package="cvft_tf")
class IdentityBias(keras.initializers.Initializer):
    """Initialises an ``[n * n]`` bias to the flattened ``n x n`` identity (original)."""

    def __call__(self, shape, dtype=None):
        (size,) = shape
        n = int(round(np.sqrt(size)))
        if n * n != size:
            raise ValueError(f"IdentityBias needs a square number of units, got {size}.")
        return tf.reshape(tf.eye(n, dtype=dtype or "float32"), [size])

    def get_config(self):
        return {}


@keras.saving.register_keras_serializable(package="cvft_tf")
class CostRegression(keras.layers.Layer):
    """Regresses a transport cost matrix from one feature map (CVFT Fig. 3, "cost generation").

    Input: ``[batch, h, w, c]`` feature map. Output: ``[batch, n, n]`` cost ``C`` with
    ``n = h * w``; row ``i`` indexes the source (input) position in row-major order.

    The 1x1 convolution uses Xavier (Glorot uniform) weights and biases, the dense layer
    truncated-normal(0.005) weights and an identity bias, as the original. The original
    also declares an L2 regulariser (0.01) on the dense weights but never adds it to the
    loss; ``dense_l2`` (default 0) exposes it as a real option.

    It computes in float32 under any dtype policy (its input is cast): Sinkhorn multiplies
    the cost by -100, so a float16 cost (3 significant digits) would move the plan.

    Args:
        dense_l2: float, L2 penalty on the dense weights added to the model losses.
    """

    def __init__(self, dense_l2=0.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.dense_l2 = float(dense_l2)
        self.conv = keras.layers.Conv2D(
            1,
            1,
            activation="relu",
            kernel_initializer="glorot_uniform",
            bias_initializer="glorot_uniform",
            dtype=self.dtype_policy,
            name="conv",
        )
        self.dense = None

    def build(self, input_shape):
        _, height, width, _ = input_shape
        self.num_positions = int(height) * int(width)
        self.conv.build(input_shape)
        self.dense = keras.layers.Dense(
            self.num_positions * self.num_positions,
            kernel_initializer=keras.initializers.TruncatedNormal(stddev=COST_FC_STDDEV),
            bias_initializer=IdentityBias(),
            kernel_regularizer=keras.regularizers.L2(self.dense_l2) if self.dense_l2 else None,
            dtype=self.dtype_policy,
            name="fc",
        )
        self.dense.build((None, self.num_positions))

    def call(self, features):
        n = self.num_positions
        scores = self.conv(features)
        flat = tf.reshape(scores, [-1, n])
        return tf.reshape(self.dense(flat), [-1, n, n])

    def compute_output_shape(self, input_shape):
        n = int(input_shape[1]) * int(input_shape[2])
        return (input_shape[0], n, n)

    def get_config(self):
        config = super().get_config()
        config.update(dense_l2=self.dense_l2)
        return config


@keras.saving.register_keras_serializable(package="cvft_tf")
class FeatureTransport(keras.layers.Layer):
    """Moves a feature map through a transport plan (Eq. 5 of CVFT).

    With the map flattened row-major to ``f[b, i, c]`` (``i`` in ``0..h*w-1``), the output at
    position ``o`` is ``sum_i P[b, i, o] * f[b, i, c]``, reshaped back to ``[b, h, w, c]``.
    The original code does not apply the paper's factor ``n_a`` (= h * w); set
    ``scale_by_positions=True`` for the paper's variant.

    Call args:
        features: ``[batch, h, w, c]``.
        plan: ``[batch, h*w, h*w]``.

    Returns:
        ``[batch, h, w, c]`` transported features, float32 under any dtype policy (as the
        plan; the features are cast).
    """

    def __init__(self, scale_by_positions=False, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.scale_by_positions = bool(scale_by_positions)

    def call(self, features, plan):
        _, height, width, channels = features.shape
        plan = tf.cast(plan, features.dtype)
        flat = tf.reshape(features, [-1, height * width, channels])
        moved = tf.einsum("bio,bic->boc", plan, flat)
        if self.scale_by_positions:
            moved = moved * float(height * width)
        return tf.reshape(moved, [-1, height, width, channels])

    def compute_output_shape(self, features_shape, plan_shape):
        return features_shape

    def get_config(self):
        config = super().get_config()
        config.update(scale_by_positions=self.scale_by_positions)
        return config
