"""``cvft-eval-place`` on tiny image folders with a tiny random DINOv2-SALAD model."""

import csv
import json

import cv2
import keras
import numpy as np
import pytest
from absl import flags

from cvft_tf.cli import evaluate_place
from cvft_tf.interop.imagenet import WeightsFileError
from cvft_tf.models.place_recognition import PlaceRecognitionModel

MODEL_CONFIG = dict(
    backbone_kwargs=dict(
        patch_size=14,
        num_layers=2,
        hidden_dim=32,
        num_heads=2,
        intermediate_dim=64,
        position_embedding_shape=(42, 42, 3),
    ),
    salad_kwargs=dict(num_clusters=2, cluster_dim=8, token_dim=8, hidden_dim=16),
    trainable_blocks=1,
)
DATABASE = ["a/0.png", "a/1.png", "b/2.jpg", "b/3.png", "c/4.png", "c/5.png"]
QUERIES = {"q0.png": ["a/0.png"], "q1.png": ["b/2.jpg", "a/1.png"], "q2.png": ["c/4.png"]}


@pytest.fixture
def folders(tmp_path):
    """Database images of noise; each query is a copy of its first positive (distance 0)."""
    rng = np.random.default_rng(0)
    images = {}
    for name in DATABASE:
        images[name] = rng.integers(0, 256, size=(40 + 4 * len(images), 50, 3), dtype=np.uint8)
        (tmp_path / "database" / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "database" / name), images[name], [cv2.IMWRITE_JPEG_QUALITY, 100])
    (tmp_path / "queries").mkdir()
    for query, positives in QUERIES.items():
        cv2.imwrite(str(tmp_path / "queries" / query), cv2.imread(str(tmp_path / "database" / positives[0])))
    (tmp_path / "queries" / "notes.txt").write_text("not an image")
    with open(tmp_path / "gt.json", "w") as file:
        json.dump(QUERIES, file)
    return tmp_path


def run_main(argv):
    flags.FLAGS(["cvft-eval-place", *argv])
    try:
        evaluate_place.main(["cvft-eval-place"])
    finally:
        flags.FLAGS.unparse_flags()


def test_cli_writes_recall_with_a_weights_file(folders, capsys):
    model = PlaceRecognitionModel(image_size=(28, 28), **MODEL_CONFIG)
    model.save_weights(str(folders / "tiny.weights.h5"))
    with open(folders / "model.json", "w") as file:
        json.dump(MODEL_CONFIG, file)
    run_main(
        [
            f"--weights={folders / 'tiny.weights.h5'}",
            f"--model_config={folders / 'model.json'}",
            f"--query_dir={folders / 'queries'}",
            f"--database_dir={folders / 'database'}",
            f"--ground_truth={folders / 'gt.json'}",
            "--image_size=42",
            f"--out={folders / 'eval'}",
            "--batch_size=4",
        ]
    )
    metrics = json.loads((folders / "eval" / "metrics.json").read_text())
    assert metrics == {"recall@1": 1.0, "recall@5": 1.0, "recall@10": 1.0, "num_queries": 3, "num_database": 6}
    assert "R@1: 100.00" in capsys.readouterr().out


def test_keras_file_is_rebuilt_at_the_requested_size(folders):
    model = PlaceRecognitionModel(image_size=(28, 28), **MODEL_CONFIG)
    model.save(str(folders / "tiny.keras"))
    resized = evaluate_place.load_place_model(str(folders / "tiny.keras"), (42, 42))
    assert isinstance(resized, PlaceRecognitionModel) and resized.image_size == (42, 42)
    same_shape = [(a, b) for a, b in zip(resized.weights, model.weights) if a.shape == b.shape]
    assert len(same_shape) == len(model.weights) - 1  # all but the interpolated position embeddings
    for restored, original in same_shape:
        np.testing.assert_array_equal(restored.numpy(), original.numpy(), err_msg=original.path)


