"""tf.data pipelines over a split of (ground, aerial) pairs, with the original's preprocessing.

A ``Split`` (from ``cvusa.read_split`` or ``cvact.read_split``) lists the pairs' files; the
pipelines read each file once, decode it, apply the split's row rule (size checks, CVACT's
middle-half cut) and resize it with INTER_AREA: by default with OpenCV inside
``tf.numpy_function`` (``preprocess.read_image``, ``preprocess.resize_image``), so the pixels
are the original code's exactly, or with ``decoder="tensorflow"`` in TensorFlow ops
(:data:`DECODERS`). Images stay uint8 until the model, which subtracts the VGG mean as its
first layer. Batches are dicts:

- ``"ground"``: uint8 [batch, ground_h, ground_w, 3], BGR pixels;
- ``"aerial"``: uint8 [batch, aerial_h, aerial_w, 3], likewise;
- ``"utm"``: float32 [batch, 2], metres (splits with positions: CVACT);
- ``"distance_sq"``: float32 [batch, batch], squared UTM distances, computed in float64
  (training, splits with positions; for the masked loss);
- ``"index"``: int64 [batch], the pair's position in the split (evaluation; training with
  ``with_index``);
- ``"heading_deg"``: float32 [batch], the heading of each query, degrees clockwise from
  north (a limited field of view or an unknown heading: ``field_of_view``).

With a ``field_of_view`` other than the whole north-aligned panorama, the ground image is
a crop of the panorama (``field_of_view.crop_query``): ``ground_size`` is the crop's size
and the panorama is resized to ``field_of_view.panorama_size`` first.

Training reads the pairs in a fresh order each epoch (``epoch_order``: a function of the
seed and the epoch), drops the last incomplete batch and skips a pair whose images cannot be
used, as the original's reader does, counting the skips in a ``DecodeCounter``. The batches
form one stream over the epochs; a run resumed after ``n`` batches starts the stream at
``stream_position(n, ...)`` and reads what an uninterrupted run reads from there; once more than ``max_bad_fraction`` of
the split's pairs have been found bad it stops with an error naming the last bad file. Evaluation yields every pair
once, in split order, and stops with an error naming the file at the first bad image.

Errors raised while iterating come out of TensorFlow as ``tf.errors.InvalidArgumentError``
whose message holds ``DatasetError: <what and where>``; inside ``with dataset_errors():``
they are raised as ``DatasetError`` with that message alone.
"""

import contextlib
import dataclasses
import hashlib
import itertools
import math
import os
import re
import threading
from typing import Callable

import cv2
import numpy as np
import tensorflow as tf
from absl import logging

from cvft_tf.data import preprocess
from cvft_tf.data.field_of_view import FieldOfView, crop_query, panorama_size

_OK, _SKIP, _FATAL = 0, 1, 2
_NOISE_STREAM = 1
_FIELD_OF_VIEW_STREAM = 2
_ERROR_MARKER = "DatasetError: "
_ERROR_PATTERN = re.compile(re.escape(_ERROR_MARKER) + r"(.*?)\](?:\n|$)", re.DOTALL)
_PROBLEMS_SHOWN = 50


class DatasetError(ValueError):
    """A split that cannot be read as asked.

    Attributes:
      problems: every problem found, each naming its file (and line or row).
    """

    def __init__(self, message, problems=()):
        super().__init__(message)
        self.problems = list(problems)


def raise_problems(what, problems):
    """Raises one ``DatasetError`` listing ``problems`` (strings), if there are any.

    The message shows the first 50; the exception's ``problems`` holds them all.
    """
    if not problems:
        return
    lines = [f"{what}: {len(problems)} problem(s):"]
    lines += [f"  {problem}" for problem in problems[:_PROBLEMS_SHOWN]]
    if len(problems) > _PROBLEMS_SHOWN:
        lines.append(f"  ... and {len(problems) - _PROBLEMS_SHOWN} more (DatasetError.problems)")
    raise DatasetError("\n".join(lines), problems)


