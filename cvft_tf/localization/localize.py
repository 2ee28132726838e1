"""Localizing ground panoramas in an index: top-K map positions, errors in metres, heatmaps.

A query's matches are the K windows with the highest score ``q . w`` (its ground descriptor
against the windows' aerial descriptors); a match's position is its window's centre. With
``min_separation_m`` the matches are spread out (non-maximum suppression): a window closer
than that to a better match is passed over, so that the K matches are K distinct places, not
the neighbours of one peak (windows a stride apart score alike). With
the truth known, a query's error at top-K is the distance from the truth to the nearest of
its first K matches (metres; the map CRS is projected in metres).

A model whose matcher compares maps (``dsm``) is searched exhaustively by its matcher
(:func:`window_scores`) instead of FAISS's inner product, and each match carries the heading
the matcher estimates there (``heading_deg``, degrees clockwise from north); the query's
``heading_deg`` is its top-1 match's.

A query's record (:func:`query_record`) is a dict of plain values whose ``matches`` are
dicts too; the CSV writers take whatever keys there are.
"""

import csv
import dataclasses
import os

import numpy as np
import tensorflow as tf

from cvft_tf.data.preprocess import ImageError, read_image, resize_image
from cvft_tf.localization import index as index_files
from cvft_tf.localization import search
from cvft_tf.localization.errors import DamagedIndexError, LocalizationError, QueryError
from cvft_tf.localization.geomap import to_lat_lon
from cvft_tf.output_dirs import atomic_path

RADII_M = (25.0, 50.0, 100.0)
"""Radii of the summary's shares of queries localized within a distance."""
TOP_KS = (1, 10)
QUERY_SUFFIXES = (".jpg", ".jpeg", ".png")
CANDIDATES_PER_MATCH = 50
"""Windows searched per match wanted when the matches are spread out."""
MAP_WINDOWS_PER_CALL = 4096
"""Windows a map matcher compares with the queries at a time."""


@dataclasses.dataclass
class LoadedIndex:
    """An index opened for queries.

    Attributes:
        directory: the index directory.
        manifest: its manifest.
        search_index: the FAISS index.
        positions: float64 [N, 2], map coordinates of every window (FAISS id order).
        map_of: int64 [N], the map entry (position in ``manifest["maps"]``) of each window.
        entries: the complete map entries, in id order.
    """

    directory: str
    manifest: dict
    search_index: object
    positions: np.ndarray
    map_of: np.ndarray
    entries: list

    def descriptors(self):
        """float32 [N, D], every window's descriptor (read from the chunks)."""
        return np.concatenate([index_files.load_descriptors(self.directory, e) for e in self.entries])


def open_index(directory, nprobe=search.DEFAULT_NPROBE):
    """Opens the index at ``directory`` for queries.

    Raises:
        LocalizationError: no index there, or one without a completely indexed map.
        DamagedIndexError: the manifest or ``search.faiss`` cannot be read, or a chunk is missing
            or not of the size the manifest records.
    """
    manifest = index_files.read_manifest(directory)
    path = os.path.join(directory, index_files.SEARCH_FILE)
    if manifest is None or not os.path.exists(path):
        raise LocalizationError(f"no index at {directory} (no {index_files.MANIFEST} and {index_files.SEARCH_FILE}): "
                                "build it with cvft-index")  # fmt: skip
    entries = [entry for entry in manifest["maps"] if entry["complete"]]
    if not entries:
        raise LocalizationError(
            f"the index {directory} has no completely indexed map: run cvft-index again to finish it"
        )
    for entry in entries:
        index_files.check_chunk_sizes(directory, entry)
    positions = np.concatenate([index_files.window_positions(directory, entry) for entry in entries])
    map_of = np.concatenate([np.full(entry["windows"], entry["number"]) for entry in entries])
    return LoadedIndex(directory, manifest, read_search(path, len(positions), nprobe), positions, map_of, entries)


def read_search(path, windows, nprobe):
    """The FAISS index at ``path``, which must hold ``windows`` descriptors.

    Raises:
        DamagedIndexError: it cannot be read (FAISS raises RuntimeError) or holds another count.
    """
    try:
        index = search.read(path, nprobe)
    except RuntimeError as error:
        raise _damaged_search(path, f"FAISS cannot read it: {str(error).rpartition('Error: ')[2]}") from None
    if index.ntotal != windows:
        raise _damaged_search(path, f"{index.ntotal} windows, the manifest's complete maps have {windows}")
    return index


