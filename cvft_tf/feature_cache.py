"""Training on cached frozen-stem features: the same maths as training on images, cheaper.

With VGG16's first ``frozen_blocks`` frozen, no dropout before them and no augmentation of
the images, each training image goes through the same frozen stem at every epoch
(``models.frozen_stem``). :func:`build_feature_cache` runs the stems once over the training
split and keeps their outputs in memory; :func:`make_cached_train_dataset` then serves
batches of those features in exactly the order :func:`pipeline.make_train_dataset` serves
the images (``pipeline.training_order``), and the model's ``train_step`` runs only the heads.
Losses, gradients and weights are those of training on the images (tested to float32
rounding).

The cache is bounded: :func:`cache_nbytes` gives its size before anything is computed, and
the trainer falls back to the images when it exceeds ``config.train.feature_cache_max_gb``.
A bad pair is found, counted and skipped once, while the cache is built.

With a ``cache_dir`` (``config.train.feature_cache_dir``), :func:`load_or_build_feature_cache`
also keeps the arrays on disk under a fingerprint of everything they depend on (the split's
files with their sizes and modification times, the input sizes, the stems' layers and
weights), so runs
that share a world and a start (several variants or seeds) compute them once.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time

import numpy as np
import tensorflow as tf
from absl import logging

from cvft_tf.data import pipeline
from cvft_tf.progress import Progress

GROUND_FEATURES = "ground_features"
"""Batch key of the ground stem's features ``[B, h, w, c]``."""

AERIAL_FEATURES = "aerial_features"
"""Batch key of the aerial stem's features ``[B, h, w, c]``."""


@dataclasses.dataclass(frozen=True, eq=False)
class FeatureCache:
    """Stem features of the good pairs of a split.

    Attributes:
        ground: float32 ``[n, h, w, c]`` ground stem features, or None for a cache of the
            aerial stems only (``branches=("aerial",)``: the ground images change every epoch).
        aerial: float32 ``[n, h', w', c']`` aerial stem features.
        rows: int64 ``[len(split)]``: each pair's row in ``ground`` / ``aerial``, -1 for a
            bad pair (skipped).
    """

    ground: np.ndarray | None
    aerial: np.ndarray
    rows: np.ndarray

    @property
    def nbytes(self):
        return (0 if self.ground is None else self.ground.nbytes) + self.aerial.nbytes


BRANCHES = ("ground", "aerial")
"""The branches a cache holds by default; ``("aerial",)`` caches the aerial stems only."""


def cache_nbytes(num_pairs, model_split, branches=BRANCHES):
    """Bytes the cache of ``num_pairs`` pairs takes (float32), from the stems' shapes."""
    per_pair = sum(np.prod(getattr(model_split, branch).feature_shape) for branch in branches)
    return int(num_pairs * per_pair * 4)


