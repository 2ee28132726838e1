"""Retrieval recall of the original CVFT evaluation, chunked and vectorised.

Distances are those of the original code: for aerial descriptors ``S`` [N, D] and ground
descriptors ``G`` [N, D] (L2-normalised rows, pair i is ground i with aerial i),

    D = 2 - 2 * S G^T,            D[k, i] = distance between aerial k and ground i.

The rank of ground query i is the number of aerial descriptors *strictly* closer than its own
match, ``rank_i = #{k : D[k, i] < D[i, i]}`` (a tie counts as not closer), and

    r@K = #{i : rank_i < K} / N,    top-1% uses K = floor(0.01 * N) + 1.

The original builds the whole N x N matrix in numpy float64 (its descriptor buffers are
``np.zeros`` float64 filled with the float32 network outputs) and loops over queries in Python.
Here the distances are computed a chunk of queries at a time, ``D[:, chunk] = 2 - 2 * S
G[chunk]^T`` with the same formula, dtype and strict comparison, so memory is O(N*D +
N*chunk) and one pass gives the ranks from which every r@K follows (``recall_curve``).
As in the original, D[i, i] is read from the same product as the rest of column i.
Bit-identical distances further depend on the BLAS summation order, which neither the
original nor this port controls; the tests use descriptors whose products are exact, so
their ties are exact on any machine.

CVACT_test (the paper's protocol, see ``docs/original.md``) scores a query as
correct at K when one of its top-K aerial tiles lies within ``radius_m`` of the query:
squared UTM distance < radius_m**2, the rule the original uses for "the same place".
``geo_match_ranks`` returns, per query, the 0-based position of the first such tile in the
retrieval order, so that ``recall_curve`` applies unchanged.

Shapes: ``ground`` [num_queries, dim], ``aerial`` [num_database, dim]; UTM positions
[num_queries, 2] and [num_database, 2] in metres.
"""

import numpy as np
import tensorflow as tf

DEFAULT_CHUNK_SIZE = 1024
"""Queries per chunk: the distance block is [num_database, chunk] (~0.76 GB in float64 for
the 92,802 tiles of CVACT_test at 1024)."""

REPORTED_KS = (1, 5, 10)
"""The r@K reported by the paper besides r@1%."""

REPORTED_METRICS = (*(f"r@{k}" for k in REPORTED_KS), "r@1%")
"""Keys of the paper's four numbers in ``summarize``'s result: r@1, r@5, r@10, r@1%."""

_BACKENDS = ("numpy", "tensorflow")


def top_one_percent_k(num_database):
    """K of r@1%: ``floor(0.01 * N) + 1`` (the original's ``int(N * 0.01) + 1``).

    ``N // 100`` equals ``int(N * 0.01)`` for every N up to 2 million (checked), and has no
    floating-point rounding at all.
    """
    return int(num_database) // 100 + 1


def match_ranks(
    ground,
    aerial,
    *,
    chunk_size=DEFAULT_CHUNK_SIZE,
    dtype="float64",
    backend="numpy",
):
    """Rank of each ground query's own aerial match, one-to-one protocol (CVUSA, CVACT_val).

    Args:
        ground: [n, dim] ground descriptors; row i is the query whose match is aerial row i.
        aerial: [n, dim] aerial descriptors.
        chunk_size: queries per distance block [n, chunk_size]; n need not divide.
        dtype: "float64" (the original: float32 descriptors, float64 matmul) or "float32".
        backend: "numpy" (the original's arithmetic, on the CPU) or "tensorflow" (the same
            formula with ``tf.matmul``, on a GPU when there is one).

    Returns:
        int64 [n]: ``rank_i = #{k : D[k, i] < D[i, i]}`` with ``D = 2 - 2 * aerial ground^T``.
    """
    ground, aerial = _check_descriptors(ground, aerial, dtype, backend)
    if ground.shape[0] != aerial.shape[0]:
        raise ValueError(
            "one-to-one ranks need as many ground as aerial descriptors, got "
            f"{ground.shape[0]} and {aerial.shape[0]}"
        )
    if backend == "tensorflow":
        aerial_t = tf.convert_to_tensor(aerial)
        return _chunked(
            ground,
            chunk_size,
            lambda start, ground_chunk: _ranks_chunk_tf(
                aerial_t,
                tf.convert_to_tensor(ground_chunk.astype(aerial.dtype)),
                tf.constant(start, tf.int64),
            ).numpy(),
        )
    return _chunked(
        ground, chunk_size, lambda start, ground_chunk: _ranks_chunk_np(aerial, ground_chunk, start)
    )


