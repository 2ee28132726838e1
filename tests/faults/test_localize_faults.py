"""cvft-index and cvft-localize under faults: bad maps, bad tile folders, bad queries, another
model, a kill.

Each bad input ends with one ``error:`` line and status 2, and leaves an index built before
as it was (a tile found truncated while indexing leaves what was indexed before it, and the
index searchable). A run killed (SIGKILL) while indexing resumes where it stopped and ends
with the index an uninterrupted run writes. The model is a random one of
``configs/cvusa.py:smoke`` with 40 m windows, on a 120 x 160 m map and a folder of six tiles.
"""

import os
import signal
import subprocess
import time

import csv

import cv2
import keras
import pytest

from tests.faults.harness import REPO, SMOKE, assert_exit, command_path, digests, run, truncate
from tests.faults.worlds import assert_unchanged, built_once, copy_tree, save_tiny_model
from tests.localization.fixtures import write_png_map, write_tile_folder

pytestmark = pytest.mark.large
FOOTPRINT = "--config.data.aerial_footprint_m=40"


def save_model(workdir, seed):
    """A random smoke model drawn from ``seed`` (two seeds, two models) in ``workdir``."""
    keras.utils.set_random_seed(seed)
    return save_tiny_model(workdir)


def index_args(workdir, map_path, out, *extra):
    return [f"--config={SMOKE}", FOOTPRINT, f"--workdir={workdir}", f"--map={map_path}", f"--out={out}", *extra]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A model workdir, a map with its queries and truth, and an index of the map (built once)."""
    with built_once(tmp_path_factory, "localize_faults") as (folder, build):
        if build:
            save_model(str(folder / "run"), seed=1)
            map_path = write_png_map(str(folder), size=(60, 80), metres_per_pixel=2.0)
            (folder / "queries").mkdir()
            image = cv2.imread(map_path)
            for number, (row, col) in enumerate([(10, 25), (30, 50)], start=1):
                cv2.imwrite(
                    str(folder / "queries" / f"{number}.jpg"),
                    cv2.resize(image[row : row + 20, col : col + 40], (176, 32)),
                )
            (folder / "queries.csv").write_text(
                "image,x,y\nqueries/1.jpg,300070,4999960\nqueries/2.jpg,300140,4999920\n"
            )
            result = run("cvft-index", *index_args(folder / "run", map_path, folder / "index", "--stride_m=10"))
            assert_exit(result, 0)
    return folder


def test_localize_prints_the_error_table_and_draws_heatmaps(built, tmp_path):
    out = tmp_path / "out"
    result = run("cvft-localize", f"--index={built / 'index'}", f"--image_dir={built / 'queries'}",
                 f"--truth={built / 'queries.csv'}", f"--out={out}", "--top_k=3")  # fmt: skip
    assert_exit(result, 0)
    assert "2 queries with known positions" in result.stdout and "top10" in result.stdout
    for name in ("1", "2"):
        assert (out / name / "heatmap.png").stat().st_size > 1000
        assert (out / name / "matches.csv").read_text().count("\n") == 4  # header and 3 matches
    assert (out / "summary.json").exists()


TILE_CENTRES_PX = [(15, 15), (15, 45), (40, 30), (60, 80), (25, 70), (50, 55)]


def test_a_tile_folder_extends_an_index_and_is_localized_in(built, tmp_path):
    folder, _ = write_tile_folder(str(tmp_path / "tiles"), TILE_CENTRES_PX)
    index_dir = copy_tree(built / "index", tmp_path / "index")
    result = run("cvft-index", *index_args(built / "run", folder, index_dir, "--batch_size=4"))
    assert_exit(result, 0)
    assert "6 tiles (one window each); embedded 6 in" in result.stdout
    assert "Search: exact over 123 windows" in result.stdout
    out = tmp_path / "out"
    result = run("cvft-localize", f"--index={index_dir}", f"--image_dir={built / 'queries'}", f"--out={out}",
                 "--top_k=123", "--min_separation_m=0")  # fmt: skip
    assert_exit(result, 0)
    with open(out / "1" / "matches.csv") as handle:
        rows = [row for row in csv.DictReader(handle) if row["map"] == folder]
    with open(tmp_path / "tiles" / "tiles.csv") as handle:
        centres = sorted((float(row["x"]), float(row["y"])) for row in csv.DictReader(handle))
    assert sorted((float(row["x"]), float(row["y"])) for row in rows) == centres
    assert (out / "1" / "heatmap.png").stat().st_size > 1000


def _append(line):
    def change(folder):
        with open(os.path.join(folder, "tiles.csv"), "a") as handle:
            handle.write(line + "\n")

    return change


def _empty_csv(folder):
    with open(os.path.join(folder, "tiles.csv"), "w") as handle:
        handle.write("path,x,y\n")


@pytest.mark.parametrize("change, message", [
    (_append("img/009.png,300010,north"), "tiles.csv:8: expected path,x,y with a file and two finite numbers"),
    (_empty_csv, "tiles.csv lists no tile (expected rows path,x,y)"),
    (_append("img/001.png,300010,4999990"), "tiles.csv:8: the tile img/001.png is listed twice (first on line 3)"),
    (lambda folder: os.remove(os.path.join(folder, "img", "002.png")), "tiles.csv:4: the tile image "),
    (lambda folder: os.remove(os.path.join(folder, "tiles.json")), "tiles.csv has no CRS: give it in tiles.json"),
])  # fmt: skip
def test_a_bad_tile_folder(built, tmp_path, change, message):
    index_dir = copy_tree(built / "index", tmp_path / "own_index")  # a run of its own: another holds the shared one
    before = digests(index_dir)
    folder, _ = write_tile_folder(str(tmp_path / "tiles"), TILE_CENTRES_PX)
    change(folder)
    result = run("cvft-index", *index_args(built / "run", folder, index_dir))
    assert_exit(result, 2, f"error: {os.path.join(folder, 'tiles.csv')}", message)
    assert_unchanged(index_dir, before)


def test_a_truncated_tile_keeps_what_was_indexed(built, tmp_path):
    folder, _ = write_tile_folder(str(tmp_path / "tiles"), TILE_CENTRES_PX)
    index_dir = copy_tree(built / "index", tmp_path / "index")
    before = digests(index_dir)
    tile = os.path.join(folder, "img", "004.png")
    whole = open(tile, "rb").read()
    truncate(tile, 100)
    arguments = index_args(built / "run", folder, index_dir, "--batch_size=2", "--chunk_batches=1")
    result = run("cvft-index", *arguments)
    assert_exit(result, 2, f"error: unreadable tile: {tile} is truncated (the PNG has no IEND chunk)")
    after = digests(index_dir)
    assert {name: after[name] for name in before if name != "manifest.json"} == {
        name: digest for name, digest in before.items() if name != "manifest.json"
    }
    with open(tile, "wb") as handle:
        handle.write(whole)
    result = run("cvft-index", *arguments)
    assert_exit(result, 0)
    assert "embedded 2 in" in result.stdout and "Search: exact over 123 windows" in result.stdout


def world_file_map(directory, rotation=0.0):
    """A copy of the fixture's map image with a world file (2 m pixels, same corner) instead of its JSON."""
    path = write_png_map(str(directory), size=(60, 80), name="world.png")
    os.remove(os.path.join(directory, "world.json"))
    (directory / "world.pgw").write_text(f"2.0\n{rotation}\n0.0\n-2.0\n300001.0\n4999999.0\n")
    return path


