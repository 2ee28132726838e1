"""Tests of the synthetic cross-view world: the world, the two renderers and the writers."""

import dataclasses
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import scipy.io

from cvft_tf import synthetic
from cvft_tf.synthetic import render, world, writer

TINY = writer.ImageSpec(aerial_size=64, aerial_extent=96.0, ground_height=32, ground_width=176)
PLAIN = render.Appearance()  # fixed light, no noise, no clouds
ROOF_RED = (0.9, 0.1, 0.1)


def _panorama(scene, height, width, **kwargs):
    """(image, depth) seen from (0, 0) with the plain appearance."""
    return render.render_panorama(
        scene, (0.0, 0.0), height, width, appearance=PLAIN, return_depth=True, **kwargs
    )


def _elevations(height, width):
    """Elevation of each panorama row, degrees (square pixels, horizon in the middle)."""
    vfov = render.default_vertical_fov(height, width)
    return vfov / 2 - (np.arange(height) + 0.5) * vfov / height


def _files(root):
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as file:
                found[os.path.relpath(path, root)] = file.read()
    return found


# -- the world ------------------------------------------------------------------------


def test_hash_uniform_is_a_pure_function_of_seed_salt_and_keys():
    keys = np.arange(-50, 50)
    first = world.hash_uniform(3, 1, keys, 7)
    np.testing.assert_array_equal(first, world.hash_uniform(3, 1, keys, 7))
    assert first.min() >= 0.0 and first.max() < 1.0
    assert not np.array_equal(first, world.hash_uniform(4, 1, keys, 7))  # seed
    assert not np.array_equal(first, world.hash_uniform(3, 2, keys, 7))  # salt
    assert len(np.unique(first)) == keys.size


def test_a_point_has_the_same_surface_in_any_window():
    city = world.CityWorld(5)
    big = city.scene((40.0, -25.0), 64.0, 0.5)
    small = city.scene((52.0, -13.0), 16.0, 0.5)
    index = big.cell_index(*small.cell_centers())
    np.testing.assert_array_equal(big.height.ravel()[index], small.height)
    np.testing.assert_array_equal(big.material.ravel()[index], small.material)
    np.testing.assert_array_equal(big.albedo.reshape(-1, 3)[index], small.albedo)
    np.testing.assert_array_equal(big.wall_albedo.reshape(-1, 3)[index], small.wall_albedo)


def test_the_world_is_a_city_and_depends_on_the_seed():
    scene = world.CityWorld(0).scene((0.0, 0.0), 200.0, 1.0)
    share = np.bincount(scene.material.ravel(), minlength=10) / scene.material.size
    assert share[world.Material.ROAD] > 0.15
    assert share[world.Material.BUILDING] > 0.05
    assert share[world.Material.TREE] > 0.005
    assert share[world.Material.SIDEWALK] > 0.03
    roofs = scene.height[scene.material == world.Material.BUILDING]
    assert roofs.min() >= world.FLOOR_HEIGHT and len(np.unique(np.round(roofs))) >= 5
    assert np.all(scene.height[scene.material == world.Material.ROAD] == 0)
    assert scene.albedo.min() >= 0 and scene.albedo.max() <= 1
    other = world.CityWorld(1).scene((0.0, 0.0), 200.0, 1.0)
    assert np.mean(other.material != scene.material) > 0.3


def test_sample_locations_are_distinct_and_on_open_ground():
    city = world.CityWorld(2)
    places = world.sample_locations(city, 30, 40.0, origin=(100.0, 200.0))
    assert places.shape == (30, 2)
    np.testing.assert_array_equal(places, world.sample_locations(city, 30, 40.0, origin=(100.0, 200.0)))
    gaps = np.linalg.norm(places[:, None] - places[None], axis=-1) + np.eye(30) * 1e9
    assert gaps.min() >= 2 * 0.15 * 40.0 - 1e-9
    assert np.all(places >= (100.0, 200.0))
    angles = np.arange(8) * np.pi / 4
    ring = places[:, None] + 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    around = city.evaluate(ring[..., 0], ring[..., 1])
    assert np.all(around.height == 0)
    here = city.evaluate(places[:, 0], places[:, 1])
    assert np.all(np.isin(here.material, [int(m) for m in world.OPEN_MATERIALS]))
    assert np.mean(here.material == world.Material.ROAD) > 0.5


