"""Recall@K of visual place recognition, where each query has a set of positive database images.

The protocol of MSLS / Pittsburgh and of SALAD's evaluation (``get_validation_recalls``:
faiss ``IndexFlatL2`` search, then "one of the top K is a positive"): with squared L2
distances ``d(q, j) = |x_q - y_j|^2`` between query ``q`` and database image ``j``, the rank of
query ``q`` is the number of database images strictly closer than its closest positive,

    rank_q = #{j : d(q, j) < min_{p in P_q} d(q, p)},

and ``R@K = #{q : rank_q < K} / #queries`` (a tie with the best positive counts as not closer).
A query without positives never counts as correct (``rank_q = num_database``), as in the
authors' code, so such queries lower the recall: drop them from the ground truth if the
benchmark excludes them.

The distance block is computed ``chunk_size`` queries at a time, ``[chunk, num_database]``
(64 MiB in float32 for 256 queries and 65,536 images), with the positives scattered into a
boolean mask of the same block: one vectorised pass, no Python loop over queries.
"""

import numpy as np

from cvft_tf.evaluation.recall import REPORTED_KS, recall_curve

DEFAULT_CHUNK_SIZE = 256
"""Queries per distance block."""


def positives_to_csr(positives, num_database):
    """Ragged positives as CSR arrays.

    Args:
        positives: sequence (one item per query) of sequences of database indices.
        num_database: number of database images, to check the indices.

    Returns:
        ``(offsets [num_queries + 1], indices [total])`` int64: query ``q``'s positives are
        ``indices[offsets[q]:offsets[q + 1]]``.
    """
    lists = [np.asarray(p, dtype=np.int64).reshape(-1) for p in positives]
    offsets = np.zeros(len(lists) + 1, np.int64)
    offsets[1:] = np.cumsum([p.size for p in lists])
    indices = np.concatenate(lists) if lists else np.zeros(0, np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= num_database):
        raise ValueError(f"positive indices must be in [0, {num_database}), got {indices.min()}..{indices.max()}")
    return offsets, indices


def first_positive_ranks(query, database, positives, *, chunk_size=DEFAULT_CHUNK_SIZE, dtype="float32"):
    """Rank of each query's closest positive among all database images (0 = retrieved first).

    Args:
        query: ``[num_queries, dim]`` descriptors.
        database: ``[num_database, dim]`` descriptors.
        positives: one sequence of database indices per query (may be empty).
        chunk_size: queries per ``[chunk, num_database]`` distance block.
        dtype: ``"float32"`` (as faiss) or ``"float64"``.

    Returns:
        int64 ``[num_queries]``: ``#{j : d(q, j) < min_p d(q, p)}``; ``num_database`` for a
        query without positives.
    """
    query = np.asarray(query, dtype=dtype)
    database = np.asarray(database, dtype=dtype)
    if query.ndim != 2 or database.ndim != 2 or query.shape[1] != database.shape[1]:
        raise ValueError(f"need [n, dim] descriptors of equal dim, got {query.shape} and {database.shape}")
    if len(positives) != query.shape[0]:
        raise ValueError(f"{len(positives)} positive lists for {query.shape[0]} queries")
    offsets, indices = positives_to_csr(positives, database.shape[0])
    database_norms = np.einsum("ij,ij->i", database, database)
    ranks = np.empty(query.shape[0], np.int64)
    for start in range(0, query.shape[0], chunk_size):
        stop = min(start + chunk_size, query.shape[0])
        chunk = query[start:stop]
        distance = np.einsum("ij,ij->i", chunk, chunk)[:, None] + database_norms[None, :] - 2.0 * chunk @ database.T
        rows = np.repeat(np.arange(stop - start), np.diff(offsets[start : stop + 1]))
        is_positive = np.zeros(distance.shape, bool)
        is_positive[rows, indices[offsets[start] : offsets[stop]]] = True
        best = np.where(is_positive, distance, np.inf).min(axis=1)
        ranks[start:stop] = np.count_nonzero(distance < best[:, None], axis=1)
    return ranks


def place_recall(query, database, positives, ks=REPORTED_KS, *, chunk_size=DEFAULT_CHUNK_SIZE, dtype="float32"):
    """R@K for each K in ``ks``: share of queries with a positive among their K nearest images.

    Args: see :func:`first_positive_ranks`; ``ks`` positive ints.

    Returns:
        dict ``{K: recall in [0, 1]}``.
    """
    ranks = first_positive_ranks(query, database, positives, chunk_size=chunk_size, dtype=dtype)
    curve = recall_curve(ranks, max(ks))
    return {int(k): float(curve[k - 1]) for k in ks}