@contextlib.contextmanager
def dataset_errors():
    """Turns a pipeline's run-time error (a TF error carrying a DatasetError) into one.

    Use around ``model.fit`` / ``evaluate`` loops: ``with dataset_errors(): model.fit(ds)``.
    Other errors pass through unchanged.
    """
    try:
        yield
    except tf.errors.OpError as error:
        match = _ERROR_PATTERN.search(error.message or "")
        if match is None:
            raise
        raise DatasetError(match.group(1)) from None


class FileIndex:
    """Answers "does this file exist" from one directory listing per directory (fast on 100k)."""

    def __init__(self):
        self._names = {}

    def exists(self, path):
        directory, name = os.path.split(path)
        if directory not in self._names:
            try:
                self._names[directory] = frozenset(os.listdir(directory or "."))
            except OSError:
                self._names[directory] = frozenset()
        return name in self._names[directory]


def whole_image(height, width):
    """The default row rule: every row of the image is used. Returns ``(0, height)``."""
    return 0, height


def square_tile(height, width):
    """The original's aerial rule: a tile must be square; all its rows are used.

    Returns:
      ``(0, height)``.

    Raises:
      ImageError: the image is not square.
    """
    if height != width:
        raise preprocess.ImageError(f"has size {height}x{width}, expected a square aerial tile")
    return 0, height


DECODERS = ("opencv", "tensorflow")
"""How a pipeline decodes and resizes images.

Both read each file once and check it in Python (``preprocess.read_image_bytes``), inside
``tf.numpy_function``. ``opencv`` (the default): ``cv2.imdecode`` and
``cv2.resize(INTER_AREA)``, the original's pixels exactly. ``tensorflow``: TensorFlow's JPEG
and PNG decoders and area resize (``preprocess.decode_image_tf``, ``resize_to_bgr_tf``), the
kernels of the SavedModel's graph, so the served and the evaluated pixels agree; within 1
level of OpenCV's; JPEG and PNG only. Both libraries release the GIL while they decode and
resize. An image TensorFlow cannot decode is a bad image like any other (named, skipped in
training): TensorFlow refuses some corrupt JPEGs that OpenCV decodes with a warning."""


@dataclasses.dataclass(frozen=True, eq=False)
class Split:
    """The pairs of one split, in file order, and the rules their raw images must follow.

    Attributes:
      name: for messages, e.g. ``"CVUSA /data/splits/val-19zl.csv"``.
      ground_paths: N paths of ground panoramas.
      aerial_paths: N paths of aerial tiles.
      sources: N strings saying where each pair is listed (``"file:line"`` or mat row).
      utm: float64 [N, 2] positions in metres, or None (CVUSA).
      ground_rows: ``(height, width)`` of a decoded panorama -> ``(start, stop)``, the rows
        to resize (checks and crops); raises ``preprocess.ImageError`` when the panorama
        cannot be used.
      aerial_rows: the same for aerial tiles (default: must be square).
      max_pixels: an image whose header gives more pixels is a bad image, not decoded
        (``config.data.max_image_pixels``).
    """

    name: str
    ground_paths: tuple
    aerial_paths: tuple
    sources: tuple
    utm: np.ndarray | None = None
    ground_rows: Callable = whole_image
    aerial_rows: Callable = square_tile
    max_pixels: int = preprocess.MAX_IMAGE_PIXELS

    def __len__(self):
        return len(self.ground_paths)

    def fingerprint(self):
        """``{"pairs": N, "sha256": ...}`` of the split's image paths, in order: what a saved
        list of bad pairs (indices into the split) is valid for."""
        digest = hashlib.sha256("\n".join(self.ground_paths + self.aerial_paths).encode("utf-8", "replace"))
        return {"pairs": len(self), "sha256": digest.hexdigest()}


