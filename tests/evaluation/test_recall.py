"""Chunked recall vs brute-force float64 loops written here, on the original's D = 2 - 2 S G^T."""

import numpy as np
import pytest

from cvft_tf.evaluation import recall


def geo_recall_curve(ground, aerial, ground_utm, aerial_utm, max_k, **kwargs):
    """CVACT_test r@K for K = 1..max_k (fractions): the library's geo ranks, then their curve."""
    return recall.recall_curve(recall.geo_match_ranks(ground, aerial, ground_utm, aerial_utm, **kwargs), max_k)


def unit_rows(rng, n, dim):
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def noisy_pairs(rng, n, dim, noise=2.0):
    """Ground descriptors near their aerial match, so ranks spread over 0..n-1."""
    aerial = unit_rows(rng, n, dim)
    ground = aerial + noise * unit_rows(rng, n, dim)
    return ground / np.linalg.norm(ground, axis=1, keepdims=True), aerial


def sign_rows(rng, n, dim=16):
    """Unit rows of +-1/4 (dim 16): every product and sum is exact, so ties are exact."""
    return rng.choice(np.float32([-0.25, 0.25]), size=(n, dim))


def near_tie_pairs(rng, num_clusters=7, cluster_size=9, main_dim=40, tiny_dim=8):
    """Pairs whose float64 distances are exact yet differ by far less than a float32 ulp.

    Entries are integers times 2**-16: shared "main" entries |.| < 2**-2 and "tiny" ones (aerial
    -3..3, ground -1..1 units). Products are multiples of 2**-32 and every sum has < 36
    significant bits, so the float64 products, sums and 2 - 2p are exact in any order, while
    float32 rounds them. A cluster's aerial tiles share their main entries, so a query's
    distances to them differ only through the tiny entries, by multiples of 2**-31 (a float32 ulp
    of D is 2**-23 or more): near-ties, exact ties (zero ground entries) and duplicated tiles.

    Returns:
        float32 ground [n, dim], float32 aerial [n, dim] and int cluster [n].
    """
    unit = 2.0**-16
    cluster = np.repeat(np.arange(num_clusters), cluster_size)
    base = rng.integers(-(2**14), 2**14, size=(num_clusters, main_dim))[cluster]
    aerial_tiny = rng.integers(-3, 4, size=(len(cluster), tiny_dim))
    aerial_tiny[1::cluster_size] = aerial_tiny[::cluster_size]  # tiles 0 and 1 of a cluster are equal
    ground_main = base + rng.integers(-(2**10), 2**10, size=base.shape)
    ground_tiny = rng.integers(-1, 2, size=(len(cluster), tiny_dim))
    aerial = np.concatenate([base, aerial_tiny], axis=1) * unit
    ground = np.concatenate([ground_main, ground_tiny], axis=1) * unit
    return ground.astype(np.float32), aerial.astype(np.float32), cluster


def cluster_positions(rng, cluster, spread_m=30.0):
    """Ground and aerial UTM positions [n, 2]: clusters 1 km apart, each within a spread_m square."""
    corner = np.stack([cluster * 1000.0 + 330_000.0, np.full(len(cluster), 5_600_000.0)], axis=1)
    return tuple(corner + rng.uniform(0.0, spread_m, size=corner.shape) for _ in range(2))


def original_distance(ground, aerial, dtype=np.float64):
    """The original's full matrix: D[k, i] between aerial k and ground i."""
    return 2 - 2 * np.matmul(aerial.astype(dtype), np.transpose(ground.astype(dtype)))


def brute_force_ranks(ground, aerial, dtype=np.float64):
    distance = original_distance(ground, aerial, dtype)
    n = distance.shape[0]
    ranks = np.zeros(n, np.int64)
    for i in range(n):
        for k in range(n):
            if distance[k, i] < distance[i, i]:
                ranks[i] += 1
    return ranks


def brute_force_geo_ranks(ground, aerial, ground_utm, aerial_utm, radius_m):
    distance = original_distance(ground, aerial)
    ranks = np.full(ground.shape[0], aerial.shape[0])
    for i in range(ground.shape[0]):
        order = sorted(range(aerial.shape[0]), key=lambda k: (distance[k, i], k))
        for position, k in enumerate(order):
            if np.sum((aerial_utm[k] - ground_utm[i]) ** 2) < radius_m**2:
                ranks[i] = position
                break
    return ranks


