"""Tiny CVUSA and CVACT datasets in their real on-disk layouts, and the expected pixels.

The expected pixels are computed here with OpenCV directly (imread, INTER_AREA resize),
independently of ``cvft_tf.data.preprocess``.
"""

import os

import cv2
import numpy as np
import scipy.io

GROUND_OUT = (8, 44)
AERIAL_OUT = (16, 16)


def make_image(height, width, seed):
    """uint8 BGR [height, width, 3]: a gradient plus noise, different for every seed."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    base = np.stack(
        [cols * 255.0 / width, rows * 255.0 / height, np.full((height, width), 37.0 * seed % 256)],
        axis=-1,
    )
    return np.clip(base + rng.normal(0, 30, (height, width, 3)), 0, 255).astype(np.uint8)


def write_image(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, image), path


def expected(path, size, rows=None):
    """The pipelines' uint8 BGR pixels for the image file at ``path``: the original's
    network input before its mean is subtracted (now the model's first layer)."""
    image = cv2.imread(path)
    if rows is not None:
        image = image[rows[0] : rows[1]]
    if image.shape[:2] != tuple(size):
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return image


def write_cvusa(root, n_pairs, ground_raw=(16, 88), aerial_raw=(40, 40), csv="train-19zl.csv"):
    """Writes ``n_pairs`` CVUSA pairs (JPEG) and their split CSV; returns the CSV path."""
    lines = []
    for i in range(1, n_pairs + 1):
        aerial = f"bingmap/19/{i:07d}.jpg"
        ground = f"streetview/panos/{i:07d}.jpg"
        write_image(os.path.join(root, aerial), make_image(*aerial_raw, seed=2 * i))
        write_image(os.path.join(root, ground), make_image(*ground_raw, seed=2 * i + 1))
        lines.append(f"{aerial},{ground},streetview/annotations/{i:07d}.png")
    csv_path = os.path.join(root, "splits", csv)
    os.makedirs(os.path.dirname(csv_path), exist_ok=True)
    with open(csv_path, "w") as file:
        file.write("\n".join(lines) + "\n")
    return csv_path


def write_cvusa_train_val(root, ground_raw, aerial_raw=(64, 64), num_train=8, num_val=6):
    """Writes a tiny CVUSA dataset with both splits (``train-19zl.csv``, ``val-19zl.csv``)."""
    write_cvusa(root, num_train, ground_raw=ground_raw, aerial_raw=aerial_raw, csv="train-19zl.csv")
    write_cvusa(root, num_val, ground_raw=ground_raw, aerial_raw=aerial_raw, csv="val-19zl.csv")
    return root


def cvact_ground_path(root, pano_id, extension=".png"):
    return os.path.join(root, "streetview", f"{pano_id}_grdView{extension}")


def cvact_aerial_path(root, pano_id, extension=".png"):
    return os.path.join(root, "satview_polish", f"{pano_id}_satView_polish{extension}")


def cvact_utm(n_places):
    """UTM positions [n, 2] in metres: 10 m apart along x, near a real CVACT easting."""
    return np.stack([500000.0 + 10.0 * np.arange(n_places), np.full(n_places, 6100000.0)], -1)


def write_cvact(
    root,
    n_places,
    train=(),
    val=(),
    test=(),
    ground_raw=(32, 64),
    aerial_raw=(40, 40),
    extension=".png",
    mat=None,
):
    """Writes CVACT images for ``n_places`` panoIds and ``ACT_data.mat``; returns the ids.

    ``train`` / ``val`` / ``test`` are 1-based indices into panoIds (as in the real file);
    ``mat`` replaces the .mat contents when given.
    """
    pano_ids = [f"pano{i:04d}xyz" for i in range(n_places)]
    for i, pano_id in enumerate(pano_ids):
        write_image(cvact_ground_path(root, pano_id, extension), make_image(*ground_raw, 3 * i))
        write_image(cvact_aerial_path(root, pano_id, extension), make_image(*aerial_raw, 3 * i + 1))
    if mat is None:
        column = lambda indices: np.asarray(indices, np.float64).reshape(-1, 1)  # noqa: E731
        mat = {
            "panoIds": np.array(pano_ids),
            "utm": cvact_utm(n_places),
            "trainSet": {"trainInd": column(train)},
            "valSet": {"valInd": column(val)},
            "valSetAll": {"valInd": column(test)},
        }
    scipy.io.savemat(os.path.join(root, "ACT_data.mat"), mat)
    return pano_ids