class DecodeCounter:
    """What a training pipeline has decoded and skipped; read it to log (e.g. TensorBoard).

    Attributes:
      seen: pairs decoded or tried (every epoch counts again).
      skipped: tries that failed and were skipped (every epoch counts again).
      bad_pairs: distinct pairs found bad so far; ``max_bad_fraction`` applies to this.

    Use one counter per training dataset (pairs are told apart by their index in the split).
    A resumed run continues from the saved :meth:`state` (``DecodeCounter(state, split)``);
    when the state was saved for another split (``Split.fingerprint``) its bad pairs name other
    pairs: they are forgotten (``forgotten`` holds how many) and found again as they are read.
    """

    def __init__(self, state=None, split=None):
        state = state or {}
        self.split = None if split is None else split.fingerprint()
        saved_split = state.get("split")
        changed = self.split is not None and saved_split is not None and saved_split != self.split
        self._lock = threading.Lock()
        self._bad = set() if changed else set(state.get("bad_pairs", ()))
        self.forgotten = len(state.get("bad_pairs", ())) if changed else 0
        self.saved_pairs = saved_split["pairs"] if changed else None
        self.seen = int(state.get("seen", 0))
        self.skipped = int(state.get("skipped", 0))

    @property
    def bad_pairs(self):
        return len(self._bad)

    def state(self):
        """JSON-ready dict: ``seen``, ``skipped``, ``bad_pairs`` (sorted split indices) and,
        when the counter knows it, the ``split`` they index (``Split.fingerprint``)."""
        with self._lock:
            state = {"seen": self.seen, "skipped": self.skipped, "bad_pairs": sorted(self._bad)}
        return state if self.split is None else {**state, "split": self.split}

    def usable(self, num_pairs):
        """bool [num_pairs]: False for the pairs found bad so far."""
        mask = np.ones(num_pairs, bool)
        with self._lock:
            mask[list(self._bad)] = False
        return mask

    def _count(self, index, ok):
        with self._lock:
            self.seen += 1
            if not ok:
                self.skipped += 1
                self._bad.add(index)
            return len(self._bad)


def _rows_of(path, rows, shape):
    """``rows(height, width)`` of an image of ``shape``; an ImageError names ``path``."""
    try:
        return rows(int(shape[0]), int(shape[1]))
    except preprocess.ImageError as error:
        raise preprocess.ImageError(f"{path} {error}") from None


def _opencv_image(path, rows, size, max_pixels):
    """OpenCV decode, the split's row rule, INTER_AREA resize: uint8 BGR [*size, 3]."""
    image = preprocess.read_image(path, max_pixels)
    start, stop = _rows_of(path, rows, image.shape)
    return preprocess.resize_image(image[start:stop], size)


def _tensorflow_image(path, rows, size, max_pixels):
    """The same with TensorFlow's decoders and area resize (run as eager kernels, which
    release the GIL), within 1 level of :func:`_opencv_image` (``preprocess``)."""
    data, image_format = preprocess.read_image_bytes(path, max_pixels)
    if image_format is None:
        raise preprocess.ImageError(f"{path} is neither a JPEG nor a PNG, the formats of the tensorflow decoder")
    try:
        image = preprocess.decode_image_tf(tf.constant(data))
    except tf.errors.InvalidArgumentError as error:
        reason = _TF_NODE_PREFIX.sub("", error.message).strip()
        raise preprocess.ImageError(f"{path} is not a readable image (TensorFlow: {reason})") from None
    start, stop = _rows_of(path, rows, image.shape)
    return preprocess.resize_to_bgr_tf(image[start:stop], size).numpy()


_TF_NODE_PREFIX = re.compile(r"\{\{[^}]*\}\}")
_IMAGE_READERS = {"opencv": _opencv_image, "tensorflow": _tensorflow_image}


