"""The global batch from one replica: row numbers, and the one-device case left as it is.

The gather itself is checked where it runs, on two replicas: ``tests/distribute/``.
"""

import numpy as np
import tensorflow as tf

from cvft_tf.models import replicas


def test_rows_of_a_global_batch_are_numbered_in_order():
    batch = {"ground": tf.zeros([5, 2, 3, 3]), "distance_sq": tf.zeros([5, 5])}
    numbered = replicas.number_rows(batch)
    np.testing.assert_array_equal(numbered[replicas.BATCH_ROW].numpy(), np.arange(5))
    assert numbered[replicas.BATCH_ROW].dtype == tf.int32
    assert set(numbered) == {"ground", "distance_sq", replicas.BATCH_ROW}


def test_one_device_scores_its_batch_as_given():
    descriptors = {"ground": tf.ones([3, 4]), "aerial": tf.zeros([3, 4])}
    batch = {"distance_sq": tf.fill([3, 3], 7.0)}
    gathered, scored = replicas.global_batch(descriptors, batch)
    assert gathered is descriptors and scored is batch
    assert replicas.replicas_in_sync() == 1
    assert float(replicas.replica_share(tf.constant(0.75))) == 0.75
