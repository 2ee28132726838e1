"""Weighted soft-margin triplet loss of CVFT (Eq. 6), exactly as the original computes it.

For aerial descriptors ``S`` and ground descriptors ``G`` of a batch (unit rows, pair ``k``
is ground ``k`` with aerial ``k``), ``D = 2 - 2 S G^T`` (``D[i, j]``: aerial ``i`` vs ground
``j``). Exhaustive over the batch, both directions:

* ground-to-aerial: ``log(1 + exp(gamma * (D[j, j] - D[i, j])))`` for every ``(i, j)``,
* aerial-to-ground: ``log(1 + exp(gamma * (D[i, i] - D[i, j])))`` for every ``(i, j)``,

each summed over all ``i, j`` (the diagonal included: each such term is ``log 2``) and
divided by ``B (B - 1)``; the loss is the mean of the two directions. The CVACT variant
multiplies each difference by a mask that is 0 for pairs closer than 25 m (so a masked term
still adds ``log 2``) and divides by the number of unmasked pairs (a batch with none has
loss 0 here, where the original gets ``inf``). ``log(1 + exp(x))`` is
computed as ``softplus(x)``, the same function without overflow.
"""

import tensorflow as tf

SOFT_MARGIN_GAMMA = 10.0
"""gamma of Eq. (6) (``loss_weight`` in the original)."""


def pairwise_distances(aerial, ground):
    """``D = 2 - 2 S G^T``: ``[B, D] x [B, D] -> [B, B]``, rows aerial, columns ground."""
    return 2.0 - 2.0 * tf.matmul(aerial, ground, transpose_b=True)


def same_place_negative_mask(distance_sq, radius_m):
    """1.0 where aerial ``i`` and ground ``j`` are at least ``radius_m`` apart, else 0.0.

    Args:
        distance_sq: ``[B, B]`` squared distances in square metres.
        radius_m: float, the same-place radius (25 m for CVACT).

    Returns:
        ``[B, B]`` float32 mask (the diagonal is 0: a pair is at distance 0 of itself).
    """
    return tf.cast(tf.greater_equal(distance_sq, radius_m * radius_m), tf.float32)


def _hard_mean(terms, valid, hard_negatives, axis):
    """Mean of the ``hard_negatives`` largest valid ``terms`` per anchor along ``axis``."""
    masked = tf.where(valid, terms, tf.fill(tf.shape(terms), -1.0))
    if axis == 0:
        masked, valid_f = tf.transpose(masked), tf.transpose(tf.cast(valid, terms.dtype))
    else:
        valid_f = tf.cast(valid, terms.dtype)
    top, indices = tf.math.top_k(masked, k=hard_negatives)
    kept = tf.gather(valid_f, indices, batch_dims=1)
    return tf.reduce_sum(top * kept) / tf.maximum(tf.reduce_sum(kept), 1.0)


def weighted_soft_margin_triplet_loss(
    aerial, ground, gamma=SOFT_MARGIN_GAMMA, negative_mask=None, hard_negatives=0
):
    """Weighted soft-margin triplet loss, both directions (CVFT Eq. 6; the original's code).

    Args:
        aerial: ``[B, D]`` unit-norm aerial descriptors.
        ground: ``[B, D]`` unit-norm ground descriptors (row ``k`` matches aerial ``k``).
        gamma: float, the soft-margin weight (10).
        negative_mask: optional ``[B, B]`` float mask of usable negatives (CVACT,
            :func:`same_place_negative_mask`); the divisor becomes its sum. A batch with
            no usable negative (every pair within the radius of every other) has loss 0
            and zero gradients; the original divides by 0 there.
        hard_negatives: int, if > 0 keep only the ``hard_negatives`` largest off-diagonal
            terms per anchor (batch-hard variant) and average them.

    Returns:
        scalar float32 loss.
    """
    distances = pairwise_distances(tf.cast(aerial, tf.float32), tf.cast(ground, tf.float32))
    return soft_margin_triplet_loss_of_distances(distances, gamma, negative_mask, hard_negatives)


def soft_margin_triplet_loss_of_distances(distances, gamma=SOFT_MARGIN_GAMMA, negative_mask=None, hard_negatives=0):
    """The same loss from a distance matrix: ``distances[i, j]`` between aerial ``i`` and ground
    ``j`` ``[B, B]`` (pairs on the diagonal), as :func:`pairwise_distances` gives it or a map
    matcher computes it (``models.matchers``). Returns a scalar float32 loss."""
    distances = tf.cast(distances, tf.float32)
    positive = tf.linalg.diag_part(distances)
    ground_to_aerial = positive[None, :] - distances
    aerial_to_ground = positive[:, None] - distances
    batch = tf.shape(distances)[0]

    if hard_negatives > 0:
        valid = tf.logical_not(tf.eye(batch, dtype=tf.bool))
        if negative_mask is not None:
            valid = tf.logical_and(valid, negative_mask > 0)
        loss_g2a = _hard_mean(tf.nn.softplus(gamma * ground_to_aerial), valid, hard_negatives, axis=0)
        loss_a2g = _hard_mean(tf.nn.softplus(gamma * aerial_to_ground), valid, hard_negatives, axis=1)
        return (loss_g2a + loss_a2g) / 2.0

    if negative_mask is None:
        pair_count = tf.cast(batch * (batch - 1), tf.float32)
    else:
        negative_mask = tf.cast(negative_mask, tf.float32)
        ground_to_aerial = ground_to_aerial * negative_mask
        aerial_to_ground = aerial_to_ground * negative_mask
        pair_count = tf.reduce_sum(negative_mask)
    has_pairs = pair_count > 0
    divisor = tf.where(has_pairs, pair_count, 1.0)
    loss_g2a = tf.reduce_sum(tf.nn.softplus(gamma * ground_to_aerial)) / divisor
    loss_a2g = tf.reduce_sum(tf.nn.softplus(gamma * aerial_to_ground)) / divisor
    return tf.where(has_pairs, (loss_g2a + loss_a2g) / 2.0, 0.0)