class _BadPairs:
    """What happens to a bad pair: with a counter (training) it is skipped (_SKIP) until more
    than ``max_bad_fraction`` of the split is bad (_FATAL); without (evaluation) it is _FATAL."""

    def __init__(self, split, counter, max_bad_fraction):
        self.split = split
        self.counter = counter
        self.max_bad_fraction = max_bad_fraction
        self.limit = math.floor(max_bad_fraction * len(split))

    def good(self, index):
        if self.counter is not None:
            self.counter._count(index, ok=True)
        return np.int32(_OK), ""

    def bad(self, index, error):
        """``(status, message)`` for pair ``index``, found bad with ``error``."""
        problem = f"{self.split.sources[index]}: {error}".replace("\n", " ")
        if self.counter is None:
            return np.int32(_FATAL), f"bad image in evaluation: {problem}"
        bad_pairs = self.counter._count(index, ok=False)
        logging.warning(
            "Skipping training pair %d (%d of %d pairs bad so far): %s",
            index, bad_pairs, len(self.split), problem,
        )  # fmt: skip
        if bad_pairs > self.limit:
            message = (
                f"{bad_pairs} of the {len(self.split)} pairs of {self.split.name} are bad, more than "
                f"max_bad_fraction={self.max_bad_fraction}; the last: {problem}"
            )
            return np.int32(_FATAL), message
        return np.int32(_SKIP), problem


def _pair_fn(split, ground_size, aerial_size, bad_pairs, read_image):
    """Graph function: pair index -> (ground uint8, aerial uint8, status).

    ``read_image(path, rows, size, max_pixels)`` is one of :data:`_IMAGE_READERS`; a bad image gives
    blank images and the status ``bad_pairs`` decides (a _FATAL one raises).
    """
    blank_ground = np.zeros((*ground_size, 3), np.uint8)
    blank_aerial = np.zeros((*aerial_size, 3), np.uint8)

    def decode(index):
        index = int(index)
        try:
            ground = read_image(split.ground_paths[index], split.ground_rows, ground_size, split.max_pixels)
            aerial = read_image(split.aerial_paths[index], split.aerial_rows, aerial_size, split.max_pixels)
        except (preprocess.ImageError, cv2.error) as error:
            return (blank_ground, blank_aerial, *bad_pairs.bad(index, error))
        return (ground, aerial, *bad_pairs.good(index))

    def pair(index):
        ground, aerial, status, message = tf.numpy_function(
            decode, [index], [tf.uint8, tf.uint8, tf.int32, tf.string], stateful=True
        )
        return ground, aerial, _checked_status(status, message)

    return pair


def checked(value, ok, message):
    """``value``, after asserting ``ok``; when it is False the pipeline stops with an error
    carrying ``message`` (a string tensor), raised as a DatasetError by :func:`dataset_errors`."""
    check = tf.debugging.Assert(ok, [tf.strings.join([_ERROR_MARKER, message])])
    with tf.control_dependencies([check]):
        return tf.identity(value)


def _checked_status(status, message):
    """``status``, after asserting it is not _FATAL (the error carries ``message``)."""
    return checked(status, tf.not_equal(status, _FATAL), message)


