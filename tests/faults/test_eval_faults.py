"""cvft-eval under faults: bad images, split files and models, bad configs, outputs in the way.

Each case runs the installed ``cvft-eval`` with one fault and expects exit status 2, an
``error:`` line naming the file and the problem, no traceback, and the evaluation written
before by a successful run (``metrics.json``, descriptors, figures) left byte for byte as it was.
"""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import scipy.io

from tests.data.fixtures import cvact_ground_path, write_cvact
from tests.faults.harness import SMOKE, assert_exit, data_overrides, digests, run, truncate, write_world
from tests.faults.worlds import assert_unchanged, built_once, copy_tree, overwrite_bytes, save_tiny_model

pytestmark = pytest.mark.large
CVACT_SMOKE = "configs/cvact.py:smoke"


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory):
    """A tiny CVUSA world, a workdir with a random smoke model, and that model's evaluation.

    Returns a dict: ``world``, ``workdir``, ``eval_dir`` (written by a successful cvft-eval)
    and ``digests`` (of ``eval_dir``).
    """
    with built_once(tmp_path_factory, "evaluated") as (root, build):
        world, workdir = root / "world", root / "run"
        if build:
            write_world(world)
            save_tiny_model(workdir)
            assert_exit(run("cvft-eval", f"--config={SMOKE}", f"--workdir={workdir}", *data_overrides(world)), 0)
    eval_dir = workdir / "eval"
    return {"world": world, "workdir": workdir, "eval_dir": eval_dir, "digests": digests(eval_dir)}


@pytest.fixture
def earlier_eval(evaluated, tmp_path):
    """A copy of the successful evaluation, for a failing run to write into."""
    return copy_tree(evaluated["eval_dir"], tmp_path / "eval")


@pytest.fixture
def world(evaluated, tmp_path):
    """A copy of the CVUSA world to break."""
    return copy_tree(evaluated["world"], tmp_path / "world")


def evaluate(evaluated, out, *args, world=None, config=SMOKE):
    """Runs cvft-eval of the evaluated workdir's model into ``out``; ``args`` come last and win."""
    return run(
        "cvft-eval", f"--config={config}", f"--workdir={evaluated['workdir']}", f"--out={out}",
        *data_overrides(world or evaluated["world"]), *args,
    )  # fmt: skip


def test_the_earlier_evaluation_is_complete(evaluated):
    names = set(evaluated["digests"])
    assert {"metrics.json", "ground_descriptors.npy", "aerial_descriptors.npy", "recall_curve.png"} <= names
    assert json.loads((evaluated["eval_dir"] / "metrics.json").read_text())["num_queries"] == 6


def test_a_truncated_jpeg(evaluated, earlier_eval, world):
    bad = world / "streetview" / "panos" / "0000003.jpg"
    truncate(bad)
    result = evaluate(evaluated, earlier_eval, world=world)
    csv = world / "splits" / "val-19zl.csv"
    assert_exit(result, 2, f"error: bad image in evaluation: {csv}:3: {bad} is truncated")
    assert_unchanged(earlier_eval, evaluated["digests"])


def test_an_empty_split_csv(evaluated, earlier_eval, world):
    csv = world / "splits" / "val-19zl.csv"
    csv.write_text("")
    result = evaluate(evaluated, earlier_eval, world=world)
    assert_exit(result, 2, f"error: CVUSA split {csv}", f"{csv}: the split is empty (no pairs)")
    assert_unchanged(earlier_eval, evaluated["digests"])


def test_a_missing_image_and_malformed_lines_are_all_listed(evaluated, earlier_eval, world):
    csv = world / "splits" / "val-19zl.csv"
    lines = csv.read_text().splitlines()
    lines[1] = lines[1].rsplit(",", 1)[0]
    csv.write_text("\n".join([*lines, "garbage line"]) + "\n")
    missing = world / "bingmap" / "19" / "0000004.jpg"
    os.remove(missing)
    result = evaluate(evaluated, earlier_eval, world=world)
    assert_exit(
        result, 2, f"error: CVUSA split {csv}: 3 problem(s):",
        f"{csv}:2: expected 3 comma-separated paths (aerial,ground,annotation), got 'bingmap/19/0000002.jpg,",
        f"{csv}:4: aerial image {missing} does not exist",
        f"{csv}:7: expected 3 comma-separated paths (aerial,ground,annotation), got 'garbage line'",
    )  # fmt: skip
    assert_unchanged(earlier_eval, evaluated["digests"])


