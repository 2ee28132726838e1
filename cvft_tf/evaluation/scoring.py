"""Scoring an embedded split: r@K, r@1% and geo recall (``recall``), and the validation loss.

Used by the trainer's per-epoch validation and by ``cvft-eval``, on ``embed.Embeddings``.
"""

import numpy as np

from cvft_tf import losses
from cvft_tf.evaluation import recall


def score(
    embeddings,
    chunk_size=recall.DEFAULT_CHUNK_SIZE,
    geo_radius_m=None,
    one_percent_definition=recall.TOP_ONE_PERCENT_TEST,
    backend="numpy",
):
    """Recall of ground queries against the aerial gallery, from one product per chunk.

    Args:
        embeddings: :class:`Embeddings` of the split (pair i = ground i, aerial i).
        chunk_size: queries per distance block (``recall.split_ranks``).
        geo_radius_m: with positions, also score "one of the top K within this radius".
        one_percent_definition: K of r@1%, ``recall.TOP_ONE_PERCENT_TEST`` (the paper's table,
            floor(0.01 N)) or ``recall.TOP_ONE_PERCENT_TRAIN`` (floor(0.01 N) + 1).
        backend: ``"numpy"`` or ``"tensorflow"`` (the distance blocks with ``tf.matmul``, on a
            GPU when there is one); the ranks are the same (``recall.split_ranks``).

    Returns:
        dict with ``r@1``, ``r@5``, ``r@10``, ``r@1%`` (percent), ``curve`` (percent for
        K = 1..top-1% K), ``num_queries``; with ``geo_radius_m`` and positions also
        ``geo`` = the same keys for "one of the top K within ``geo_radius_m``".
    """
    with_geo = bool(geo_radius_m) and embeddings.utm is not None
    positions = (embeddings.utm, embeddings.utm) if with_geo else (None, None)
    ranks = recall.split_ranks(
        embeddings.ground,
        embeddings.aerial,
        *positions,
        radius_m=geo_radius_m if with_geo else 0.0,
        chunk_size=chunk_size,
        backend=backend,
    )
    metrics = recall.summarize(ranks.match, one_percent_definition=one_percent_definition)
    if with_geo:
        geo = recall.summarize(ranks.geo, one_percent_definition=one_percent_definition)
        metrics["geo"] = dict(geo, radius_m=float(geo_radius_m))
    return metrics


def batched_loss(embeddings, batch_size, gamma, same_place_radius_m):
    """Mean triplet loss over consecutive batches of the split (the validation loss)."""
    values = []
    for start in range(0, len(embeddings.ground) - 1, batch_size):
        stop = start + batch_size
        if stop - start < 2 or stop > len(embeddings.ground):
            break
        mask = None
        if embeddings.utm is not None:
            utm = embeddings.utm[start:stop].astype(np.float64)
            distance_sq = ((utm[:, None] - utm[None]) ** 2).sum(-1).astype(np.float32)
            mask = losses.same_place_negative_mask(distance_sq, same_place_radius_m)
        loss = losses.weighted_soft_margin_triplet_loss(
            embeddings.aerial[start:stop], embeddings.ground[start:stop], gamma=gamma, negative_mask=mask
        )
        values.append(float(loss))
    return float(np.mean(values)) if values else float("nan")