def _element_fn(split, ground_size, aerial_size, bad_pairs, decoder, orientation_noise_deg, field_of_view):
    """Graph function (index, noise_seed) -> (element dict, status)."""
    if decoder not in _IMAGE_READERS:
        raise ValueError(f"decoder must be one of {DECODERS}, got {decoder!r}")
    field_of_view = field_of_view or FieldOfView()
    if orientation_noise_deg and not field_of_view.is_full_north_aligned:
        raise ValueError("orientation noise and a limited field of view or unknown heading do not combine")
    decoded_size = panorama_size(ground_size, field_of_view.fov_deg)
    pair = _pair_fn(split, decoded_size, aerial_size, bad_pairs, _IMAGE_READERS[decoder])
    utm_table = None if split.utm is None else tf.constant(split.utm, tf.float64)

    def element(index, noise_seed):
        ground, aerial, status = pair(index)
        ground.set_shape((*decoded_size, 3))
        aerial.set_shape((*aerial_size, 3))
        seed = tf.stack([noise_seed, index])
        if orientation_noise_deg:
            ground = preprocess.random_azimuth_shift(ground, orientation_noise_deg, seed)
        result = {"ground": ground, "aerial": aerial, "index": index}
        if not field_of_view.is_full_north_aligned:
            crop_seed = tf.random.experimental.stateless_fold_in(seed, _FIELD_OF_VIEW_STREAM)
            result["ground"], result["heading_deg"] = crop_query(ground, field_of_view, ground_size[1], crop_seed)
        if utm_table is not None:
            result["utm"] = tf.gather(utm_table, index)
        return result, status

    return element


def add_distances(batch):
    """Adds ``distance_sq`` [b, b] (squared metres, computed in the ``utm`` dtype) to a batch
    with ``utm`` [b, 2], and casts ``utm`` to float32."""
    utm = batch["utm"]
    offsets = utm[:, None, :] - utm[None, :, :]
    batch["distance_sq"] = tf.cast(tf.reduce_sum(tf.square(offsets), axis=-1), tf.float32)
    batch["utm"] = tf.cast(utm, tf.float32)
    return batch


def epoch_order(num_pairs, seed, epoch):
    """The order of the pairs in epoch ``epoch`` (0-based) of a run seeded with ``seed``.

    Returns:
      int64 [num_pairs], a permutation drawn from ``(seed, epoch)`` alone: a run resumed
      at epoch ``e`` reads the pairs in the order an uninterrupted run reads them.
    """
    return np.random.default_rng([seed, epoch]).permutation(num_pairs).astype(np.int64)


def _epoch_noise_seed(seed, epoch):
    return np.int64(np.random.default_rng([seed, epoch, _NOISE_STREAM]).integers(2**62))


def stream_position(batches, usable, batch_size, seed):
    """Where the training stream stands after ``batches`` full batches.

    Each epoch reads the usable pairs in :func:`epoch_order` and yields
    ``usable.sum() // batch_size`` batches (the last incomplete one is dropped).

    Args:
      batches: batches read so far (over all epochs).
      usable: bool [num_pairs], False for pairs known to be bad. Every pair before the
        position has been decoded, so any bad one among them is known; pairs not yet
        decoded may still count as usable without changing the answer.
      batch_size: pairs per batch.
      seed: the run's seed.

    Returns:
      ``(epoch, offset)``: the next batch starts at position ``offset`` of epoch
      ``epoch``'s order (an uninterrupted run reads the same batches from there).
    """
    batches_per_epoch = int(np.sum(usable)) // batch_size
    if batches_per_epoch == 0:
        raise DatasetError(f"{int(np.sum(usable))} usable pairs are fewer than one batch of {batch_size}")
    epoch, batch = divmod(int(batches), batches_per_epoch)
    usable_positions = np.flatnonzero(usable[epoch_order(len(usable), seed, epoch)])
    return epoch, int(usable_positions[batch * batch_size])


def training_order(num_pairs, seed, start=(0, 0)):
    """One epoch of ``(index, noise_seed)``; each new iteration over it is the next epoch.

    The first iteration lists the pairs of :func:`epoch_order` of epoch ``start[0]`` from
    position ``start[1]`` on (see :func:`stream_position`), the second every pair in the
    order of the epoch after, and so on (``.repeat()`` iterates again); ``noise_seed``
    (int64, one per epoch, also drawn from ``(seed, epoch)``) seeds that epoch's
    augmentation. Two datasets made alike give the same epochs.
    """
    first_epoch, first_offset = start
    epochs = itertools.count(first_epoch)
    offsets = itertools.chain([first_offset], itertools.repeat(0))

    def next_epoch():
        epoch = next(epochs)
        return epoch_order(num_pairs, seed, epoch)[next(offsets) :], _epoch_noise_seed(seed, epoch)

    def one_epoch(_):
        indices, noise_seed = tf.numpy_function(next_epoch, [], [tf.int64, tf.int64], stateful=True)
        indices.set_shape([None])
        return tf.data.Dataset.from_tensor_slices((indices, tf.fill(tf.shape(indices), noise_seed)))

    return tf.data.Dataset.from_tensors(0).flat_map(one_epoch)


