"""Writes the synthetic world to disk in the CVUSA or CVACT layout, for the real loaders.

CVUSA (``write_cvusa``), under ``out_dir``:

- ``bingmap/19/{id:07d}.jpg``: aerial tiles, square (default 750 x 750 over 170 m, about
  zoom-19 Bing imagery at mid latitudes, 0.23 m per pixel);
- ``streetview/panos/{id:07d}.jpg``: panoramas, default 224 x 1232 (H x W), square
  pixels (65.5 degrees of elevation about the horizon);
- ``splits/train-19zl.csv`` and ``splits/val-19zl.csv``: no header, one pair a line,
  ``bingmap/19/0000001.jpg,streetview/panos/0000001.jpg,streetview/annotations/0000001.png``
  (the annotation is listed, as in CVUSA, but not written; the loaders ignore it).
  Ids start at 1 and are unique over train + val: the training pairs come first.
- ``locations.csv``: ``id,split,east_m,north_m``, each pair's camera position in metres
  in the world's east/north frame (not part of CVUSA; for checks and localization).

  The validation locations lie in an area of their own, east of the training square and
  beyond the panoramas' reach (``held_out_origin``): no validation place, and nothing a
  validation image shows, is seen in training.

CVACT (``write_cvact``), under ``out_dir``:

- ``ACT_data.mat`` (``scipy.io.loadmat``): ``panoIds`` (N strings of 22 characters),
  ``utm`` (N x 2 float64, easting / northing in metres: ``UTM_ORIGIN`` plus the world
  position, so distances between rows are distances in the world), and the (K x 1) int64
  1-based index columns ``trainSet.trainInd``, ``valSet.valInd`` (CVACT_val) and
  ``valSetAll.valInd`` (CVACT_test), read as ``mat['trainSet']['trainInd'][0][0] - 1``;
- ``streetview/{id}_grdView.jpg`` and ``satview_polish/{id}_satView_polish.jpg``.
  By default the images are the pre-cut sizes the original training reader expects
  (panorama 112 x 616 covering elevations +-45 degrees, aerial 256 x 256 over 144 m);
  with ``CVACT_RAW_IMAGES`` they are the released sizes (832 x 1664 full-sphere
  panorama, +-90 degrees, whose rows 208..624 are the pre-cut view; 1200 x 1200 aerial,
  0.12 m per pixel), much slower to render.
  Train and val locations share one area with ``spacing`` metres between neighbours;
  the test split lies in a separate area, ``test_spacing`` (20 m) apart, so many test
  locations have another within 25 m (the radius of CVACT's geo-recall).

Every pair is rendered from its own random generator seeded by (seed, pair number), so a
seed gives byte-identical files whatever ``workers`` is. Time per pair on one core
(rendering and JPEG encoding): about 0.3 s at the CVUSA sizes, 0.2 s at the pre-cut CVACT
sizes, 1.1 s at the raw CVACT sizes and 0.06 s for a 128 px aerial with a 64 x 352
panorama.
"""

import concurrent.futures
import dataclasses
import functools
import io
import multiprocessing
import os
import string
import time

import cv2
import numpy as np
import scipy.io
from absl import logging

from cvft_tf.synthetic.render import MAX_DISTANCE, render_pair
from cvft_tf.synthetic.world import CityWorld, sample_locations


@dataclasses.dataclass(frozen=True)
class ImageSpec:
    """Sizes and geometry of the written images.

    Attributes:
      aerial_size: aerial side, pixels.
      aerial_extent: aerial side, metres.
      ground_height, ground_width: panorama size, pixels.
      vertical_fov: panorama elevation range centred on the horizon, degrees; None for
        square pixels (``360 * ground_height / ground_width``).
    """

    aerial_size: int
    aerial_extent: float
    ground_height: int
    ground_width: int
    vertical_fov: float = None


CVUSA_IMAGES = ImageSpec(aerial_size=750, aerial_extent=170.0, ground_height=224, ground_width=1232)
"""CVUSA's sizes: 750 x 750 aerial (zoom 19), 224 x 1232 panorama."""

CVACT_IMAGES = ImageSpec(
    aerial_size=256, aerial_extent=144.0, ground_height=112, ground_width=616, vertical_fov=90.0
)
"""CVACT cut as the original's training reader expects: 256 x 256 aerial, 112 x 616
panorama (the middle half of the raw panorama's rows)."""

CVACT_RAW_IMAGES = ImageSpec(
    aerial_size=1200, aerial_extent=144.0, ground_height=832, ground_width=1664, vertical_fov=180.0
)
"""CVACT as released: 1200 x 1200 aerial, 832 x 1664 full-sphere panorama."""

UTM_ORIGIN = (300000.0, 5000000.0)
"""UTM (easting, northing) in metres of the world's (0, 0)."""

SPACING = 100.0
"""Metres between neighbouring train / val locations."""

TEST_SPACING = 20.0
"""Metres between neighbouring CVACT test locations (dense, as CVACT_test)."""

JPEG_QUALITY = 95

CVUSA_SPLITS = {"train": "splits/train-19zl.csv", "val": "splits/val-19zl.csv"}

