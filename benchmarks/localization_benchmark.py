"""Localization at scale: indexing throughput, and query latency, recall and size, exact vs IVF-PQ.

Side by side in one run:

- **indexing throughput**: windows per second through the path of ``cvft-index``
  (``index.window_batches`` reading and resizing windows of the synthetic map on tf.data,
  then the aerial branch), for the main job's model (``--workdir``) or, without one, a
  random model of ``configs/synthetic.py``'s sizes;
- **per stored-tile count** (``--sizes``, default 10^4, 10^5, 10^6): query latency p50 / p99
  (one query per call, ``--queries`` of them), recall@10 of IVF-PQ against exact, bytes per
  stored tile, build time; and the ratios exact / IVF-PQ.

The stored descriptors are synthetic, D = ``--dim`` (576, the main job's): tiles on a square
grid 5 m apart whose descriptor is a smooth function of position (random Fourier features,
length scale ``--length_m``) plus independent noise, unit norm; a query is the descriptor
of a random position off the grid, with more noise. So neighbours in descriptor space are
neighbours on the map, as with a trained model. Not a test: run it by hand, e.g.

    PYTHONPATH=. nice python benchmarks/localization_benchmark.py --workdir runs/synthetic/run \\
        --map runs/world/map/orthophoto.png
"""

import os
import time

import numpy as np
from absl import app, flags

from cvft_tf.localization import search

_SIZES = flags.DEFINE_list("sizes", ["10000", "100000", "1000000"], "Stored tiles.")
_DIM = flags.DEFINE_integer("dim", 576, "Descriptor size D (the main job's 576; CVFT's 4096).")
_QUERIES = flags.DEFINE_integer("queries", 200, "Queries timed one at a time (exact at 10^6: a quarter).")
_LENGTH = flags.DEFINE_float("length_m", 60.0, "Length scale of the descriptor field, metres.")
_NOISE = flags.DEFINE_float("noise", 0.5, "Tile noise, relative to the field (queries: twice it).")
_NPROBE = flags.DEFINE_integer("nprobe", search.DEFAULT_NPROBE, "IVF cells visited per query.")
_K_FACTOR = flags.DEFINE_integer("k_factor", search.DEFAULT_K_FACTOR, "IVF-PQ candidates re-ranked per result.")
_TRAIN = flags.DEFINE_integer("train_size", search.DEFAULT_TRAIN_SIZE, "IVF-PQ training sample.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Main job workdir for the indexing throughput.")
_MAP = flags.DEFINE_string("map", None, "Geo-referenced map for the indexing throughput (skipped without).")
_WINDOWS = flags.DEFINE_integer("windows", 256, "Windows embedded for the throughput.")


def field_descriptors(positions, frequencies, phases, noise, rng, chunk=100000):
    """Unit float32 [n, D]: ``cos(p . w + phase)`` over D random frequencies, plus noise."""
    out = np.empty((len(positions), frequencies.shape[1]), np.float32)
    for start in range(0, len(positions), chunk):
        part = np.cos(positions[start : start + chunk] @ frequencies + phases).astype(np.float32)
        part += noise * rng.standard_normal(part.shape, dtype=np.float32)
        out[start : start + chunk] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out


def latencies_ms(index, queries, k=10):
    """Milliseconds of each single-query search, and the ids found [Q, k]."""
    times, ids = [], []
    for query in queries:
        start = time.perf_counter()
        _, found = search.search(index, query[None], k)
        times.append(1000 * (time.perf_counter() - start))
        ids.append(found[0])
    return np.array(times), np.array(ids)


