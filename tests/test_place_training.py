"""``cvft-train-place`` end to end on synthetic places with a tiny DINOv2: train, resume, evaluate the best model."""

import csv
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from cvft_tf.configs import gsv_cities as gsv_cities_config
from cvft_tf.configs import place_synthetic
from cvft_tf import checkpoints
from cvft_tf.cli import evaluate_place
from cvft_tf.config_schema import ConfigError
from cvft_tf.data.place_lists import read_lists
from cvft_tf.place_config import check_place_config
from cvft_tf.place_training import chance_recall, train_place
from cvft_tf.synthetic import place_writer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def places_root(tmp_path_factory):
    """4 training places in two cities and 3 held-out places, 4 views of 28 pixels each."""
    root = str(tmp_path_factory.mktemp("places"))
    place_writer.write_gsv_cities(root, 4, 3, views_per_place=4, image_size=28)
    return root


def smoke_config(root, epochs):
    config = place_synthetic.get_config("smoke")
    config.data.root = root
    config.train.epochs = epochs
    check_place_config(config)
    return config


def test_train_resume_and_evaluate_the_best_model(places_root, tmp_path):
    workdir = str(tmp_path / "run")
    train_place(smoke_config(places_root, 1), workdir)
    assert sorted(os.listdir(workdir)) == [".lock", "best.json", "best.keras", "checkpoints", "config.json",
                                           "history.csv", "tensorboard"]  # fmt: skip
    model = train_place(smoke_config(places_root, 2), workdir)
    assert int(model.optimizer.iterations.numpy()) == 2 * 2  # 4 places / P=2: 2 steps an epoch, resumed
    with open(os.path.join(workdir, "history.csv")) as file:
        rows = list(csv.DictReader(file))
    assert [row["epoch"] for row in rows] == ["0", "1"]
    assert math.isclose(float(rows[1]["val_r@10"]), 100.0)
    decay = [1 - 0.8 * steps / 10 for steps in (2, 4)]  # linear to 0.2x over 10 steps, 2 steps an epoch
    assert [float(row["learning_rate"]) for row in rows] == pytest.approx([1e-3 * d for d in decay])
    mismatched = smoke_config(places_root, 3)
    mismatched.model.salad_kwargs.num_clusters = 3
    with pytest.raises(checkpoints.CheckpointError, match="num_clusters"):
        train_place(mismatched, workdir)
    record = checkpoints.read_best_record(workdir)
    assert record["r@1"] == max(float(row["val_r@1"]) for row in rows)

    best = os.path.join(workdir, "best.keras")
    folders = [os.path.join(places_root, "eval", name) for name in ("query", "database", "ground_truth.json")]
    metrics = evaluate_place.evaluate(best, read_lists(*folders), image_size=(28, 28))
    by_epoch = {int(row["epoch"]) + 1: row for row in rows}
    assert math.isclose(100 * metrics["recall@1"], float(by_epoch[record["epoch"]]["val_r@1"]), abs_tol=1e-6)


def test_config_checks():
    config = gsv_cities_config.get_config()
    assert config.data.places_per_batch == 60 and config.model.image_size == (224, 224)
    assert config.model.salad_kwargs.num_clusters == 64 and config.train.learning_rate == 6e-5
    assert config.train.mixed_precision == "float16" and config.train.epochs == 4
    assert set(config.data.cities).isdisjoint(config.data.val_cities) and len(config.data.cities) == 22
    config.data.root = "/data"
    check_place_config(config)
    config.data.val_cities = ("London",)
    with pytest.raises(ConfigError, match=r"held out .* both have \['London'\]"):
        check_place_config(config)
    config.data.val_cities = ("PRS",)
    config.data.images_per_place = 5
    with pytest.raises(ConfigError, match="images_per_place=5 must not exceed"):
        check_place_config(config)


def test_chance_recall_is_that_of_random_rankings():
    rng = np.random.default_rng(0)
    positives = [np.array([0, 1, 2]), np.array([3])]
    hits = np.zeros(2)
    for _ in range(4000):
        ranking = rng.permutation(10)[:2]
        hits += [np.isin(positives[0], ranking).any(), np.isin(positives[1], ranking).any()]
    assert chance_recall(positives, 10, 2) == pytest.approx(100 * (1 - (7 * 6 / 90 + 9 * 8 / 90) / 2))
    assert chance_recall(positives, 10, 2) == pytest.approx(100 * hits.mean() / 4000, abs=2.0)


def test_cli_reports_a_config_error(tmp_path):
    command = [sys.executable, "-m", "cvft_tf.cli.train_place", "--config=configs/place_synthetic.py:smoke",
               f"--workdir={tmp_path}", "--config.data.root=/nowhere"]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO})
    assert result.returncode == 2 and "error:" in result.stderr and "/nowhere" in result.stderr