def geo_match_ranks(
    ground,
    aerial,
    ground_utm,
    aerial_utm,
    *,
    radius_m=25.0,
    chunk_size=DEFAULT_CHUNK_SIZE,
    dtype="float64",
    backend="numpy",
):
    """Position of the first aerial tile within ``radius_m`` in each query's retrieval list.

    The retrieval list of query i sorts the aerial tiles by ``D[k, i]`` (``D = 2 - 2 * aerial
    ground^T``), ties broken by tile index (a stable sort, as MATLAB's ``sort``). Query i is
    correct at K (the CVACT_test protocol) exactly when the returned position is < K, so the
    r@K curve is ``recall_curve(geo_match_ranks(...), max_k)``. Any tile counts, not only the
    query's own: a wrong tile less than ``radius_m`` away is a correct retrieval.

    With ``b`` the nearby tile that comes first (smallest distance, then smallest index), the
    position is ``#{k : D[k, i] < D[b, i]} + #{k < b : D[k, i] = D[b, i]}``; a query with no
    tile within the radius gets ``num_database`` (never correct).

    Args:
        ground: [num_queries, dim] ground descriptors.
        aerial: [num_database, dim] aerial descriptors.
        ground_utm: [num_queries, 2] query positions, UTM metres.
        aerial_utm: [num_database, 2] tile positions, UTM metres.
        radius_m: a tile is near when its squared distance to the query is < radius_m**2
            (25 m in the paper; the CVACT authors' MATLAB script uses 5 m).
        chunk_size, dtype, backend: as in ``match_ranks``. Memory is about three
            [num_database, chunk_size] blocks.

    Returns:
        int64 [num_queries].
    """
    ground, aerial = _check_descriptors(ground, aerial, dtype, backend)
    ground_utm = np.asarray(ground_utm, np.float64)
    aerial_utm = np.asarray(aerial_utm, np.float64)
    if ground_utm.shape != (ground.shape[0], 2) or aerial_utm.shape != (aerial.shape[0], 2):
        raise ValueError(
            f"UTM positions must be [{ground.shape[0]}, 2] and [{aerial.shape[0]}, 2], got "
            f"{ground_utm.shape} and {aerial_utm.shape}"
        )
    radius_sq = float(radius_m) ** 2
    if backend == "tensorflow":
        aerial_t = tf.convert_to_tensor(aerial)
        aerial_utm_t = tf.convert_to_tensor(aerial_utm)
        return _chunked(
            ground,
            chunk_size,
            lambda start, ground_chunk: _geo_ranks_chunk_tf(
                aerial_t,
                tf.convert_to_tensor(ground_chunk.astype(aerial.dtype)),
                aerial_utm_t,
                tf.convert_to_tensor(ground_utm[start : start + len(ground_chunk)]),
                tf.constant(radius_sq, tf.float64),
            ).numpy(),
        )
    return _chunked(
        ground,
        chunk_size,
        lambda start, ground_chunk: _geo_ranks_chunk_np(
            aerial,
            ground_chunk,
            aerial_utm,
            ground_utm[start : start + len(ground_chunk)],
            radius_sq,
        ),
    )