def brute_force_geo_curve(ground, aerial, ground_utm, aerial_utm, max_k, radius_m):
    distance = original_distance(ground, aerial)
    curve = np.zeros(max_k)
    for i in range(ground.shape[0]):
        order = sorted(range(aerial.shape[0]), key=lambda k: (distance[k, i], k))
        for top_k in range(1, max_k + 1):
            if any(np.sum((aerial_utm[k] - ground_utm[i]) ** 2) < radius_m**2 for k in order[:top_k]):
                curve[top_k - 1] += 1
    return curve / ground.shape[0]


@pytest.mark.parametrize("n,chunk_size", [(37, 8), (20, 64), (32, 32), (9, 1)])
def test_match_ranks_matches_brute_force(n, chunk_size):
    ground, aerial = noisy_pairs(np.random.default_rng(n), n, 8)
    expected = brute_force_ranks(ground, aerial)
    assert expected.max() > 0 and (expected == 0).any()
    ranks = recall.match_ranks(ground, aerial, chunk_size=chunk_size)
    assert ranks.dtype == np.int64
    np.testing.assert_array_equal(ranks, expected)


@pytest.mark.parametrize("dtype", ["mixed", "float64", "float32"])
@pytest.mark.parametrize("chunk_size", [7, 64])
def test_exact_ties_count_as_not_closer(dtype, chunk_size):
    rng = np.random.default_rng(5)
    aerial = sign_rows(rng, 50)
    ground = sign_rows(rng, 50)
    aerial[7] = aerial[2]
    ground[2] = aerial[2]
    ground[7] = aerial[2]
    aerial[30] = aerial[12]
    ground[12] = ground[30]
    distance = original_distance(ground, aerial)
    off_diagonal = ~np.eye(50, dtype=bool)
    assert (off_diagonal & (distance == np.diag(distance)[np.newaxis, :])).sum() > 50

    ranks = recall.match_ranks(ground, aerial, chunk_size=chunk_size, dtype=dtype)
    np.testing.assert_array_equal(ranks, brute_force_ranks(ground, aerial))
    # Queries 2 and 7 tie with two identical tiles: neither tile is strictly closer.
    assert ranks[2] == 0 and ranks[7] == 0


@pytest.mark.parametrize("dtype", ["mixed", "float64", "float32"])
def test_tensorflow_backend_matches_numpy(dtype):
    rng = np.random.default_rng(11)
    exact_ground, exact_aerial = sign_rows(rng, 45), sign_rows(rng, 45)
    exact_aerial[4] = exact_aerial[9]
    for ground, aerial in [(exact_ground, exact_aerial), noisy_pairs(rng, 45, 8)]:
        np.testing.assert_array_equal(
            recall.match_ranks(ground, aerial, chunk_size=16, dtype=dtype, backend="tensorflow"),
            brute_force_ranks(ground, aerial, np.float32 if dtype == "float32" else np.float64),
        )


def test_recall_curve_matches_counting():
    ranks = np.random.default_rng(0).integers(0, 40, size=123)
    max_k = 50
    expected = [np.mean([rank < k for rank in ranks]) for k in range(1, max_k + 1)]
    curve = recall.recall_curve(ranks, max_k)
    assert curve.shape == (max_k,)
    np.testing.assert_allclose(curve, expected, rtol=0, atol=1e-15)
    assert curve[-1] == 1.0
    np.testing.assert_array_equal(recall.recall_curve([0, 0, 3, 9], 2), [0.5, 0.5])


@pytest.mark.parametrize("n,k", [(1, 1), (99, 1), (100, 1), (199, 1), (200, 2), (8884, 88), (92802, 928), (35532, 355)])
def test_top_one_percent_k_of_the_test_scripts(n, k):
    # script/test_cvusa.py: val_accuracy[0, i] = validate(dist, i) counts rank < i for
    # i in range(int(N * 0.01) + 1); top-1% is the last entry, so K = int(N * 0.01).
    assert recall.top_one_percent_k(n) == recall.top_one_percent_k(n, recall.TOP_ONE_PERCENT_TEST) == k
    assert k == max(1, int(n * 0.01))


@pytest.mark.parametrize("n,k", [(1, 1), (99, 1), (100, 2), (199, 2), (200, 3), (8884, 89), (92802, 929)])
def test_top_one_percent_k_of_the_training_validation(n, k):
    # script/train_cvusa.py validate: rank < int(N * 0.01) + 1.
    assert recall.top_one_percent_k(n, recall.TOP_ONE_PERCENT_TRAIN) == k == int(n * 0.01) + 1


def test_top_one_percent_rejects_unknown_definition():
    with pytest.raises(ValueError):
        recall.top_one_percent_k(100, "paper")


