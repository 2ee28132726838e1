"""Place recall@K (lists of positives per query) vs a brute-force search."""

import numpy as np
import pytest

from cvft_tf.evaluation.place_recall import first_positive_ranks, place_recall, positives_to_csr


def brute_force_recall(query, database, positives, ks):
    """SALAD's ``get_validation_recalls``: full sort per query, then 'a positive in the top K'."""
    correct = np.zeros(len(ks))
    for q, positive in enumerate(positives):
        order = np.argsort(((database - query[q]) ** 2).sum(axis=1), kind="stable")
        for i, k in enumerate(ks):
            if np.any(np.isin(order[:k], positive)):
                correct[i:] += 1
                break
    return dict(zip(ks, correct / len(positives)))


def random_case(seed, num_queries, num_database, dim=16):
    rng = np.random.default_rng(seed)
    database = rng.normal(size=(num_database, dim)).astype(np.float32)
    database /= np.linalg.norm(database, axis=1, keepdims=True)
    query = rng.normal(size=(num_queries, dim)).astype(np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    positives = [rng.choice(num_database, size=rng.integers(0, 5), replace=False) for _ in range(num_queries)]
    return query, database, positives


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_brute_force(seed, chunk_size):
    query, database, positives = random_case(seed, num_queries=23, num_database=40)
    assert any(p.size == 0 for p in positives)
    ks = (1, 2, 5, 10, 20)
    expected = brute_force_recall(query, database, positives, ks)
    got = place_recall(query, database, positives, ks, chunk_size=chunk_size)
    assert got == pytest.approx(expected, abs=1e-12)
    assert got[20] > got[1]


def test_ranks_count_strictly_closer_images_and_miss_without_positives():
    database = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [-1.0, 0.0]])
    query = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ranks = first_positive_ranks(query, database, [[2], [3, 1], []])
    np.testing.assert_array_equal(ranks, [0, 2, 4])  # a tie with image 0 is not closer
    recalls = place_recall(query, database, [[2], [3, 1], []], (1, 3))
    assert recalls == {1: pytest.approx(1 / 3), 3: pytest.approx(2 / 3)}


def test_csr_and_errors():
    offsets, indices = positives_to_csr([[4, 1], [], [0]], 5)
    np.testing.assert_array_equal(offsets, [0, 2, 2, 3])
    np.testing.assert_array_equal(indices, [4, 1, 0])
    with pytest.raises(ValueError, match="positive indices"):
        positives_to_csr([[5]], 5)
    with pytest.raises(ValueError, match="positive lists"):
        first_positive_ranks(np.zeros((2, 3)), np.zeros((4, 3)), [[0]])