def test_ground_truth_formats(folders):
    queries, database = (
        evaluate_place.list_images(str(folders / "queries")),
        evaluate_place.list_images(str(folders / "database")),
    )
    assert queries == ["q0.png", "q1.png", "q2.png"] and database == sorted(DATABASE)
    expected = [[0], [2, 1], [4]]
    with open(folders / "gt.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["query", "positives"])
        writer.writerows([query, *positives] for query, positives in QUERIES.items())
    np.save(folders / "gt.npy", np.array([np.array(p) for p in expected], dtype=object), allow_pickle=True)
    for name in ("gt.json", "gt.csv", "gt.npy"):
        names, positives = evaluate_place.load_ground_truth(str(folders / name), queries, database)
        assert names == queries
        assert [p.tolist() for p in positives] == expected
    (folders / "bad.json").write_text(json.dumps({"q0.png": ["a/9.png"]}))
    with pytest.raises(evaluate_place.GroundTruthError, match="not in the folders"):
        evaluate_place.load_ground_truth(str(folders / "bad.json"), queries, database)
    with pytest.raises(FileNotFoundError):
        evaluate_place.load_ground_truth(str(folders / "missing.json"), queries, database)


def test_missing_weights_exit_with_a_message(folders, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_main(
            [
                f"--weights={folders / 'missing.keras'}",
                f"--query_dir={folders / 'queries'}",
                f"--database_dir={folders / 'database'}",
                f"--ground_truth={folders / 'gt.json'}",
            ]
        )
    assert exit_info.value.code == 2
    assert "missing.keras" in capsys.readouterr().err


def test_files_that_give_no_model_are_named(folders):
    model = PlaceRecognitionModel(image_size=(28, 28), **MODEL_CONFIG)
    weights = folders / "tiny.weights.h5"
    model.save_weights(str(weights))
    (folders / "model.json").write_text(json.dumps(MODEL_CONFIG))
    with open(weights, "r+b") as handle:
        handle.truncate(2000)
    with pytest.raises(WeightsFileError, match=f"{weights} is not a readable Keras weights file"):
        evaluate_place.load_place_model(str(weights), (28, 28), str(folders / "model.json"))
    (folders / "broken.json").write_text('{"backbone_kwargs": ')
    with pytest.raises(evaluate_place.PlaceModelError, match=r"--model_config .*broken.json is not valid JSON \("):
        evaluate_place.load_place_model(str(weights), (28, 28), str(folders / "broken.json"))
    (folders / "unknown.json").write_text(json.dumps({**MODEL_CONFIG, "num_heads": 2}))
    with pytest.raises(evaluate_place.PlaceModelError, match="unknown.json does not describe a PlaceRecognitionModel"):
        evaluate_place.load_place_model(str(weights), (28, 28), str(folders / "unknown.json"))
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other.save(str(folders / "other.keras"))
    with pytest.raises(
        evaluate_place.PlaceModelError, match="other.keras holds a Sequential, not a PlaceRecognitionModel"
    ):
        evaluate_place.load_place_model(str(folders / "other.keras"), (28, 28))
    with pytest.raises(evaluate_place.PlaceModelError, match="is neither a .keras nor a .weights.h5 file"):
        evaluate_place.load_place_model(str(folders / "gt.json"), (28, 28))


def test_unreadable_ground_truth_files_are_named(folders):
    queries, database = list(QUERIES), sorted(DATABASE)
    for name, content, message in (
        ("gt.json", b'{"q0.png": ["a/0.png"], "q1', "is not valid JSON"),
        ("gt.json", b'{"q0.png": "a/0.png"}', "must hold an object mapping query names to lists of database names"),
        ("gt.npy", bytes(range(256)), "is not a readable .npy array of database indices per query"),
        ("gt.csv", b"q0.png,\xff\xfe\n", "is not a readable CSV file"),
    ):
        (folders / name).write_bytes(content)
        with pytest.raises(evaluate_place.GroundTruthError, match=message):
            evaluate_place.load_ground_truth(str(folders / name), queries, database)
