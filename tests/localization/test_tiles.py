"""A folder of aerial tiles with a CSV of their centres: reading it, indexing it, localizing in it."""

import json
import os

import cv2
import numpy as np
import pytest

from cvft_tf.data.preprocess import resize_image
from cvft_tf.localization import index, localize
from cvft_tf.localization.errors import IndexMismatchError, MapError
from cvft_tf.localization.geomap import open_map
from cvft_tf.localization.heatmap import heatmap_figure, map_extent
from cvft_tf.localization.tiles import TileFolder, read_tile_csv
from tests.faults.harness import digests
from tests.localization.fixtures import UTM_32N, fake_encoders, write_png_map, write_tile_folder

pytest.importorskip("faiss")
pytest.importorskip("rasterio")
CENTRES_PX = [(15, 15), (15, 45), (40, 30), (60, 80), (25, 70), (50, 55)]
FOOTPRINT = 40.0


@pytest.fixture
def folder(tmp_path):
    return write_tile_folder(str(tmp_path / "tiles"), CENTRES_PX)


def build(source, out, encoders=None, **kwargs):
    kwargs = {"batch_size": 2, "chunk_batches": 1, "progress": False, **kwargs}
    return index.build_index(source, encoders or fake_encoders(), str(out), FOOTPRINT, **kwargs)


def test_the_csv_gives_each_tile_and_its_centre(tmp_path):
    path = tmp_path / "tiles.csv"
    path.write_text("x,path,y,note\n300010.5,a.jpg,4999990,left\n-2e3, sub/b.png ,7\n")
    paths, centres = read_tile_csv(str(path))
    assert paths == ["a.jpg", "sub/b.png"]
    np.testing.assert_array_equal(centres, [[300010.5, 4999990.0], [-2000.0, 7.0]])
    path.write_text("\ufeffpath,x,y\na.jpg,1,2\n", encoding="utf-8")  # a spreadsheet's byte-order mark
    assert read_tile_csv(str(path))[0] == ["a.jpg"]


@pytest.mark.parametrize("text, message", [
    ("path,x,y\n", "tiles.csv lists no tile"),
    ("", "expected a header with the columns path,x,y"),
    ("path,east,north\na.png,1,2\n", "expected a header with the columns path,x,y"),
    ("path,x,y\na.png,1,2\nb.png,east,2\n", r"tiles.csv:3: expected path,x,y with a file and two finite numbers"),
    ("path,x,y\na.png,1,2\nb.png,1\n", r"tiles.csv:3: expected path,x,y"),
    ("path,x,y\na.png,1,nan\n", r"tiles.csv:2: expected path,x,y"),
    ("path,x,y\n,1,2\n", r"tiles.csv:2: expected path,x,y"),
    ("path,x,y\na.png,1,2\nb.png,3,4\na.png,5,6\n", r"tiles.csv:4: the tile a.png is listed twice \(first on line 2\)"),
])  # fmt: skip
def test_a_bad_csv_is_named_with_its_line(tmp_path, text, message):
    path = tmp_path / "tiles.csv"
    path.write_text(text)
    with pytest.raises(MapError, match=message):
        read_tile_csv(str(path))


def test_a_folder_without_its_csv_a_tile_or_a_crs_is_refused(folder, tmp_path):
    folder, _ = folder
    opened = TileFolder(folder)
    assert opened.crs == UTM_32N and len(opened) == len(CENTRES_PX)
    os.remove(os.path.join(folder, "tiles.json"))
    with pytest.raises(MapError, match=r"tiles.csv has no CRS: give it in tiles.json beside it or with --crs"):
        TileFolder(folder)
    assert TileFolder(folder, crs=UTM_32N).crs == UTM_32N
    with open(os.path.join(folder, "tiles.json"), "w") as handle:
        json.dump({"crs": "EPSG:32633"}, handle)
    with pytest.raises(MapError, match="its CRS 'EPSG:32633' is not the --crs 'EPSG:32632'"):
        TileFolder(folder, crs=UTM_32N)
    with open(os.path.join(folder, "tiles.json"), "w") as handle:
        json.dump({"crs": "EPSG:4326"}, handle)
    with pytest.raises(MapError, match="not projected in metres"):
        TileFolder(folder)
    with open(os.path.join(folder, "tiles.json"), "w") as handle:
        json.dump({"crs": UTM_32N}, handle)
    os.remove(os.path.join(folder, "img", "002.png"))
    with pytest.raises(MapError, match=r"tiles.csv:4: the tile image .*img/002.png is missing"):
        TileFolder(folder)
    open(os.path.join(folder, "img", "002.png"), "w").close()
    with pytest.raises(MapError, match=r"tiles.csv:4: the tile image .*img/002.png is empty"):
        TileFolder(folder)
    os.remove(os.path.join(folder, "tiles.csv"))
    with pytest.raises(MapError, match=f"the tile folder {folder} has no tiles.csv"):
        TileFolder(folder)


