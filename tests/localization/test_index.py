"""The index: windows embedded in order, chunks, resume, extension, and the model check."""

import json
import os

import numpy as np
import pytest

from cvft_tf.data.preprocess import resize_image
from cvft_tf.localization import index, search
from cvft_tf.localization.errors import DamagedIndexError, IndexMismatchError, MapError
from cvft_tf.localization.geomap import open_map
from cvft_tf.localization.windows import window_grid
from tests.faults.harness import digests
from tests.localization.fixtures import fake_encoders, write_png_map

pytest.importorskip("faiss")
FOOTPRINT, STRIDE = 40.0, 10.0


def build(map_path, out, encoders=None, **kwargs):
    kwargs = {"batch_size": 4, "chunk_batches": 2, "progress": False, **kwargs}
    return index.build_index(open_map(map_path), encoders or fake_encoders(), str(out), FOOTPRINT, STRIDE, **kwargs)


@pytest.fixture
def map_path(tmp_path):
    return write_png_map(str(tmp_path), size=(60, 80), metres_per_pixel=2.0)


def test_the_index_holds_each_window_descriptor_and_centre(map_path, tmp_path):
    summary = build(map_path, tmp_path / "index")
    assert summary["windows"] == summary["embedded"] == 9 * 13
    manifest = index.read_manifest(str(tmp_path / "index"))
    (entry,) = manifest["maps"]
    geomap = open_map(map_path)
    grid = window_grid(geomap, FOOTPRINT, STRIDE)
    encoders = fake_encoders()
    windows = [
        resize_image(geomap.read_window(r, c, grid.side), encoders.aerial_size)
        for r, c in grid.top_left(range(len(grid)))
    ]
    np.testing.assert_array_equal(
        index.load_descriptors(str(tmp_path / "index"), entry), encoders.aerial(np.stack(windows))
    )
    positions = index.window_positions(str(tmp_path / "index"), entry)
    # Window (row 1, col 2) starts at pixel (5, 10): its centre is pixel (15, 20), 40 m east
    # and 30 m south of the map's north-west corner.
    np.testing.assert_allclose(positions[1 * 13 + 2], [300000.0 + 40.0, 5000000.0 - 30.0])
    assert manifest["model"]["fingerprint"] == "fake" and entry["complete"]
    assert manifest["search"] == {"kind": "exact", "windows": 117, "bytes_per_window": 4 * 48}


def test_a_resumed_index_equals_an_uninterrupted_one(map_path, tmp_path):
    build(map_path, tmp_path / "whole")
    build(map_path, tmp_path / "resumed")
    chunks = sorted(os.listdir(tmp_path / "resumed" / index.CHUNK_DIR))
    assert len(chunks) == 15  # 117 windows in chunks of 8
    for name in chunks[5:]:  # as if killed after the fifth chunk
        os.remove(tmp_path / "resumed" / index.CHUNK_DIR / name)
    summary = build(map_path, tmp_path / "resumed")
    assert summary["embedded"] == 117 - 5 * 8
    assert digests(tmp_path / "resumed" / index.CHUNK_DIR) == digests(tmp_path / "whole" / index.CHUNK_DIR)


def _chunk(directory, chunk):
    return index.chunk_path(str(directory), 0, chunk)


def test_a_chunk_whose_checksum_differs_is_embedded_again(map_path, tmp_path):
    build(map_path, tmp_path / "whole")
    build(map_path, tmp_path / "damaged")
    with open(_chunk(tmp_path / "damaged", 3), "r+b") as handle:  # same size, other bytes
        handle.seek(-40, os.SEEK_END)
        handle.write(bytes(40))
    summary = build(map_path, tmp_path / "damaged")
    assert summary["embedded"] == 8
    assert digests(tmp_path / "damaged") == digests(tmp_path / "whole")


def test_a_manifest_without_checksums_keeps_the_chunks_that_load_whole(map_path, tmp_path):
    build(map_path, tmp_path / "whole")
    build(map_path, tmp_path / "old")
    manifest_path = tmp_path / "old" / index.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    del manifest["maps"][0]["chunks"]  # as written before the checksums were recorded
    manifest_path.write_text(json.dumps(manifest))
    with open(_chunk(tmp_path / "old", 14), "r+b") as handle:  # the last chunk, 5 windows
        handle.truncate(200)
    summary = build(map_path, tmp_path / "old")
    assert summary["embedded"] == 5
    assert digests(tmp_path / "old") == digests(tmp_path / "whole")


def test_a_damaged_chunk_of_another_map_is_named(map_path, tmp_path):
    build(map_path, tmp_path / "index")
    with open(_chunk(tmp_path / "index", 0), "r+b") as handle:
        handle.truncate(200)
    second = write_png_map(str(tmp_path), size=(40, 40), origin=(300160.0, 5000000.0), seed=5, name="east.png")
    with pytest.raises(DamagedIndexError, match=f"run cvft-index again on its map {map_path} with --out="):
        build(second, tmp_path / "index")


def test_an_index_of_another_model_is_refused_and_left_as_it_was(map_path, tmp_path):
    build(map_path, tmp_path / "index")
    before = digests(tmp_path / "index")
    with pytest.raises(IndexMismatchError, match="was built with another model .*fingerprint fake"):
        build(map_path, tmp_path / "index", encoders=fake_encoders("other"))
    assert digests(tmp_path / "index") == before


def test_a_map_that_cannot_hold_a_window_leaves_the_index_as_it_was(map_path, tmp_path):
    build(map_path, tmp_path / "index")
    before = digests(tmp_path / "index")
    with pytest.raises(MapError, match="is larger than the map"):
        index.build_index(open_map(map_path), fake_encoders(), str(tmp_path / "index"), 400.0, STRIDE)
    assert digests(tmp_path / "index") == before


def test_an_index_extended_with_a_second_map_searches_both(map_path, tmp_path):
    build(map_path, tmp_path / "index")
    second = write_png_map(str(tmp_path), size=(40, 40), origin=(300160.0, 5000000.0), seed=5, name="east.png")
    summary = build(second, tmp_path / "index", kind="exact")
    manifest = index.read_manifest(str(tmp_path / "index"))
    assert [entry["windows"] for entry in manifest["maps"]] == [117, 25]
    assert summary["search"]["windows"] == 142
    loaded = search.read(str(tmp_path / "index" / index.SEARCH_FILE))
    stored = np.concatenate([index.load_descriptors(str(tmp_path / "index"), e) for e in manifest["maps"]])
    _, ids = search.search(loaded, stored[[0, 120, 141]], 1)
    assert ids[:, 0].tolist() == [0, 120, 141]


def test_an_ivfpq_index_reports_its_recall(map_path, tmp_path):
    summary = build(map_path, tmp_path / "index", kind="ivfpq")
    record = summary["search"]
    assert record["kind"] == "ivfpq" and 0.0 <= record["recall_at_10"] <= 1.0
    assert record["bytes_per_window"] < 4 * 48