def test_summarize_percent_and_curve():
    ranks = np.array([0] * 120 + [1] * 40 + [2] * 5 + [4] * 15 + [9] * 10 + [150] * 60)  # n = 250
    summary = recall.summarize(ranks)
    assert set(summary) == {"r@1", "r@5", "r@10", "r@1%", "curve", "num_queries"}
    assert summary["num_queries"] == 250
    assert summary["r@1"] == pytest.approx(48.0)
    assert summary["r@5"] == pytest.approx(72.0)
    assert summary["r@10"] == pytest.approx(76.0)
    assert summary["r@1%"] == pytest.approx(64.0)  # K = 250 // 100 = 2
    np.testing.assert_allclose(summary["curve"], [48.0, 64.0])
    train = recall.summarize(ranks, one_percent_definition=recall.TOP_ONE_PERCENT_TRAIN)
    assert train["r@1%"] == pytest.approx(66.0)  # K = 3
    np.testing.assert_allclose(train["curve"], [48.0, 64.0, 66.0])
    assert recall.summarize(ranks, num_database=8884)["r@1%"] == pytest.approx(100.0 - 24.0)  # K = 88


def test_chance_levels_follow_the_definition():
    assert recall.chance_levels(8884)["r@1%"] == pytest.approx(100.0 * 88 / 8884)
    assert recall.chance_levels(8884, recall.TOP_ONE_PERCENT_TRAIN)["r@1%"] == pytest.approx(100.0 * 89 / 8884)
    assert recall.chance_levels(100) == pytest.approx({"r@1": 1.0, "r@5": 5.0, "r@10": 10.0, "r@1%": 1.0})


@pytest.mark.parametrize("chunk_size", [6, 100])
@pytest.mark.parametrize("radius_m", [25.0, 5.0])
def test_geo_recall_matches_brute_force(chunk_size, radius_m):
    rng = np.random.default_rng(3)
    n = 40
    ground, aerial = noisy_pairs(rng, n, 8)
    aerial_utm = rng.uniform(0.0, 120.0, size=(n, 2)) + [330_000.0, 5_600_000.0]
    ground_utm = aerial_utm + rng.normal(scale=2.0, size=(n, 2))
    ground_utm[0] += 1000.0  # no tile near query 0: never correct
    expected = brute_force_geo_curve(ground, aerial, ground_utm, aerial_utm, n, radius_m)
    curve = geo_recall_curve(ground, aerial, ground_utm, aerial_utm, n, radius_m=radius_m, chunk_size=chunk_size)
    np.testing.assert_allclose(curve, expected, rtol=0, atol=1e-15)
    ranks = recall.geo_match_ranks(ground, aerial, ground_utm, aerial_utm, radius_m=radius_m, chunk_size=chunk_size)
    assert ranks[0] == n
    np.testing.assert_array_equal(
        recall.geo_match_ranks(
            ground,
            aerial,
            ground_utm,
            aerial_utm,
            radius_m=radius_m,
            chunk_size=chunk_size,
            backend="tensorflow",
        ),
        ranks,
    )


def test_geo_recall_counts_a_wrong_tile_nearby():
    rng = np.random.default_rng(8)
    n = 30
    ground, aerial = unit_rows(rng, n, 32), unit_rows(rng, n, 32)
    aerial_utm = np.stack([np.arange(n) * 100.0, np.zeros(n)], axis=1)
    ground_utm = aerial_utm.copy()
    ground[0] = aerial[1]  # query 0 retrieves tile 1 first, which is not its own tile...
    aerial_utm[1] = [0.0, 10.0]  # ...but lies 10 m from query 0.
    assert recall.match_ranks(ground, aerial)[0] >= 1
    assert recall.geo_match_ranks(ground, aerial, ground_utm, aerial_utm)[0] == 0
    assert recall.geo_match_ranks(ground, aerial, ground_utm, aerial_utm, radius_m=5.0)[0] >= 1
    expected = brute_force_geo_curve(ground, aerial, ground_utm, aerial_utm, 5, 25.0)
    np.testing.assert_allclose(
        geo_recall_curve(ground, aerial, ground_utm, aerial_utm, 5, chunk_size=7),
        expected,
        rtol=0,
        atol=1e-15,
    )


def test_geo_ties_are_broken_by_tile_index():
    rng = np.random.default_rng(21)
    n = 36
    ground, aerial = sign_rows(rng, n, dim=4), sign_rows(rng, n, dim=4)  # heavy ties
    aerial_utm = rng.uniform(0.0, 60.0, size=(n, 2))
    ground_utm = aerial_utm + rng.normal(scale=3.0, size=(n, 2))
    expected = brute_force_geo_curve(ground, aerial, ground_utm, aerial_utm, n, 25.0)
    for backend in ("numpy", "tensorflow"):
        curve = geo_recall_curve(ground, aerial, ground_utm, aerial_utm, n, chunk_size=10, backend=backend)
        np.testing.assert_allclose(curve, expected, rtol=0, atol=1e-15)


