"""Chunked, vectorised ranks (cvft_tf.evaluation.recall) vs per-query loops, side by side.

Three ways to get every query's rank, all with D = 2 - 2 * S G^T in float64:
- "per-query loop": one matrix-vector product and one count per ground query;
- "original": the original code, the whole N x N matrix, then a Python loop over columns;
- "chunked": ``recall.match_ranks``, a [N, chunk] block per step and one vectorised count
  (numpy, and the same with the TensorFlow backend).
All must give identical ranks; the script prints their times and the ratios to "chunked".
Not a test: run it by hand, e.g.

    python benchmarks/recall_benchmark.py --num_pairs=4000 --dim=4096
"""

import time

import numpy as np
from absl import app, flags

from cvft_tf.evaluation import recall

_NUM_PAIRS = flags.DEFINE_integer("num_pairs", 4000, "Number of ground/aerial pairs N.")
_DIM = flags.DEFINE_integer("dim", 4096, "Descriptor size (4096 in CVFT).")
_CHUNK_SIZE = flags.DEFINE_integer("chunk_size", recall.DEFAULT_CHUNK_SIZE, "Queries per chunk.")
_REPEATS = flags.DEFINE_integer("repeats", 1, "Timed runs per method; the best is kept.")


def per_query_loop_ranks(ground, aerial):
    aerial = aerial.astype(np.float64)
    ranks = np.empty(ground.shape[0], np.int64)
    for i in range(ground.shape[0]):
        distance = 2 - 2 * (aerial @ ground[i].astype(np.float64))
        ranks[i] = np.sum(distance < distance[i])
    return ranks


def original_ranks(ground, aerial):
    distance = 2 - 2 * np.matmul(aerial.astype(np.float64), ground.astype(np.float64).T)
    ranks = np.empty(ground.shape[0], np.int64)
    for i in range(distance.shape[0]):
        ranks[i] = np.sum(distance[:, i] < distance[i, i])
    return ranks


def best_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    n, dim = _NUM_PAIRS.value, _DIM.value
    aerial = rng.normal(size=(n, dim)).astype(np.float32)
    aerial /= np.linalg.norm(aerial, axis=1, keepdims=True)
    ground = aerial + 0.3 * rng.normal(size=(n, dim)).astype(np.float32)
    ground /= np.linalg.norm(ground, axis=1, keepdims=True)
    chunk_size = _CHUNK_SIZE.value

    # One untimed call traces the TensorFlow chunk functions.
    recall.match_ranks(ground[:8], aerial[:8], chunk_size=4, backend="tensorflow")
    methods = {
        "per-query loop": lambda: per_query_loop_ranks(ground, aerial),
        "original (N x N + loop)": lambda: original_ranks(ground, aerial),
        "chunked numpy": lambda: recall.match_ranks(ground, aerial, chunk_size=chunk_size),
        "chunked tensorflow": lambda: recall.match_ranks(
            ground, aerial, chunk_size=chunk_size, backend="tensorflow"
        ),
    }
    timings = {}
    reference = None
    for name, fn in methods.items():
        timings[name], ranks = best_time(fn, _REPEATS.value)
        if reference is None:
            reference = ranks
        elif not np.array_equal(ranks, reference):
            raise AssertionError(f"{name} ranks differ from the per-query loop")

    baseline = timings["chunked numpy"]
    print(f"N={n} dim={dim} chunk={chunk_size} float64, r@1={np.mean(reference < 1):.4f}")
    for name, seconds in timings.items():
        print(f"{name:>26s}: {seconds:8.3f} s  ({seconds / baseline:6.2f} x chunked numpy)")


if __name__ == "__main__":
    app.run(main)
