"""Exact ranks at N = 8,884 (CVUSA) and N = 92,802 (CVACT_test): original vs port vs float32 floor.

Three ways to the ranks of D = 2 - 2 S G^T, side by side (see docs/evaluation.md):

- "original": the original's test script (``script/test_cvusa.py``): float64 descriptor buffers,
  the whole N x N float64 matrix, then ``validate(dist, i)`` for i in range(int(0.01 N) + 1),
  each a Python loop over the N columns;
- "port default": ``recall.match_ranks``' default path, a float32 block per chunk of queries plus
  the float64 recheck of the entries near each query's own distance (exact float64 ranks);
- "float32 GEMM floor": only the float32 products of the same chunks, into the same buffer.

Descriptors are random unit rows: aerial = normalised Gaussian, ground = normalised (aerial +
``noise`` * Gaussian), so that each query's match stands out as with a trained model (with
unrelated descriptors, ``--noise`` large, about 1% of the block is rechecked).

Times (wall clock; the machine may be shared): the port and the floor run ``--repeats`` times,
alternately, and a method's time is its fastest setup + first chunk (which pays the one-time
costs) plus the other queries at the fastest per-query pace among its later chunks. When the
runs at a size would take more than ``--budget_s`` (estimated from two chunks of the floor), only
the first ``--subset_chunks`` chunks of queries run, against the whole gallery, and the same
formula extrapolates to N. The original's float64 product is timed the same way (one run); its
per-K loop is measured when its N x N matrix fits in ``--memory_gb``, and otherwise scaled from
the cost per matrix entry measured at the smaller N. The output says which. Memory: peak of the
numpy allocations traced by ``tracemalloc`` (BLAS's own buffers excluded) beyond the float32
descriptors, over setup + one chunk for the port and the floor (their steady state); the
original's is measured when it runs and otherwise is its N x N float64 matrix plus its float64
descriptor buffers. Not a test: run it by hand, e.g.

    python benchmarks/recall_benchmark.py --sizes=8884,92802
"""

import collections
import os
import time
import tracemalloc

import numpy as np
from absl import app, flags

from cvft_tf.evaluation import recall

_SIZES = flags.DEFINE_list("sizes", ["8884", "92802"], "Numbers of ground/aerial pairs N.")
_DIM = flags.DEFINE_integer("dim", 4096, "Descriptor size (4096 in CVFT).")
_CHUNK_SIZE = flags.DEFINE_integer("chunk_size", recall.DEFAULT_CHUNK_SIZE, "Queries per chunk.")
_NOISE = flags.DEFINE_float("noise", 0.3, "Ground = unit(aerial + noise * Gaussian).")
_BUDGET_S = flags.DEFINE_float("budget_s", 600.0, "Longest full run per method; beyond it, a subset.")
_SUBSET_CHUNKS = flags.DEFINE_integer("subset_chunks", 3, "Chunks of queries timed when extrapolating.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs of the port and the floor, alternated; the best is kept.")
_MEMORY_GB = flags.DEFINE_float("memory_gb", 20.0, "RAM usable for the original's N x N matrix.")

GB = 1e9