def indexing_throughput():
    """Windows per second of the cvft-index path, or None without ``--map``."""
    if not _MAP.value:
        return None
    from cvft_tf.configs import synthetic
    from cvft_tf.localization import encoders as model_encoders
    from cvft_tf.localization.geomap import open_map
    from cvft_tf.localization.index import map_window_reader, window_batches
    from cvft_tf.localization.windows import window_grid
    from cvft_tf.models.cross_view import build_model

    config = synthetic.get_config()
    if _WORKDIR.value:
        encoders = model_encoders.from_workdir(config, _WORKDIR.value)
    else:
        encoders = model_encoders.from_model(build_model(**config.model.to_dict()), {"random": True})
    geomap = open_map(_MAP.value)
    grid = window_grid(geomap, config.data.aerial_footprint_m, 5.0)
    numbers = np.arange(min(_WINDOWS.value, len(grid)))
    read = map_window_reader(geomap, grid)
    encoders.aerial(next(iter(window_batches(read, numbers[:32], encoders.aerial_size, 32))))
    start = time.perf_counter()
    for batch in window_batches(read, numbers, encoders.aerial_size, 32):
        encoders.aerial(batch)
    return len(numbers) / (time.perf_counter() - start)


def main(argv):
    del argv
    import faiss

    print(f"CPU threads: {faiss.omp_get_max_threads()} (FAISS), {os.cpu_count()} (os); D = {_DIM.value}; "
          f"IVF-PQ nprobe {_NPROBE.value}, k_factor {_K_FACTOR.value}")  # fmt: skip
    rate = indexing_throughput()
    if rate is not None:
        print(f"indexing throughput: {rate:.1f} windows/s ({_WINDOWS.value} windows of the map, batch 32)")
    rng = np.random.default_rng(0)
    frequencies = rng.standard_normal((2, _DIM.value)) / _LENGTH.value
    phases = rng.uniform(0, 2 * np.pi, _DIM.value)
    header = (
        f"{'tiles':>9} {'search':>7} {'build s':>8} {'p50 ms':>8} {'p99 ms':>8} {'recall@10':>10} {'bytes/tile':>11}"
    )
    print(header)
    rows = []
    for size in map(int, _SIZES.value):
        side = int(np.ceil(np.sqrt(size)))
        grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), -1).reshape(-1, 2)[:size] * 5.0
        stored = field_descriptors(grid, frequencies, phases, _NOISE.value, rng)
        points = rng.uniform(0, side * 5.0, (_QUERIES.value, 2))
        queries = field_descriptors(points, frequencies, phases, 2 * _NOISE.value, rng)
        results = {}
        for kind in search.SEARCH_KINDS:
            start = time.perf_counter()
            index = search.build(stored, kind, nprobe=_NPROBE.value, k_factor=_K_FACTOR.value, train_size=_TRAIN.value)
            built = time.perf_counter() - start
            count = len(queries) if kind != "exact" or size < 10**6 else max(10, len(queries) // 4)
            times, ids = latencies_ms(index, queries[:count])
            results[kind] = {"build": built, "p50": np.percentile(times, 50), "p99": np.percentile(times, 99),
                             "ids": ids, "bytes": search.bytes_per_vector(index)}  # fmt: skip
            del index
        exact, approximate = results["exact"], results["ivfpq"]
        count = len(exact["ids"])
        recall = search.recall_at_k(approximate["ids"][:count], exact["ids"], 10)
        for kind, result in results.items():
            shown = "1 (ref)" if kind == "exact" else f"{recall:.3f}"
            print(f"{size:>9} {kind:>7} {result['build']:>8.1f} {result['p50']:>8.2f} {result['p99']:>8.2f} "
                  f"{shown:>10} {result['bytes']:>11}")  # fmt: skip
        rows.append((size, exact["p50"] / approximate["p50"], exact["p99"] / approximate["p99"],
                     exact["bytes"] / approximate["bytes"], recall))  # fmt: skip
        del stored
    print("\nratios exact / IVF-PQ:")
    print(f"{'tiles':>9} {'p50':>8} {'p99':>8} {'bytes':>8} {'recall@10':>10}")
    for size, p50, p99, size_ratio, recall in rows:
        print(f"{size:>9} {p50:>7.1f}x {p99:>7.1f}x {size_ratio:>7.1f}x {recall:>10.3f}")


if __name__ == "__main__":
    app.run(main)
