"""DINOv2 position embeddings interpolated exactly as the authors' PyTorch DINOv2 does.

facebookresearch/dinov2 (``dinov2/models/vision_transformer.py``,
``DinoVisionTransformer.interpolate_pos_encoding``) resizes the trained ``M x M`` grid of
patch position embeddings (M = 37 for 518x518 images) to the ``h x w`` patch grid of the
input with::

    nn.functional.interpolate(grid, mode="bicubic", antialias=False,
                              scale_factor=((h + 0.1) / M, (w + 0.1) / M))

i.e. torch's bicubic (Keys kernel with a = -0.75, ``align_corners=False``, indices clamped at
the borders) whose source coordinate of output index ``i`` is
``(i + 0.5) * M / (h + 0.1) - 0.5``: the 0.1 offset ("historical kludge" of DINO) shifts the
sampling slightly from ``M / h``. keras-hub's ``DINOV2Embedding`` instead uses TensorFlow's
bicubic (a = -0.5) to size ``(h, w)``. Both leave the grid alone at the trained size.

Bicubic interpolation is linear and separable, so it is written here as two matrices,
``[h, M]`` and ``[w, M]`` (:func:`torch_bicubic_matrix`), applied to the grid with an einsum.
"""

import math

import keras
import numpy as np
from keras import ops
from keras_hub.src.models.dinov2.dinov2_layers import DINOV2Embedding as KerasHubDINOV2Embedding

TORCH_BICUBIC_A = -0.75
"""Coefficient a of torch's cubic convolution kernel (TensorFlow's is -0.5)."""

TORCH_INTERPOLATE_OFFSET = 0.1
"""DINOv2's ``interpolate_offset``, added to the target grid side in the scale factor."""


def _cubic_weights(t, a=np.float32(TORCH_BICUBIC_A)):
    """Weights of the 4 taps at offsets -1, 0, 1, 2 for fractional position ``t`` in [0, 1]
    (``get_cubic_upsample_coefficients`` of ATen's ``UpSample.h``)."""

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    one = np.float32(1.0)
    return far(t + one), near(t), near(one - t), far(one + one - t)


def torch_bicubic_matrix(source_size, target_size, scale_factor):
    """The ``[target_size, source_size]`` matrix of torch's 1-D bicubic resize.

    As ``nn.functional.interpolate(mode="bicubic", align_corners=False,
    scale_factor=scale_factor)``: output ``i`` samples source coordinate
    ``x = (i + 0.5) / scale_factor - 0.5``, with taps at ``floor(x) - 1 ... floor(x) + 2``
    clamped to the grid (ATen's ``guard_index_and_lambda``). The coordinate and the weights
    are computed in float32, as ATen does for float32 tensors, so they round alike.
    """
    scale = np.float32(1.0 / scale_factor)
    matrix = np.zeros((target_size, source_size), np.float32)
    for i in range(target_size):
        x = scale * np.float32(i + 0.5) - np.float32(0.5)
        left = min(math.floor(x), source_size - 1)
        t = np.float32(min(max(x - np.float32(left), np.float32(0.0)), np.float32(1.0)))
        for offset, weight in zip(range(-1, 3), _cubic_weights(t)):
            matrix[i, min(max(left + offset, 0), source_size - 1)] += weight
    return matrix


def interpolate_as_torch(position_embeddings, patch_size, source_shape, target_shape, antialias=False):
    """Position embeddings ``[1, 1 + H/p * W/p, C]`` of images ``source_shape`` resized to images
    ``target_shape`` as DINOv2's ``interpolate_pos_encoding`` (the class position unchanged).

    The signature is keras-hub's ``DINOV2Embedding._interpolate_position_embeddings``.

    Returns:
        ``[1, 1 + h*w, C]`` with ``(h, w) = target_shape // patch_size``, row-major.

    Raises:
        ValueError: ``antialias`` (DINOv2's default is off; its antialiased kernel is not
            reproduced here).
    """
    if antialias:
        raise ValueError("torch-exact position interpolation is only written for antialias=False (DINOv2's default)")
    position_embeddings = ops.convert_to_tensor(position_embeddings)
    source = (int(source_shape[0]) // patch_size, int(source_shape[1]) // patch_size)
    target = (int(target_shape[0]) // patch_size, int(target_shape[1]) // patch_size)
    if source == target:
        return ops.copy(position_embeddings)
    dtype = position_embeddings.dtype
    channels = int(position_embeddings.shape[-1])
    rows, cols = (
        ops.convert_to_tensor(
            torch_bicubic_matrix(s, t, (t + TORCH_INTERPOLATE_OFFSET) / s)
        )
        for s, t in zip(source, target)
    )
    grid = ops.reshape(ops.cast(position_embeddings[:, 1:], "float32"), (*source, channels))
    resized = ops.einsum("ai,bj,ijc->abc", rows, cols, grid)
    patches = ops.cast(ops.reshape(resized, (1, target[0] * target[1], channels)), dtype)
    return ops.concatenate([position_embeddings[:, :1], patches], axis=1)


@keras.saving.register_keras_serializable(package="cvft_tf")
class DINOV2Embedding(KerasHubDINOV2Embedding):
    """keras-hub's ``DINOV2Embedding`` whose position embeddings are resized by
    :func:`interpolate_as_torch` (when built, loaded and saved) instead of TF bicubic.

    Same arguments, weights and call as keras-hub's: ``[B, H, W, 3]`` ->
    ``[B, 1 + R + H/p * W/p, C]``. It keeps keras-hub's class name on purpose: Keras names a
    layer's entry in ``.weights.h5`` / ``.keras`` files after its class, so weights saved with
    either interpolation load into a model with the other.
    """

    _interpolate_position_embeddings = staticmethod(interpolate_as_torch)