def test_a_world_file_map_with_its_crs_given_on_the_command_line(built, tmp_path):
    path = world_file_map(tmp_path)
    result = run("cvft-index", *index_args(built / "run", path, tmp_path / "index", "--stride_m=10",
                                           "--crs=EPSG:32632"))  # fmt: skip
    assert_exit(result, 0)
    assert "117 windows of 40 m every 10 m (9 x 13, 20 px each, 2.000 m per pixel)" in result.stdout
    # The same pixels and geo-reference as the JSON map: the same descriptors.
    assert digests(tmp_path / "index" / "chunks") == digests(built / "index" / "chunks")


@pytest.mark.parametrize("rotation, crs, message", [
    (0.0, None, "world.pgw has no CRS: give it in"),
    (0.5, "--crs=EPSG:32632", "world.pgw: the world file is rotated (B = 0, D = 0.5); only north-up maps are read"),
])  # fmt: skip
def test_a_world_file_without_crs_or_rotated(built, tmp_path, rotation, crs, message):
    index_dir = copy_tree(built / "index", tmp_path / "own_index")  # a run of its own: another holds the shared one
    before = digests(index_dir)
    path = world_file_map(tmp_path, rotation)
    result = run("cvft-index", *index_args(built / "run", path, index_dir, *([crs] if crs else [])))
    assert_exit(result, 2, f"error: {tmp_path / 'world.pgw'}", message)
    assert_unchanged(index_dir, before)


