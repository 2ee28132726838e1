"""CVUSA with the 19zl splits, read as the original code reads it.

Layout under the dataset root: ``splits/train-19zl.csv`` (35,532 pairs) and
``splits/val-19zl.csv`` (8,884); no header; each line
``bingmap/19/0000001.jpg,streetview/panos/0000001.jpg,streetview/annotations/0000001.png``
(aerial, ground, annotation; the annotation is unused), relative to the root. Aerial tiles
are 750x750 and panoramas 224x1232; the original's training reader skips a pair whose aerial
is not square or whose panorama is not exactly 224x1232 (``RAW_GROUND_SIZE``).
"""

import functools
import os

from cvft_tf.data import pipeline, preprocess

RAW_GROUND_SIZE = (224, 1232)
"""(height, width) every raw CVUSA panorama must have (the original's training check)."""

AERIAL_FOOTPRINT_M = 170.0
"""Side of the ground covered by a CVUSA aerial tile, metres: 750 x 750 pixels of zoom-19 Bing
imagery, about 0.23 m per pixel at the mid latitudes of the United States (Workman et al., 2015).
An approximation: the metres per pixel of a Web Mercator zoom level shrink with the cosine of
the latitude."""

SPLIT_CSV = {"train": "splits/train-19zl.csv", "val": "splits/val-19zl.csv"}
"""Split names and their CSV files, relative to the dataset root."""

_FIELDS = 3
_SHOWN_CHARS = 120


def raw_ground_rows(height, width, raw_size=RAW_GROUND_SIZE):
    """The original's panorama rule: exactly ``raw_size`` (None: any size); all rows are used.

    Args:
      height, width: the decoded panorama's size.
      raw_size: (height, width) every panorama must have, or None.

    Returns:
      ``(0, height)``: the rows kept (a ``Split.ground_rows`` rule).

    Raises:
      ImageError: the panorama has another size.
    """
    if raw_size is not None and (height, width) != tuple(raw_size):
        raise preprocess.ImageError(
            f"has size {height}x{width}, expected {raw_size[0]}x{raw_size[1]} "
            "(raw_ground_size)"
        )
    return 0, height


def read_split(root, split_csv="train", raw_ground_size=RAW_GROUND_SIZE):
    """Reads a CVUSA split file and checks it: CSV format, every image file present.

    Args:
      root: dataset root (holds ``bingmap/``, ``streetview/``, ``splits/``).
      split_csv: ``"train"``, ``"val"`` (see ``SPLIT_CSV``) or a CSV path, absolute or
        relative to ``root``.
      raw_ground_size: (height, width) a panorama must have to be used, or None for any
        (the synthetic world writes smaller panoramas).

    Returns:
      ``pipeline.Split`` of the N pairs in file order; ``sources`` are ``"csv:line"``.

    Raises:
      DatasetError: listing every problem: missing CSV, malformed lines, missing image
        files, empty split; each names the CSV file and line.
    """
    csv_path = os.path.join(root, SPLIT_CSV.get(split_csv, split_csv))
    name = f"CVUSA split {csv_path}"
    try:
        with open(csv_path, encoding="utf-8-sig", errors="replace") as file:  # -sig: drops a byte-order mark
            lines = file.read().splitlines()
    except OSError as error:
        raise pipeline.DatasetError(f"{name}: cannot read it: {error.strerror}") from None

    files = pipeline.FileIndex()
    problems, ground_paths, aerial_paths, sources = [], [], [], []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        fields = [field.strip() for field in text.split(",")]
        if len(fields) != _FIELDS or not all(fields):
            problems.append(
                f"{csv_path}:{number}: expected 3 comma-separated paths "
                f"(aerial,ground,annotation), got {text[:_SHOWN_CHARS]!r}"
            )
            continue
        aerial, ground = (os.path.join(root, field) for field in fields[:2])
        for kind, path in (("aerial", aerial), ("ground", ground)):
            if not files.exists(path):
                problems.append(f"{csv_path}:{number}: {kind} image {path} does not exist")
        aerial_paths.append(aerial)
        ground_paths.append(ground)
        sources.append(f"{csv_path}:{number}")
    if not ground_paths and not problems:
        problems.append(f"{csv_path}: the split is empty (no pairs)")
    pipeline.raise_problems(name, problems)
    return pipeline.Split(
        name=name,
        ground_paths=tuple(ground_paths),
        aerial_paths=tuple(aerial_paths),
        sources=tuple(sources),
        ground_rows=functools.partial(raw_ground_rows, raw_size=raw_ground_size),
    )