@pytest.fixture
def cvact_world(tmp_path):
    """A tiny CVACT world (PNG images, ACT_data.mat) of 6 places, all in CVACT_val."""
    root = tmp_path / "cvact"
    pano_ids = write_cvact(str(root), 6, train=[1, 2, 3, 4], val=[1, 2, 3, 4, 5, 6], test=[1, 2], aerial_raw=(64, 64))
    return root, pano_ids


def test_a_corrupt_png_in_cvact(evaluated, earlier_eval, cvact_world):
    root, pano_ids = cvact_world
    bad = cvact_ground_path(str(root), pano_ids[2])
    overwrite_bytes(bad, 40, 160)
    result = evaluate(evaluated, earlier_eval, f"--config.data.root={root}", config=CVACT_SMOKE)
    source = f"{root / 'ACT_data.mat'} valSet.valInd row 3 (panoId {pano_ids[2]})"
    assert_exit(result, 2, f"error: bad image in evaluation: {source}: {bad} is not a readable image")
    assert_unchanged(earlier_eval, evaluated["digests"])


def test_a_cvact_mat_without_the_split_field(evaluated, earlier_eval, cvact_world):
    root, _ = cvact_world
    mat_path = root / "ACT_data.mat"
    mat = scipy.io.loadmat(mat_path)
    scipy.io.savemat(mat_path, {key: mat[key] for key in ("panoIds", "utm", "trainSet")})
    result = evaluate(evaluated, earlier_eval, f"--config.data.root={root}", config=CVACT_SMOKE)
    assert_exit(result, 2, f"error: CVACT split 'val' of {mat_path}", f"{mat_path}: no field 'valSet' (split 'val')")
    assert_unchanged(earlier_eval, evaluated["digests"])


def test_a_truncated_best_keras(evaluated, tmp_path):
    workdir = tmp_path / "run"
    copy_tree(evaluated["eval_dir"], workdir / "eval")
    with open(evaluated["workdir"] / "best.keras", "rb") as handle:
        (workdir / "best.keras").write_bytes(handle.read(5000))
    result = run("cvft-eval", f"--config={SMOKE}", f"--workdir={workdir}", *data_overrides(evaluated["world"]))
    assert_exit(result, 2, f"error: {workdir / 'best.keras'} is not a readable .keras archive (truncated or corrupt)")
    assert_unchanged(workdir / "eval", evaluated["digests"])


def test_weights_that_do_not_exist(evaluated, earlier_eval, tmp_path):
    weights = tmp_path / "converted.weights.h5"
    result = evaluate(evaluated, earlier_eval, f"--weights={weights}")
    assert_exit(result, 2, f"error: No weights file at {weights}.")
    assert_unchanged(earlier_eval, evaluated["digests"])


def test_weights_that_are_not_hdf5(evaluated, earlier_eval, tmp_path):
    weights = tmp_path / "converted.weights.h5"
    weights.write_bytes(np.arange(5000, dtype=np.uint8).tobytes())
    result = evaluate(evaluated, earlier_eval, f"--weights={weights}")
    assert_exit(result, 2, f"error: {weights} is not a readable Keras weights file (truncated or not HDF5)")
    assert_unchanged(earlier_eval, evaluated["digests"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config.train.epochs=abc"], "error: flag --config.train.epochs=abc: invalid literal for int()"),
        (["--config.train.epoch=3"], "error: unknown config field 'epoch' Did you mean \"epochs\""),
        (["--config=configs/cvusa.py:bogus"], "Unknown config argument 'bogus'"),
        (["--config=configs/no_such_config.py"], "[Errno 2] No such file or directory: 'configs/no_such_config.py'"),
        (["--config.model.ground_size=3"], "error: config.model.ground_size must be (height, width), two positive"),
    ],
)
def test_a_bad_config(evaluated, earlier_eval, args, message):
    result = evaluate(evaluated, earlier_eval, *args)
    assert_exit(result, 2, message)
    assert_unchanged(earlier_eval, evaluated["digests"])


def test_a_compared_run_with_a_corrupt_metrics_json(evaluated, earlier_eval, tmp_path):
    other = tmp_path / "other"
    copy_tree(evaluated["eval_dir"], other / "eval")
    metrics = other / "eval" / "metrics.json"
    truncate(metrics, 50)
    result = evaluate(evaluated, earlier_eval, f"--compare={other}")
    assert_exit(result, 2, f"error: {metrics} is not valid JSON")
    assert_unchanged(earlier_eval, evaluated["digests"])


