"""FAISS search structures over unit-norm descriptors: exact inner product, or IVF-PQ.

The score of a query ``q`` and a stored window ``w`` is ``q . w`` (descriptors are unit
norm, so this is the cosine and ranks as the L2 distance does).

- ``exact``: ``IndexFlatIP``, every stored descriptor (4 D bytes each).
- ``ivfpq``: ``IVF{nlist},PQ{m}x{bits}np,Refine(SQ8)``: a coarse k-means quantiser of
  ``nlist`` cells, of which ``nprobe`` are visited per query; in them, product-quantised
  codes (``m`` bytes per descriptor at 8 bits) rank the candidates, and the best
  ``k_factor * k`` are re-ranked with 8-bit scalar-quantised descriptors (D bytes). A sample
  of at most ``train_size`` descriptors trains the quantisers (k-means of
  ``KMEANS_ITERATIONS``; no polysemous training, which takes minutes and only serves Hamming
  filtering, unused here). Its recall against exact is
  measured and reported (:func:`recall_at_k`).
"""

import math
import os

import numpy as np

from cvft_tf.localization.errors import import_optional
from cvft_tf.output_dirs import atomic_path

SEARCH_KINDS = ("exact", "ivfpq")
DEFAULT_NPROBE = 32
DEFAULT_K_FACTOR = 16
DEFAULT_TRAIN_SIZE = 32768
KMEANS_ITERATIONS = 10
"""k-means iterations of the coarse quantiser and of each PQ sub-quantiser (FAISS: 25)."""


def ivfpq_spec(dimension, count):
    """The FAISS factory string of an IVF-PQ index for ``count`` descriptors of ``dimension``.

    ``nlist = sqrt(count)`` cells (at most ``count / 39``, FAISS' points-per-centroid floor),
    ``m = D / 8`` sub-quantisers of 8 dimensions, 8 bits per code (fewer for fewer than
    10,000 descriptors, whose k-means could not train 256 centroids).
    """
    nlist = max(1, min(int(math.sqrt(count)), count // 39))
    bits = 8 if count >= 256 * 39 else max(2, int(math.log2(max(count, 4) / 39)))
    divisors = [m for m in range(1, dimension + 1) if dimension % m == 0 and dimension // m <= 8]
    return f"IVF{nlist},PQ{divisors[0]}x{bits}np,Refine(SQ8)"


def build(descriptors, kind="exact", nprobe=DEFAULT_NPROBE, k_factor=DEFAULT_K_FACTOR,
          train_size=DEFAULT_TRAIN_SIZE, seed=0):  # fmt: skip
    """A FAISS index over float32 ``descriptors`` [N, D], ids 0..N-1 in their order.

    Args:
        descriptors: float32 [N, D], unit norm.
        kind: one of :data:`SEARCH_KINDS`.
        nprobe: IVF cells visited per query (``ivfpq``).
        k_factor: candidates re-ranked per result (``ivfpq``).
        train_size: descriptors drawn (seeded) to train the IVF-PQ quantisers.
        seed: seed of that draw.
    """
    faiss = import_optional("faiss")
    descriptors = np.ascontiguousarray(descriptors, np.float32)
    count, dimension = descriptors.shape
    if kind == "exact":
        index = faiss.IndexFlatIP(dimension)
    elif kind == "ivfpq":
        index = faiss.index_factory(dimension, ivfpq_spec(dimension, count), faiss.METRIC_INNER_PRODUCT)
        coarse = faiss.extract_index_ivf(index.base_index)
        coarse.cp.niter = faiss.downcast_index(coarse).pq.cp.niter = KMEANS_ITERATIONS
        sample = np.random.default_rng(seed).permutation(count)[:train_size]
        index.train(descriptors[np.sort(sample)])
        configure(index, nprobe, k_factor)
    else:
        raise ValueError(f"kind must be one of {SEARCH_KINDS}, got {kind!r}")
    index.add(descriptors)
    return index


def configure(index, nprobe=DEFAULT_NPROBE, k_factor=DEFAULT_K_FACTOR):
    """Sets the search parameters of an IVF-PQ index (no-op for an exact one); returns it."""
    faiss = import_optional("faiss")
    if isinstance(index, faiss.IndexRefine):
        index.k_factor = float(k_factor)
        faiss.ParameterSpace().set_index_parameter(index, "nprobe", int(nprobe))
    return index


def search(index, queries, k):
    """``(scores, ids)``: float32 / int64 [Q, k], best first; ``k`` is capped at the index size."""
    queries = np.ascontiguousarray(queries, np.float32)
    return index.search(queries, min(int(k), index.ntotal))


def recall_at_k(found, exact, k):
    """Mean over queries of ``|found[:k] & exact[:k]| / k`` (ids [Q, >=k] each)."""
    found, exact = np.asarray(found)[:, :k], np.asarray(exact)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, exact)]))


def bytes_per_vector(index):
    """Bytes stored per descriptor: ``4 D`` (exact); PQ code plus SQ8 refinement (IVF-PQ)."""
    faiss = import_optional("faiss")
    if isinstance(index, faiss.IndexRefine):
        base = faiss.extract_index_ivf(index.base_index)
        refine = faiss.downcast_index(index.refine_index)
        return int(base.code_size + refine.code_size)
    return 4 * index.d


def write(index, path):
    """Writes ``index`` to ``path`` atomically (``atomic_path``)."""
    faiss = import_optional("faiss")
    with atomic_path(path) as partial:
        faiss.write_index(index, partial)


def read(path, nprobe=DEFAULT_NPROBE, k_factor=DEFAULT_K_FACTOR):
    """The index at ``path``, with its search parameters set."""
    faiss = import_optional("faiss")
    return configure(faiss.read_index(os.fspath(path)), nprobe, k_factor)