def test_top_k_indices_sorted_with_stable_ties():
    rng = np.random.default_rng(4)
    ground, aerial = sign_rows(rng, 12, dim=4), sign_rows(rng, 40, dim=4)
    distance = original_distance(ground, aerial)
    expected = [sorted(range(40), key=lambda k: (distance[k, i], k))[:5] for i in range(12)]
    np.testing.assert_array_equal(recall.top_k_indices(ground, aerial, 5, chunk_size=5), expected)


@pytest.mark.parametrize("backend", ["numpy", "tensorflow"])
@pytest.mark.parametrize("chunk_size", [8, 10, 64])
def test_mixed_ranks_are_exact_on_near_ties(backend, chunk_size):
    ground, aerial, _ = near_tie_pairs(np.random.default_rng(chunk_size))
    distance = original_distance(ground, aerial)
    own = np.diag(distance)[np.newaxis, :]
    gap = np.abs(distance - own)
    off_diagonal = ~np.eye(len(distance), dtype=bool)
    within_ulp = (gap > 0) & (gap <= np.spacing(own.astype(np.float32)))
    assert (off_diagonal & within_ulp).sum() > 200 and (off_diagonal & (gap == 0)).sum() > 20
    assert len(ground) % chunk_size or chunk_size > len(ground)

    ranks = recall.match_ranks(ground, aerial, chunk_size=chunk_size, backend=backend)
    np.testing.assert_array_equal(ranks, brute_force_ranks(ground, aerial))


def test_float32_alone_misranks_near_ties():
    # The data of the exactness test: without the float64 recheck these ranks would be wrong.
    ground, aerial, _ = near_tie_pairs(np.random.default_rng(8))
    expected = brute_force_ranks(ground, aerial)
    plain_float32 = recall.match_ranks(ground, aerial, dtype="float32")
    assert (plain_float32 != expected).sum() > 10
    np.testing.assert_array_equal(recall.match_ranks(ground, aerial), expected)


@pytest.mark.parametrize("backend", ["numpy", "tensorflow"])
@pytest.mark.parametrize("radius_m", [25.0, 10.0])
def test_mixed_geo_ranks_are_exact_on_near_ties(backend, radius_m):
    rng = np.random.default_rng(13)
    ground, aerial, cluster = near_tie_pairs(rng)
    ground_utm, aerial_utm = cluster_positions(rng, cluster)
    ground_utm[3] += 500.0  # no tile near query 3
    expected = brute_force_geo_ranks(ground, aerial, ground_utm, aerial_utm, radius_m)
    assert expected[3] == len(aerial) and (expected > 0).sum() > 10
    distance = original_distance(ground, aerial)
    queries = np.flatnonzero(expected < len(aerial))
    first_distance = np.sort(distance, axis=0)[expected[queries], queries]
    assert (expected[queries] > (distance[:, queries] < first_distance).sum(axis=0)).sum() >= 5  # tied before
    ranks = recall.geo_match_ranks(
        ground, aerial, ground_utm, aerial_utm, radius_m=radius_m, chunk_size=10, backend=backend
    )
    np.testing.assert_array_equal(ranks, expected)
    plain = recall.geo_match_ranks(ground, aerial, ground_utm, aerial_utm, radius_m=radius_m, dtype="float64")
    np.testing.assert_array_equal(plain, expected)


def test_mixed_ranks_of_float64_inputs_match_the_float64_path():
    # Entries that float32 cannot hold (26-bit integers times 2**-26); products stay exact in float64.
    rng = np.random.default_rng(17)
    cluster = np.repeat(np.arange(5), 6)
    base = rng.integers(-(2**25), 2**25, size=(5, 4))[cluster]
    aerial = np.concatenate([base, rng.integers(-3, 4, size=(30, 2))], axis=1) * 2.0**-26
    ground = np.concatenate(
        [base + rng.integers(-(2**20), 2**20, size=base.shape), rng.integers(-1, 2, size=(30, 2))], axis=1
    )
    ground = ground * 2.0**-26
    assert not np.array_equal(aerial.astype(np.float32), aerial)
    expected = brute_force_ranks(ground, aerial)
    assert expected.max() > 0
    np.testing.assert_array_equal(recall.match_ranks(ground, aerial, chunk_size=7), expected)
    np.testing.assert_array_equal(recall.match_ranks(ground, aerial, chunk_size=7, dtype="float64"), expected)


