"""Matching a ground map against a polar aerial map at every azimuth (DSM, Shi et al., CVPR 2020).

"Where am I looking at?" slides the ground query's feature map around the polar aerial
feature map (``layers.polar``) and correlates them at each circular shift of the aerial
map's columns. The best shift says where the query looks (its heading) and its score is the
pair's similarity; a query of any field of view works, as long as both maps have the same
number of pixels per column (width-aligned maps: the ground crop and the polar image share
the panorama's resolution, and the trunk's stride is the same for both).

For ground map ``G`` ``[h, w_g, c]`` and aerial map ``A`` ``[h, w_a, c]`` (``w_g <= w_a``),
the similarity at shift ``s`` is the cosine between ``G`` and the window of ``A`` of
``w_g`` columns starting at column ``s`` (modulo ``w_a``):

    sim[s] = <G, A[:, s : s + w_g]> / (|G| |A[:, s : s + w_g]|)

(DSM normalises the whole ground map and each aerial window, as here). The window starting
at ``s`` faces ``field_of_view.crop_heading_deg(s, w_g, w_a)``, the query's heading when it
matches there. :func:`best_shift` refines the best whole shift by the parabola through its
two neighbours' scores, so the heading is finer than one map column.
"""

import keras
import tensorflow as tf

from cvft_tf.data.field_of_view import crop_heading_deg

_EPSILON = 1e-12


@keras.saving.register_keras_serializable(package="cvft_tf")
class AzimuthCorrelation(keras.layers.Layer):
    """``(ground [Bq, h, w_g, c], aerial [Bg, h, w_a, c])`` -> similarity ``[Bq, Bg, w_a]``.

    Every ground map against every aerial map at every shift, in float32 (two convolutions:
    the ground maps as filters over the circularly padded aerial maps, and a box filter of
    the aerial maps' squares for the window norms).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, ground, aerial):
        ground = tf.cast(ground, tf.float32)
        aerial = tf.cast(aerial, tf.float32)
        check_width_aligned(ground.shape, aerial.shape)
        ground_width = ground.shape[2]
        padded = tf.concat([aerial, aerial[:, :, : ground_width - 1]], axis=2)
        filters = tf.transpose(ground, [1, 2, 3, 0])
        correlation = tf.nn.conv2d(padded, filters, strides=1, padding="VALID")[:, 0]
        box = tf.ones([*ground.shape[1:], 1], tf.float32)
        window_energy = tf.nn.conv2d(tf.square(padded), box, strides=1, padding="VALID")[:, 0]
        ground_norm = tf.sqrt(tf.reduce_sum(tf.square(ground), axis=[1, 2, 3]))
        norms = tf.sqrt(tf.maximum(window_energy, _EPSILON)) * tf.maximum(ground_norm, _EPSILON)[None, None, :]
        return tf.transpose(correlation / norms, [2, 0, 1])

    def compute_output_shape(self, ground_shape, aerial_shape):
        return (ground_shape[0], aerial_shape[0], aerial_shape[2])


def check_width_aligned(ground_shape, aerial_shape):
    """Raises ValueError unless the maps have the same height and channels and ``w_g <= w_a``."""
    (_, ground_h, ground_w, ground_c), (_, aerial_h, aerial_w, aerial_c) = ground_shape, aerial_shape
    if ground_h != aerial_h or ground_c != aerial_c or ground_w > aerial_w:
        raise ValueError(
            f"Azimuth correlation needs maps of the same height and channels with the ground map "
            f"no wider than the aerial one; got ground {tuple(ground_shape[1:])}, aerial {tuple(aerial_shape[1:])}"
        )


def best_shift(similarity):
    """The best shift of each pair and its score.

    Args:
        similarity: ``[..., w_a]`` from :class:`AzimuthCorrelation`.

    Returns:
        ``(score [...], shift [...])``: the largest similarity, and its shift in columns as
        float32, refined by the parabola through the scores of the shifts on either side
        (circularly; within half a column of the best whole shift).
    """
    similarity = tf.convert_to_tensor(similarity, tf.float32)
    width = tf.shape(similarity)[-1]
    best = tf.argmax(similarity, axis=-1, output_type=tf.int32)
    score = tf.reduce_max(similarity, axis=-1)
    before = tf.gather(similarity, tf.math.floormod(best - 1, width), batch_dims=len(similarity.shape) - 1)
    after = tf.gather(similarity, tf.math.floormod(best + 1, width), batch_dims=len(similarity.shape) - 1)
    curvature = before - 2.0 * score + after
    offset = tf.where(curvature < 0.0, 0.5 * (before - after) / tf.minimum(curvature, -_EPSILON), 0.0)
    return score, tf.cast(best, tf.float32) + tf.clip_by_value(offset, -0.5, 0.5)


def shift_heading_deg(shift, ground_width, aerial_width):
    """Heading (degrees clockwise from north, in [-180, 180)) of a query matching at ``shift``."""
    return crop_heading_deg(shift, float(ground_width), float(aerial_width))
