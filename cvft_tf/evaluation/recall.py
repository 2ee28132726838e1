"""Retrieval recall of the original CVFT evaluation: metric definitions and exact, chunked ranks.

Distances are those of the original code: for aerial descriptors ``S`` [N, D] and ground
descriptors ``G`` [N, D] (L2-normalised rows, pair i is ground i with aerial i),

    D = 2 - 2 * S G^T,            D[k, i] = distance between aerial k and ground i,

in float64 (the original puts the float32 network outputs into ``np.zeros`` float64 buffers and
multiplies in float64). The rank of ground query i is the number of aerial descriptors *strictly*
closer than its own match, ``rank_i = #{k : D[k, i] < D[i, i]}`` (a tie counts as not closer), and
``r@K = #{i : rank_i < K} / N``. One pass gives the ranks, from which every r@K follows
(``recall_curve``).

Top-1% (``top_one_percent_k``). The paper's Table 1 comes from the original's test scripts
(``script/test_cvusa.py`` L118-128, ``script/test_cvact.py`` L143-153): ``val_accuracy[0, i]``
counts ``rank < i`` for ``i < int(0.01 N) + 1`` and top-1% is the last entry, so K = floor(0.01 N)
(88 at N = 8,884): ``TOP_ONE_PERCENT_TEST``, the default. The per-epoch ``validate`` of
``script/train_cvusa.py`` (L45-58) and ``script/train_cvact.py`` (L38-51) uses K = floor(0.01 N) + 1:
``TOP_ONE_PERCENT_TRAIN``.

Exact ranks at float32 cost (``dtype="mixed"``, the default). Each chunk of queries gets one
float32 product ``P^ = G[chunk] S^T`` (one sgemm, [chunk, N]); only the entries whose float32
dot product lies within a proven rounding bound of the threshold's float64 one are recomputed in
float64, so the ranks are those of the float64 distances. The bound, for the dot product
``p = a . g`` of an aerial row a and a ground row g of length D (Higham, *Accuracy and Stability
of Numerical Algorithms*, 2nd ed., Lemma 3.1 and Sec. 3.1, valid for any summation order, with or
without FMA), with ``gamma_D(u) = D u / (1 - D u)``:

* float32, inputs rounded with unit roundoff ``u_in`` (2^-24; 2^-10 under TF32 on a GPU; exact
  when they already are float32), products and sums with u = 2^-24:
  ``|p^ - p| <= ((1 + u_in)^2 (1 + gamma_D(u)) - 1) sum_j |a_j g_j| <= rho ||a|| ||g||``;
* float64 of the same values, v = 2^-53: ``|p64 - p| <= gamma_D(v) ||a|| ||g||``;
* hence ``|p^ - p64| <= E = (rho + gamma_D(v)) n m`` with ``n = max_k ||a_k||`` and ``m = ||g||``,
  the actual norms (no unit norm is assumed), plus ``2^-148 (D + sqrt(D) (n + m))`` for underflow.

The float64 distance is ``fl(2 - 2 p64)``: ``2 p64`` is exact and the subtraction rounds once with
relative error <= v, and ``|2 - 2 p64| <= 2 + 4 n m``. So two float64 dot products that differ by
more than ``v (2 + 4 n m)`` give strictly ordered distances, and with ``M = E + v (2 + 4 n m)``:

    p^[k, i] > t_i + M   =>   D[k, i] < D_t     (strictly closer: counted),
    p^[k, i] < t_i - M   =>   D[k, i] > D_t     (strictly farther: not counted),

where ``t_i`` is the float64 dot product of the query's threshold pair (its own tile, or for the
geo ranks the first nearby tile) and ``D_t = fl(2 - 2 t_i)``. The entries with
``|p^[k, i] - t_i| <= M`` are rechecked: the float64 dot of the (float32) descriptor values, then
``fl(2 - 2 p)``, compared with ``D_t`` exactly as the float64 path does. M is inflated by a
relative 2^-16, which covers the float64 rounding of the norms, of M and of ``t_i +- M`` (each a
relative error below D v), and the window ends are rounded outward to float32, so that comparing
the float32 block with them is exact. For D = 4,096 and unit descriptors M = 2.4e-4 (4.9e-4 in
distance). Descriptors whose own match stands out need few rechecks (``benchmarks/recall_benchmark.py``:
5 per query at N = 8,884, 51 at 92,802); unrelated random ones about 1% of the block, which costs
about as much as the float64 path.

For the geo ranks the first nearby tile b is found the same way: only the nearby tiles whose
float32 dot product is within 2 M of the best nearby one can have the smallest float64 distance,
and those are recomputed; then the ranks count ``D[k, i] < D_b`` and the ties ``k < b``.

The rechecks and ``t_i`` use one float64 routine (elementwise products, numpy's pairwise sum), so
a pair gets the same float64 value wherever it is computed and duplicates tie exactly. The plain
float64 path (``dtype="float64"``, kept for checking) sums in BLAS's order, which may differ in the
last bits (relative <= gamma_D(v), 5e-13 at D = 4,096); the two can differ only on distances that
close to each other, and agree bit for bit when the float64 products are exact (as in the tests).

CVACT_test (the paper's protocol, see ``docs/original.md``) scores a query as correct at K when
one of its top-K aerial tiles lies within ``radius_m`` of the query: squared UTM distance
< radius_m**2, the rule the original uses for "the same place". ``geo_match_ranks`` returns, per
query, the 0-based position of the first such tile in the retrieval order, so that
``recall_curve`` applies unchanged. ``split_ranks`` gives both kinds of rank from one product.

Shapes: ``ground`` [num_queries, dim], ``aerial`` [num_database, dim]; UTM positions
[num_queries, 2] and [num_database, 2] in metres.
"""

