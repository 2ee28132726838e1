"""FAISS search against brute force, IVF-PQ recall, and the recall measure."""

import numpy as np
import pytest

from cvft_tf.localization import search

pytest.importorskip("faiss")


def unit(rows):
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def clustered(count, dimension, seed):
    """Unit vectors around 50 centres: neighbours that an approximate index can find."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dimension))
    return unit(centres[rng.integers(0, 50, count)] + 0.3 * rng.standard_normal((count, dimension)))


@pytest.mark.parametrize("count, dimension, k", [(1, 8, 1), (37, 16, 5), (500, 48, 10)])
def test_exact_search_is_brute_force(count, dimension, k):
    stored = unit(np.random.default_rng(count).standard_normal((count, dimension)))
    queries = unit(np.random.default_rng(7).standard_normal((9, dimension)))
    scores, ids = search.search(search.build(stored, "exact"), queries, k)
    brute = queries.astype(np.float64) @ stored.T.astype(np.float64)
    expected = np.argsort(-brute, axis=1, kind="stable")[:, : min(k, count)]
    np.testing.assert_array_equal(ids, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(brute, expected, axis=1), atol=1e-5)


def test_k_larger_than_the_index_returns_everything():
    stored = unit(np.eye(3, 4) + 0.1)
    _, ids = search.search(search.build(stored, "exact"), stored, 10)
    assert ids.shape == (3, 3) and sorted(ids[0]) == [0, 1, 2]


def test_ivfpq_finds_most_of_the_exact_neighbours_in_fewer_bytes(tmp_path):
    stored = clustered(4000, 64, seed=0)
    queries = clustered(50, 64, seed=1)
    exact = search.build(stored, "exact")
    approximate = search.build(stored, "ivfpq", nprobe=16)
    assert search.ivfpq_spec(64, 4000) == "IVF63,PQ8x6np,Refine(SQ8)"
    _, truth = search.search(exact, queries, 10)
    _, found = search.search(approximate, queries, 10)
    assert search.recall_at_k(found, truth, 10) >= 0.85
    # Re-ranking more candidates with the 8-bit descriptors recovers the rest (near-ties here).
    _, more = search.search(search.configure(approximate, nprobe=63, k_factor=16), queries, 10)
    assert search.recall_at_k(more, truth, 10) >= 0.95
    assert search.bytes_per_vector(exact) == 256 and search.bytes_per_vector(approximate) == 6 + 64
    search.write(approximate, str(tmp_path / "ivf.faiss"))
    _, again = search.search(search.read(str(tmp_path / "ivf.faiss"), nprobe=63, k_factor=16), queries, 10)
    np.testing.assert_array_equal(again, more)


def test_recall_at_k_counts_shared_ids():
    found = np.array([[1, 2, 3], [4, 5, 6]])
    exact = np.array([[3, 2, 9], [7, 8, 9]])
    assert search.recall_at_k(found, exact, 3) == pytest.approx((2 / 3 + 0) / 2)
    assert search.recall_at_k(found, exact, 1) == 0.0
