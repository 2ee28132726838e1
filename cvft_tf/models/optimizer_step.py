"""One optimizer step of a Keras model's custom ``train_step``: the part every model shares.

``CrossViewModel`` (triplet loss) and ``PlaceRecognitionModel`` (multi-similarity loss)
differ in how a batch becomes a loss; the step around it is the same: add the losses the
layers register (weight regularisers), take this replica's share under a ``tf.distribute``
strategy, scale for mixed precision, differentiate, apply.
"""

import tensorflow as tf

from cvft_tf.models.replicas import replica_share


def minimize(model, batch_loss):
    """Applies one optimizer step to ``model.trainable_variables`` on ``batch_loss()``.

    Under a strategy of R replicas, each replica differentiates ``total / R``
    (``replicas.replica_share``) and the optimizer sums the replicas' gradients (Keras'
    ``optimizer.apply`` all-reduces them with SUM): with a loss that every replica computes
    on the whole global batch (``replicas.global_batch``) the step is that of one device; with
    a loss of the replica's own pairs it is the mean of the replicas' gradients.

    Args:
        model: a compiled ``keras.Model``.
        batch_loss: function ``() -> (loss, outputs)``: the scalar loss of the batch and what
            the caller needs afterwards (e.g. the descriptors for the metrics), computed with
            ``training=True`` inside the gradient tape.

    Returns:
        ``(loss, outputs)``; ``loss`` without the layers' added losses, not divided by R.
    """
    with tf.GradientTape() as tape:
        loss, outputs = batch_loss()
        total = loss + tf.add_n([tf.cast(extra, tf.float32) for extra in model.losses]) if model.losses else loss
        scaled = model.optimizer.scale_loss(replica_share(total))
    variables = model.trainable_variables
    model.optimizer.apply(tape.gradient(scaled, variables), variables)
    return loss, outputs
