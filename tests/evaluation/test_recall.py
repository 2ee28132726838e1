"""Chunked recall vs brute-force loops written here, on the original's D = 2 - 2 S G^T."""

import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.evaluation import recall


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


def brute_force_geo_curve(ground, aerial, ground_utm, aerial_utm, max_k, radius_m):
    distance = original_distance(ground, aerial)
    curve = np.zeros(max_k)
    for i in range(ground.shape[0]):
        order = sorted(range(aerial.shape[0]), key=lambda k: (distance[k, i], k))
        for top_k in range(1, max_k + 1):
            if any(
                np.sum((aerial_utm[k] - ground_utm[i]) ** 2) < radius_m**2 for k in order[:top_k]
            ):
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


@pytest.mark.parametrize("dtype", ["float64", "float32"])
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
    np.testing.assert_array_equal(ranks, brute_force_ranks(ground, aerial, np.dtype(dtype)))
    # Queries 2 and 7 tie with two identical tiles: neither tile is strictly closer.
    assert ranks[2] == 0 and ranks[7] == 0


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tensorflow_backend_matches_numpy(dtype):
    rng = np.random.default_rng(11)
    exact_ground, exact_aerial = sign_rows(rng, 45), sign_rows(rng, 45)
    exact_aerial[4] = exact_aerial[9]
    for ground, aerial in [(exact_ground, exact_aerial), noisy_pairs(rng, 45, 8)]:
        np.testing.assert_array_equal(
            recall.match_ranks(ground, aerial, chunk_size=16, dtype=dtype, backend="tensorflow"),
            brute_force_ranks(ground, aerial, np.dtype(dtype)),
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


@pytest.mark.parametrize(
    "n,k", [(1, 1), (99, 1), (100, 2), (199, 2), (8884, 89), (92802, 929), (35532, 356)]
)
def test_top_one_percent_k(n, k):
    assert recall.top_one_percent_k(n) == k == int(n * 0.01) + 1


def test_summarize_percent_and_curve():
    ranks = np.array([0] * 120 + [1] * 40 + [4] * 20 + [9] * 10 + [150] * 60)  # n = 250
    summary = recall.summarize(ranks)
    assert set(summary) == {"r@1", "r@5", "r@10", "r@1%", "curve", "num_queries"}
    assert summary["num_queries"] == 250
    assert summary["r@1"] == pytest.approx(48.0)
    assert summary["r@5"] == pytest.approx(72.0)
    assert summary["r@10"] == pytest.approx(76.0)
    assert summary["r@1%"] == pytest.approx(64.0)  # K = 250 // 100 + 1 = 3
    np.testing.assert_allclose(summary["curve"], [48.0, 64.0, 64.0])


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
    curve = recall.geo_recall_curve(
        ground, aerial, ground_utm, aerial_utm, n, radius_m=radius_m, chunk_size=chunk_size
    )
    np.testing.assert_allclose(curve, expected, rtol=0, atol=1e-15)
    ranks = recall.geo_match_ranks(
        ground, aerial, ground_utm, aerial_utm, radius_m=radius_m, chunk_size=chunk_size
    )
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
        recall.geo_recall_curve(ground, aerial, ground_utm, aerial_utm, 5, chunk_size=7),
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
        curve = recall.geo_recall_curve(
            ground, aerial, ground_utm, aerial_utm, n, chunk_size=10, backend=backend
        )
        np.testing.assert_allclose(curve, expected, rtol=0, atol=1e-15)


def test_top_k_indices_sorted_with_stable_ties():
    rng = np.random.default_rng(4)
    ground, aerial = sign_rows(rng, 12, dim=4), sign_rows(rng, 40, dim=4)
    distance = original_distance(ground, aerial)
    expected = [sorted(range(40), key=lambda k: (distance[k, i], k))[:5] for i in range(12)]
    np.testing.assert_array_equal(recall.top_k_indices(ground, aerial, 5, chunk_size=5), expected)


def test_in_batch_recall_at_1_matches_numpy_under_xla():
    rng = np.random.default_rng(2)
    ground, aerial = sign_rows(rng, 32, dim=4), sign_rows(rng, 32, dim=4)
    ground[:8] = aerial[:8]
    distance = original_distance(ground, aerial).astype(np.float32)
    expected = np.mean(
        [not any(distance[k, i] < distance[i, i] for k in range(32)) for i in range(32)]
    )
    assert 0.0 < expected < 1.0
    compiled = tf.function(recall.recall_at_1, jit_compile=True)
    value = compiled(tf.constant(distance))
    assert value.dtype == tf.float32
    assert float(value) == pytest.approx(expected, abs=1e-7)
    assert float(recall.recall_at_1(distance)) == pytest.approx(expected, abs=1e-7)


def test_rejects_mismatched_inputs():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        recall.match_ranks(unit_rows(rng, 4, 8), unit_rows(rng, 5, 8))
    with pytest.raises(ValueError):
        recall.match_ranks(unit_rows(rng, 4, 8), unit_rows(rng, 4, 8), backend="jax")
    with pytest.raises(ValueError):
        recall.geo_match_ranks(
            unit_rows(rng, 4, 8), unit_rows(rng, 4, 8), np.zeros((4, 3)), np.zeros((4, 2))
        )