def random_pairs(num_pairs, dim, noise, seed=0, block=4096):
    """float32 ground, aerial [num_pairs, dim] unit rows, generated a block of rows at a time."""
    rng = np.random.default_rng(seed)
    ground = np.empty((num_pairs, dim), np.float32)
    aerial = np.empty((num_pairs, dim), np.float32)
    for start in range(0, num_pairs, block):
        rows = aerial[start : start + block]
        rows[:] = rng.standard_normal(rows.shape, dtype=np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        query = ground[start : start + block]
        query[:] = rows + noise * rng.standard_normal(rows.shape, dtype=np.float32)
        query /= np.linalg.norm(query, axis=1, keepdims=True)
    return ground, aerial


def validate(dist_array, top_k):
    """The original's ``validate`` (script/test_cvusa.py): fraction of queries with rank < top_k."""
    accuracy = 0.0
    data_amount = 0.0
    for i in range(dist_array.shape[0]):
        gt_dist = dist_array[i, i]
        prediction = np.sum(dist_array[:, i] < gt_dist)
        if prediction < top_k:
            accuracy += 1.0
        data_amount += 1.0
    accuracy /= data_amount
    return accuracy


def original_matrix(ground, aerial):
    """The original's float64 buffers and ``2 - 2 * matmul(sat, grd^T)``, [N, N]."""
    sat_global_descriptor = np.zeros(aerial.shape)
    grd_global_descriptor = np.zeros(ground.shape)
    sat_global_descriptor[:] = aerial
    grd_global_descriptor[:] = ground
    return 2 - 2 * np.matmul(sat_global_descriptor, np.transpose(grd_global_descriptor))


def timed(fn):
    """(seconds, result) of one run."""
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def traced_peak(fn):
    """(bytes, result): peak of the traced allocations made while ``fn`` runs."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak, result


def timed_and_traced(fn):
    """((seconds, result), peak bytes) of one traced run."""
    return traced_peak(lambda: timed(fn))[::-1]


def counting_rechecks(fn):
    """(result, number of float64 dot products the port computed) of one run."""
    counts = []
    pair_dots64 = recall._pair_dots64
    recall._pair_dots64 = lambda aerial, ground, rows, columns: (
        counts.append(len(rows)) or pair_dots64(aerial, ground, rows, columns)
    )
    try:
        return fn(), sum(counts)
    finally:
        recall._pair_dots64 = pair_dots64


def loop_seconds_per_entry(n=8192):
    """Seconds per matrix entry of the original's ``validate`` on an n x n float64 matrix."""
    distance = np.random.default_rng(1).random((n, n))
    seconds, _ = timed(lambda: validate(distance, 1))
    return seconds / (n * n)


def chunk_bounds(num_queries, chunk_size):
    """[(start, stop)] of the chunks of queries."""
    return [(start, min(start + chunk_size, num_queries)) for start in range(0, num_queries, chunk_size)]


def port_method(ground, aerial, chunk_size):
    """(setup, step) of the default path's work in ``recall.match_ranks``; step gives ranks."""
    return (
        lambda: recall._MixedChunkRanks(ground, aerial, True, None, chunk_size, "numpy"),
        lambda chunk_ranks, start, stop: chunk_ranks(start, stop)[0],
    )


def floor_method(ground, aerial, chunk_size):
    """(setup, step): one float32 GEMM per chunk into a reused [chunk, N] buffer, as the port's."""
    return (
        lambda: np.empty((min(chunk_size, len(ground)), len(aerial)), np.float32),
        lambda block, start, stop: np.matmul(ground[start:stop], aerial.T, out=block[: stop - start]),
    )


def float64_method(ground, aerial):
    """(setup, step): the original's float64 distances and ranks, a block of queries at a time."""

    def ranks(aerial64, start, stop):
        distance = 2 - 2 * np.matmul(aerial64, ground[start:stop].astype(np.float64).T)
        own = distance[np.arange(start, stop), np.arange(stop - start)]
        return np.count_nonzero(distance < own, axis=0)

    return lambda: aerial.astype(np.float64), ranks


def run_chunks(method, chunks):
    """Runs ``setup`` once then ``step`` per chunk.

    Returns:
        (setup seconds, list of seconds per chunk, list of the steps' results).
    """
    setup, step = method
    setup_seconds, state = timed(setup)
    seconds, results = zip(*[timed(lambda: step(state, start, stop)) for start, stop in chunks])
    return setup_seconds, list(seconds), list(results)


def full_run_seconds(runs, chunks, num_queries):
    """Seconds for all queries from repeated runs over ``chunks``, robust to a busy machine.

    The fastest setup + first chunk (it pays the one-time costs: the first touch of the buffers),
    then the other queries at the fastest per-query pace among the later chunks of all runs.

    Args:
        runs: [(setup seconds, [seconds per chunk])], one per run.
        chunks: [(start, stop)] the chunks each run went through.
        num_queries: N.
    """
    start_seconds = min(setup + chunk_seconds[0] for setup, chunk_seconds in runs)
    paces = [
        seconds / (stop - start)
        for _, chunk_seconds in runs
        for seconds, (start, stop) in zip(chunk_seconds[1:], chunks[1:])
    ]
    return start_seconds + min(paces) * (num_queries - chunks[0][1])


Row = collections.namedtuple("Row", ["name", "seconds", "peak_bytes", "how"])
"""One line of the table: seconds, peak bytes and how they were obtained."""


def run_size(n, dim, chunk_size, per_entry_loop_s):
    """Measures the three methods at N = n.

    Returns:
        (three ``Row``, seconds per entry of the original's loop, a line on the ranks' check,
        bytes of the float32 descriptors).
    """
    ground, aerial = random_pairs(n, dim, _NOISE.value)
    all_chunks = chunk_bounds(n, chunk_size)
    trial = all_chunks[:2]
    floor_estimate = full_run_seconds([run_chunks(floor_method(ground, aerial, chunk_size), trial)[:2]], trial, n)
    # The port, the floor (both repeated) and the float64 GEMM (about twice the floor's time).
    subset = (2 * _REPEATS.value + 2) * floor_estimate > _BUDGET_S.value
    chunks = all_chunks[: _SUBSET_CHUNKS.value] if subset else all_chunks
    queries = chunks[-1][1]
    ran = f"first {queries:,} of {n:,} queries run" if subset else f"all {n:,} queries run"
    how = f"{ran}; setup + first chunk + the rest at the fastest chunk's pace, {_REPEATS.value} interleaved runs"

    methods = {"port": port_method(ground, aerial, chunk_size), "floor": floor_method(ground, aerial, chunk_size)}
    runs = {name: [] for name in methods}
    (_, _, port_chunks), rechecks = counting_rechecks(lambda: run_chunks(methods["port"], chunks))
    ranks = np.concatenate(port_chunks)
    for _ in range(_REPEATS.value):
        for name, method in methods.items():
            runs[name].append(run_chunks(method, chunks)[:2])
    seconds = {name: full_run_seconds(runs[name], chunks, n) for name in methods}
    peaks = {name: traced_peak(lambda: run_chunks(method, chunks[:1]))[0] for name, method in methods.items()}
    recheck_note = f"; {rechecks / queries - 1:.1f} rechecks/query besides its own pair"

    top1_percent = int(n * 0.01) + 1
    matrix_bytes, buffer_bytes = 8 * n * n, 16 * n * dim
    if matrix_bytes + buffer_bytes <= _MEMORY_GB.value * GB:
        (matrix_seconds, distance), matrix_peak = timed_and_traced(lambda: original_matrix(ground, aerial))
        loop_seconds, accuracies = timed(lambda: [validate(distance, k) for k in range(top1_percent)])
        original_ranks = np.count_nonzero(distance < np.diag(distance)[np.newaxis, :], axis=0)
        del distance
        per_entry_loop_s = loop_seconds / (top1_percent * n * n)
        summary = recall.summarize(ranks)
        same = np.array_equal(ranks, original_ranks) and all(
            summary[key] == 100.0 * accuracies[k] for key, k in [("r@1", 1), ("r@5", 5), ("r@10", 10), ("r@1%", -1)]
        )
        check = (
            f"port ranks == original ranks for all {n:,} queries, and port r@1/5/10/1% (K = {top1_percent - 1}) "
            f"== original val_accuracy[0, 1/5/10/-1]: {same}"
        )
        original = Row(
            "original (float64 N x N + per-K loop)",
            matrix_seconds + loop_seconds,
            matrix_peak,
            f"measured: matrix {matrix_seconds:.1f} s + {top1_percent} x validate {loop_seconds:.1f} s",
        )
    else:
        per_entry_loop_s = per_entry_loop_s or loop_seconds_per_entry()
        setup_seconds, chunk_seconds, reference = run_chunks(float64_method(ground, aerial), chunks)
        gemm_seconds = full_run_seconds([(setup_seconds, chunk_seconds)], chunks, n)
        loop_seconds = per_entry_loop_s * top1_percent * n * n
        same = np.array_equal(ranks, np.concatenate(reference))
        check = f"port ranks == float64 ranks for the {queries:,} timed queries: {same}"
        original = Row(
            "original (float64 N x N + per-K loop)",
            gemm_seconds + loop_seconds,
            matrix_bytes + buffer_bytes,
            f"cannot run: needs the {matrix_bytes / GB:.1f} GB N x N float64 matrix + {buffer_bytes / GB:.1f} GB "
            f"float64 descriptors; estimate = float64 GEMM {gemm_seconds:.0f} s (first {queries:,} queries, 1 run) + "
            f"{top1_percent} x validate {loop_seconds:.0f} s (cost per entry measured at a smaller N)",
        )
    if not same:
        raise AssertionError(check)
    rows = [
        original,
        Row("port default (float32 + float64 recheck)", seconds["port"], peaks["port"], how + recheck_note),
        Row("float32 GEMM floor", seconds["floor"], peaks["floor"], how),
    ]
    return rows, per_entry_loop_s, check, 2 * ground.nbytes


def print_table(n, dim, chunk_size, rows, check, input_bytes):
    """Prints one size's rows, the issue's goals and the ranks' check."""
    floor = rows[-1].seconds
    print(
        f"\nN = {n:,}, D = {dim:,}, chunk = {chunk_size:,} queries, noise = {_NOISE.value}; "
        f"float32 descriptors 2 x N x D = {input_bytes / GB:.2f} GB (not in 'peak')"
    )
    print(f"{'method':42s} {'time [s]':>10s} {'x floor':>8s} {'peak [GB]':>10s}  how")
    for row in rows:
        print(f"{row.name:42s} {row.seconds:10.1f} {row.seconds / floor:8.2f} {row.peak_bytes / GB:10.2f}  {row.how}")
    port = rows[1]
    print(
        f"port / floor = {port.seconds / floor:.2f} (goal <= 1.2); port peak + descriptors = "
        f"{(port.peak_bytes + input_bytes) / GB:.2f} GB (goal <= 4 GB)"
    )
    print(check)


def main(argv):
    del argv
    dim, chunk_size = _DIM.value, _CHUNK_SIZE.value
    print(
        f"numpy {np.__version__}, {os.cpu_count()} CPUs; peak = tracemalloc peak of numpy allocations "
        "beyond the descriptors (original: its matrix and float64 buffers)"
    )
    per_entry_loop_s = None
    for n in sorted(int(size) for size in _SIZES.value):
        rows, per_entry_loop_s, check, input_bytes = run_size(n, dim, chunk_size, per_entry_loop_s)
        print_table(n, dim, chunk_size, rows, check, input_bytes)


if __name__ == "__main__":
    app.run(main)