def check_training_split(split, batch_size):
    """Raises a DatasetError when ``split`` has fewer pairs than one batch."""
    if len(split) < batch_size:
        raise DatasetError(
            f"{split.name} has {len(split)} pairs, fewer than one batch of {batch_size}"
        )


def make_train_dataset(
    split,
    batch_size,
    ground_size=preprocess.GROUND_SIZE,
    aerial_size=preprocess.AERIAL_SIZE,
    *,
    seed=None,
    deterministic=False,
    start_batch=0,
    orientation_noise_deg=0.0,
    field_of_view=None,
    max_bad_fraction=0.01,
    counter=None,
    decoder="opencv",
    with_index=False,
):
    """Training batches of one epoch, full batches, bad pairs skipped and counted.

    Each iteration over the dataset is the next epoch, in :func:`training_order` from
    ``start_batch`` on (the trainer iterates with ``.repeat()``); the last incomplete
    batch of an epoch is dropped.

    Args:
      split: a ``Split``.
      batch_size: pairs per batch; the last incomplete batch of an epoch is dropped.
      ground_size: (height, width) of the ground images, INTER_AREA resized to it.
      aerial_size: (height, width) of the aerial images, INTER_AREA resized to it.
      seed: seeds the order and the orientation noise; None draws one.
      deterministic: keep the element order fixed for a given ``seed`` (parallel decoding
        may otherwise reorder); needs a ``seed``.
      start_batch: batches already read, for a resumed run: the stream starts where an
        uninterrupted one would be (:func:`stream_position`; the pairs found bad so far
        are those of ``counter``).
      orientation_noise_deg: D; each panorama is turned by an azimuth uniform in [-D, D]
        degrees (``preprocess.random_azimuth_shift``), drawn anew each epoch.
      field_of_view: a ``field_of_view.FieldOfView``; the ground image is a crop of
        ``ground_size`` at a heading drawn anew each epoch (unknown heading) or facing north;
        None: the whole panorama.
      max_bad_fraction: the share of the split's pairs that may be bad (skipped); one more
        stops the iteration with a DatasetError (see ``dataset_errors``) naming the file.
      counter: a ``DecodeCounter`` to count in (pass one to log it; a resumed run's
        restored one), or None.
      decoder: one of :data:`DECODERS`.
      with_index: the batches also hold ``index`` int64 [batch_size], each pair's position in
        the split (``feature_cache.with_cached_aerial_features`` finds its features by it).

    Returns:
      ``tf.data.Dataset`` of dicts: ``ground`` uint8 [batch_size, *ground_size, 3],
      ``aerial`` uint8 [batch_size, *aerial_size, 3] (BGR), and for splits with positions
      ``utm`` float32 [batch_size, 2] and ``distance_sq`` float32 [batch_size, batch_size];
      with a ``field_of_view``, ``heading_deg`` float32 [batch_size].

    Raises:
      DatasetError: the split has fewer pairs than one batch.
      ValueError: ``deterministic`` without ``seed``.
    """
    check_training_split(split, batch_size)
    if deterministic and seed is None:
        raise ValueError("deterministic=True needs a seed")
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % 2**31)
    counter = counter or DecodeCounter()
    bad_pairs = _BadPairs(split, counter, max_bad_fraction)
    start = stream_position(start_batch, counter.usable(len(split)), batch_size, seed)
    dataset = training_order(len(split), seed, start).map(
        _element_fn(split, ground_size, aerial_size, bad_pairs, decoder, orientation_noise_deg, field_of_view),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=deterministic,
    )
    dataset = dataset.filter(lambda element, status: tf.equal(status, _OK))
    dataset = dataset.map(lambda element, status: element)
    if not with_index:
        dataset = dataset.map(lambda element: {key: value for key, value in element.items() if key != "index"})
    dataset = dataset.batch(batch_size, drop_remainder=True)
    if split.utm is not None:
        dataset = dataset.map(add_distances)
    return dataset.prefetch(tf.data.AUTOTUNE)


