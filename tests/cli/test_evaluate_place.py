"""``cvft-eval-place`` on tiny image folders with a tiny random DINOv2-SALAD model."""

import json

import keras
import numpy as np
import pytest
from absl import app, flags

from cvft_tf.cli import evaluate_place
from cvft_tf.data.place_sets import PlaceSet
from cvft_tf.interop.imagenet import WeightsFileError
from cvft_tf.models.place_recognition import PlaceRecognitionModel
from tests.data.place_fixtures import (
    DATABASE,
    MSLS_QUERIES,
    PITTSBURGH_DATABASE,
    PITTSBURGH_POSITIVES,
    PITTSBURGH_QUERIES,
    QUERIES,
    write_lists,
    write_msls,
    write_pittsburgh,
    write_salad_lists,
)

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


@pytest.fixture
def folders(tmp_path):
    """The ``lists`` layout: image folders and ``gt.json`` (``place_fixtures.write_lists``)."""
    write_lists(str(tmp_path))
    return tmp_path


def run_main(argv):
    flags.FLAGS(["cvft-eval-place", *argv])
    try:
        evaluate_place.main(["cvft-eval-place"])
    finally:
        flags.FLAGS.unparse_flags()


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """Flags of a tiny random model saved once: ``.weights.h5`` + ``--model_config``."""
    root = tmp_path_factory.mktemp("tiny_model")
    PlaceRecognitionModel(image_size=(28, 28), **MODEL_CONFIG).save_weights(str(root / "tiny.weights.h5"))
    (root / "model.json").write_text(json.dumps(MODEL_CONFIG))
    return [f"--weights={root / 'tiny.weights.h5'}", f"--model_config={root / 'model.json'}", "--batch_size=4"]


def read_outputs(out):
    """``metrics.json`` and ``predictions.npz`` of a run (loaded without pickle)."""
    with np.load(out / "predictions.npz", allow_pickle=False) as predictions:
        return json.loads((out / "metrics.json").read_text()), dict(predictions)


def test_lists_layout_writes_metrics_and_predictions(folders, tiny_model, capsys):
    run_main(
        [
            *tiny_model,
            f"--query_dir={folders / 'queries'}",
            f"--database_dir={folders / 'database'}",
            f"--ground_truth={folders / 'gt.json'}",
            "--image_size=42",
            f"--out={folders / 'eval'}",
        ]
    )
    metrics, predictions = read_outputs(folders / "eval")
    assert metrics == {
        "layout": "lists",
        "recall@1": 1.0,
        "recall@5": 1.0,
        "recall@10": 1.0,
        "num_queries": 3,
        "num_database": 6,
        "queries_without_positives": 0,
        "excluded_queries": 0,
    }
    assert "R@1: 100.00" in capsys.readouterr().out
    assert predictions["indices"].shape == (3, 6)  # --top_k=25 is cut to the database's size
    np.testing.assert_array_equal(predictions["indices"][:, 0], [0, 2, 4])  # each query's twin
    np.testing.assert_allclose(predictions["distances"][:, 0], 0.0, atol=1e-5)  # float32 |q|^2 + |d|^2 - 2 q.d
    assert (np.diff(predictions["distances"], axis=1) >= 0).all()
    assert predictions["query_names"].tolist() == list(QUERIES)
    assert predictions["database_names"].tolist() == sorted(DATABASE)
    names = np.asarray(sorted(DATABASE))
    expected = [np.isin(names[row], QUERIES[query]) for query, row in zip(QUERIES, predictions["indices"])]
    np.testing.assert_array_equal(predictions["is_positive"], expected)


def test_keras_file_is_rebuilt_at_the_requested_size(folders):
    model = PlaceRecognitionModel(image_size=(28, 28), **MODEL_CONFIG)
    model.save(str(folders / "tiny.keras"))
    resized = evaluate_place.load_place_model(str(folders / "tiny.keras"), (42, 42))
    assert isinstance(resized, PlaceRecognitionModel) and resized.image_size == (42, 42)
    same_shape = [(a, b) for a, b in zip(resized.weights, model.weights) if a.shape == b.shape]
    assert len(same_shape) == len(model.weights) - 1  # all but the interpolated position embeddings
    for restored, original in same_shape:
        np.testing.assert_array_equal(restored.numpy(), original.numpy(), err_msg=original.path)


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