# -- geometry of the two views --------------------------------------------------------


def _one_building(east, north, height=40.0):
    scene = world.Scene.flat(half_extent=64.0, cell_size=0.5)
    return scene.add_box(east, north, height, roof=ROOF_RED, wall=(0.5, 0.5, 0.5))


@pytest.mark.parametrize(
    "direction, east, north, column",
    [
        ("east", (20.0, 30.0), (-5.0, 5.0), 0.75),
        ("north", (-5.0, 5.0), (20.0, 30.0), 0.5),
        ("west", (-30.0, -20.0), (-5.0, 5.0), 0.25),
        ("south", (-5.0, 5.0), (-30.0, -20.0), 0.0),
    ],
)
def test_a_building_appears_at_its_azimuth_and_its_place_in_the_aerial(direction, east, north, column):
    scene = _one_building(east, north)
    height, width = 32, 176
    pano, depth = _panorama(scene, height, width)
    upper = depth[: height // 2]  # rows above the horizon
    blocked = np.isfinite(upper).all(axis=0)  # columns where the building hides the whole sky
    # The box spans azimuths of +-atan(5 / 20) = 14 degrees about its direction.
    expected = int(column * width) % width
    half_span = int(np.degrees(np.arctan2(5, 20)) / 360 * width)
    offsets = (np.flatnonzero(blocked) - expected + width // 2) % width - width // 2
    assert np.all(np.abs(offsets) <= half_span + 1), direction
    assert blocked[(expected + np.arange(-half_span + 1, half_span)) % width].all(), direction
    assert np.count_nonzero(blocked) <= 2 * half_span + 2
    # The other three directions see open sky (for east: south, west at W/4, north at W/2);
    # the building's pixels differ from the sky's.
    for turn in (1, 2, 3):
        other = (expected + turn * width // 4) % width
        assert np.isinf(upper[:, other]).all(), (direction, turn)
        sky = pano[: height // 2, other].astype(int)
        assert np.abs(pano[: height // 2, expected] - sky).mean() > 20
    np.testing.assert_allclose(depth[2, expected], 20.0, atol=1.5)
    # In the north-up aerial tile, the red roof lies at the same offset from the centre.
    tile = render.render_aerial(scene, (0.0, 0.0), 64, 96.0, PLAIN)
    red = (tile[..., 0] > 150) & (tile[..., 1] < 80)
    rows, cols = np.nonzero(red)
    gsd = 96.0 / 64
    assert red.sum() > 0.8 * (10 / gsd) ** 2
    np.testing.assert_allclose(cols.mean() + 0.5 - 32, np.mean(east) / gsd, atol=0.6)
    np.testing.assert_allclose(32 - (rows.mean() + 0.5), np.mean(north) / gsd, atol=0.6)


def test_a_near_wall_occludes_the_foot_of_a_far_building():
    scene = world.Scene.flat(half_extent=64.0, cell_size=0.5)
    scene.add_box((40.0, 50.0), (-8.0, 8.0), 30.0)
    scene.add_box((10.0, 11.0), (-8.0, 8.0), 6.0)
    height, width = 64, 352
    _, depth = _panorama(scene, height, width)
    elevation = _elevations(height, width)
    column = depth[:, 3 * width // 4]
    wall_top = np.degrees(np.arctan((6.0 - render.CAMERA_HEIGHT) / 11.0))  # far edge of the wall
    building_top = np.degrees(np.arctan((30.0 - render.CAMERA_HEIGHT) / 50.0))
    wall_rows = (elevation > 0) & (elevation < wall_top - 1)
    building_rows = (elevation > wall_top + 3) & (elevation < building_top - 1)
    assert wall_rows.sum() > 3 and building_rows.sum() > 3
    assert np.all((column[wall_rows] >= 10.0) & (column[wall_rows] <= 11.6))
    assert np.all((column[building_rows] >= 40.0) & (column[building_rows] <= 41.6))


def test_the_ground_is_seen_at_the_distance_of_its_depression_angle():
    scene = world.Scene.flat(half_extent=64.0, cell_size=0.5)
    height, width = 64, 352
    image, depth = _panorama(scene, height, width)
    elevation = np.radians(_elevations(height, width))
    below = elevation < np.radians(-3)
    expected = render.CAMERA_HEIGHT / np.tan(-elevation[below])
    # A ray stops at the first sample past the ground: within one step (a cell or 2 %).
    found = depth[below]
    assert np.all(found >= expected[:, None] - 1e-6)
    assert np.all(found <= expected[:, None] * 1.02 + 0.5 + 1e-6)
    assert np.isinf(depth[elevation > 0]).all()
    # Sky is blue above, the grey pavement below.
    assert image[0, :, 2].mean() > image[0, :, 0].mean() + 40
    assert np.abs(image[-1].astype(int) - image[-1, :, :1]).max() < 25


def test_raw_cvact_panorama_middle_half_is_the_cut_panorama():
    scene = _one_building((20.0, 30.0), (-5.0, 5.0))
    _, raw = _panorama(scene, 64, 128, vertical_fov=180.0)
    _, cut = _panorama(scene, 32, 128, vertical_fov=90.0)
    np.testing.assert_array_equal(raw[16:48], cut)


def test_rays_looking_down_pass_below_a_tree_canopy():
    scene = world.Scene.flat(half_extent=64.0, cell_size=0.5)
    scene.add_box((10.0, 14.0), (-2.0, 2.0), 8.0, material=world.Material.TREE)
    height, width = 64, 352
    _, solid = _panorama(scene, height, width)
    scene.overhang[scene.material == world.Material.TREE] = 3.0
    _, depth = _panorama(scene, height, width)
    column, solid_column = depth[:, 3 * width // 4], solid[:, 3 * width // 4]
    # Above the horizon (rows 0..31) rays up to atan(5.5 / 10.5) = 27.6 degrees (row 5 on)
    # meet the canopy's side (10 m away, found within one 0.5 m step).
    np.testing.assert_array_equal(column[:32], solid_column[:32])
    assert np.all((column[5:32] >= 10.0) & (column[5:32] <= 10.5))
    # Below it, they see the ground as if there were no tree; a solid canopy hides some.
    _, bare = _panorama(world.Scene.flat(half_extent=64.0, cell_size=0.5), height, width)
    np.testing.assert_array_equal(column[32:], bare[32:, 3 * width // 4])
    assert np.any((solid_column[32:] >= 10.0) & (solid_column[32:] <= 10.5))


# -- appearance and determinism -------------------------------------------------------


def test_render_pair_is_a_function_of_its_generator_and_views_differ_in_look():
    city = world.CityWorld(0)
    where = tuple(world.sample_locations(city, 1, 50.0)[0])
    sizes = dict(aerial_size=64, aerial_extent=96.0, ground_height=32, ground_width=176)
    aerial, ground = render.render_pair(city, where, np.random.default_rng(1), **sizes)
    assert aerial.shape == (64, 64, 3) and ground.shape == (32, 176, 3)
    assert aerial.dtype == np.uint8 and ground.dtype == np.uint8
    again = render.render_pair(city, where, np.random.default_rng(1), **sizes)
    np.testing.assert_array_equal(aerial, again[0])
    np.testing.assert_array_equal(ground, again[1])
    other = render.render_pair(city, where, np.random.default_rng(2), **sizes)
    assert np.abs(other[0].astype(int) - aerial).mean() > 1.0  # another light, colour, noise
    looks = [synthetic.Appearance.random(np.random.default_rng(s), "aerial") for s in range(2)]
    assert looks[0] != looks[1]
    with pytest.raises(ValueError, match="view"):
        synthetic.Appearance.random(np.random.default_rng(0), "side")


def test_shadows_fall_away_from_the_sun():
    scene = _one_building((-5.0, 5.0), (-5.0, 5.0), height=10.0)
    sun_in_the_south = dataclasses.replace(PLAIN, sun_azimuth=180.0, sun_elevation=45.0)
    lit = render.sun_visibility(scene, sun_in_the_south)
    east, north = scene.cell_centers()
    behind = (np.abs(east) < 4) & (north > 6) & (north < 14)  # north of the box
    before = (np.abs(east) < 4) & (north < -6) & (north > -14)
    assert lit[behind].mean() < 0.05
    assert lit[before].mean() > 0.95


# -- datasets on disk -----------------------------------------------------------------


def test_write_cvusa_layout(tmp_path):
    summary = writer.write_cvusa(str(tmp_path), num_train=5, num_val=3, seed=0, images=TINY)
    assert summary["pairs"] == 8 and summary["splits"] == {"train": 5, "val": 3}
    listed = []
    for split, count in (("train", 5), ("val", 3)):
        with open(tmp_path / "splits" / f"{split}-19zl.csv", encoding="utf-8") as file:
            lines = file.read().splitlines()
        assert len(lines) == count
        for line in lines:
            pattern = r"bingmap/19/(\d{7})\.jpg,streetview/panos/(\d{7})\.jpg,"
            match = re.fullmatch(pattern + r"streetview/annotations/(\d{7})\.png", line)
            assert match and len(set(match.groups())) == 1, line
            listed.append(int(match.group(1)))
            aerial = cv2.imread(str(tmp_path / line.split(",")[0]))
            ground = cv2.imread(str(tmp_path / line.split(",")[1]))
            assert aerial.shape == (64, 64, 3)
            assert ground.shape == (32, 176, 3)
    assert sorted(listed) == list(range(1, 9))
    assert len(os.listdir(tmp_path / "bingmap" / "19")) == 8
    with pytest.raises(FileExistsError, match="not empty"):
        writer.write_cvusa(str(tmp_path), num_train=1, num_val=1, images=TINY)


def test_cvusa_validation_places_lie_in_an_area_of_their_own(tmp_path):
    writer.write_cvusa(str(tmp_path), num_train=9, num_val=4, seed=2, images=TINY)
    with open(tmp_path / writer.LOCATIONS_CSV, encoding="utf-8") as file:
        rows = [line.split(",") for line in file.read().splitlines()]
    assert rows[0] == ["id", "split", "east_m", "north_m"]
    positions = {
        split: np.array([[float(e), float(n)] for _, s, e, n in rows[1:] if s == split]) for split in ("train", "val")
    }
    assert [r[0] for r in rows[1:]] == [f"{i:07d}" for i in range(1, 14)]
    with open(tmp_path / "splits" / "val-19zl.csv", encoding="utf-8") as file:
        assert [line[11:18] for line in file] == [r[0] for r in rows[1:] if r[1] == "val"]
    city = world.CityWorld(2)
    np.testing.assert_allclose(positions["train"], world.sample_locations(city, 9, writer.SPACING), atol=1e-3)
    gaps = np.linalg.norm(positions["val"][:, None] - positions["train"][None], axis=-1)
    # Farther than twice a panorama's reach: no val image shows what a training image shows,
    # and far beyond the world's own spacing between neighbouring places.
    assert gaps.min() > 2 * render.MAX_DISTANCE > writer.SPACING


def test_same_seed_same_bytes_other_seed_other_images(tmp_path):
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        writer.write_cvact(str(tmp_path / name), 2, 1, 2, seed=seed, images=TINY)
    first, second, third = (_files(tmp_path / name) for name in "abc")
    assert len(first) == 2 * 5 + 1
    assert first == second
    images = lambda files: sorted(v for k, v in files.items() if k.endswith(".jpg"))  # noqa: E731
    assert not set(images(first)) & set(images(third))


def test_write_cvact_layout_positions_and_dense_test(tmp_path):
    summary = writer.write_cvact(str(tmp_path), num_train=4, num_val=2, num_test=12, seed=3, images=TINY)
    assert summary["splits"] == {"train": 4, "val": 2, "test": 12}
    mat = scipy.io.loadmat(str(tmp_path / "ACT_data.mat"))
    ids = [str(i) for i in mat["panoIds"]]
    assert len(ids) == len(set(ids)) == 18 and all(len(i) == 22 for i in ids)
    utm = mat["utm"]
    assert utm.shape == (18, 2) and utm.dtype == np.float64
    assert np.all(utm[:, 0] > 300000) and np.all(utm[:, 1] > 5000000)
    train = mat["trainSet"]["trainInd"][0][0]
    val = mat["valSet"]["valInd"][0][0]
    test = mat["valSetAll"]["valInd"][0][0]
    assert train.shape == (4, 1) and val.shape == (2, 1) and test.shape == (12, 1)
    assert sorted(np.concatenate([train, val]).ravel()) == list(range(1, 7))  # 1-based
    assert sorted(test.ravel()) == list(range(7, 19))
    for pano_id in ids:
        ground = cv2.imread(str(tmp_path / "streetview" / f"{pano_id}_grdView.jpg"))
        aerial = cv2.imread(str(tmp_path / "satview_polish" / f"{pano_id}_satView_polish.jpg"))
        assert ground.shape == (32, 176, 3) and aerial.shape == (64, 64, 3)
    # Positions are the world's, in metres.
    city = world.CityWorld(3)
    np.testing.assert_allclose(utm[:6] - writer.UTM_ORIGIN, world.sample_locations(city, 6, writer.SPACING))
    # The test split is dense: most locations have another within 25 m; it is far from train.
    test_utm = utm[test.ravel() - 1]
    gaps = np.linalg.norm(test_utm[:, None] - test_utm[None], axis=-1) + np.eye(12) * 1e9
    assert np.mean(gaps.min(axis=1) < 25.0) >= 0.5
    known = utm[np.concatenate([train, val]).ravel() - 1]
    assert np.linalg.norm(test_utm[:, None] - known[None], axis=-1).min() > 2 * render.MAX_DISTANCE


def test_the_loaders_read_the_generated_folders(tmp_path):
    from cvft_tf.data import cvact, cvusa, load_dataset, preprocess

    writer.write_cvusa(str(tmp_path / "cvusa"), num_train=3, num_val=2, images=TINY)
    train = cvusa.read_split(str(tmp_path / "cvusa"), "train", raw_ground_size=(32, 176))
    assert len(train) == 3 and all(os.path.exists(p) for p in train.ground_paths + train.aerial_paths)
    sizes = {"ground_size": (16, 88), "aerial_size": (32, 32), "training": False}
    root = str(tmp_path / "cvusa")
    batch = next(iter(load_dataset("cvusa", root, "val", 2, raw_ground_size=(32, 176), **sizes)))
    val = cvusa.read_split(str(tmp_path / "cvusa"), "val", raw_ground_size=(32, 176))
    expected = preprocess.resize_image(cv2.imread(val.aerial_paths[1]), (32, 32))
    np.testing.assert_array_equal(batch["aerial"][1].numpy(), expected)
    assert batch["ground"].shape == (2, 16, 88, 3)

    writer.write_cvact(str(tmp_path / "cvact"), num_train=2, num_val=2, num_test=3, images=TINY)
    test = cvact.read_split(str(tmp_path / "cvact"), "test")
    assert len(test) == 3 and test.utm.shape == (3, 2)
    batch = next(iter(load_dataset("cvact", str(tmp_path / "cvact"), "test", 3, **sizes)))
    np.testing.assert_allclose(batch["utm"].numpy(), test.utm, rtol=1e-6)


def test_raw_cvact_images_are_cropped_by_the_loader(tmp_path):
    from cvft_tf.data import cvact

    raw_tiny = dataclasses.replace(TINY, ground_height=64, ground_width=128, vertical_fov=180.0)
    writer.write_cvact(str(tmp_path), num_train=1, num_val=1, num_test=1, images=raw_tiny)
    split = cvact.read_split(str(tmp_path), "train")
    ground = cv2.imread(split.ground_paths[0])
    assert ground.shape == (64, 128, 3)
    assert split.ground_rows(*ground.shape[:2]) == (16, 48)


# -- the command ----------------------------------------------------------------------

_TINY_FLAGS = ["--aerial_size=64", "--ground_height=32", "--ground_width=176", "--seed=4"]


def test_cli_writes_a_cvact_dataset(tmp_path):
    out = tmp_path / "act"
    command = [sys.executable, "-m", "cvft_tf.cli.make_synthetic", f"--out={out}", "--format=cvact"]
    command += ["--num_train=2", "--num_val=1", "--num_test=2", *_TINY_FLAGS]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(
        rf"Wrote 5 synthetic pairs \(2 train, 1 val, 2 test\) in the CVACT layout to {re.escape(str(out))} "
        r"in [0-9.]+ s \([0-9.]+ s per pair\)",
        result.stdout,
    ), result.stdout
    mat = scipy.io.loadmat(str(out / "ACT_data.mat"))
    assert mat["panoIds"].shape == (5,)
    ground = cv2.imread(str(out / "streetview" / f"{mat['panoIds'][0]}_grdView.jpg"))
    assert ground.shape == (32, 176, 3)


@pytest.mark.large
def test_script_writes_cvusa_and_refuses_a_non_empty_out(tmp_path):
    command = [sys.executable, "-m", "cvft_tf.cli.make_synthetic", f"--out={tmp_path}", "--num_train=2", "--num_val=1", *_TINY_FLAGS]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "Wrote 3 synthetic pairs (2 train, 1 val) in the CVUSA layout" in first.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 2
    assert "not empty" in again.stderr and "--overwrite" in again.stderr
    forced = subprocess.run(command + ["--overwrite"], capture_output=True, text=True, timeout=600)
    assert forced.returncode == 0, forced.stderr[-3000:]


@pytest.mark.large
def test_parallel_workers_write_the_same_bytes(tmp_path):
    writer.write_cvusa(str(tmp_path / "one"), 6, 2, seed=5, images=TINY, workers=1)
    writer.write_cvusa(str(tmp_path / "two"), 6, 2, seed=5, images=TINY, workers=2)
    assert _files(tmp_path / "one") == _files(tmp_path / "two")


@pytest.mark.large
def test_real_dataset_sizes(tmp_path):
    writer.write_cvusa(str(tmp_path / "cvusa"), 1, 1)
    assert cv2.imread(str(tmp_path / "cvusa/bingmap/19/0000001.jpg")).shape == (750, 750, 3)
    assert cv2.imread(str(tmp_path / "cvusa/streetview/panos/0000002.jpg")).shape == (224, 1232, 3)
    writer.write_cvact(str(tmp_path / "raw"), 1, 0, 0, images=writer.CVACT_RAW_IMAGES)
    pano_id = str(scipy.io.loadmat(str(tmp_path / "raw" / "ACT_data.mat"))["panoIds"][0])
    assert cv2.imread(str(tmp_path / "raw" / "streetview" / f"{pano_id}_grdView.jpg")).shape == (832, 1664, 3)
    aerial = cv2.imread(str(tmp_path / "raw" / "satview_polish" / f"{pano_id}_satView_polish.jpg"))
    assert aerial.shape == (1200, 1200, 3)


def test_the_world_and_its_writer_do_not_import_tensorflow():
    """Spawned writer processes re-import the writer; TensorFlow would cost each seconds."""
    code = "import sys, cvft_tf.synthetic; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "False"