LOCATIONS_CSV = "locations.csv"
"""CVUSA layout: the camera position of every pair (``id,split,east_m,north_m``)."""

_SPLIT_STREAM, _PAIR_STREAM, _ID_STREAM = 1, 2, 3
_ID_LENGTH = 22  # Google panorama ids, as CVACT's
_ID_ALPHABET = string.ascii_letters + string.digits + "-_"


def _prepare(out_dir, overwrite):
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not overwrite:
        raise FileExistsError(
            f"{out_dir} is not empty; pass overwrite=True (--overwrite) to write into it"
        )
    os.makedirs(out_dir, exist_ok=True)


def _write_jpeg(path, image_rgb, quality):
    if not cv2.imwrite(path, image_rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)]):
        raise OSError(f"cannot write {path}")


def _write_pairs(seed, images, quality, jobs):
    """Renders and writes pairs; ``jobs`` is a list of (pair number, (east, north), aerial
    path, ground path). Returns the number written."""
    world = CityWorld(seed)
    for number, center, aerial_path, ground_path in jobs:
        rng = np.random.default_rng([seed, _PAIR_STREAM, number])
        aerial, ground = render_pair(
            world,
            center,
            rng,
            aerial_size=images.aerial_size,
            aerial_extent=images.aerial_extent,
            ground_height=images.ground_height,
            ground_width=images.ground_width,
            vertical_fov=images.vertical_fov,
        )
        _write_jpeg(aerial_path, aerial, quality)
        _write_jpeg(ground_path, ground, quality)
    return len(jobs)


