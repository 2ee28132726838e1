"""Place recall@K (lists of positives per query) vs a brute-force search written here."""

import numpy as np
import pytest

from cvft_tf.evaluation.place_recall import nearest_database, place_recall, recall_at_k


def brute_force_nearest(query, database, k):
    """Full float64 distance matrix from differences, stable argsort (ties: lower index first)."""
    distance = ((query[:, None, :].astype(np.float64) - database[None, :, :]) ** 2).sum(axis=-1)
    return np.argsort(distance, axis=1, kind="stable")[:, :k]


def brute_force_recall(query, database, positives, ks):
    """SALAD's ``get_validation_recalls`` loop over the brute-force ranking."""
    order = brute_force_nearest(query, database, database.shape[0])
    correct = np.zeros(len(ks))
    for q, positive in enumerate(positives):
        for i, k in enumerate(ks):
            if np.any(np.isin(order[q, :k], positive)):
                correct[i:] += 1
                break
    return dict(zip(ks, correct / len(positives)))


def random_case(seed, num_queries, num_database, dim=16):
    rng = np.random.default_rng(seed)
    database = rng.normal(size=(num_database, dim))
    database /= np.linalg.norm(database, axis=1, keepdims=True)
    query = rng.normal(size=(num_queries, dim))
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    positives = [rng.choice(num_database, size=rng.integers(0, 5), replace=False) for _ in range(num_queries)]
    return query, database, positives


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(seed, chunk_size):
    query, database, positives = random_case(seed, num_queries=23, num_database=40)
    assert any(p.size == 0 for p in positives)
    indices, distances = nearest_database(query, database, 12, chunk_size=chunk_size, dtype="float64")
    np.testing.assert_array_equal(indices, brute_force_nearest(query, database, 12))
    expected_distances = ((query[:, None] - database[indices]) ** 2).sum(axis=-1)
    np.testing.assert_allclose(distances, expected_distances, atol=1e-12)
    ks = (1, 2, 5, 10, 20)
    expected = brute_force_recall(query, database, positives, ks)
    got = place_recall(query.astype(np.float32), database.astype(np.float32), positives, ks, chunk_size=chunk_size)
    assert got == pytest.approx(expected, abs=1e-12)
    assert got[20] > got[1]


def test_ties_go_to_the_lower_index_and_queries_without_positives_miss():
    # Small integers: every distance is exact in float32, so the ties are real ties.
    database = np.array([[1, 0], [0, 1], [1, 0], [-1, 0], [1, 0], [0, 1]], np.float32)
    query = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], np.float32)
    indices, distances = nearest_database(query, database, 4, chunk_size=3)
    np.testing.assert_array_equal(indices, [[0, 2, 4, 1], [0, 2, 4, 1], [1, 5, 0, 2], [1, 5, 0, 2]])
    np.testing.assert_array_equal(distances, [[0, 0, 0, 2]] * 2 + [[0, 0, 2, 2]] * 2)
    np.testing.assert_array_equal(indices, brute_force_nearest(query, database, 4))
    positives = [[2], [4, 3], [], [0]]
    recalls = place_recall(query, database, positives, (1, 2, 3, 10))
    # query 0: its positive 2 is tied with 0, which comes first -> found at K=2; query 1 at K=3;
    # query 2 never (no positives); query 3 at K=3 (behind 1 and 5).
    assert recalls == {1: 0.0, 2: 0.25, 3: 0.75, 10: 0.75}
    assert recalls == pytest.approx(brute_force_recall(query, database, positives, (1, 2, 3, 10)))


def test_k_beyond_the_database_and_errors():
    query, database, positives = random_case(3, num_queries=5, num_database=4)
    indices, _ = nearest_database(query, database, 10)
    assert indices.shape == (5, 4)
    np.testing.assert_array_equal(np.sort(indices, axis=1), np.tile(np.arange(4), (5, 1)))
    assert recall_at_k(indices, [[0], [1], [2], [3], []], (1, 10))[10] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="positive lists"):
        place_recall(np.zeros((2, 3)), np.zeros((4, 3)), [[0]])
    with pytest.raises(ValueError, match="equal dim"):
        nearest_database(np.zeros((2, 3)), np.zeros((4, 2)), 1)
    database[1, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        nearest_database(query, database, 1)
