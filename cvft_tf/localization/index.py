"""A localization index: the aerial descriptors of windows slid over maps, and their positions.

An indexed source is a map (its windows every ``stride_m``, :mod:`windows`) or a folder of
tiles (each tile one window, :mod:`tiles`); both are "maps" of the index, numbered in order.

Layout of an index directory::

    manifest.json          the model (fingerprint, sizes, how to load it), the window
                           footprint, and per map: its ``kind`` (``map`` or ``tiles``), its
                           identity (a map's path, size, CRS, transform; a tile folder's path,
                           CRS, tile count and CSV digest), a map's stride and window grid or a
                           tile folder's extent, chunk size, whether it is complete, and
                           ``chunks``: per chunk number, the ``bytes`` and ``sha256`` of its file
    chunks/map-MMM-CCCCCC.npz  descriptors float32 [n, D] and window numbers int64 [n] of
                           chunk C of map M (``chunk_size`` consecutive windows)
    chunks/map-MMM-centres.npy  float64 [n, 2], the tiles' centres ``(x, y)`` of a tile folder M
    search.faiss           the FAISS index over every complete map's windows, in map then
                           window order (ids are positions in that order)

Every file is written under a temporary name and renamed (``output_dirs.atomic_path``), so a
run killed at any moment leaves the chunks it finished; the same command resumes with the
first chunk not done. A chunk is done when its file has the size and SHA-256 the manifest
records for it (recorded before the file is renamed into place, so a run killed in between
leaves the chunk missing, not unrecorded); one that differs (truncated, corrupt) is logged as
damaged and embedded again, so a rerun repairs it. A rerun also rebuilds ``search.faiss``.
A map entry of a manifest written before checksums were recorded (no ``chunks``) has its
chunks that ``np.load`` reads whole, with the window numbers they should hold, recorded as
done; the others are embedded again. A chunk is embedded in batches that start at the
chunk's first window, so a resumed run computes exactly what an uninterrupted one does. Indexing another map into
an existing index (``extend``) adds its chunks and rebuilds ``search.faiss``; the maps must
share the CRS, the model and the footprint. An index built with another model (another
fingerprint) is refused, before anything is written.
"""

import hashlib
import io
import json
import os
import re
import time
import zipfile

import numpy as np
import tensorflow as tf
from absl import logging

from cvft_tf.data.preprocess import resize_image
from cvft_tf.localization import search
from cvft_tf.localization.errors import DamagedIndexError, IndexMismatchError, MapError
from cvft_tf.localization.geomap import pixel_to_map
from cvft_tf.localization.tiles import TileFolder
from cvft_tf.localization.windows import WindowGrid, window_grid
from cvft_tf.output_dirs import atomic_path, make_output_directory, write_json_atomic
from cvft_tf.progress import Progress

MANIFEST = "manifest.json"
CHUNK_DIR = "chunks"
SEARCH_FILE = "search.faiss"
FORMAT = 1
RECALL_QUERIES = 200
"""Stored descriptors used as queries to measure an IVF-PQ index's recall@10 against exact."""
_MAP_ERROR = re.compile(r"MapError: (.*?)(?:\n|$)")
_MANIFEST_KEYS = ("model", "footprint_m", "crs", "maps")
_CHUNK_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)
"""What ``np.load`` of a truncated or corrupt ``.npz`` raises."""


def chunk_path(index_dir, map_number, chunk):
    """Path of chunk ``chunk`` of map ``map_number``."""
    return os.path.join(index_dir, CHUNK_DIR, f"map-{map_number:03d}-{chunk:06d}.npz")


def centres_path(index_dir, map_number):
    """Path of the tile centres of tile folder ``map_number``."""
    return os.path.join(index_dir, CHUNK_DIR, f"map-{map_number:03d}-centres.npy")


def read_manifest(index_dir):
    """The manifest of ``index_dir``, or None when there is none.

    Raises:
        DamagedIndexError: the manifest exists but cannot be read (it is what ties the chunks
            to their maps, so a rerun cannot repair it: the index must be built again).
    """
    path = os.path.join(index_dir, MANIFEST)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as handle:
            manifest = json.load(handle)
        if not isinstance(manifest, dict):
            raise ValueError(f"a JSON {type(manifest).__name__}, not an object")
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, expected {FORMAT}")
        missing = [key for key in _MANIFEST_KEYS if key not in manifest]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        return manifest
    except (OSError, ValueError) as error:
        raise DamagedIndexError(
            f"{path} is not a readable index manifest ({error}); the chunks cannot be told apart without it: "
            "build the index again with cvft-index into a new directory"
        ) from None