def test_a_map_without_geo_reference(built, tmp_path):
    index_dir = copy_tree(built / "index", tmp_path / "own_index")  # a run of its own: another holds the shared one
    before = digests(index_dir)
    plain = tmp_path / "plain.png"
    plain.write_bytes((built / "map.png").read_bytes())
    result = run("cvft-index", *index_args(built / "run", plain, index_dir))
    assert_exit(result, 2, f"error: {plain} has no geo-reference: expected {tmp_path / 'plain.json'}")
    assert_unchanged(index_dir, before)


def test_a_truncated_map(built, tmp_path):
    index_dir = copy_tree(built / "index", tmp_path / "own_index")  # a run of its own: another holds the shared one
    before = digests(index_dir)
    copy = write_png_map(str(tmp_path), size=(60, 80))
    truncate(copy)
    result = run("cvft-index", *index_args(built / "run", copy, index_dir))
    assert_exit(result, 2, f"error: unreadable map: {copy} is truncated (the PNG has no IEND chunk)")
    assert_unchanged(index_dir, before)


@pytest.mark.parametrize("flag, message", [
    ("--stride_m=1000", "the stride (1000 m) is larger than the map (160 x 120 m)"),
    ("--config.data.aerial_footprint_m=400", "the window (400 m, 200 px) is larger than the map"),
])  # fmt: skip
def test_a_stride_or_window_larger_than_the_map(built, tmp_path, flag, message):
    index_dir = copy_tree(built / "index", tmp_path / "own_index")  # a run of its own: another holds the shared one
    before = digests(index_dir)
    result = run("cvft-index", *index_args(built / "run", built / "map.png", index_dir), flag)
    assert_exit(result, 2, message)
    assert_unchanged(index_dir, before)


def test_an_index_of_another_model(built, tmp_path):
    index_dir = copy_tree(built / "index", tmp_path / "own_index")  # a run of its own: another holds the shared one
    before = digests(index_dir)
    other = save_model(str(tmp_path / "other"), seed=2)
    result = run("cvft-index", *index_args(other, built / "map.png", index_dir))
    assert_exit(result, 2, f"error: the index {index_dir} was built with another model")
    result = run("cvft-localize", f"--index={index_dir}", f"--image_dir={built / 'queries'}",
                 f"--out={tmp_path / 'out'}", f"--workdir={other}")  # fmt: skip
    assert_exit(result, 2, "was built with another model", "Its descriptors cannot be compared")
    assert_unchanged(index_dir, before)


def test_an_empty_query_folder_and_a_truncated_query(built, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run(
        "cvft-localize", f"--index={built / 'index'}", f"--image_dir={tmp_path / 'empty'}", f"--out={tmp_path / 'o'}"
    )
    assert_exit(result, 2, f"error: the query folder {tmp_path / 'empty'} holds no image (.jpg, .jpeg, .png)")
    broken = tmp_path / "broken.jpg"
    broken.write_bytes((built / "queries" / "1.jpg").read_bytes())
    truncate(broken, 200)
    result = run("cvft-localize", f"--index={built / 'index'}", "--images", broken, f"--out={tmp_path / 'o'}")
    assert_exit(result, 2, f"error: bad query image: {broken} is truncated (the JPEG has no end-of-image marker)")


def test_indexing_killed_and_resumed_equals_an_uninterrupted_run(built, tmp_path):
    map_path = built / "map.png"
    arguments = ["--stride_m=4", "--batch_size=4", "--chunk_batches=1"]  # 21 x 31 windows in chunks of 4
    result = run("cvft-index", *index_args(built / "run", map_path, tmp_path / "whole", *arguments))
    assert_exit(result, 0)
    resumed = tmp_path / "resumed"
    command = [command_path("cvft-index"), *map(str, index_args(built / "run", map_path, resumed, *arguments))]
    process = subprocess.Popen(command, cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    chunks = resumed / "chunks"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if chunks.is_dir() and len([name for name in os.listdir(chunks) if not name.startswith(".partial")]) >= 5:
            break
        time.sleep(0.05)
    assert process.poll() is None, "cvft-index ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    done = len([name for name in os.listdir(chunks) if not name.startswith(".partial")])
    assert 5 <= done < 163
    result = run("cvft-index", *index_args(built / "run", map_path, resumed, *arguments))
    assert_exit(result, 0)
    assert f"embedded {651 - 4 * done} in" in result.stdout
    assert digests(chunks) == digests(tmp_path / "whole" / "chunks")
    assert (resumed / "search.faiss").read_bytes() == (tmp_path / "whole" / "search.faiss").read_bytes()
