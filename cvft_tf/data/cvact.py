"""CVACT, read as the original code reads it, from raw or pre-cut images.

``ACT_data.mat`` (scipy.io.loadmat) holds ``panoIds`` (N ids), ``utm`` (N x 2, metres) and
the 1-based index columns ``trainSet.trainInd``, ``valSet.valInd`` (CVACT_val) and
``valSetAll.valInd`` (CVACT_test, 92,802 pairs), read as ``mat['trainSet']['trainInd'][0][0]``.
Ground: ``streetview/{id}_grdView.{png,jpg}``; aerial:
``satview_polish/{id}_satView_polish.{png,jpg}`` (PNG when both exist).

The released images are 832x1664 panoramas and 1200x1200 aerial tiles; the original's
train/val reader expects copies cut to 112x616 and 256x256, its test reader cuts them
itself (panorama rows 208..624, the middle half, resized with INTER_AREA). Both are accepted
here: a panorama twice as wide as high is raw and cut to its middle half; one with the cut
aspect (112:616) is used as it is; either is then INTER_AREA resized to the output size
when it differs from it.
"""

import os

import numpy as np
import scipy.io

from cvft_tf.data import pipeline, preprocess

SAME_PLACE_RADIUS_M = 25.0
"""Two positions closer than this (squared UTM distance < 625 m^2) are the same place; used
by the masked loss (negatives) and by the CVACT_test metric."""

AERIAL_FOOTPRINT_M = 144.0
"""Side of the ground covered by a CVACT aerial tile, metres: 1200 x 1200 pixels at 0.12 m per
pixel (Liu & Li, CVPR 2019)."""

MAT_FILE = "ACT_data.mat"
"""Default name of the split file, in the dataset root."""

SPLIT_FIELDS = {
    "train": ("trainSet", "trainInd"),
    "val": ("valSet", "valInd"),
    "test": ("valSetAll", "valInd"),
}
"""Split name -> (struct, field) of its 1-based index column in ``ACT_data.mat``."""

GROUND_DIR, GROUND_SUFFIX = "streetview", "_grdView"
AERIAL_DIR, AERIAL_SUFFIX = "satview_polish", "_satView_polish"
_EXTENSIONS = (".png", ".jpg")
_CUT_ASPECT_TOLERANCE = 0.02


def ground_rows(height, width):
    """The rows of a CVACT panorama that are used: the middle half of a raw one, all of a cut one.

    Args:
      height, width: the decoded panorama's size.

    Returns:
      ``(height // 4, 3 * height // 4)`` for a raw panorama (width = 2 x height: its
      middle half, rows 208..624 of 832, as the original's CVACT reader cuts it),
      ``(0, height)`` for one already cut (a ``Split.ground_rows`` rule).

    Raises:
      ImageError: neither raw (W = 2H, e.g. 832x1664) nor cut (W/H = 616/112, e.g. 112x616).
    """
    if width == 2 * height:
        return height // 4, 3 * height // 4
    cut_aspect = preprocess.GROUND_SIZE[1] / preprocess.GROUND_SIZE[0]
    if abs(width / height / cut_aspect - 1.0) > _CUT_ASPECT_TOLERANCE:
        raise preprocess.ImageError(
            f"has size {height}x{width}, expected a raw panorama (width = 2 x height, "
            "e.g. 832x1664) or one cut to its middle half (e.g. 112x616)"
        )
    return 0, height


def _pano_ids(array):
    """``panoIds`` as loadmat gives it (char rows or a cell array) -> list of str."""
    ids = []
    for item in np.asarray(array).ravel():
        while isinstance(item, np.ndarray):
            item = item.ravel()[0] if item.size else ""
        ids.append(str(item).strip())
    return ids