def _render_all(seed, images, quality, jobs, workers):
    """Writes every pair, on ``workers`` processes; logs progress."""
    for path in {os.path.dirname(p) for job in jobs for p in job[2:]}:
        os.makedirs(path, exist_ok=True)
    chunk = max(1, min(100, len(jobs) // (10 * max(1, workers))))
    chunks = [jobs[i : i + chunk] for i in range(0, len(jobs), chunk)]
    done = 0
    report = max(1, len(jobs) // 10)
    write = functools.partial(_write_pairs, seed, images, quality)
    if workers <= 1:
        executor = None
        results = map(write, chunks)
    else:
        executor = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn")
        )
        results = executor.map(write, chunks)
    try:
        for count in results:
            previous, done = done, done + count
            if done // report != previous // report or done == len(jobs):
                logging.info("synthetic: %d / %d pairs written", done, len(jobs))
    finally:
        if executor is not None:
            executor.shutdown()


def held_out_origin(num_known, spacing):
    """South-west corner (east, north) of an area held out from ``num_known`` locations.

    ``sample_locations`` puts ``num_known`` locations in a square of ``ceil(sqrt(n))`` cells
    of ``spacing`` metres from (0, 0); the held-out area starts east of it, 3 panorama
    ranges (``MAX_DISTANCE``) further, so no image of one area shows the other.
    """
    return (np.ceil(np.sqrt(max(num_known, 1))) * spacing + 3 * MAX_DISTANCE, 0.0)


def _split_mask(seed, total, count):
    """Boolean [total], True for a random subset of ``count`` items."""
    mask = np.zeros(total, bool)
    mask[np.random.default_rng([seed, _SPLIT_STREAM]).permutation(total)[:count]] = True
    return mask


def _summary(out_dir, layout, splits, start):
    seconds = time.perf_counter() - start
    pairs = sum(splits.values())
    return {
        "out_dir": out_dir,
        "format": layout,
        "pairs": pairs,
        "splits": splits,
        "seconds": seconds,
        "seconds_per_pair": seconds / max(pairs, 1),
    }


def write_cvusa(
    out_dir,
    num_train,
    num_val,
    seed=0,
    images=CVUSA_IMAGES,
    spacing=SPACING,
    workers=1,
    overwrite=False,
    jpeg_quality=JPEG_QUALITY,
):
    """Writes a synthetic dataset in the CVUSA layout (module docstring).

    Args:
      out_dir: dataset root to create (must be empty unless ``overwrite``).
      num_train, num_val: pairs per split.
      seed: world and rendering seed.
      images: ``ImageSpec``.
      spacing: metres between neighbouring locations.
      workers: processes rendering in parallel (the files do not depend on it).
      overwrite: write into a non-empty ``out_dir`` (files of the same name are replaced,
        nothing is deleted).
      jpeg_quality: OpenCV JPEG quality.

    Returns:
      dict: ``out_dir``, ``format``, ``pairs``, ``splits`` ({name: pairs}), ``seconds``,
      ``seconds_per_pair``.
    """
    start = time.perf_counter()
    _prepare(out_dir, overwrite)
    world = CityWorld(seed)
    train_centers = sample_locations(world, num_train, spacing).reshape(-1, 2)
    val_centers = sample_locations(
        world, num_val, spacing, origin=held_out_origin(num_train, spacing), salt=2
    ).reshape(-1, 2)
    splits = ["train"] * num_train + ["val"] * num_val
    jobs, lines, locations = [], {"train": [], "val": []}, ["id,split,east_m,north_m\n"]
    for number, (split, center) in enumerate(zip(splits, np.concatenate([train_centers, val_centers])), start=1):
        aerial = f"bingmap/19/{number:07d}.jpg"
        ground = f"streetview/panos/{number:07d}.jpg"
        annotation = f"streetview/annotations/{number:07d}.png"
        lines[split].append(f"{aerial},{ground},{annotation}\n")
        locations.append(f"{number:07d},{split},{center[0]:.3f},{center[1]:.3f}\n")
        jobs.append((number, tuple(center), os.path.join(out_dir, aerial), os.path.join(out_dir, ground)))
    _render_all(seed, images, jpeg_quality, jobs, workers)
    for split, relative in CVUSA_SPLITS.items():
        path = os.path.join(out_dir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="") as file:
            file.writelines(lines[split])
    with open(os.path.join(out_dir, LOCATIONS_CSV), "w", encoding="utf-8", newline="") as file:
        file.writelines(locations)
    return _summary(out_dir, "cvusa", {name: len(rows) for name, rows in lines.items()}, start)


def _pano_ids(seed, count):
    """``count`` distinct 22-character panorama ids (letters, digits, ``-``, ``_``)."""
    rng = np.random.default_rng([seed, _ID_STREAM])
    ids, seen = [], set()
    while len(ids) < count:
        codes = rng.integers(0, len(_ID_ALPHABET), (count - len(ids), _ID_LENGTH))
        codes[:, 0] %= len(string.ascii_letters)  # never starts with "-"
        for row in codes:
            pano_id = "".join(_ID_ALPHABET[c] for c in row)
            if pano_id not in seen:
                seen.add(pano_id)
                ids.append(pano_id)
    return ids


def _save_mat(path, contents):
    """``scipy.io.savemat`` with a fixed header text (scipy stamps the time there)."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, contents)
    data = bytearray(buffer.getvalue())
    data[:116] = b"MATLAB 5.0 MAT-file, written by cvft_tf.synthetic".ljust(116, b" ")
    with open(path, "wb") as file:
        file.write(bytes(data))


def write_cvact(
    out_dir,
    num_train,
    num_val,
    num_test,
    seed=0,
    images=CVACT_IMAGES,
    spacing=SPACING,
    test_spacing=TEST_SPACING,
    workers=1,
    overwrite=False,
    jpeg_quality=JPEG_QUALITY,
):
    """Writes a synthetic dataset in the CVACT layout (module docstring).

    Args:
      out_dir: dataset root to create (must be empty unless ``overwrite``).
      num_train, num_val: pairs of ``trainSet`` and ``valSet`` (CVACT_val).
      num_test: pairs of ``valSetAll`` (CVACT_test), in a separate, denser area.
      seed: world and rendering seed.
      images: ``ImageSpec`` (``CVACT_IMAGES`` pre-cut, or ``CVACT_RAW_IMAGES``).
      spacing: metres between neighbouring train / val locations.
      test_spacing: metres between neighbouring test locations.
      workers: processes rendering in parallel (the files do not depend on it).
      overwrite: write into a non-empty ``out_dir`` (nothing is deleted).
      jpeg_quality: OpenCV JPEG quality.

    Returns:
      dict: ``out_dir``, ``format``, ``pairs``, ``splits`` ({name: pairs}), ``seconds``,
      ``seconds_per_pair``.
    """
    start = time.perf_counter()
    _prepare(out_dir, overwrite)
    world = CityWorld(seed)
    known = num_train + num_val
    centers = sample_locations(world, known, spacing)
    test_centers = sample_locations(world, num_test, test_spacing, origin=held_out_origin(known, spacing), salt=1)
    centers = np.concatenate([centers.reshape(-1, 2), test_centers.reshape(-1, 2)])
    pano_ids = _pano_ids(seed, len(centers))
    is_val = _split_mask(seed, known, num_val)
    numbers = np.arange(1, len(centers) + 1)  # 1-based, as MATLAB
    splits = {
        "trainSet": ("trainInd", numbers[:known][~is_val]),
        "valSet": ("valInd", numbers[:known][is_val]),
        "valSetAll": ("valInd", numbers[known:]),
    }
    jobs = [
        (
            int(number),
            tuple(center),
            os.path.join(out_dir, "satview_polish", f"{pano_id}_satView_polish.jpg"),
            os.path.join(out_dir, "streetview", f"{pano_id}_grdView.jpg"),
        )
        for number, center, pano_id in zip(numbers, centers, pano_ids)
    ]
    _render_all(seed, images, jpeg_quality, jobs, workers)
    contents = {
        "panoIds": np.array(pano_ids),
        "utm": centers + np.asarray(UTM_ORIGIN),
    }
    for struct, (field, index) in splits.items():
        contents[struct] = {field: index.astype(np.int64).reshape(-1, 1)}
    _save_mat(os.path.join(out_dir, "ACT_data.mat"), contents)
    names = {"trainSet": "train", "valSet": "val", "valSetAll": "test"}
    return _summary(out_dir, "cvact", {names[s]: len(i) for s, (_, i) in splits.items()}, start)