def build_feature_cache(
    model_split, split, ground_size, aerial_size, batch_size, *, counter, max_bad_fraction, decoder="opencv",
    branches=BRANCHES,
):  # fmt: skip
    """Runs the frozen stems of ``branches`` once over every pair of ``split``.

    Args:
        model_split: ``frozen_stem.ModelSplit`` of the model being trained.
        split: the training ``Split``.
        ground_size, aerial_size: ``(height, width)`` of the model's inputs.
        batch_size: pairs per stem call.
        counter: ``DecodeCounter`` counting the bad pairs (skipped).
        max_bad_fraction: as for ``pipeline.make_train_dataset``: more bad pairs than this
            share of the split stop with a DatasetError naming the file.
        decoder: one of ``pipeline.DECODERS``.
        branches: :data:`BRANCHES` or ``("aerial",)``.

    Returns:
        :class:`FeatureCache`.
    """
    started = time.time()
    dataset = pipeline.make_ordered_pairs(
        split, ground_size, aerial_size, counter=counter, max_bad_fraction=max_bad_fraction, decoder=decoder
    )
    dataset = dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    ground_stem = tf.function(lambda images: model_split.ground.stem(images, training=False))
    aerial_stem = tf.function(lambda images: model_split.aerial.stem(images, training=False))
    with_ground = "ground" in branches
    ground = np.empty((len(split) if with_ground else 0, *model_split.ground.feature_shape), np.float32)
    aerial = np.empty((len(split), *model_split.aerial.feature_shape), np.float32)
    rows = np.full(len(split), -1, np.int64)
    count = 0
    logging.info("Caching the frozen stem's features of %d pairs", len(split))
    progress = Progress(len(split))
    with pipeline.dataset_errors():
        for ground_images, aerial_images, indices in dataset:
            size = int(indices.shape[0])
            if with_ground:
                ground[count : count + size] = ground_stem(ground_images).numpy()
            aerial[count : count + size] = aerial_stem(aerial_images).numpy()
            rows[indices.numpy()] = np.arange(count, count + size)
            count += size
            progress.add(size)
    progress.finish()
    cache = FeatureCache(ground=ground[:count] if with_ground else None, aerial=aerial[:count], rows=rows)
    logging.info(
        "Cached the frozen stem's features of %d pairs (%d skipped): %.0f MB in %.1f s",
        count, len(split) - count, cache.nbytes / 2**20, time.time() - started,
    )  # fmt: skip
    return cache


_ARRAYS = ("ground", "aerial", "rows")


def cache_fingerprint(model_split, split, ground_size, aerial_size, decoder="opencv", branches=BRANCHES):
    """Hex digest of what the cached features depend on (see the module docstring); an
    aerial-only cache does not depend on the ground size, so runs cutting different crops
    share it."""
    digest = hashlib.sha256()
    if tuple(branches) == BRANCHES:
        identity = (split.name, tuple(ground_size), tuple(aerial_size))
    else:
        identity = (split.name, tuple(branches), tuple(aerial_size))
    digest.update(repr(identity if decoder == "opencv" else (*identity, decoder)).encode())
    for path in (*split.ground_paths, *split.aerial_paths):
        try:
            stat = os.stat(path)
            digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns};".encode())
        except OSError:
            digest.update(f"{path}:missing;".encode())
    for branch in branches:
        stem = getattr(model_split, branch).stem
        digest.update(json.dumps(stem.get_config(), sort_keys=True, default=str).encode())
        for weight in stem.weights:
            digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()[:24]


def load_or_build_feature_cache(model_split, split, ground_size, aerial_size, batch_size, *, counter,
                                max_bad_fraction, cache_dir="", decoder="opencv", branches=BRANCHES):  # fmt: skip
    """:func:`build_feature_cache`, kept in and reused from ``cache_dir`` when one is given.

    The arrays are written to a temporary folder and renamed into
    ``<cache_dir>/<fingerprint>/``, so an interrupted write is never read back.
    """
    build_kwargs = dict(counter=counter, max_bad_fraction=max_bad_fraction, decoder=decoder, branches=branches)
    if not cache_dir:
        return build_feature_cache(model_split, split, ground_size, aerial_size, batch_size, **build_kwargs)
    fingerprint = cache_fingerprint(model_split, split, ground_size, aerial_size, decoder, branches)
    folder = os.path.join(cache_dir, fingerprint)
    if os.path.isdir(folder):
        arrays = {name: np.load(os.path.join(folder, f"{name}.npy")) for name in ("aerial", "rows")}
        ground_path = os.path.join(folder, "ground.npy")
        cache = FeatureCache(ground=np.load(ground_path) if os.path.exists(ground_path) else None, **arrays)
        logging.info("Read the frozen stem's features of %d pairs from %s", len(cache.aerial), folder)
        return cache
    cache = build_feature_cache(model_split, split, ground_size, aerial_size, batch_size, **build_kwargs)
    os.makedirs(cache_dir, exist_ok=True)
    partial = tempfile.mkdtemp(prefix=".partial-", dir=cache_dir)
    try:
        for name in _ARRAYS:
            if getattr(cache, name) is not None:
                np.save(os.path.join(partial, f"{name}.npy"), getattr(cache, name))
        os.rename(partial, folder)
    except OSError:
        shutil.rmtree(partial, ignore_errors=True)
        if not os.path.isdir(folder):
            raise
    return cache