import collections

import numpy as np
import tensorflow as tf

from cvft_tf.data.cvact import SAME_PLACE_RADIUS_M

DEFAULT_CHUNK_SIZE = 1024
"""Queries per chunk: the mixed path's float32 block is [chunk, num_database] (0.38 GB for the
92,802 tiles of CVACT_test at 1024; the plain float64 block is twice that)."""

REPORTED_KS = (1, 5, 10)
"""The r@K reported by the paper besides r@1%."""

REPORTED_METRICS = (*(f"r@{k}" for k in REPORTED_KS), "r@1%")
"""Keys of the paper's four numbers in ``summarize``'s result: r@1, r@5, r@10, r@1%."""

TOP_ONE_PERCENT_TEST = "test"
"""r@1% with K = floor(0.01 N) (at least 1): the original's test scripts, i.e. the paper's Table 1."""

TOP_ONE_PERCENT_TRAIN = "train"
"""r@1% with K = floor(0.01 N) + 1: the per-epoch validation of the original's training scripts."""

MIXED = "mixed"
"""``dtype`` of the exact float32 path: float32 blocks, float64 rechecks; ranks as in float64."""

SplitRanks = collections.namedtuple("SplitRanks", ["match", "geo"])
SplitRanks.__doc__ = """``split_ranks``' result: int64 [n] one-to-one ranks, int64 [n] geo ranks (or None)."""

BACKENDS = ("numpy", "tensorflow")
"""Where the distance blocks are computed: numpy (CPU) or ``tf.matmul`` (a GPU when there is one)."""
_DTYPES = (MIXED, "float64", "float32")
_FLOAT32_ROUNDOFF = 2.0**-24
_TF32_ROUNDOFF = 2.0**-10
_FLOAT64_ROUNDOFF = 2.0**-53
_MARGIN_SAFETY = 1.0 + 2.0**-16
_RECHECK_BATCH = 64
_NORM_BATCH = 256
_MAX_NEARBY_PAIRS = 1 << 22