def _load_mat(mat_path, split):
    """-> (pano_ids list, utm float64 [N, 2], 0-based indices, problems)."""
    try:
        mat = scipy.io.loadmat(mat_path)
    except FileNotFoundError:
        return None, None, None, [f"{mat_path}: the file does not exist"]
    except Exception as error:  # scipy raises many kinds for a file that is not a .mat
        return None, None, None, [f"{mat_path}: cannot load it as a .mat file: {error}"]

    struct, field = SPLIT_FIELDS[split]
    problems = [f"{mat_path}: no field '{key}'" for key in ("panoIds", "utm") if key not in mat]
    if struct not in mat:
        problems.append(f"{mat_path}: no field '{struct}' (split '{split}')")
    elif field not in (mat[struct].dtype.names or ()):
        problems.append(f"{mat_path}: '{struct}' has no field '{field}' (split '{split}')")
    if problems:
        return None, None, None, problems

    pano_ids = _pano_ids(mat["panoIds"])
    utm = np.asarray(mat["utm"], np.float64)
    if utm.shape != (len(pano_ids), 2):
        problems.append(
            f"{mat_path}: 'utm' has shape {utm.shape}, expected ({len(pano_ids)}, 2) "
            "(one row per panoId)"
        )
    indices = np.asarray(mat[struct][field][0][0]).ravel()
    if indices.size == 0:
        problems.append(f"{mat_path}: {struct}.{field} is empty (no pairs)")
    elif not np.all(indices == np.round(indices)):
        problems.append(f"{mat_path}: {struct}.{field} holds non-integer indices")
    else:
        indices = indices.astype(np.int64)
        for row in np.flatnonzero((indices < 1) | (indices > len(pano_ids))):
            problems.append(
                f"{mat_path}: {struct}.{field} row {row + 1} is {indices[row]}, outside "
                f"1..{len(pano_ids)} (1-based panoIds)"
            )
        if not problems and utm.shape == (len(pano_ids), 2):
            problems += _non_finite_utm(mat_path, utm, pano_ids, np.unique(indices - 1))
    return pano_ids, utm, indices - 1, problems


def _non_finite_utm(mat_path, utm, pano_ids, rows):
    """A problem for each of ``rows`` (0-based) whose position is NaN or infinite: such a pair
    is never within the same-place radius of anything, and would lower the recall unseen."""
    return [
        f"{mat_path}: utm row {row + 1} (panoId {pano_ids[row]}) is {utm[row].tolist()}, not a finite position"
        for row in rows
        if not np.all(np.isfinite(utm[row]))
    ]


def _find_image(files, directory, stem):
    for extension in _EXTENSIONS:
        path = os.path.join(directory, stem + extension)
        if files.exists(path):
            return path
    return None


def read_split(root, split="train", mat_path=None):
    """Reads a CVACT split from ``ACT_data.mat`` and checks it: fields, indices, image files.

    Args:
      root: dataset root (holds ``streetview/``, ``satview_polish/``).
      split: ``"train"``, ``"val"`` (CVACT_val) or ``"test"`` (CVACT_test, ``valSetAll``).
      mat_path: the split file; default ``root/ACT_data.mat``.

    Returns:
      ``pipeline.Split`` of the N pairs in index order, with ``utm`` float64 [N, 2] and
      ``sources`` naming the .mat row and panoId.

    Raises:
      DatasetError: listing every problem: missing or unreadable .mat, missing fields,
        indices out of range, missing images, empty split.
    """
    if split not in SPLIT_FIELDS:
        raise ValueError(f"split must be one of {sorted(SPLIT_FIELDS)}, got {split!r}")
    mat_path = mat_path or os.path.join(root, MAT_FILE)
    name = f"CVACT split '{split}' of {mat_path}"
    pano_ids, utm, indices, problems = _load_mat(mat_path, split)
    pipeline.raise_problems(name, problems)

    struct, field = SPLIT_FIELDS[split]
    files = pipeline.FileIndex()
    ground_dir, aerial_dir = os.path.join(root, GROUND_DIR), os.path.join(root, AERIAL_DIR)
    ground_paths, aerial_paths, sources = [], [], []
    for row, index in enumerate(indices):
        pano_id = pano_ids[index]
        source = f"{mat_path} {struct}.{field} row {row + 1} (panoId {pano_id})"
        ground = _find_image(files, ground_dir, pano_id + GROUND_SUFFIX)
        aerial = _find_image(files, aerial_dir, pano_id + AERIAL_SUFFIX)
        for kind, path, directory, suffix in (
            ("ground", ground, ground_dir, GROUND_SUFFIX),
            ("aerial", aerial, aerial_dir, AERIAL_SUFFIX),
        ):
            if path is None:
                problems.append(
                    f"{source}: no {kind} image {os.path.join(directory, pano_id + suffix)}"
                    ".png or .jpg"
                )
        ground_paths.append(ground)
        aerial_paths.append(aerial)
        sources.append(source)
    pipeline.raise_problems(name, problems)
    return pipeline.Split(
        name=name,
        ground_paths=tuple(ground_paths),
        aerial_paths=tuple(aerial_paths),
        sources=tuple(sources),
        utm=utm[indices],
        ground_rows=ground_rows,
    )