def with_cached_aerial_features(dataset, cache):
    """Image training batches whose aerial images are replaced by their cached stem features.

    For runs whose ground images change every epoch (limited field of view, unknown
    heading: ``data.field_of_view``) while the aerial tiles do not: the ground stem runs in
    each step, the aerial one was run once.

    Args:
        dataset: ``pipeline.make_train_dataset(..., with_index=True)`` of the cache's split.
        cache: :class:`FeatureCache` of that split.

    Returns:
        The batches with ``aerial_features`` float32 ``[B, h', w', c']`` instead of
        ``aerial`` and without ``index``.
    """
    rows = tf.constant(cache.rows)
    shape = cache.aerial.shape[1:]

    def gather(batch_rows):
        return cache.aerial[batch_rows]

    def swap(batch):
        batch = dict(batch)
        batch_rows = tf.gather(rows, batch.pop("index"))
        features = tf.numpy_function(gather, [batch_rows], tf.float32, stateful=False)
        features.set_shape([batch["aerial"].shape[0], *shape])
        del batch["aerial"]
        return {**batch, AERIAL_FEATURES: features}

    return dataset.map(swap, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def make_cached_train_dataset(cache, split, batch_size, *, seed, start_batch=0):
    """Training batches of cached features, in the order of ``pipeline.make_train_dataset``.

    One epoch per iteration, as ``make_train_dataset``; the last incomplete batch is dropped.

    Args:
        cache: :class:`FeatureCache` of ``split``.
        split: the training ``Split`` (for its positions, CVACT).
        batch_size: pairs per batch.
        seed: the run's seed (the same one ``make_train_dataset`` would get).
        start_batch: batches already read, for a resumed run (``pipeline.stream_position``).

    Returns:
        ``tf.data.Dataset`` of dicts: ``ground_features`` float32 ``[B, h, w, c]``,
        ``aerial_features`` float32 ``[B, h', w', c']``, and for splits with positions
        ``utm`` float32 ``[B, 2]`` and ``distance_sq`` float32 ``[B, B]``.
    """
    if len(cache.aerial) < batch_size:
        raise pipeline.DatasetError(
            f"{split.name} has {len(cache.aerial)} usable pairs, fewer than one batch of {batch_size}"
        )
    rows = tf.constant(cache.rows)
    start = pipeline.stream_position(start_batch, cache.rows >= 0, batch_size, seed)
    dataset = pipeline.training_order(len(split), seed, start)
    dataset = dataset.map(lambda index, noise_seed: (index, tf.gather(rows, index)))
    dataset = dataset.filter(lambda index, row: row >= 0)
    dataset = dataset.batch(batch_size, drop_remainder=True)
    utm = None if split.utm is None else np.asarray(split.utm, np.float64)

    def gather(indices, batch_rows):
        ground = cache.ground[batch_rows]
        aerial = cache.aerial[batch_rows]
        positions = np.zeros((len(indices), 2)) if utm is None else utm[indices]
        return ground, aerial, positions

    def to_batch(indices, batch_rows):
        ground, aerial, positions = tf.numpy_function(
            gather, [indices, batch_rows], [tf.float32, tf.float32, tf.float64], stateful=False
        )
        ground.set_shape([batch_size, *cache.ground.shape[1:]])
        aerial.set_shape([batch_size, *cache.aerial.shape[1:]])
        batch = {GROUND_FEATURES: ground, AERIAL_FEATURES: aerial}
        if utm is not None:
            positions.set_shape([batch_size, 2])
            batch = pipeline.add_distances({**batch, "utm": positions})
        return batch

    return dataset.map(to_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