def recall_curve(ranks, max_k):
    """r@K for K = 1..max_k from 0-based ranks, as fractions: ``curve[K - 1] = mean(rank < K)``.

    One histogram of ``min(rank, max_k)`` and a cumulative sum give every K at once.

    Args:
        ranks: int [n] from ``match_ranks`` or ``geo_match_ranks``.
        max_k: largest K, >= 1.

    Returns:
        float64 [max_k], non-decreasing.
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 1 or ranks.size == 0:
        raise ValueError(f"ranks must be a non-empty vector, got shape {ranks.shape}")
    if max_k < 1:
        raise ValueError(f"max_k must be >= 1, got {max_k}")
    counts = np.bincount(np.minimum(ranks, max_k), minlength=max_k + 1)
    return np.cumsum(counts[:max_k]) / ranks.size


def geo_recall_curve(
    ground,
    aerial,
    ground_utm,
    aerial_utm,
    max_k,
    *,
    radius_m=25.0,
    chunk_size=DEFAULT_CHUNK_SIZE,
    dtype="float64",
    backend="numpy",
):
    """CVACT_test r@K for K = 1..max_k (fractions): a top-K tile within ``radius_m`` counts.

    See ``geo_match_ranks`` for the protocol and the tie rule.
    """
    ranks = geo_match_ranks(
        ground,
        aerial,
        ground_utm,
        aerial_utm,
        radius_m=radius_m,
        chunk_size=chunk_size,
        dtype=dtype,
        backend=backend,
    )
    return recall_curve(ranks, max_k)


def summarize(ranks, num_database=None):
    """The paper's numbers from query ranks, in percent.

    Args:
        ranks: int [num_queries] from ``match_ranks`` or ``geo_match_ranks``.
        num_database: size of the aerial gallery that sets the r@1% K; defaults to
            ``len(ranks)`` (the one-to-one protocol, where both are N).

    Returns:
        dict with "r@1", "r@5", "r@10", "r@1%" (percent, float), "curve" (list of percent
        for K = 1..top-1% K) and "num_queries".
    """
    ranks = np.asarray(ranks)
    one_percent_k = top_one_percent_k(len(ranks) if num_database is None else num_database)
    curve = 100.0 * recall_curve(ranks, max(one_percent_k, *REPORTED_KS))
    summary = {f"r@{k}": float(curve[k - 1]) for k in REPORTED_KS}
    summary["r@1%"] = float(curve[one_percent_k - 1])
    summary["curve"] = curve[:one_percent_k].tolist()
    summary["num_queries"] = int(ranks.size)
    return summary


def chance_levels(num_database):
    """The r@K, in percent, of a retrieval that ranks the ``num_database`` tiles at random.

    Returns:
        dict "r@1", "r@5", "r@10", "r@1%" -> ``100 * min(K, N) / N``.
    """
    ks = {f"r@{k}": k for k in REPORTED_KS}
    ks["r@1%"] = top_one_percent_k(num_database)
    return {key: 100.0 * min(k, num_database) / num_database for key, k in ks.items()}


def top_k_indices(ground, aerial, k, *, chunk_size=DEFAULT_CHUNK_SIZE, dtype="float64"):
    """The k nearest aerial tiles of each ground query, nearest first, ties by tile index.

    Meant for a few queries (retrieval figures): each chunk is fully sorted
    (O(num_database log num_database) per query).

    Returns:
        int64 [num_queries, k] indices into ``aerial``.
    """
    ground, aerial = _check_descriptors(ground, aerial, dtype, "numpy")
    if not 1 <= k <= aerial.shape[0]:
        raise ValueError(f"k must be in [1, {aerial.shape[0]}], got {k}")
    return _chunked(
        ground,
        chunk_size,
        lambda start, ground_chunk: np.argsort(
            _distances_np(aerial, ground_chunk), axis=0, kind="stable"
        )[:k].T,
    )


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


def _check_descriptors(ground, aerial, dtype, backend):
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    ground = np.asarray(ground)
    aerial = np.asarray(aerial, dtype)
    if ground.ndim != 2 or aerial.ndim != 2 or ground.shape[1] != aerial.shape[1]:
        raise ValueError(
            f"descriptors must be [n, dim] with the same dim, got {ground.shape} and {aerial.shape}"
        )
    # Ground is cast a chunk at a time: CVACT_test's 92,802 x 4096 is 3 GB in float64.
    return ground, aerial


def _chunked(ground, chunk_size, chunk_fn):
    """Concatenates ``chunk_fn(start, ground[start:start + chunk_size])`` over the queries."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return np.concatenate(
        [
            np.asarray(chunk_fn(start, ground[start : start + chunk_size]), np.int64)
            for start in range(0, ground.shape[0], chunk_size)
        ]
    )