def test_each_tile_is_one_window_at_its_centre(folder, tmp_path):
    folder, tiles = folder
    summary = build(TileFolder(folder), tmp_path / "index")
    assert summary["windows"] == summary["embedded"] == len(CENTRES_PX)
    manifest = index.read_manifest(str(tmp_path / "index"))
    (entry,) = manifest["maps"]
    encoders = fake_encoders()
    expected = encoders.aerial(np.stack([resize_image(tile, encoders.aerial_size) for tile in tiles]))
    np.testing.assert_array_equal(index.load_descriptors(str(tmp_path / "index"), entry), expected)
    # Tile 3 is centred on pixel (60, 80) of a 2 m map whose corner is at (300000, 5000000).
    positions = index.window_positions(str(tmp_path / "index"), entry)
    np.testing.assert_array_equal(positions[3], [300160.0, 4999880.0])
    assert entry["kind"] == "tiles" and entry["complete"] and "stride_m" not in entry
    # Centres span x 300030..300160, y 4999880..4999970, widened by half a 40 m window.
    assert map_extent(entry) == (300010.0, 300180.0, 4999860.0, 4999990.0)


def test_a_tile_is_found_at_its_centre_and_drawn_on_a_blank_canvas(folder, tmp_path):
    folder, tiles = folder
    encoders = fake_encoders(ground_size=(16, 16))
    build(TileFolder(folder), tmp_path / "index", encoders)
    cv2.imwrite(str(tmp_path / "query.png"), tiles[4])
    loaded = localize.open_index(str(tmp_path / "index"))
    records, descriptors = localize.localize(loaded, encoders, [str(tmp_path / "query.png")], 2)
    best = records[0]["matches"][0]
    assert (best["x"], best["y"]) == (300140.0, 4999950.0) and best["score"] == pytest.approx(1.0, abs=1e-5)
    assert best["map"] == os.path.abspath(folder)
    scores = loaded.descriptors() @ descriptors[0]
    figure = heatmap_figure(loaded.entries[0], scores, None, [(best["x"], best["y"])], None, "q",
                            positions=loaded.positions)  # fmt: skip
    assert figure.dtype == np.uint8 and figure.std() > 10


def test_a_truncated_tile_stops_indexing_keeping_what_was_indexed(folder, tmp_path):
    folder, _ = folder
    map_path = write_png_map(str(tmp_path), size=(60, 80))
    index.build_index(open_map(map_path), fake_encoders(), str(tmp_path / "index"), FOOTPRINT, 10.0, progress=False)
    before = digests(tmp_path / "index")
    tile = os.path.join(folder, "img", "004.png")
    whole = open(tile, "rb").read()
    with open(tile, "wb") as handle:
        handle.write(whole[:100])
    with pytest.raises(MapError, match=r"unreadable tile: .*img/004.png is truncated"):
        build(TileFolder(folder), tmp_path / "index")
    after = digests(tmp_path / "index")
    assert {name: after[name] for name in before if name != index.MANIFEST} == {
        name: digest for name, digest in before.items() if name != index.MANIFEST
    }
    # The map is still searched; the tile folder's first two chunks (tiles 0-3) are kept.
    assert len(localize.open_index(str(tmp_path / "index")).entries) == 1
    assert os.path.exists(index.chunk_path(str(tmp_path / "index"), 1, 1))
    with open(tile, "wb") as handle:
        handle.write(whole)
    summary = build(TileFolder(folder), tmp_path / "index")
    assert summary["embedded"] == 2 and summary["search"]["windows"] == 117 + len(CENTRES_PX)


def test_a_resumed_tile_index_equals_an_uninterrupted_one(folder, tmp_path):
    folder, _ = folder
    build(TileFolder(folder), tmp_path / "whole")
    build(TileFolder(folder), tmp_path / "resumed")
    os.remove(index.chunk_path(str(tmp_path / "resumed"), 0, 2))
    assert build(TileFolder(folder), tmp_path / "resumed")["embedded"] == 2
    assert digests(tmp_path / "resumed") == digests(tmp_path / "whole")
    with pytest.raises(IndexMismatchError, match="was built with another model"):
        build(TileFolder(folder), tmp_path / "whole", fake_encoders("other"))
