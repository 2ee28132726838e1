"""Recall@K of visual place recognition, where each query has a set of positive database images.

The protocol of NetVLAD (``recallAtN.m``), MSLS (``mapillary_sls/utils/eval.py``) and SALAD
(``utils/validation.py``, ``get_validation_recalls``): every query retrieves its K nearest
database images by squared L2 distance ``d(q, j) = |x_q - y_j|^2`` (faiss ``IndexFlatL2`` in
SALAD), and

    R@K = #{q : one of the K nearest images of q is a positive of q} / #queries.

The K nearest images are ordered by distance, a tie by the lower database index (as a stable
sort), so the saved predictions and the recall agree exactly. A query without positives never
counts as correct: NetVLAD and SALAD's Pittsburgh lists keep such queries (they lower the
recall), while MSLS and SALAD's MSLS-val lists leave them out of the query set beforehand
(``cvft_tf.data.msls``, ``cvft_tf.data.salad_lists``).

The distance block is computed ``chunk_size`` queries at a time, ``[chunk, num_database]``
(64 MiB in float32 for 256 queries and 65,536 images).
"""

import numpy as np

from cvft_tf.evaluation.recall import REPORTED_KS

DEFAULT_CHUNK_SIZE = 256
"""Queries per distance block."""


def nearest_database(query, database, k, *, chunk_size=DEFAULT_CHUNK_SIZE, dtype="float32"):
    """The ``k`` nearest database images of each query, nearest first.

    Args:
        query: ``[num_queries, dim]`` descriptors.
        database: ``[num_database, dim]`` descriptors.
        k: how many to return; at most ``num_database`` are.
        chunk_size: queries per ``[chunk, num_database]`` distance block.
        dtype: ``"float32"`` (as faiss) or ``"float64"``.

    Returns:
        ``(indices, distances)``: int64 and ``dtype`` ``[num_queries, min(k, num_database)]``,
        database indices by increasing squared L2 distance (a tie: lower index first) and
        those distances.

    Raises:
        ValueError: shapes that do not fit, or descriptors that are not finite.
    """
    query = np.asarray(query, dtype=dtype)
    database = np.asarray(database, dtype=dtype)
    if query.ndim != 2 or database.ndim != 2 or query.shape[1] != database.shape[1]:
        raise ValueError(f"need [n, dim] descriptors of equal dim, got {query.shape} and {database.shape}")
    k = min(int(k), database.shape[0])
    database_norms = _squared_norms(database)
    indices = np.empty((query.shape[0], k), np.int64)
    distances = np.empty((query.shape[0], k), dtype)
    for start in range(0, query.shape[0], chunk_size):
        chunk = query[start : start + chunk_size]
        block = _squared_norms(chunk)[:, None] + database_norms[None, :] - 2.0 * chunk @ database.T
        kth = np.partition(block, k - 1, axis=1)[:, k - 1]
        for row, (values, threshold) in enumerate(zip(block, kth)):
            candidates = np.flatnonzero(values <= threshold)
            nearest = candidates[np.argsort(values[candidates], kind="stable")[:k]]
            indices[start + row] = nearest
            distances[start + row] = values[nearest]
    return indices, distances


def _squared_norms(descriptors):
    """``|x_i|^2`` of each row ``[n]``; a NaN or infinite entry (or an overflow) is an error."""
    norms = np.einsum("ij,ij->i", descriptors, descriptors)
    if not np.isfinite(norms).all():
        raise ValueError("descriptors must be finite (the model gave NaN or infinity)")
    return norms


def recall_at_k(predictions, positives, ks=REPORTED_KS):
    """R@K from ranked predictions: share of queries with a positive among their first K.

    Args:
        predictions: int ``[num_queries, >= 1]`` database indices, nearest first.
        positives: one sequence of database indices per query (may be empty).
        ks: positive ints; a K beyond the predictions' width counts them all.

    Returns:
        dict ``{K: recall in [0, 1]}``.
    """
    predictions = np.asarray(predictions)
    if predictions.ndim != 2 or len(positives) != predictions.shape[0] or not len(positives):
        raise ValueError(f"{len(positives)} positive lists for predictions of shape {predictions.shape}")
    hits = np.stack([np.isin(row, np.asarray(p, np.int64)) for row, p in zip(predictions, positives)])
    first_hit = np.where(hits.any(axis=1), hits.argmax(axis=1), np.iinfo(np.int64).max)
    return {int(k): float(np.mean(first_hit < k)) for k in ks}


def place_recall(query, database, positives, ks=REPORTED_KS, *, chunk_size=DEFAULT_CHUNK_SIZE, dtype="float32"):
    """R@K for each K in ``ks`` of descriptors (:func:`nearest_database`, :func:`recall_at_k`).

    Returns:
        dict ``{K: recall in [0, 1]}``.
    """
    if len(positives) != len(query):
        raise ValueError(f"{len(positives)} positive lists for {len(query)} queries")
    predictions, _ = nearest_database(query, database, max(ks), chunk_size=chunk_size, dtype=dtype)
    return recall_at_k(predictions, positives, ks)