def _damaged_search(path, reason):
    """The :class:`DamagedIndexError` of the search index ``path``: a rerun of cvft-index rebuilds it."""
    directory = os.path.dirname(path) or "."
    return DamagedIndexError(
        f"the search index {path} is damaged ({reason}): run cvft-index again on any map of the index "
        f"with --out={directory} to rebuild it"
    )


def query_paths(images=(), image_dir=None):
    """The query files: ``images`` as given, or the JPEG/PNG files of ``image_dir`` by name.

    Raises:
        QueryError: no query at all, a missing file, or a folder without images.
    """
    if image_dir is not None:
        if not os.path.isdir(image_dir):
            raise QueryError(f"--image_dir {image_dir} is not a directory")
        images = sorted(os.path.join(image_dir, n) for n in os.listdir(image_dir) if n.lower().endswith(QUERY_SUFFIXES))
        if not images:
            raise QueryError(f"the query folder {image_dir} holds no image ({', '.join(QUERY_SUFFIXES)})")
    if not images:
        raise QueryError("no query: give --images FILE [FILE ...] or --image_dir DIR")
    missing = [path for path in images if not os.path.isfile(path)]
    if missing:
        raise QueryError(f"query image(s) not found: {', '.join(missing)}")
    return list(images)


def read_queries(paths, ground_size):
    """uint8 BGR [Q, Hg, Wg, 3]: the query panoramas resized (INTER_AREA) to the model's size.

    Raises:
        QueryError: an unreadable or truncated image, named.
    """
    images = []
    for path in paths:
        try:
            images.append(resize_image(read_image(path), ground_size))
        except ImageError as error:
            raise QueryError(f"bad query image: {error}") from None
    return np.stack(images)


def read_truth(path):
    """Ground-truth positions from a CSV ``image,x,y`` (map CRS), keyed by absolute image path.

    ``image`` is relative to the CSV's folder (or absolute).

    Raises:
        QueryError: the file is missing or a line is malformed (file and line named).
    """
    try:
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise QueryError(f"cannot read the ground truth {path}: {error.strerror}") from None
    truth = {}
    for line, row in enumerate(rows, start=2):
        try:
            key = os.path.abspath(os.path.join(os.path.dirname(path), row["image"]))
            truth[key] = (float(row["x"]), float(row["y"]))
        except (KeyError, TypeError, ValueError):
            raise QueryError(f"{path}:{line}: expected columns image,x,y with numbers, got {row}") from None
    return truth


def match_records(loaded, scores, ids):
    """The matches of one query: dicts ``rank, score, x, y, map`` (+ ``lat, lon``), best first."""
    x, y = loaded.positions[ids].T
    latitude, longitude = to_lat_lon(loaded.manifest["crs"], x, y)
    maps = {entry["number"]: entry["map"]["path"] for entry in loaded.entries}
    return [
        {"rank": rank + 1, "score": float(score), "x": float(x[rank]), "y": float(y[rank]),
         "lat": float(latitude[rank]), "lon": float(longitude[rank]), "map": maps[int(loaded.map_of[i])]}
        for rank, (score, i) in enumerate(zip(scores, ids))
    ]  # fmt: skip


def query_record(image, matches, truth=None):
    """One query's record: ``image``, ``matches``, and with ``truth`` (x, y) also ``truth`` and
    ``error_m`` (distance of the top-1 match) and ``best_error_m`` (nearest of the matches)."""
    record = {"image": image, "matches": matches}
    if truth is not None:
        distances = [float(np.hypot(m["x"] - truth[0], m["y"] - truth[1])) for m in matches]
        record.update(truth={"x": truth[0], "y": truth[1]}, error_m=distances[0], best_error_m=min(distances),
                      distances_m=distances)  # fmt: skip
    return record


def spread_out(scores, ids, positions, count, min_separation_m):
    """The first ``count`` of the ranked ``ids`` that lie at least ``min_separation_m`` metres
    from every better one kept (greedy non-maximum suppression); ``(scores, ids)`` of those."""
    kept = []
    for rank, candidate in enumerate(ids):
        if candidate < 0:
            break
        if all(np.hypot(*(positions[candidate] - positions[ids[k]])) >= min_separation_m for k in kept):
            kept.append(rank)
            if len(kept) == count:
                break
    return scores[kept], ids[kept]