def test_an_output_directory_that_is_a_file(evaluated, tmp_path):
    blocker = tmp_path / "eval"
    blocker.write_text("not a directory")
    result = evaluate(evaluated, blocker)
    assert_exit(result, 2, f"error: cannot write to the evaluation output directory {blocker}: it is a file")
    assert blocker.read_text() == "not a directory"


def claim_size(path, height, width):
    """Rewrites the size in the baseline JPEG frame header (SOF0) of ``path``; the pixels stay small."""
    data = bytearray(path.read_bytes())
    frame = data.index(b"\xff\xc0")
    data[frame + 5 : frame + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))


def test_an_image_whose_header_is_too_large_is_not_decoded(evaluated, earlier_eval, world):
    bad = world / "bingmap" / "19" / "0000004.jpg"
    claim_size(bad, 30000, 30000)
    result = evaluate(evaluated, earlier_eval, world=world)
    csv = world / "splits" / "val-19zl.csv"
    assert_exit(
        result, 2,
        f"error: bad image in evaluation: {csv}:4: {bad} has 30000x30000 = 900000000 pixels in its header, "
        "more than config.data.max_image_pixels=64000000; it was not decoded",
    )  # fmt: skip
    assert_unchanged(earlier_eval, evaluated["digests"])


def test_a_non_finite_cvact_utm_names_its_row(evaluated, earlier_eval, cvact_world):
    root, pano_ids = cvact_world
    mat_path = root / "ACT_data.mat"
    mat = scipy.io.loadmat(mat_path)
    mat["utm"][2, 0] = np.nan
    mat["utm"][4, 1] = np.inf
    scipy.io.savemat(mat_path, {key: mat[key] for key in ("panoIds", "utm", "trainSet", "valSet", "valSetAll")})
    result = evaluate(evaluated, earlier_eval, f"--config.data.root={root}", config=CVACT_SMOKE)
    assert_exit(
        result, 2, f"{mat_path}: utm row 3 (panoId {pano_ids[2]}) is [nan, 6100000.0], not a finite position",
        f"{mat_path}: utm row 5 (panoId {pano_ids[4]}) is [500040.0, inf], not a finite position",
    )  # fmt: skip
    assert_unchanged(earlier_eval, evaluated["digests"])


def test_split_paths_outside_the_root_are_refused_unless_allowed(evaluated, earlier_eval, world, tmp_path):
    aerial, ground = tmp_path / "elsewhere-aerial.jpg", tmp_path / "elsewhere-ground.jpg"
    shutil.copy(world / "bingmap" / "19" / "0000002.jpg", aerial)
    shutil.copy(world / "streetview" / "panos" / "0000003.jpg", ground)
    csv = world / "splits" / "val-19zl.csv"
    lines = csv.read_text().splitlines()
    lines[1] = lines[1].replace("bingmap/19/0000002.jpg", "../elsewhere-aerial.jpg")
    lines[2] = lines[2].replace("streetview/panos/0000003.jpg", str(ground))
    csv.write_text("\n".join(lines) + "\n")
    result = evaluate(evaluated, earlier_eval, world=world)
    hint = "(set config.data.allow_paths_outside_root=True to allow it)"
    assert_exit(
        result, 2, f"{csv}:2: {world}/../elsewhere-aerial.jpg is outside the dataset root {world} {hint}",
        f"{csv}:3: {ground} is outside the dataset root {world} {hint}",
    )  # fmt: skip
    assert_unchanged(earlier_eval, evaluated["digests"])
    allowed = evaluate(evaluated, tmp_path / "allowed", "--config.data.allow_paths_outside_root=True", world=world)
    assert_exit(allowed, 0)


def test_a_split_csv_with_a_byte_order_mark_is_read(evaluated, world, tmp_path):
    csv = world / "splits" / "val-19zl.csv"
    csv.write_bytes(b"\xef\xbb\xbf" + csv.read_bytes())
    out = tmp_path / "eval"
    assert_exit(evaluate(evaluated, out, world=world), 0)
    assert json.loads((out / "metrics.json").read_text())["num_queries"] == 6


def test_foreign_weights_are_named_by_the_users_path(evaluated, earlier_eval, tmp_path):
    weights = tmp_path / "foreign.keras"
    keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]).save(weights)
    result = evaluate(evaluated, earlier_eval, f"--weights={weights}")
    assert_exit(result, 2, f"error: Weights file {weights} does not match the model:")
    assert_unchanged(earlier_eval, evaluated["digests"])
