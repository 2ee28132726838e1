"""TF1 bilinear resize (no half-pixel centres) vs a numpy reference written from its definition."""

import numpy as np
import tensorflow as tf

from cvft_tf.layers.resize import ResizeBilinearTF1, resize_bilinear_tf1


def numpy_resize_bilinear_tf1(images, out_height, out_width):
    """Source coordinate ``y * in / out`` (align_corners=False, no half-pixel), clamped."""
    _, in_height, in_width, _ = images.shape

    def axis_weights(out_size, in_size):
        source = np.arange(out_size) * (in_size / out_size)
        low = np.floor(source).astype(int)
        high = np.minimum(low + 1, in_size - 1)
        return low, high, source - low

    y0, y1, fy = axis_weights(out_height, in_height)
    x0, x1, fx = axis_weights(out_width, in_width)
    top = images[:, y0][:, :, x0] * (1 - fx)[None, None, :, None] + images[:, y0][:, :, x1] * fx[None, None, :, None]
    bottom = images[:, y1][:, :, x0] * (1 - fx)[None, None, :, None] + images[:, y1][:, :, x1] * fx[None, None, :, None]
    return top * (1 - fy)[None, :, None, None] + bottom * fy[None, :, None, None]


def test_ground_map_4x20_to_8x8_matches_reference():
    features = np.random.default_rng(0).normal(size=(2, 4, 20, 5)).astype(np.float32)
    expected = numpy_resize_bilinear_tf1(features.astype(np.float64), 8, 8)
    np.testing.assert_allclose(resize_bilinear_tf1(features, (8, 8)).numpy(), expected, atol=1e-5)


def test_differs_from_tf2_half_pixel_resize():
    features = np.random.default_rng(1).normal(size=(1, 4, 20, 3)).astype(np.float32)
    tf1 = resize_bilinear_tf1(features, (8, 8)).numpy()
    tf2 = tf.image.resize(features, (8, 8), method="bilinear").numpy()
    assert np.abs(tf1 - tf2).max() > 0.1


def test_same_size_is_identity_and_layer_config():
    features = np.random.default_rng(2).normal(size=(1, 8, 8, 4)).astype(np.float32)
    layer = ResizeBilinearTF1(8, 8)
    np.testing.assert_array_equal(layer(features).numpy(), features)
    clone = ResizeBilinearTF1.from_config(layer.get_config())
    assert (clone.height, clone.width) == (8, 8)
    assert layer.compute_output_shape((None, 4, 20, 4)) == (None, 8, 8, 4)