def make_ordered_pairs(split, ground_size, aerial_size, *, counter, max_bad_fraction, decoder="opencv"):
    """Every usable pair once, in split order, with its index; bad pairs skipped and counted.

    For one pass over a training split (``feature_cache``): the skipping rule is training's.

    Returns:
      ``tf.data.Dataset`` of ``(ground, aerial, index)``: uint8 [*ground_size, 3],
      uint8 [*aerial_size, 3] (BGR), int64 (unbatched).
    """
    bad_pairs = _BadPairs(split, counter, max_bad_fraction)
    element = _element_fn(split, ground_size, aerial_size, bad_pairs, decoder, 0.0, None)
    noise_seed = tf.constant(0, tf.int64)

    def indexed(index):
        result, status = element(index, noise_seed)
        return result["ground"], result["aerial"], result["index"], status

    dataset = tf.data.Dataset.range(len(split)).map(
        indexed, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    dataset = dataset.filter(lambda ground, aerial, index, status: tf.equal(status, _OK))
    return dataset.map(lambda ground, aerial, index, status: (ground, aerial, index))


def make_eval_dataset(
    split,
    batch_size,
    ground_size=preprocess.GROUND_SIZE,
    aerial_size=preprocess.AERIAL_SIZE,
    *,
    orientation_noise_deg=0.0,
    field_of_view=None,
    seed=0,
    decoder="opencv",
):
    """Evaluation batches: every pair once, in split order; a bad image is an error.

    Args:
      split: a ``Split``.
      batch_size: pairs per batch; the last batch holds the remainder.
      ground_size: (height, width) of the ground images, INTER_AREA resized to it.
      aerial_size: (height, width) of the aerial images, INTER_AREA resized to it.
      orientation_noise_deg: D; each panorama is turned by an azimuth uniform in [-D, D]
        degrees, drawn from (``seed``, pair index), so every run sees the same angles.
      field_of_view: a ``field_of_view.FieldOfView``; the ground image is a crop of
        ``ground_size`` at a heading drawn from (``seed``, pair index) (unknown heading) or
        facing north; None: the whole panorama.
      seed: int, seeds the orientation noise and the headings.
      decoder: one of :data:`DECODERS`.

    Returns:
      ``tf.data.Dataset`` of dicts: ``ground`` uint8 [b, *ground_size, 3], ``aerial``
      uint8 [b, *aerial_size, 3] (BGR), ``index`` int64 [b], ``utm`` float32 [b, 2] for
      splits with positions and ``heading_deg`` float32 [b] with a ``field_of_view``
      (b = batch_size, less in the last batch). Iterating stops with
      a DatasetError (see ``dataset_errors``) naming the file of a bad image.
    """
    bad_pairs = _BadPairs(split, None, 0.0)
    element = _element_fn(split, ground_size, aerial_size, bad_pairs, decoder, orientation_noise_deg, field_of_view)
    noise_seed = tf.constant(seed, tf.int64)

    def eval_element(index):
        result, _ = element(index, noise_seed)
        if "utm" in result:
            result["utm"] = tf.cast(result["utm"], tf.float32)
        return result

    dataset = tf.data.Dataset.range(len(split)).map(
        eval_element, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
