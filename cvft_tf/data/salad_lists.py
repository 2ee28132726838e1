"""The ``salad_npy`` layout: the preprocessed lists shipped with SALAD (and GSV-Cities / MixVPR)
in ``datasets/``, with which SALAD's reported MSLS-val and Pittsburgh numbers are computed
(``dataloaders/val/MapillaryDataset.py``, ``PittsburghDataset.py``).

A list prefix ``P`` (e.g. ``datasets/msls_val/msls_val`` or ``datasets/Pittsburgh/pitts30k_test``)
names the files:

* ``P_dbImages.npy``: database image names, relative to the dataset root;
* ``P_qImages.npy``: query image names, relative to the same root;
* ``P_qIdx.npy`` (MSLS only): indices into ``P_qImages`` of the queries evaluated (those with a
  positive: 740 of the 747 MSLS-val queries);
* ``P_pIdx.npy`` (MSLS) or ``P_gt.npy`` (Pittsburgh, ...): one array of database indices per
  evaluated query, in order. SALAD ships object arrays, which are pickles and can run code
  when read: they are read only with ``allow_pickle=True`` (``--allow_pickle_ground_truth``);
  a 2-D integer array padded with ``-1`` is read without it (docs/security.md).

As in SALAD's ``eval.py``, the queries are ``qImages[qIdx]`` (all of ``qImages`` without a
``qIdx`` file) and a query without positives counts as a miss.
"""

import os

import numpy as np

from cvft_tf.data.place_lists import read_npy_positives
from cvft_tf.data.place_sets import PlaceSet, PlaceSetError

GROUND_TRUTH_SUFFIXES = ("_pIdx.npy", "_gt.npy")
"""Names of the positives file after the prefix, the first that exists is read."""


def read_salad_lists(prefix, root, allow_pickle=False):
    """The :class:`PlaceSet` of SALAD's lists ``prefix_*.npy`` over images under ``root``;
    ``allow_pickle``: accept an object-array positives file (it can run code).

    Raises:
        FileNotFoundError: a list file is missing.
        PlaceSetError: a list that cannot be read, or indices that do not fit the lists.
    """
    database_names = _names(f"{prefix}_dbImages.npy")
    all_queries = _names(f"{prefix}_qImages.npy")
    query_index = np.arange(len(all_queries))
    index_path = f"{prefix}_qIdx.npy"
    if os.path.isfile(index_path):
        query_index = _load(index_path, allow_pickle=False)
        if query_index.ndim != 1 or query_index.dtype.kind not in "iu":
            got = f"{query_index.dtype} {query_index.shape}"
            raise PlaceSetError(f"{index_path} must be a vector of query indices, got {got}")
        if query_index.size and (query_index.min() < 0 or query_index.max() >= len(all_queries)):
            raise PlaceSetError(f"{index_path} has query indices outside [0, {len(all_queries)})")
    candidates = [f"{prefix}{suffix}" for suffix in GROUND_TRUTH_SUFFIXES]
    ground_truth = next((path for path in candidates if os.path.isfile(path)), None)
    if ground_truth is None:
        raise FileNotFoundError(f"no ground truth list: neither {' nor '.join(map(repr, candidates))} exists")
    positives = read_npy_positives(ground_truth, len(query_index), len(database_names), allow_pickle)
    query_names = [all_queries[i] for i in query_index]
    excluded = len(all_queries) - len(query_names)
    return PlaceSet("salad_npy", root, root, query_names, database_names, positives, excluded_queries=excluded)


def _load(path, allow_pickle):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"list file {path!r} not found")
    try:
        return np.load(path, allow_pickle=allow_pickle)
    except (ValueError, OSError, EOFError) as error:
        raise PlaceSetError(f"{path} is not a readable .npy array ({error})") from None


def _names(path):
    """A ``.npy`` vector of image names as a list of ``str``."""
    names = _load(path, allow_pickle=False)
    if names.ndim != 1 or names.dtype.kind != "U" or not names.size:
        raise PlaceSetError(f"{path} must be a non-empty vector of image names, got {names.dtype} {names.shape}")
    return [str(name) for name in names]