def _distances_np(aerial, ground_chunk):
    """``2 - 2 * aerial ground_chunk^T`` [num_database, chunk] in aerial's dtype, in place."""
    distance = aerial @ ground_chunk.astype(aerial.dtype).T
    distance *= -2
    distance += 2
    return distance


def _ranks_chunk_np(aerial, ground_chunk, start):
    distance = _distances_np(aerial, ground_chunk)
    columns = np.arange(ground_chunk.shape[0])
    positive = distance[start + columns, columns]
    return np.count_nonzero(distance < positive, axis=0)


def _near_np(aerial_utm, ground_utm_chunk, radius_sq):
    """[num_database, chunk] bool: squared UTM distance < radius_sq."""
    east = aerial_utm[:, 0, np.newaxis] - ground_utm_chunk[np.newaxis, :, 0]
    north = aerial_utm[:, 1, np.newaxis] - ground_utm_chunk[np.newaxis, :, 1]
    east *= east
    north *= north
    east += north
    return east < radius_sq


def _geo_ranks_chunk_np(aerial, ground_chunk, aerial_utm, ground_utm_chunk, radius_sq):
    distance = _distances_np(aerial, ground_chunk)
    near = _near_np(aerial_utm, ground_utm_chunk, radius_sq)
    # argmin returns the first minimum: the nearby tile with the lowest index wins ties.
    first_near = np.where(near, distance, np.inf).argmin(axis=0)
    columns = np.arange(ground_chunk.shape[0])
    best = distance[first_near, columns]
    tied_before = (distance == best) & (
        np.arange(aerial.shape[0])[:, np.newaxis] < first_near[np.newaxis, :]
    )
    ranks = np.count_nonzero(distance < best, axis=0) + np.count_nonzero(tied_before, axis=0)
    return np.where(near[first_near, columns], ranks, aerial.shape[0])


@tf.function(reduce_retracing=True)
def _ranks_chunk_tf(aerial, ground_chunk, start):
    distance = 2.0 - 2.0 * tf.matmul(aerial, ground_chunk, transpose_b=True)
    columns = tf.range(tf.shape(ground_chunk, out_type=tf.int64)[0])
    positive = tf.gather_nd(distance, tf.stack([start + columns, columns], axis=1))
    return tf.reduce_sum(tf.cast(distance < positive, tf.int64), axis=0)


@tf.function(reduce_retracing=True)
def _geo_ranks_chunk_tf(aerial, ground_chunk, aerial_utm, ground_utm_chunk, radius_sq):
    distance = 2.0 - 2.0 * tf.matmul(aerial, ground_chunk, transpose_b=True)
    east = aerial_utm[:, 0, tf.newaxis] - ground_utm_chunk[tf.newaxis, :, 0]
    north = aerial_utm[:, 1, tf.newaxis] - ground_utm_chunk[tf.newaxis, :, 1]
    near = tf.square(east) + tf.square(north) < radius_sq
    num_database = tf.shape(aerial, out_type=tf.int64)[0]
    best = tf.reduce_min(tf.where(near, distance, tf.constant(np.inf, distance.dtype)), axis=0)
    # tf.argmin does not promise the first minimum; take the lowest nearby index explicitly.
    index = tf.range(num_database)[:, tf.newaxis]
    first_near = tf.reduce_min(
        tf.where(near & (distance == best), index, num_database), axis=0
    )
    closer = tf.cast(distance < best, tf.int64)
    tied_before = tf.cast((distance == best) & (index < first_near), tf.int64)
    ranks = tf.reduce_sum(closer + tied_before, axis=0)
    return tf.where(first_near < num_database, ranks, num_database)