def test_mixed_path_rechecks_only_the_window(monkeypatch):
    rechecked = []
    pair_dots64 = recall._pair_dots64

    def counting(aerial, ground_chunk, aerial_rows, ground_rows):
        rechecked.append(len(aerial_rows))
        return pair_dots64(aerial, ground_chunk, aerial_rows, ground_rows)

    monkeypatch.setattr(recall, "_pair_dots64", counting)
    ground, aerial = noisy_pairs(np.random.default_rng(1), 300, 64, noise=0.5)
    ranks = recall.match_ranks(ground, aerial, chunk_size=64)
    np.testing.assert_array_equal(ranks, brute_force_ranks(ground, aerial))
    assert 300 <= sum(rechecked) < 300 + 0.01 * 300**2  # each own pair, plus the few near ones


def test_recheck_margin_bounds_the_float32_error():
    rng = np.random.default_rng(6)
    ground, aerial = unit_rows(rng, 64, 4096), 3.0 * unit_rows(rng, 256, 4096)  # norms 1 and 3
    float32 = ground @ aerial.T
    float64 = ground.astype(np.float64) @ aerial.astype(np.float64).T
    margin = recall.recheck_margin(3.0, np.ones(64), 4096)
    assert np.all(np.abs(float32 - float64) <= margin[:, np.newaxis])
    assert margin == pytest.approx(np.full(64, 3.0 * 4096 * 2.0**-24), rel=2e-3)
    with pytest.raises(ValueError):
        recall.recheck_margin(np.inf, np.ones(2), 8)


def test_split_ranks_share_one_product_per_chunk(monkeypatch):
    rng = np.random.default_rng(12)
    ground, aerial, cluster = near_tie_pairs(rng)
    ground_utm, aerial_utm = cluster_positions(rng, cluster)
    products = []
    compute = recall._NumpyScores.compute
    monkeypatch.setattr(recall._NumpyScores, "compute", lambda self, g: products.append(len(g)) or compute(self, g))
    split = recall.split_ranks(ground, aerial, ground_utm, aerial_utm, radius_m=20.0, chunk_size=25)
    assert products == [25, 25, 13]
    np.testing.assert_array_equal(split.match, brute_force_ranks(ground, aerial))
    np.testing.assert_array_equal(split.geo, brute_force_geo_ranks(ground, aerial, ground_utm, aerial_utm, 20.0))
    assert recall.split_ranks(ground, aerial, chunk_size=25).geo is None
    with pytest.raises(ValueError):
        recall.split_ranks(ground, aerial, ground_utm, None)


def test_score_summarizes_both_ranks_of_one_pass():
    from cvft_tf.evaluation import embed, scoring

    rng = np.random.default_rng(14)
    ground, aerial, cluster = near_tie_pairs(rng)
    ground_utm, _ = cluster_positions(rng, cluster)
    metrics = scoring.score(embed.Embeddings(ground, aerial, ground_utm), chunk_size=16, geo_radius_m=20.0)
    assert metrics["r@1%"] == metrics["r@1"]  # n = 63: K = 1
    expected = recall.summarize(brute_force_ranks(ground, aerial))
    assert {key: metrics[key] for key in expected} == expected
    geo = brute_force_geo_ranks(ground, aerial, ground_utm, ground_utm, 20.0)
    assert metrics["geo"] == dict(recall.summarize(geo), radius_m=20.0)
    train = scoring.score(embed.Embeddings(ground, aerial), one_percent_definition=recall.TOP_ONE_PERCENT_TRAIN)
    assert len(train["curve"]) == 1 and "geo" not in train


def test_score_on_the_tensorflow_backend_is_the_numpy_score():
    from cvft_tf.evaluation import embed, scoring

    rng = np.random.default_rng(15)
    ground, aerial, cluster = near_tie_pairs(rng)
    ground_utm, _ = cluster_positions(rng, cluster)
    embeddings = embed.Embeddings(ground, aerial, ground_utm)
    on_numpy = scoring.score(embeddings, chunk_size=16, geo_radius_m=20.0)
    assert scoring.score(embeddings, chunk_size=16, geo_radius_m=20.0, backend="tensorflow") == on_numpy


def test_rejects_mismatched_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        recall.match_ranks(unit_rows(rng, 4, 8), unit_rows(rng, 5, 8))
    with pytest.raises(ValueError):
        recall.match_ranks(unit_rows(rng, 4, 8), unit_rows(rng, 4, 8), backend="jax")
    with pytest.raises(ValueError):
        recall.geo_match_ranks(unit_rows(rng, 4, 8), unit_rows(rng, 4, 8), np.zeros((4, 3)), np.zeros((4, 2)))
