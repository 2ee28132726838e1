"""The global batch seen from one replica of a ``tf.distribute`` strategy.

CVFT's loss is exhaustive over the batch: every ground against every aerial (Eq. 6 of
CVFT). Under a strategy with R replicas each replica holds B / R pairs of the global batch
of B; scoring only those would compare each query with B / R aerials and change the
training signal. :func:`global_batch` gathers the replicas' descriptors, and their rows of
the CVACT distances, so every replica scores the whole global batch, in the global batch's
own row order.

The strategy splits each component of a global batch along its first axis, so a replica
receives ``distance_sq`` as ``[B / R, B]``: its rows, with a column for every pair of the
global batch. The order in which a strategy hands the slices to the replicas is its own
(one worker gives them in replica order; several workers shard the stream), so the trainer
numbers the rows of each global batch (:func:`number_rows`) before the strategy splits it.
Each replica writes its rows at their numbers into a ``[B, ...]`` block of zeros
(``scatter_nd``) and the replicas sum their blocks (``all_reduce``): every replica gets the
global batch in its own order, exactly (each entry is one value plus zeros). An all-reduce
is what every strategy does for gradients; ``all_gather`` fails inside a
``MultiWorkerMirroredStrategy`` step (its tensors carry no device to gather to).

Gradients flow through the sum: the gradient of an all-reduce is the all-reduce of the
replicas' upstream gradients, and ``scatter_nd`` hands each replica its own rows. Every
replica computes the same global loss, so a replica's loss is divided by R
(:func:`replica_share`) for the strategy's sum of the replicas' gradients to be the gradient
of the global loss, as on one device.
"""

import tensorflow as tf

BATCH_ROW = "batch_row"
"""Key of a batch's row numbers: int32 ``[B]``, each pair's row in its global batch."""

DISTANCE_SQ = "distance_sq"
"""Key of the CVACT squared distances of a batch (``data.pipeline``), ``[B, B]``."""


def number_rows(batch):
    """Adds :data:`BATCH_ROW` ``[B]`` = ``0 .. B-1`` to a global batch (a dict of ``[B, ...]``),
    before a strategy splits it among its replicas."""
    rows = tf.shape(next(iter(batch.values())))[0]
    return {**batch, BATCH_ROW: tf.range(rows, dtype=tf.int32)}


def replicas_in_sync():
    """R, the number of replicas that compute each step together (1 without a strategy)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def across_workers():
    """Whether the replicas in sync span several workers (processes) of a multi-worker strategy."""
    strategy = tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    return strategy.num_replicas_in_sync > len(strategy.extended.worker_devices)


def step_logs(results):
    """A train or test step's metric results ``{name: scalar}`` as Keras can reduce them: each as
    ``[1]`` across workers, where Keras takes their MEAN along axis 0, which a scalar lacks."""
    if across_workers():
        return {name: tf.reshape(value, [1]) for name, value in results.items()}
    return results


def replica_share(loss):
    """``loss / R``: this replica's share of a loss that every replica computes whole."""
    replicas = replicas_in_sync()
    return loss if replicas == 1 else loss / tf.cast(replicas, loss.dtype)


def global_batch(descriptors, batch):
    """The descriptors and the scored fields of the whole global batch, from one replica.

    Args:
        descriptors: ``{"ground": [b, D], "aerial": [b, D]}`` of this replica's pairs.
        batch: this replica's slice of the batch: with :data:`BATCH_ROW` ``[b]`` under a
            strategy of several replicas, and ``distance_sq`` ``[b, B]`` on CVACT. Every
            replica holds the same number of pairs, b = B / R (the trainer checks that the
            global batch splits evenly).

    Returns:
        ``(descriptors, scored)``: ``{"ground": [B, D], "aerial": [B, D]}`` and a dict that
        holds ``distance_sq`` ``[B, B]`` when ``batch`` has it, both in the global batch's
        row order. Outside a strategy (or with one replica), ``descriptors`` and ``batch``
        as given.

    Raises:
        ValueError: several replicas and a batch without :data:`BATCH_ROW`.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return descriptors, batch
    if BATCH_ROW not in batch:
        raise ValueError(
            f"a batch split among {context.num_replicas_in_sync} replicas needs its rows numbered "
            "(replicas.number_rows) before the strategy splits it"
        )
    rows = batch[BATCH_ROW][:, None]

    def gathered(value):
        shape = tf.concat([tf.shape(value)[:1] * context.num_replicas_in_sync, tf.shape(value)[1:]], axis=0)
        return context.all_reduce(tf.distribute.ReduceOp.SUM, tf.scatter_nd(rows, value, shape))

    scored = {DISTANCE_SQ: gathered(batch[DISTANCE_SQ])} if DISTANCE_SQ in batch else {}
    return {key: gathered(value) for key, value in descriptors.items()}, scored