def top_one_percent_k(num_database, definition=TOP_ONE_PERCENT_TEST):
    """K of r@1% for a gallery of ``num_database`` tiles.

    Args:
        num_database: N, the number of aerial tiles.
        definition: ``TOP_ONE_PERCENT_TEST`` (default): ``max(1, floor(0.01 N))``, the K of the
            paper's table (88 at N = 8,884); ``TOP_ONE_PERCENT_TRAIN``: ``floor(0.01 N) + 1``, the
            original's training-time validation (89).

    ``N // 100`` equals the original's ``int(N * 0.01)`` for every N up to 2 million (checked), and
    has no floating-point rounding at all.
    """
    if definition == TOP_ONE_PERCENT_TEST:
        return max(1, int(num_database) // 100)
    if definition == TOP_ONE_PERCENT_TRAIN:
        return int(num_database) // 100 + 1
    raise ValueError(f"definition must be {TOP_ONE_PERCENT_TEST!r} or {TOP_ONE_PERCENT_TRAIN!r}, got {definition!r}")


def match_ranks(ground, aerial, *, chunk_size=DEFAULT_CHUNK_SIZE, dtype=MIXED, backend="numpy"):
    """Rank of each ground query's own aerial match, one-to-one protocol (CVUSA, CVACT_val).

    Args:
        ground: [n, dim] ground descriptors; row i is the query whose match is aerial row i.
        aerial: [n, dim] aerial descriptors.
        chunk_size: queries per distance block; n need not divide.
        dtype: "mixed" (default: float32 blocks, float64 rechecks, the float64 ranks; see the module
            docstring), "float64" (the original's arithmetic on the whole block, for checking) or
            "float32" (plain float32: fast but not exact).
        backend: "numpy" (on the CPU) or "tensorflow" (``tf.matmul`` blocks, on a GPU when there is
            one; the mixed path's rechecks run in numpy).

    Returns:
        int64 [n]: ``rank_i = #{k : D[k, i] < D[i, i]}`` with ``D = 2 - 2 * aerial ground^T``.
    """
    _check_one_to_one(ground, aerial)
    return split_ranks(ground, aerial, chunk_size=chunk_size, dtype=dtype, backend=backend).match


def geo_match_ranks(
    ground,
    aerial,
    ground_utm,
    aerial_utm,
    *,
    radius_m=SAME_PLACE_RADIUS_M,
    chunk_size=DEFAULT_CHUNK_SIZE,
    dtype=MIXED,
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
        chunk_size, dtype, backend: as in ``match_ranks``.

    Returns:
        int64 [num_queries].
    """
    return _ranks(
        ground,
        aerial,
        False,
        _Nearby(ground_utm, aerial_utm, radius_m, len(ground), len(aerial)),
        chunk_size,
        dtype,
        backend,
    ).geo


def split_ranks(
    ground,
    aerial,
    ground_utm=None,
    aerial_utm=None,
    *,
    radius_m=SAME_PLACE_RADIUS_M,
    chunk_size=DEFAULT_CHUNK_SIZE,
    dtype=MIXED,
    backend="numpy",
):
    """One-to-one ranks and, given positions, geo ranks of a split, from one product per chunk.

    Args:
        ground, aerial: [n, dim] descriptors of the n pairs (row i of each is pair i).
        ground_utm, aerial_utm: [n, 2] UTM positions, or both None (no geo ranks).
        radius_m, chunk_size, dtype, backend: as in ``geo_match_ranks``.

    Returns:
        ``SplitRanks(match, geo)``: ``match_ranks(...)`` and ``geo_match_ranks(...)`` (None
        without positions), int64 [n] each.
    """
    _check_one_to_one(ground, aerial)
    if (ground_utm is None) != (aerial_utm is None):
        raise ValueError("give both ground_utm and aerial_utm, or neither")
    nearby = None if ground_utm is None else _Nearby(ground_utm, aerial_utm, radius_m, len(ground), len(aerial))
    return _ranks(ground, aerial, True, nearby, chunk_size, dtype, backend)


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


def summarize(ranks, num_database=None, one_percent_definition=TOP_ONE_PERCENT_TEST):
    """The paper's numbers from query ranks, in percent.

    Args:
        ranks: int [num_queries] from ``match_ranks`` or ``geo_match_ranks``.
        num_database: size of the aerial gallery that sets the r@1% K; defaults to
            ``len(ranks)`` (the one-to-one protocol, where both are N).
        one_percent_definition: K of r@1%, see ``top_one_percent_k``.

    Returns:
        dict with "r@1", "r@5", "r@10", "r@1%" (percent, float), "curve" (list of percent
        for K = 1..top-1% K) and "num_queries".
    """
    ranks = np.asarray(ranks)
    one_percent_k = top_one_percent_k(len(ranks) if num_database is None else num_database, one_percent_definition)
    curve = 100.0 * recall_curve(ranks, max(one_percent_k, *REPORTED_KS))
    summary = {f"r@{k}": float(curve[k - 1]) for k in REPORTED_KS}
    summary["r@1%"] = float(curve[one_percent_k - 1])
    summary["curve"] = curve[:one_percent_k].tolist()
    summary["num_queries"] = int(ranks.size)
    return summary


def chance_levels(num_database, one_percent_definition=TOP_ONE_PERCENT_TEST):
    """The r@K, in percent, of a retrieval that ranks the ``num_database`` tiles at random.

    Returns:
        dict "r@1", "r@5", "r@10", "r@1%" -> ``100 * min(K, N) / N``.
    """
    ks = {f"r@{k}": k for k in REPORTED_KS}
    ks["r@1%"] = top_one_percent_k(num_database, one_percent_definition)
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
        lambda start, ground_chunk: np.argsort(_distances_np(aerial, ground_chunk), axis=0, kind="stable")[:k].T,
    )


def recheck_margin(aerial_norm_max, ground_norms, dim, input_roundoff=_FLOAT32_ROUNDOFF):
    """Half-width M of the recheck window on dot products (see the module docstring).

    Args:
        aerial_norm_max: n, an upper bound of the aerial descriptors' L2 norms.
        ground_norms: [c] m, the queries' L2 norms.
        dim: D, the descriptor length (< 2**24).
        input_roundoff: unit roundoff of the inputs as the float32 product sees them: 2**-24, or
            2**-10 when TF32 may round them.

    Returns:
        float64 [c]: beyond ``t_i +- M[i]`` the float32 dot product orders a float64 distance
        strictly the same way as its float64 recomputation would.
    """
    if not 1 <= dim < 2**24:
        raise ValueError(f"the float32 rounding bound needs 1 <= dim < 2**24, got {dim}")
    norm_product = aerial_norm_max * np.asarray(ground_norms, np.float64)
    if not np.isfinite(norm_product).all() or norm_product.max(initial=0.0) > 2.0**100:
        raise ValueError("descriptors must be finite, with norms below 2**50")
    rho32 = (1.0 + input_roundoff) ** 2 * (1.0 + _gamma(dim, _FLOAT32_ROUNDOFF)) - 1.0
    rounding = (rho32 + _gamma(dim, _FLOAT64_ROUNDOFF)) * norm_product
    underflow = 2.0**-148 * (dim + np.sqrt(dim) * (aerial_norm_max + ground_norms))
    distance_rounding = _FLOAT64_ROUNDOFF * (2.0 + 4.0 * norm_product)
    return _MARGIN_SAFETY * (rounding + underflow + distance_rounding)


def _gamma(n, unit_roundoff):
    """Higham's gamma_n = n u / (1 - n u)."""
    return n * unit_roundoff / (1.0 - n * unit_roundoff)


def _check_one_to_one(ground, aerial):
    if len(ground) != len(aerial):
        raise ValueError(
            f"one-to-one ranks need as many ground as aerial descriptors, got {len(ground)} and {len(aerial)}"
        )


def _check_descriptors(ground, aerial, dtype, backend):
    """Validated ``(ground, aerial)``; aerial cast to the plain dtype, or as given for "mixed"."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    ground = np.asarray(ground)
    if _is_mixed(dtype):
        aerial = np.asarray(aerial)
    elif dtype in (np.float32, np.float64, "float32", "float64"):
        aerial = np.asarray(aerial, dtype)
    else:
        raise ValueError(f"dtype must be one of {_DTYPES}, got {dtype!r}")
    if ground.ndim != 2 or aerial.ndim != 2 or ground.shape[1] != aerial.shape[1]:
        raise ValueError(f"descriptors must be [n, dim] with the same dim, got {ground.shape} and {aerial.shape}")
    # Ground is cast a chunk at a time: CVACT_test's 92,802 x 4096 is 3 GB in float64.
    return ground, aerial


def _is_mixed(dtype):
    return isinstance(dtype, str) and dtype == MIXED


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


def _ranks(ground, aerial, with_match, nearby, chunk_size, dtype, backend):
    """``SplitRanks`` of the queries: one-to-one ranks if ``with_match``, geo ranks if ``nearby``."""
    ground, aerial = _check_descriptors(ground, aerial, dtype, backend)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if len(ground) == 0:
        raise ValueError("no ground queries")
    if _is_mixed(dtype):
        chunk_ranks = _MixedChunkRanks(ground, aerial, with_match, nearby, chunk_size, backend)
    else:
        chunk_ranks = _PlainChunkRanks(ground, aerial, with_match, nearby, backend)
    per_chunk = [
        chunk_ranks(start, min(start + chunk_size, len(ground))) for start in range(0, len(ground), chunk_size)
    ]
    match, geo = zip(*per_chunk)
    return SplitRanks(
        np.concatenate(match).astype(np.int64) if with_match else None,
        np.concatenate(geo).astype(np.int64) if nearby is not None else None,
    )


class _Nearby:
    """Which aerial tiles lie within ``radius_m`` of each query: squared UTM distance < radius_m**2."""

    def __init__(self, ground_utm, aerial_utm, radius_m, num_queries, num_database):
        self.ground_utm = np.asarray(ground_utm, np.float64)
        self.aerial_utm = np.asarray(aerial_utm, np.float64)
        if self.ground_utm.shape != (num_queries, 2) or self.aerial_utm.shape != (num_database, 2):
            raise ValueError(
                f"UTM positions must be [{num_queries}, 2] and [{num_database}, 2], got "
                f"{self.ground_utm.shape} and {self.aerial_utm.shape}"
            )
        self.radius_sq = float(radius_m) ** 2
        self.east_order = np.argsort(self.aerial_utm[:, 0], kind="stable")
        self.sorted_east = self.aerial_utm[self.east_order, 0]

    def mask(self, start, stop):
        """[num_database, stop - start] bool, computed densely in float64."""
        ground_utm = self.ground_utm[start:stop]
        east = self.aerial_utm[:, 0, np.newaxis] - ground_utm[np.newaxis, :, 0]
        north = self.aerial_utm[:, 1, np.newaxis] - ground_utm[np.newaxis, :, 1]
        return self._is_near(east, north)

    def pairs(self, start, stop):
        """Yields the nearby (query, tile) pairs of queries start..stop, grouped by query.

        Candidates come from the tiles sorted by easting (a window slightly wider than the radius,
        widened to cover the float64 rounding of its ends), then the same float64 rule as ``mask``
        keeps the near ones. A batch holds whole queries and at most ``_MAX_NEARBY_PAIRS``
        candidates (or one query's), so memory stays bounded when many tiles are close together.

        Yields:
            (int64 [m] queries in 0..stop-start-1, int64 [m] tile indices).
        """
        ground_utm = self.ground_utm[start:stop]
        radius = np.sqrt(self.radius_sq)
        reach = radius * (1.0 + 2.0**-20) + 2.0**-40 * (np.abs(ground_utm[:, 0]) + radius)
        first = np.searchsorted(self.sorted_east, ground_utm[:, 0] - reach, side="left")
        counts = np.searchsorted(self.sorted_east, ground_utm[:, 0] + reach, side="right") - first
        bounds = np.concatenate([[0], np.cumsum(counts)])
        batch_start = 0
        while batch_start < len(ground_utm):
            limit = bounds[batch_start] + _MAX_NEARBY_PAIRS
            batch_stop = max(batch_start + 1, np.searchsorted(bounds, limit, side="right") - 1)
            batch_counts = counts[batch_start:batch_stop]
            queries = np.repeat(np.arange(batch_start, batch_stop), batch_counts)
            offsets = np.arange(len(queries)) - np.repeat(
                bounds[batch_start:batch_stop] - bounds[batch_start], batch_counts
            )
            tiles = self.east_order[first[queries] + offsets]
            near = self._is_near(
                self.aerial_utm[tiles, 0] - ground_utm[queries, 0], self.aerial_utm[tiles, 1] - ground_utm[queries, 1]
            )
            yield queries[near], tiles[near]
            batch_start = batch_stop

    def _is_near(self, east, north):
        """The original's rule in float64, in place: east**2 + north**2 < radius**2."""
        east *= east
        north *= north
        east += north
        return east < self.radius_sq


class _PlainChunkRanks:
    """Ranks of a chunk from the whole distance block in one dtype (the original's arithmetic)."""

    def __init__(self, ground, aerial, with_match, nearby, backend):
        self.ground, self.aerial, self.with_match, self.nearby, self.backend = (
            ground,
            aerial,
            with_match,
            nearby,
            backend,
        )
        if backend == "tensorflow":
            self.aerial_t = tf.convert_to_tensor(aerial)

    def __call__(self, start, stop):
        """(int64 [c] one-to-one ranks or None, int64 [c] geo ranks or None) of queries start..stop."""
        ground_chunk = np.asarray(self.ground[start:stop], self.aerial.dtype)
        near = None if self.nearby is None else self.nearby.mask(start, stop)
        if self.backend == "tensorflow":
            distance = _distances_tf(self.aerial_t, tf.convert_to_tensor(ground_chunk))
            match = _match_ranks_tf(distance, tf.constant(start, tf.int64)).numpy() if self.with_match else None
            geo = None if near is None else _geo_ranks_tf(distance, tf.convert_to_tensor(near)).numpy()
            return match, geo
        distance = _distances_np(self.aerial, ground_chunk)
        match = _match_ranks_np(distance, start) if self.with_match else None
        geo = None if near is None else _geo_ranks_np(distance, near)
        return match, geo


def _distances_np(aerial, ground_chunk):
    """``2 - 2 * aerial ground_chunk^T`` [num_database, chunk] in aerial's dtype, in place."""
    distance = aerial @ np.asarray(ground_chunk, aerial.dtype).T
    distance *= -2
    distance += 2
    return distance


def _match_ranks_np(distance, start):
    """int [chunk]: entries of each column strictly below its own match's, row start + column."""
    columns = np.arange(distance.shape[1])
    positive = distance[start + columns, columns]
    return np.count_nonzero(distance < positive, axis=0)


def _geo_ranks_np(distance, near):
    """int [chunk]: position of each column's first near row in its stable sort (num_database if none)."""
    # argmin returns the first minimum: the nearby tile with the lowest index wins ties.
    first_near = np.where(near, distance, np.inf).argmin(axis=0)
    columns = np.arange(distance.shape[1])
    best = distance[first_near, columns]
    tied_before = (distance == best) & (np.arange(distance.shape[0])[:, np.newaxis] < first_near[np.newaxis, :])
    ranks = np.count_nonzero(distance < best, axis=0) + np.count_nonzero(tied_before, axis=0)
    return np.where(near[first_near, columns], ranks, distance.shape[0])


@tf.function(reduce_retracing=True)
def _distances_tf(aerial, ground_chunk):
    return 2.0 - 2.0 * tf.matmul(aerial, ground_chunk, transpose_b=True)


@tf.function(reduce_retracing=True)
def _match_ranks_tf(distance, start):
    columns = tf.range(tf.shape(distance, out_type=tf.int64)[1])
    positive = tf.gather_nd(distance, tf.stack([start + columns, columns], axis=1))
    return tf.reduce_sum(tf.cast(distance < positive, tf.int64), axis=0)


@tf.function(reduce_retracing=True)
def _geo_ranks_tf(distance, near):
    num_database = tf.shape(distance, out_type=tf.int64)[0]
    best = tf.reduce_min(tf.where(near, distance, tf.constant(np.inf, distance.dtype)), axis=0)
    # tf.argmin does not promise the first minimum; take the lowest nearby index explicitly.
    index = tf.range(num_database)[:, tf.newaxis]
    first_near = tf.reduce_min(tf.where(near & (distance == best), index, num_database), axis=0)
    closer = tf.cast(distance < best, tf.int64)
    tied_before = tf.cast((distance == best) & (index < first_near), tf.int64)
    ranks = tf.reduce_sum(closer + tied_before, axis=0)
    return tf.where(first_near < num_database, ranks, num_database)


class _MixedChunkRanks:
    """Exact ranks of a chunk from its float32 block and float64 rechecks (the module docstring)."""

    def __init__(self, ground, aerial, with_match, nearby, chunk_size, backend):
        self.ground, self.aerial, self.with_match, self.nearby = ground, aerial, with_match, nearby
        aerial32 = np.asarray(aerial, np.float32)
        if backend == "tensorflow":
            self.scores = _TensorflowScores(aerial32)
            self.input_roundoff = _tensorflow_input_roundoff()
        else:
            self.scores = _NumpyScores(aerial32, min(chunk_size, len(ground)))
            self.input_roundoff = _FLOAT32_ROUNDOFF
        self.aerial_norm_max = _row_norms(aerial).max(initial=0.0)

    def __call__(self, start, stop):
        """(int64 [c] one-to-one ranks or None, int64 [c] geo ranks or None) of queries start..stop."""
        ground_chunk = self.ground[start:stop]
        self.scores.compute(np.asarray(ground_chunk, np.float32))
        margin = recheck_margin(
            self.aerial_norm_max, _row_norms(ground_chunk), self.aerial.shape[1], self.input_roundoff
        )
        queries = np.arange(stop - start)
        match = geo = None
        if self.with_match:
            own_dot = _pair_dots64(self.aerial, ground_chunk, start + queries, queries)
            match = self._ranks_before(ground_chunk, start + queries, own_dot, margin, ties_count=False)
        if self.nearby is not None:
            first, first_dot = self._first_nearby(ground_chunk, start, stop, margin)
            has_nearby = first >= 0
            threshold_dot = np.where(has_nearby, first_dot, np.inf)
            geo = self._ranks_before(ground_chunk, first, threshold_dot, margin, ties_count=True)
            geo[~has_nearby] = len(self.aerial)
        return match, geo

    def _ranks_before(self, ground_chunk, threshold_tile, threshold_dot, margin, ties_count):
        """int64 [c]: ``#{k : D[k] < D_t}``, plus ``#{k < b : D[k] == D_t}`` if ``ties_count``, per query.

        Args:
            ground_chunk: [c, dim] the queries.
            threshold_tile: int [c] b, the tile that sets each query's threshold.
            threshold_dot: float64 [c] its float64 dot product t; ``D_t = fl(2 - 2 t)``. An infinite
                one counts nothing.
            margin: float64 [c] from ``recheck_margin``.
            ties_count: whether tiles before b that tie with it count (geo ranks) or not (one-to-one).
        """
        above, queries, tiles = self.scores.window(
            _float32_at_least(threshold_dot - margin), _float32_at_most(threshold_dot + margin)
        )
        others = tiles != threshold_tile[queries]  # b itself never counts
        queries, tiles = queries[others], tiles[others]
        distance = _distance64(_pair_dots64(self.aerial, ground_chunk, tiles, queries))
        threshold = _distance64(threshold_dot[queries])
        before = distance < threshold
        if ties_count:
            before |= (distance == threshold) & (tiles < threshold_tile[queries])
        return above + np.bincount(queries[before], minlength=len(threshold_dot))

    def _first_nearby(self, ground_chunk, start, stop, margin):
        """Per query, the nearby tile first in the float64 order and its float64 dot product.

        Only the nearby tiles whose float32 dot product is within 2 M of the best nearby one can
        have the smallest float64 distance; those are recomputed in float64 and the smallest
        ``(distance, index)`` wins.

        Returns:
            (int64 [c] tile index, -1 for a query with no nearby tile; float64 [c] its dot product).
        """
        first = np.full(stop - start, -1, np.int64)
        first_dot = np.zeros(stop - start)
        for queries, tiles in self.nearby.pairs(start, stop):
            score = self.scores.gather(queries, tiles).astype(np.float64)
            best_score = np.full(stop - start, -np.inf)
            np.maximum.at(best_score, queries, score)
            keep = score >= best_score[queries] - 2.0 * margin[queries]
            queries, tiles = queries[keep], tiles[keep]
            dots = _pair_dots64(self.aerial, ground_chunk, tiles, queries)
            order = np.lexsort((tiles, _distance64(dots), queries))
            leaders = order[np.r_[True, queries[order][1:] != queries[order][:-1]]] if len(order) else order
            first[queries[leaders]] = tiles[leaders]
            first_dot[queries[leaders]] = dots[leaders]
        return first, first_dot


class _NumpyScores:
    """The float32 block ``ground_chunk aerial^T`` [c, num_database] in reused buffers (numpy)."""

    def __init__(self, aerial32, chunk_size):
        self.aerial32 = aerial32
        self.block = np.empty((chunk_size, len(aerial32)), np.float32)
        self.at_most = np.empty(self.block.shape, bool)
        self.in_window = np.empty(self.block.shape, bool)
        self.num_queries = 0

    def compute(self, ground_chunk32):
        """One sgemm into the block for the [c, dim] float32 queries."""
        self.num_queries = len(ground_chunk32)
        np.matmul(ground_chunk32, self.aerial32.T, out=self.block[: self.num_queries])

    def window(self, low, high):
        """Entries above ``high`` and within ``[low, high]``, per query (float32 [c] bounds).

        Returns:
            (int64 [c] count of entries > high; int64 [m] queries and int64 [m] tiles of the entries
            with low <= entry <= high, grouped by query).
        """
        block = self.block[: self.num_queries]
        at_most = np.less_equal(block, high[:, np.newaxis], out=self.at_most[: self.num_queries])
        in_window = np.greater_equal(block, low[:, np.newaxis], out=self.in_window[: self.num_queries])
        in_window &= at_most
        above = block.shape[1] - np.count_nonzero(at_most, axis=1)
        queries, tiles = np.divmod(np.flatnonzero(in_window), block.shape[1])
        return above.astype(np.int64), queries, tiles

    def gather(self, queries, tiles):
        """float32 [m] entries of the block."""
        return self.block[queries, tiles]


class _TensorflowScores:
    """The float32 block ``ground_chunk aerial^T`` [c, num_database] as a tensor (tf.matmul)."""

    def __init__(self, aerial32):
        self.aerial32 = tf.convert_to_tensor(aerial32)
        self.block = None

    def compute(self, ground_chunk32):
        """One tf.matmul for the [c, dim] float32 queries."""
        self.block = _scores_tf(tf.convert_to_tensor(ground_chunk32), self.aerial32)

    def window(self, low, high):
        """As ``_NumpyScores.window``."""
        above, in_window = _window_tf(self.block, tf.convert_to_tensor(low), tf.convert_to_tensor(high))
        in_window = in_window.numpy()
        return above.numpy(), in_window[:, 0], in_window[:, 1]

    def gather(self, queries, tiles):
        """float32 [m] entries of the block."""
        return tf.gather_nd(self.block, np.stack([queries, tiles], axis=1)).numpy()


@tf.function(reduce_retracing=True)
def _scores_tf(ground_chunk, aerial):
    return tf.matmul(ground_chunk, aerial, transpose_b=True)


@tf.function(reduce_retracing=True)
def _window_tf(block, low, high):
    at_most = block <= high[:, tf.newaxis]
    above = tf.reduce_sum(tf.cast(~at_most, tf.int64), axis=1)
    return above, tf.where(at_most & (block >= low[:, tf.newaxis]))


def _tensorflow_input_roundoff():
    """Unit roundoff of tf.matmul's float32 inputs: TF32 (10-bit mantissa) on a GPU when enabled."""
    if tf.config.experimental.tensor_float_32_execution_enabled() and tf.config.list_logical_devices("GPU"):
        return _TF32_ROUNDOFF
    return _FLOAT32_ROUNDOFF


def _row_norms(descriptors):
    """float64 [n] L2 norms of the rows, a few rows at a time (small, reused temporaries)."""
    return np.concatenate(
        [
            np.sqrt(np.square(descriptors[start : start + _NORM_BATCH], dtype=np.float64).sum(axis=1))
            for start in range(0, len(descriptors), _NORM_BATCH)
        ]
        or [np.zeros(0)]
    )


def _pair_dots64(aerial, ground_chunk, aerial_rows, ground_rows):
    """float64 [m]: ``aerial[aerial_rows[j]] . ground_chunk[ground_rows[j]]`` in float64.

    Elementwise float64 products summed by numpy's pairwise sum along each row: a pair's value
    does not depend on where or with what else it is computed.
    """
    dots = np.empty(len(aerial_rows))
    products = np.empty((min(_RECHECK_BATCH, len(aerial_rows)), aerial.shape[1]))
    for start in range(0, len(aerial_rows), _RECHECK_BATCH):
        stop = min(start + _RECHECK_BATCH, len(aerial_rows))
        batch = np.multiply(
            aerial[aerial_rows[start:stop]],
            ground_chunk[ground_rows[start:stop]],
            out=products[: stop - start],
            dtype=np.float64,
        )
        dots[start:stop] = batch.sum(axis=1)
    return dots


def _distance64(dots):
    """The float64 path's ``fl(2 - 2 dot)``: ``dot * -2`` is exact, ``+ 2`` rounds once."""
    distance = dots * -2.0
    distance += 2.0
    return distance


def _float32_at_most(values):
    """float32 [c]: the largest float32 <= each float64 value (so ``x > result`` iff ``x > value``)."""
    rounded = values.astype(np.float32)
    return np.where(rounded > values, np.nextafter(rounded, np.float32(-np.inf)), rounded)


def _float32_at_least(values):
    """float32 [c]: the smallest float32 >= each float64 value (so ``x >= result`` iff ``x >= value``)."""
    rounded = values.astype(np.float32)
    return np.where(rounded < values, np.nextafter(rounded, np.float32(np.inf)), rounded)
