"""cvft-eval-place under faults: a model path that is no model file, a truncated model, a
truncated image read by the tf.data pipeline, an ``--out`` in the way (the other bad inputs are
checked in process, in ``tests/cli/test_evaluate_place.py``).

The ``metrics.json`` and ``predictions.npz`` written by an earlier successful run must be
unchanged after a failing one.
"""

import json
import shutil
import zipfile

import cv2
import numpy as np
import pytest

from cvft_tf.models.place_recognition import PlaceRecognitionModel
from tests.cli.test_evaluate_place import MODEL_CONFIG
from tests.data.place_fixtures import DATABASE, QUERIES
from tests.faults.harness import assert_exit, digests, run, truncate
from tests.faults.worlds import assert_unchanged, built_once, copy_tree

pytestmark = pytest.mark.large
IMAGE_SIZE = 28


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """Query and database folders, their ground truth, a tiny DINOv2-SALAD model (``tiny.keras``)
    and the ``eval/metrics.json`` of a successful run.

    Returns the folder holding them.
    """
    with built_once(tmp_path_factory, "place") as (root, build):
        if build:
            write_place(root)
            assert_exit(evaluate_place(root, weights=root / "tiny.keras", out=root / "eval"), 0)
    return root


def write_place(root):
    """Writes the folders, the ground truth and the tiny model of :func:`place` into ``root``."""
    rng = np.random.default_rng(0)
    for index, name in enumerate(DATABASE):
        (root / "database" / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / "database" / name), rng.integers(0, 256, size=(40 + 4 * index, 50, 3), dtype=np.uint8))
    (root / "queries").mkdir()
    for query, positives in QUERIES.items():
        shutil.copy(root / "database" / positives[0], root / "queries" / query)
    (root / "gt.json").write_text(json.dumps(QUERIES))
    PlaceRecognitionModel(image_size=(IMAGE_SIZE, IMAGE_SIZE), **MODEL_CONFIG).save(root / "tiny.keras")


@pytest.fixture
def earlier_metrics(place, tmp_path):
    """A copy of the successful run's output folder and its digests."""
    out = copy_tree(place / "eval", tmp_path / "eval")
    return out, digests(out)


def evaluate_place(place, weights, out):
    """Runs cvft-eval-place of ``weights`` over the ``place`` folders into ``out``."""
    return run(
        "cvft-eval-place", f"--weights={weights}", f"--query_dir={place / 'queries'}",
        f"--database_dir={place / 'database'}", f"--ground_truth={place / 'gt.json'}",
        f"--image_size={IMAGE_SIZE}", f"--out={out}",
    )  # fmt: skip


def test_the_earlier_run_wrote_its_metrics(place):
    metrics = json.loads((place / "eval" / "metrics.json").read_text())
    assert metrics["num_queries"] == 3 and metrics["num_database"] == 6
    assert sorted(path.name for path in (place / "eval").iterdir()) == ["metrics.json", "predictions.npz"]


def test_a_truncated_database_image(place, earlier_metrics, tmp_path):
    images = copy_tree(place, tmp_path / "place")
    bad = images / "database" / DATABASE[2]
    truncate(bad, 300)
    out, before = earlier_metrics
    result = evaluate_place(images, weights=place / "tiny.keras", out=out)
    assert_exit(result, 2, f"error: {bad} is truncated (the JPEG has no end-of-image marker)")
    assert_unchanged(out, before)


@pytest.mark.parametrize(
    "make_weights, message",
    [
        (lambda path: path.mkdir(), "is a directory; give a .keras file or a .weights.h5 file"),
        (lambda path: None, "not found"),
    ],
    ids=["empty-directory", "missing"],
)
def test_weights_that_are_no_model_file(place, earlier_metrics, tmp_path, make_weights, message):
    weights = tmp_path / "saved_model"
    make_weights(weights)
    out, before = earlier_metrics
    result = evaluate_place(place, weights, out)
    assert_exit(result, 2, f"{weights}", message)
    assert_unchanged(out, before)


def test_weights_that_are_a_directory_of_random_files(place, earlier_metrics, tmp_path):
    weights = tmp_path / "saved_model"
    (weights / "variables").mkdir(parents=True)
    (weights / "saved_model.pb").write_bytes(bytes(range(256)))
    (weights / "variables" / "variables.index").write_text("not an index")
    out, before = earlier_metrics
    result = evaluate_place(place, weights, out)
    assert_exit(result, 2, f"error: --weights {weights} is a SavedModel directory; give a .keras file")
    assert_unchanged(out, before)


def test_a_truncated_keras_file(place, earlier_metrics, tmp_path):
    weights = tmp_path / "tiny.keras"
    shutil.copy(place / "tiny.keras", weights)
    truncate(weights, 2000)
    out, before = earlier_metrics
    result = evaluate_place(place, weights, out)
    assert_exit(result, 2, f"error: {weights} is not a readable .keras archive (truncated or corrupt)")
    assert_unchanged(out, before)


def test_an_output_that_is_a_regular_file(place, tmp_path):
    out = tmp_path / "eval"
    out.write_text("keep me")
    result = evaluate_place(place, place / "tiny.keras", out)
    assert_exit(result, 2, f"error: cannot write to the --out directory {out}: it is a file, not a directory")
    assert out.read_text() == "keep me"


def test_a_crafted_keras_file(place, earlier_metrics, tmp_path):
    weights = tmp_path / "crafted.keras"
    with zipfile.ZipFile(place / "tiny.keras") as source, zipfile.ZipFile(weights, "w") as crafted:
        for item in source.infolist():
            data = source.read(item)
            if item.filename == "config.json":
                config = json.loads(data)
                config["config"]["image_size"] = {"not": "a size"}
                data = json.dumps(config)
            crafted.writestr(item, data)
    out, before = earlier_metrics
    result = evaluate_place(place, weights, out)
    assert_exit(result, 2, f"error: {weights} holds a PlaceRecognitionModel that cannot be rebuilt: ")
    assert_unchanged(out, before)
