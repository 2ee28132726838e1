"""Small maps and a fake model for the localization tests (no network, no trained weights)."""

import json
import os

import cv2
import numpy as np

from cvft_tf.localization.encoders import Encoders

UTM_32N = "EPSG:32632"


def write_png_map(directory, size=(60, 80), metres_per_pixel=2.0, origin=(300000.0, 5000000.0), seed=0,
                  crs=UTM_32N, name="map.png"):  # fmt: skip
    """A random-texture PNG map with its JSON geo-reference; returns its path.

    ``size`` is (height, width) in pixels; ``origin`` the north-west corner in ``crs``.
    """
    height, width = size
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_NEAREST)
    image = np.clip(image.astype(np.int16) + rng.integers(-20, 21, image.shape), 0, 255).astype(np.uint8)
    path = os.path.join(directory, name)
    cv2.imwrite(path, image)
    with open(os.path.splitext(path)[0] + ".json", "w") as handle:
        json.dump({"crs": crs, "origin": list(origin), "metres_per_pixel": metres_per_pixel}, handle)
    return path


def _pooled(images, cells):
    """[N, H, W, 3] uint8 -> float32 [N, cells*cells*3], unit norm: mean colour over a grid of cells."""
    images = np.asarray(images, np.float32)
    n, h, w, _ = images.shape
    pooled = images[:, : h - h % cells, : w - w % cells].reshape(n, cells, h // cells, cells, w // cells, 3)
    features = pooled.mean(axis=(2, 4)).reshape(n, -1) - 128.0
    return (features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-6)).astype(np.float32)


def fake_encoders(name="fake", aerial_size=(16, 16), ground_size=(8, 32)):
    """:class:`Encoders` whose descriptors are pooled colours (48-d), fingerprint ``name``."""
    return Encoders(
        ground=lambda images: _pooled(images, 4),
        aerial=lambda images: _pooled(images, 4),
        ground_size=ground_size,
        aerial_size=aerial_size,
        dimension=48,
        fingerprint=name,
        source={"workdir": f"/nowhere/{name}"},
    )


def write_tile_folder(directory, centres_px, side=20, metres_per_pixel=2.0, origin=(300000.0, 5000000.0), seed=0,
                      crs=UTM_32N):  # fmt: skip
    """Tiles cut from a random-texture map at pixel centres ``centres_px`` [(row, col)], with
    ``tiles.csv`` (their centres in map coordinates) and ``tiles.json`` (``crs``; none if None).

    Returns:
        ``(folder, tiles)``: the folder's path and the uint8 BGR tiles [n, side, side, 3].
    """
    os.makedirs(directory, exist_ok=True)
    image = cv2.imread(write_png_map(directory, size=(80, 100), seed=seed, name="source.png"))
    os.remove(os.path.join(directory, "source.png"))
    os.remove(os.path.join(directory, "source.json"))
    os.makedirs(os.path.join(directory, "img"), exist_ok=True)
    rows, tiles = ["path,x,y"], []
    for number, (row, col) in enumerate(centres_px):
        tile = image[row - side // 2 : row + side // 2, col - side // 2 : col + side // 2]
        name = f"img/{number:03d}.png"
        cv2.imwrite(os.path.join(directory, name), tile)
        x, y = origin[0] + col * metres_per_pixel, origin[1] - row * metres_per_pixel
        rows.append(f"{name},{x},{y}")
        tiles.append(tile)
    with open(os.path.join(directory, "tiles.csv"), "w") as handle:
        handle.write("\n".join(rows) + "\n")
    if crs is not None:
        with open(os.path.join(directory, "tiles.json"), "w") as handle:
            json.dump({"crs": crs}, handle)
    return directory, np.stack(tiles)
