"""In-batch recall@1 of a training step, in TensorFlow ops that XLA compiles.

The models log these per step beside the loss; the evaluation's exact ranks over a whole
split are ``evaluation.recall``.
"""

import tensorflow as tf


def recall_at_1(distance):
    """In-batch r@1 of ground queries on a [batch, batch] distance matrix, in TF ops.

    ``distance[k, i]`` is between aerial k and ground i (the layout of the original's
    ``2 - 2 * S G^T``; positives on the diagonal). Query i is correct when no aerial is
    strictly closer than its own; ties count as correct, as in ``match_ranks``.
    XLA-compatible (static shapes, no host ops): usable inside a jit-compiled train step.
    Pass ``tf.transpose(distance)`` for aerial-to-ground r@1.

    Returns:
        float32 scalar in [0, 1].
    """
    distance = tf.convert_to_tensor(distance)
    positive = tf.linalg.diag_part(distance)
    closer = tf.reduce_sum(tf.cast(distance < positive[tf.newaxis, :], tf.int32), axis=0)
    return tf.reduce_mean(tf.cast(closer == 0, tf.float32))


def in_batch_place_recall_at_1(descriptors, labels):
    """Share of images whose most similar other image in the batch has the same label.

    Args:
        descriptors: ``[B, D]``; labels: ``[B]``.

    Returns:
        scalar float32 in [0, 1].
    """
    descriptors = tf.cast(descriptors, tf.float32)
    similarity = tf.matmul(descriptors, descriptors, transpose_b=True)
    similarity -= 3.0 * tf.eye(tf.shape(similarity)[0])
    labels = tf.reshape(labels, [-1])
    nearest = tf.gather(labels, tf.argmax(similarity, axis=1))
    return tf.reduce_mean(tf.cast(tf.equal(nearest, labels), tf.float32))