def window_scores(windows, queries, encoders):
    """Every query against every window.

    Args:
        windows: float32 ``[N, D]`` stored window descriptors (flattened maps for a map matcher).
        queries: float32 ``[Q, D]`` query descriptors.
        encoders: the model's ``encoders.Encoders``.

    Returns:
        ``(scores [Q, N], headings [Q, N] or None)``: the inner products, or a map matcher's
        similarities and the heading (degrees) each implies.
    """
    if encoders.matcher is None:
        return queries @ windows.T, None
    query_maps = tf.constant(encoders.ground_maps(queries))
    scores, headings = [], []
    for start in range(0, len(windows), MAP_WINDOWS_PER_CALL):
        chunk = tf.constant(encoders.aerial_maps(windows[start : start + MAP_WINDOWS_PER_CALL]))
        similarity, heading = encoders.matcher.match(query_maps, chunk)
        scores.append(similarity.numpy())
        headings.append(heading.numpy())
    return np.concatenate(scores, axis=1), np.concatenate(headings, axis=1)


def localize(loaded, encoders, paths, top_k=10, truth=None, batch_size=32, min_separation_m=0.0):
    """Embeds ``paths`` with the ground branch and finds their ``top_k`` windows (spread at
    least ``min_separation_m`` apart, 0: plain top-K).

    Returns:
        ``(records, query_descriptors)``: a :func:`query_record` per path, and float32 [Q, D].
    """
    descriptors = np.concatenate([
        encoders.ground(read_queries(paths[i : i + batch_size], encoders.ground_size))
        for i in range(0, len(paths), batch_size)
    ])  # fmt: skip
    candidates = top_k * CANDIDATES_PER_MATCH if min_separation_m > 0 else top_k
    headings = None
    if encoders.matcher is None:
        scores, ids = search.search(loaded.search_index, descriptors, candidates)
    else:
        all_scores, headings = window_scores(loaded.descriptors(), descriptors, encoders)
        ids = np.argsort(-all_scores, axis=1, kind="stable")[:, :candidates]
        scores = np.take_along_axis(all_scores, ids, axis=1)
    records = []
    for number, (path, row_scores, row_ids) in enumerate(zip(paths, scores, ids)):
        row_scores, row_ids = spread_out(row_scores, row_ids, loaded.positions, top_k, min_separation_m)
        known = None if truth is None else truth.get(os.path.abspath(path))
        matches = match_records(loaded, row_scores, row_ids)
        if headings is not None:
            for match, window in zip(matches, row_ids):
                match["heading_deg"] = float(headings[number, window])
        record = query_record(path, matches, known)
        if headings is not None:
            record["heading_deg"] = matches[0]["heading_deg"]
        records.append(record)
    return records, descriptors


def match_rows(record):
    """CSV rows of one query: each match, preceded by the record's own plain values (``image``,
    ``error_m``, ... and any per-query estimate added to the record, such as a heading)."""
    plain = {key: value for key, value in record.items() if not isinstance(value, (dict, list))}
    return [{**plain, **match} for match in record["matches"]]


def error_summary(records, radii=RADII_M, top_ks=TOP_KS):
    """Median and 90th-percentile top-1 error (m), and the share (%) within each radius at each K.

    Returns:
        dict: ``queries``, ``median_m``, ``p90_m``, ``within`` {f"top{k}": {f"{r:g}m": %}}.
    """
    known = [r for r in records if "distances_m" in r]
    if not known:
        return None
    top1 = np.array([r["distances_m"][0] for r in known])
    within = {}
    for k in top_ks:
        nearest = np.array([min(r["distances_m"][:k]) for r in known])
        within[f"top{k}"] = {f"{radius:g}m": float(100.0 * np.mean(nearest <= radius)) for radius in radii}
    return {"queries": len(known), "median_m": float(np.median(top1)), "p90_m": float(np.percentile(top1, 90)),
            "within": within}  # fmt: skip


def summary_table(summary):
    """The printed error table of :func:`error_summary`."""
    radii = list(summary["within"]["top1"])
    lines = [f"{summary['queries']} queries with known positions: top-1 error median {summary['median_m']:.1f} m, "
             f"90th percentile {summary['p90_m']:.1f} m",
             f"{'':<8}" + "".join(f"{'<= ' + r:>10}" for r in radii)]  # fmt: skip
    for name, shares in summary["within"].items():
        lines.append(f"{name:<8}" + "".join(f"{shares[r]:>9.1f}%" for r in radii))
    return "\n".join(lines)


def write_csv(rows, path):
    """Rows (dicts of plain values, nested dicts flattened as ``key_sub``) as a CSV, atomically."""
    flat = [_flatten(row) for row in rows]
    columns = list(dict.fromkeys(key for row in flat for key in row))
    with atomic_path(path) as partial, open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(flat)


def _flatten(row, prefix=""):
    flat = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}_"))
        elif not isinstance(value, list):
            flat[f"{prefix}{key}"] = value
    return flat