def test_pittsburgh_and_salad_lists_of_the_same_images_agree(tmp_path, tiny_model):
    mat = write_pittsburgh(str(tmp_path / "pitts"))
    root = tmp_path / "pitts"
    run_main([*tiny_model, "--layout=pittsburgh", f"--mat={mat}", f"--root={root}", f"--out={tmp_path / 'eval'}"])
    metrics, predictions = read_outputs(tmp_path / "eval")
    assert metrics["layout"] == "pittsburgh"
    # queries 0 and 1 find their twin (a positive) first; query 2 has no positive: a miss.
    assert metrics["recall@1"] == pytest.approx(2 / 3) and metrics["recall@10"] == pytest.approx(2 / 3)
    assert (metrics["num_queries"], metrics["num_database"], metrics["queries_without_positives"]) == (3, 6, 1)
    np.testing.assert_array_equal(predictions["indices"][:, 0], [1, 5, 3])

    prefix = str(tmp_path / "datasets" / "Pittsburgh" / "pitts30k_test")
    queries = [f"queries_real/{name}" for name in PITTSBURGH_QUERIES]
    write_salad_lists(prefix, queries, list(PITTSBURGH_DATABASE), PITTSBURGH_POSITIVES)
    run_main([*tiny_model, "--layout=salad_npy", f"--lists={prefix}", f"--root={root}", "--allow_pickle_ground_truth",
              f"--out={tmp_path / 'npy'}"])
    npy_metrics, npy_predictions = read_outputs(tmp_path / "npy")
    assert npy_metrics == {**metrics, "layout": "salad_npy"}
    np.testing.assert_array_equal(npy_predictions["indices"], predictions["indices"])
    np.testing.assert_array_equal(npy_predictions["distances"], predictions["distances"])


def test_msls_layout(tmp_path, tiny_model, capsys):
    write_msls(str(tmp_path / "msls"))
    run_main([*tiny_model, "--layout=msls", f"--root={tmp_path / 'msls'}", f"--out={tmp_path / 'eval'}"])
    metrics, predictions = read_outputs(tmp_path / "eval")
    assert metrics["layout"] == "msls" and metrics["recall@1"] == 1.0
    assert (metrics["num_queries"], metrics["num_database"], metrics["excluded_queries"]) == (2, 5, 1)
    assert predictions["query_names"].tolist() == MSLS_QUERIES
    np.testing.assert_array_equal(predictions["indices"][:, 0], [1, 4])
    assert "layout: msls  queries: 2  database: 5" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--layout=pittsburgh", "--root=/data"], "--layout=pittsburgh needs --mat"),
        (["--layout=msls", "--root=/data", "--ground_truth=gt.json"], "--layout=msls does not take --ground_truth"),
        (["--layout=lists", "--query_dir=q", "--database_dir=d"], "--layout=lists needs --ground_truth"),
        (["--layout=salad_npy", "--lists=x", "--root=/d", "--cities=sf"], "does not take --cities"),
    ],
)
def test_layout_flags_are_checked(argv, message):
    with pytest.raises(app.UsageError, match=message):
        run_main(["--weights=w.keras", *argv])


def test_a_failed_run_leaves_the_earlier_outputs(folders, tiny_model, capsys):
    argv = [
        *tiny_model,
        f"--query_dir={folders / 'queries'}",
        f"--database_dir={folders / 'database'}",
        f"--ground_truth={folders / 'gt.json'}",
        f"--out={folders / 'eval'}",
    ]
    run_main(argv)
    before = {name: (folders / "eval" / name).read_bytes() for name in ("metrics.json", "predictions.npz")}
    (folders / "database" / "c" / "5.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    with pytest.raises(SystemExit) as exit_info:
        run_main(argv)
    assert exit_info.value.code == 2
    assert f"error: {folders / 'database' / 'c' / '5.png'} is truncated" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in (folders / "eval").iterdir()} == before


def test_outputs_are_written_together_or_not_at_all(tmp_path):
    place_set = PlaceSet("lists", "q", "d", ["q0.png"], ["d0.png", "d1.png"], [np.array([1])])
    indices, distances = np.array([[1, 0]]), np.array([[0.5, 2.0]], np.float32)
    evaluate_place.write_outputs(str(tmp_path), place_set, indices, distances, {"recall@1": 1.0})
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    assert sorted(before) == ["metrics.json", "predictions.npz"]
    with pytest.raises(TypeError):  # metrics.json cannot be written: neither file changes
        evaluate_place.write_outputs(str(tmp_path), place_set, indices[:, ::-1], distances, {"recall@1": object()})
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before
    _, predictions = read_outputs(tmp_path)
    np.testing.assert_array_equal(predictions["is_positive"], [[True, False]])
