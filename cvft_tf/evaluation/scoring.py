"""Scoring an embedded split: r@K, r@1% and geo recall (``recall``), heading error, and the
validation loss.

Used by the trainer's per-epoch validation and by ``cvft-eval``, on ``embed.Embeddings``.
Descriptor vectors are ranked by their exact distances (``recall``); the maps of a map
matcher (``matchers.HeadingCorrelation``) by the matcher's similarity, which also gives the
heading of each query (``heading``).
"""

import numpy as np
import tensorflow as tf

from cvft_tf.evaluation import heading, recall


def score(
    embeddings,
    chunk_size=recall.DEFAULT_CHUNK_SIZE,
    geo_radius_m=None,
    one_percent_definition=recall.TOP_ONE_PERCENT_TEST,
    backend="numpy",
    matcher=None,
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
        matcher: the model's matcher; one that compares maps ranks the split itself
            (:func:`score_maps`).

    Returns:
        dict with ``r@1``, ``r@5``, ``r@10``, ``r@1%`` (percent), ``curve`` (percent for
        K = 1..top-1% K), ``num_queries``; with ``geo_radius_m`` and positions also
        ``geo`` = the same keys for "one of the top K within ``geo_radius_m``"; with a map
        matcher ``heading`` instead (``heading.summarize_heading``).
    """
    if matcher is not None and matcher.compares_maps:
        return score_maps(embeddings, matcher, chunk_size, one_percent_definition)
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


def score_maps(
    embeddings, matcher, chunk_size=recall.DEFAULT_CHUNK_SIZE, one_percent_definition=recall.TOP_ONE_PERCENT_TEST
):
    """Recall and heading error of a map matcher (``matchers.HeadingCorrelation``).

    Each chunk of queries is matched against every aerial map (``matcher.match``); the rank of
    query ``i`` is the number of tiles strictly more similar than its own (ties count as
    correct, as in ``recall.match_ranks``). Its heading error is that of the estimate on its
    own tile against ``embeddings.heading`` (0, north, for whole north-aligned panoramas).

    Returns:
        ``recall.summarize``'s dict plus ``heading`` (``heading.summarize_heading``) and
        ``ranks`` (int64 ``[N]``, each query's rank: ``cvft-eval`` saves them as
        ``ranks.npy``, where ``compare`` reads them).
    """
    ground, aerial = embeddings.ground, tf.constant(embeddings.aerial, tf.float32)
    ranks, estimates = [], []
    for start in range(0, len(ground), chunk_size):
        similarity, headings = matcher.match(tf.constant(ground[start : start + chunk_size], tf.float32), aerial)
        similarity, headings = similarity.numpy(), headings.numpy()
        rows = np.arange(len(similarity))
        own = similarity[rows, start + rows]
        ranks.append(np.sum(similarity > own[:, None], axis=1))
        estimates.append(headings[rows, start + rows])
    ranks, estimates = np.concatenate(ranks), np.concatenate(estimates)
    true = embeddings.heading if embeddings.heading is not None else np.zeros(len(ranks))
    metrics = recall.summarize(ranks, one_percent_definition=one_percent_definition)
    metrics["heading"] = heading.summarize_heading(heading.angular_error_deg(estimates, true), ranks == 0)
    metrics["ranks"] = ranks.astype(np.int64)
    return metrics


def batched_loss(embeddings, batch_size, matcher):
    """Mean loss of the matcher over consecutive full batches of the split (the validation loss)."""
    values = []
    for start in range(0, len(embeddings.ground) - 1, batch_size):
        stop = start + batch_size
        if stop - start < 2 or stop > len(embeddings.ground):
            break
        batch = {}
        if embeddings.utm is not None:
            utm = embeddings.utm[start:stop].astype(np.float64)
            batch["distance_sq"] = tf.constant(((utm[:, None] - utm[None]) ** 2).sum(-1), tf.float32)
        descriptors = {
            "ground": tf.constant(embeddings.ground[start:stop], tf.float32),
            "aerial": tf.constant(embeddings.aerial[start:stop], tf.float32),
        }
        values.append(float(matcher.loss(descriptors, batch)))
    return float(np.mean(values)) if values else float("nan")


def top_k_tiles(embeddings, num_queries, k, matcher=None):
    """int64 ``[num_queries, k]``: the k best tiles of the first queries, best first (for the
    retrieval figures), by distance or, for a map matcher, by its similarity."""
    if matcher is None or not matcher.compares_maps:
        return recall.top_k_indices(embeddings.ground[:num_queries], embeddings.aerial, k=k)
    similarity, _ = matcher.match(
        tf.constant(embeddings.ground[:num_queries], tf.float32), tf.constant(embeddings.aerial, tf.float32)
    )
    return np.argsort(-similarity.numpy(), axis=1, kind="stable")[:, :k].astype(np.int64)