def check_model(manifest, encoders, index_dir):
    """Raises :class:`IndexMismatchError` unless ``encoders`` is the model the index was built with."""
    built = manifest["model"]
    if built["fingerprint"] != encoders.fingerprint:
        raise IndexMismatchError(
            f"the index {index_dir} was built with another model (fingerprint {built['fingerprint'][:16]}, "
            f"from {built['source']}); this model has {encoders.fingerprint[:16]} (from {encoders.source}). "
            "Its descriptors cannot be compared: use that model or build a new index."
        )


def _model_record(encoders):
    return {"fingerprint": encoders.fingerprint, "ground_size": list(encoders.ground_size),
            "aerial_size": list(encoders.aerial_size), "dimension": encoders.dimension,
            "source": encoders.source}  # fmt: skip


def grid_of(entry):
    """The :class:`WindowGrid` of a manifest's map entry."""
    return WindowGrid(**entry["grid"])


def is_tiles(entry):
    """Whether a manifest's map entry is a tile folder (else a map with a window grid)."""
    return entry.get("kind") == "tiles"


def window_positions(index_dir, entry):
    """float64 [windows, 2]: map coordinates ``(x, y)`` of the centres of a map entry's windows."""
    if is_tiles(entry):
        return np.load(centres_path(index_dir, entry["number"]))
    grid = grid_of(entry)
    rows, cols = grid.centres(np.arange(len(grid))).T
    return np.stack(pixel_to_map(entry["map"]["transform"], rows, cols), axis=-1)


def map_window_reader(geomap, grid):
    """``read(number)`` -> uint8 BGR [side, side, 3]: window ``number`` of ``grid`` over ``geomap``."""

    def read(number):
        row, col = grid.top_left([number])[0]
        return geomap.read_window(int(row), int(col), grid.side)

    return read


def describe(source, footprint_m, stride_m):
    """A map's or a tile folder's fields in a manifest entry, and its window reader.

    Returns:
        ``(fields, read)``: ``kind``, ``map`` (the identity), ``windows`` and, for a map,
        ``stride_m`` and ``grid``, for a tile folder ``extent`` (west, east, south, north);
        ``read(number)`` -> uint8 BGR window at the source's resolution.

    Raises:
        MapError: the window or stride do not fit the map.
    """
    if isinstance(source, TileFolder):
        fields = {"kind": "tiles", "map": source.identity(), "windows": len(source),
                  "extent": list(source.extent(footprint_m))}  # fmt: skip
        return fields, source.read_tile
    grid = window_grid(source, footprint_m, stride_m)
    fields = {"kind": "map", "map": source.identity(), "stride_m": float(stride_m),
              "grid": {"side": grid.side, "stride": grid.stride, "rows": grid.rows, "cols": grid.cols},
              "windows": len(grid)}  # fmt: skip
    return fields, map_window_reader(source, grid)