MULTI_SIMILARITY_ALPHA = 1.0
"""alpha (positive-pair weight) of the multi-similarity loss as SALAD / GSV-Cities train it."""

MULTI_SIMILARITY_BETA = 50.0
"""beta (negative-pair weight) of the multi-similarity loss."""

MULTI_SIMILARITY_BASE = 0.0
"""lambda, the similarity offset of both exponents (pytorch-metric-learning's ``base``)."""

MULTI_SIMILARITY_MINER_MARGIN = 0.1
"""epsilon of the multi-similarity pair miner (``MultiSimilarityMiner(epsilon=0.1)``)."""


def multi_similarity_loss(
    descriptors,
    labels,
    alpha=MULTI_SIMILARITY_ALPHA,
    beta=MULTI_SIMILARITY_BETA,
    base=MULTI_SIMILARITY_BASE,
    miner_margin=MULTI_SIMILARITY_MINER_MARGIN,
):
    """Multi-similarity loss with hard-pair mining (Wang et al., CVPR 2019), as SALAD trains.

    The SALAD / GSV-Cities code calls pytorch-metric-learning's
    ``MultiSimilarityLoss(alpha=1.0, beta=50, base=0.0, distance=DotProductSimilarity())``
    on the pairs of ``MultiSimilarityMiner(epsilon=0.1, distance=CosineSimilarity())``. Both
    distances L2-normalise the descriptors first, so ``S = x x^T`` with unit rows. For anchor
    ``i``, positives ``P_i`` (same label, not ``i``) and negatives ``N_i`` (other label):

    * mining (Eq. 7-8 of Wang et al.): keep positive ``p`` if ``S_ip - eps < max_{n in N_i} S_in``
      and negative ``n`` if ``S_in + eps > min_{p in P_i} S_ip`` (an anchor without negatives
      keeps no positive and vice versa);
    * loss: ``1/alpha log(1 + sum_{p kept} exp(-alpha (S_ip - base)))
      + 1/beta log(1 + sum_{n kept} exp(beta (S_in - base)))`` per anchor, averaged over all
      ``B`` anchors (those with nothing kept add 0);
    * as in pytorch-metric-learning, the loss is 0 when at most one positive and at most one
      negative pair are kept in the whole batch.

    The mining is a selection (no gradient flows through it). Computed in float32.

    Args:
        descriptors: ``[B, D]`` descriptors (normalised here).
        labels: ``[B]`` integer place ids.
        alpha, beta, base: the loss's weights and offset (1, 50, 0).
        miner_margin: epsilon of the miner (0.1); ``None`` uses every pair (no mining).

    Returns:
        scalar float32 loss.
    """
    embeddings = tf.math.l2_normalize(tf.cast(descriptors, tf.float32), axis=-1)
    similarity = tf.matmul(embeddings, embeddings, transpose_b=True)
    labels = tf.reshape(labels, [-1])
    same = tf.equal(labels[:, None], labels[None, :])
    not_self = tf.logical_not(tf.eye(tf.shape(labels)[0], dtype=tf.bool))
    positive = tf.logical_and(same, not_self)
    negative = tf.logical_not(same)
    if miner_margin is not None:
        mined = tf.stop_gradient(similarity)
        inf = tf.constant(float("inf"), tf.float32)
        hardest_negative = tf.reduce_max(tf.where(negative, mined, -inf), axis=1, keepdims=True)
        hardest_positive = tf.reduce_min(tf.where(positive, mined, inf), axis=1, keepdims=True)
        positive = tf.logical_and(positive, mined - miner_margin < hardest_negative)
        negative = tf.logical_and(negative, mined + miner_margin > hardest_positive)

    def log_one_plus_sum_exp(logits, keep):
        logits = tf.where(keep, logits, tf.fill(tf.shape(logits), float("-inf")))
        zeros = tf.zeros_like(logits[:, :1])
        return tf.reduce_logsumexp(tf.concat([logits, zeros], axis=1), axis=1)

    positive_loss = log_one_plus_sum_exp(-alpha * (similarity - base), positive) / alpha
    negative_loss = log_one_plus_sum_exp(beta * (similarity - base), negative) / beta
    loss = tf.reduce_mean(positive_loss + negative_loss)
    enough_pairs = tf.logical_or(
        tf.reduce_sum(tf.cast(positive, tf.int32)) > 1, tf.reduce_sum(tf.cast(negative, tf.int32)) > 1
    )
    return tf.where(enough_pairs, loss, 0.0)