def window_batches(read, numbers, aerial_size, batch_size):
    """tf.data batches of uint8 BGR windows [batch, Ha, Wa, 3] for window ``numbers``, in order.

    Each window is read (``read(number)``, e.g. :func:`map_window_reader`) and resized with
    INTER_AREA to the model's aerial size, as the training tiles are.
    """

    def load(number):
        return resize_image(np.ascontiguousarray(read(int(number))), aerial_size)

    def load_tf(number):
        image = tf.numpy_function(load, [number], tf.uint8, stateful=False)
        return tf.ensure_shape(image, [*aerial_size, 3])

    dataset = tf.data.Dataset.from_tensor_slices(np.asarray(numbers, np.int64))
    dataset = dataset.map(load_tf, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(2)


def _find_entry(manifest, fields):
    for entry in manifest["maps"]:
        if entry["map"] == fields["map"] and entry.get("stride_m") == fields.get("stride_m"):
            return entry
    return None


def chunk_record(data):
    """The manifest's record of a chunk file's contents ``data`` (bytes): its size and SHA-256."""
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _save_chunk(index_dir, manifest, entry, chunk, descriptors, numbers):
    """Records the chunk's checksum in the manifest, then writes the chunk (both atomically)."""
    buffer = io.BytesIO()
    np.savez(buffer, descriptors=descriptors, numbers=numbers)
    data = buffer.getvalue()
    entry["chunks"][str(chunk)] = chunk_record(data)
    write_json_atomic(manifest, os.path.join(index_dir, MANIFEST))
    with atomic_path(chunk_path(index_dir, entry["number"], chunk)) as partial, open(partial, "wb") as handle:
        handle.write(data)


def chunk_numbers(entry, chunk):
    """int64 [n]: the window numbers of chunk ``chunk`` of a map entry."""
    return np.arange(chunk * entry["chunk_size"], min(entry["windows"], (chunk + 1) * entry["chunk_size"]))


def chunk_count(entry):
    """How many chunk files a map entry has."""
    return -(-entry["windows"] // entry["chunk_size"])


def _chunk_damage(index_dir, entry, chunk):
    """Why chunk ``chunk`` of ``entry`` is not done: None when its file matches its record, else the reason."""
    path = chunk_path(index_dir, entry["number"], chunk)
    if not os.path.exists(path):
        return "missing"
    with open(path, "rb") as handle:
        found = chunk_record(handle.read())
    recorded = entry["chunks"].get(str(chunk))
    if recorded is None:
        return "not in the manifest"
    if found["bytes"] != recorded["bytes"]:
        return f"{found['bytes']} bytes, the manifest records {recorded['bytes']}"
    if found["sha256"] != recorded["sha256"]:
        return "its SHA-256 differs from the manifest's"
    return None


def _record_legacy_chunks(index_dir, entry):
    """Gives an entry of a manifest without checksums the records of its chunks that load whole."""
    entry["chunks"] = {}
    for chunk in range(chunk_count(entry)):
        path = chunk_path(index_dir, entry["number"], chunk)
        try:
            with np.load(path) as data:
                numbers = chunk_numbers(entry, chunk)
                whole = np.array_equal(data["numbers"], numbers) and len(data["descriptors"]) == len(numbers)
        except FileNotFoundError:
            continue
        except _CHUNK_READ_ERRORS:
            whole = False
        if whole:
            with open(path, "rb") as handle:
                entry["chunks"][str(chunk)] = chunk_record(handle.read())


def _chunks_to_embed(index_dir, entry):
    """The chunk numbers of ``entry`` that are not done, logging each damaged one."""
    if "chunks" not in entry:
        _record_legacy_chunks(index_dir, entry)
    chunks = []
    for chunk in range(chunk_count(entry)):
        damage = _chunk_damage(index_dir, entry, chunk)
        if damage is not None:
            chunks.append(chunk)
        if damage not in (None, "missing"):
            path = chunk_path(index_dir, entry["number"], chunk)
            logging.warning("The chunk %s is damaged (%s); embedding it again", path, damage)
    return chunks


def _embed_missing(source, read, manifest, entry, encoders, index_dir, progress):
    """Embeds the chunks of ``entry`` that are not done yet; returns (windows embedded, seconds)."""
    count = entry["windows"]
    chunks = _chunks_to_embed(index_dir, entry)
    numbers = np.concatenate([chunk_numbers(entry, c) for c in chunks] or [np.zeros(0, int)])
    if len(chunks) < chunk_count(entry):
        logging.info("Resuming %s: %d of %d windows already indexed", source.path, count - len(numbers), count)
    bar = Progress(len(numbers), unit="tile") if progress else None
    start, done, pending = time.perf_counter(), 0, []
    batches = window_batches(read, numbers, encoders.aerial_size, entry["batch_size"])
    try:
        for batch in batches:
            pending.append(encoders.aerial(batch))
            done += len(pending[-1])
            chunk_windows = chunk_numbers(entry, chunks[0])
            if sum(map(len, pending)) == len(chunk_windows):
                _save_chunk(index_dir, manifest, entry, chunks[0], np.concatenate(pending), chunk_windows)
                chunks, pending = chunks[1:], []
            if bar is not None:
                bar.add(done - bar.done)
        if bar is not None:
            bar.finish()
    except tf.errors.OpError as error:
        found = _MAP_ERROR.search(error.message)
        raise MapError(found.group(1) if found else f"reading the map {source.path}: {error.message}") from None
    return len(numbers), time.perf_counter() - start


def damaged_chunk_error(index_dir, entry, path, reason):
    """The :class:`DamagedIndexError` of chunk file ``path`` of ``entry``: it names the map to index again."""
    return DamagedIndexError(
        f"the index chunk {path} is damaged ({reason}): run cvft-index again on its map "
        f"{entry['map']['path']} with --out={index_dir} to embed it again"
    )


def check_chunk_sizes(index_dir, entry):
    """Raises :class:`DamagedIndexError` for a chunk of ``entry`` missing or not of its recorded size.

    A stat per chunk, not a read (the checksums are verified when ``cvft-index`` resumes);
    an entry of a manifest without checksums is not checked here (:func:`load_descriptors` is).
    """
    for chunk, record in entry.get("chunks", {}).items():
        path = chunk_path(index_dir, entry["number"], int(chunk))
        size = os.path.getsize(path) if os.path.exists(path) else None
        if size != record["bytes"]:
            found = "missing" if size is None else f"{size} bytes, the manifest records {record['bytes']}"
            raise damaged_chunk_error(index_dir, entry, path, found)


def load_descriptors(index_dir, entry):
    """float32 [windows, D]: the descriptors of a complete map entry, in window order.

    Raises:
        DamagedIndexError: a chunk is missing or cannot be read.
    """
    parts = []
    for chunk in range(chunk_count(entry)):
        path = chunk_path(index_dir, entry["number"], chunk)
        try:
            with np.load(path) as data:
                parts.append(data["descriptors"])
        except _CHUNK_READ_ERRORS as error:
            raise damaged_chunk_error(index_dir, entry, path, f"{type(error).__name__}: {error}") from None
    return np.concatenate(parts)


def build_search(index_dir, manifest, kind, nprobe, seed=0):
    """Builds ``search.faiss`` over the complete maps; returns the manifest's ``search`` record."""
    descriptors = np.concatenate([load_descriptors(index_dir, e) for e in manifest["maps"] if e["complete"]])
    index = search.build(descriptors, kind, nprobe=nprobe, seed=seed)
    record = {"kind": kind, "windows": int(index.ntotal), "bytes_per_window": search.bytes_per_vector(index)}
    if kind == "ivfpq":
        record["spec"] = search.ivfpq_spec(descriptors.shape[1], len(descriptors))
        record["nprobe"] = int(nprobe)
        queries = descriptors[np.random.default_rng(seed).permutation(len(descriptors))[:RECALL_QUERIES]]
        _, exact = search.search(search.build(descriptors, "exact"), queries, 10)
        _, found = search.search(index, queries, 10)
        record["recall_at_10"] = search.recall_at_k(found, exact, min(10, exact.shape[1]))
    search.write(index, os.path.join(index_dir, SEARCH_FILE))
    return record


def build_index(source, encoders, index_dir, footprint_m, stride_m=None, kind="exact", batch_size=32,
                chunk_batches=8, nprobe=search.DEFAULT_NPROBE, progress=True):  # fmt: skip
    """Indexes ``source`` into ``index_dir``: a new index, a resumed one, or one more map.

    Args:
        source: an open :class:`~cvft_tf.localization.geomap.GeoMap`, or a
            :class:`~cvft_tf.localization.tiles.TileFolder` (each tile one window).
        encoders: :class:`~cvft_tf.localization.encoders.Encoders` of the model.
        index_dir: the index directory (created if needed).
        footprint_m: window side in metres (``config.data.aerial_footprint_m``).
        stride_m: metres between neighbouring windows of a map (unused for tiles).
        kind: ``"exact"`` or ``"ivfpq"`` (:mod:`~cvft_tf.localization.search`).
        batch_size: windows per model call.
        chunk_batches: batches per chunk file (a new map's chunk size is their product).
        nprobe: IVF cells visited per query (``ivfpq``).
        progress: show a progress bar.

    Returns:
        dict: ``windows`` (of this map), ``embedded`` (this run), ``seconds``, ``tiles_per_s``,
        ``search`` (the manifest's search record).

    Raises:
        MapError: the window or stride do not fit the map, or the map or a tile cannot be read
            (the chunks embedded before are kept; the same command resumes).
        IndexMismatchError: the index holds another model, footprint or CRS.
        DamagedIndexError: the manifest, or a chunk of another map, cannot be read.
    """
    fields, read = describe(source, footprint_m, stride_m)
    manifest = read_manifest(index_dir)
    if manifest is None:
        manifest = {"format": FORMAT, "model": _model_record(encoders), "footprint_m": float(footprint_m),
                    "crs": source.crs, "maps": []}  # fmt: skip
    else:
        check_model(manifest, encoders, index_dir)
        if manifest["footprint_m"] != float(footprint_m) or manifest["crs"] != source.crs:
            raise IndexMismatchError(
                f"the index {index_dir} holds {manifest['footprint_m']:g} m windows in {manifest['crs']}; "
                f"{source.path} asks for {footprint_m:g} m windows in {source.crs}"
            )
    entry = _find_entry(manifest, fields)
    make_output_directory(os.path.join(index_dir, CHUNK_DIR), "index directory")
    if entry is None:
        entry = {"number": len(manifest["maps"]), **fields, "batch_size": int(batch_size),
                 "chunk_size": int(batch_size * chunk_batches), "complete": False, "chunks": {}}  # fmt: skip
        if is_tiles(entry):
            with atomic_path(centres_path(index_dir, entry["number"])) as partial, open(partial, "wb") as handle:
                np.save(handle, source.centres)
        manifest["maps"].append(entry)
        write_json_atomic(manifest, os.path.join(index_dir, MANIFEST))
    embedded, seconds = _embed_missing(source, read, manifest, entry, encoders, index_dir, progress)
    entry["complete"] = True
    manifest["search"] = build_search(index_dir, manifest, kind, nprobe)
    write_json_atomic(manifest, os.path.join(index_dir, MANIFEST))
    return {"windows": entry["windows"], "embedded": embedded, "seconds": seconds,
            "tiles_per_s": embedded / seconds if seconds > 0 else float("nan"),
            "search": manifest["search"]}  # fmt: skip
