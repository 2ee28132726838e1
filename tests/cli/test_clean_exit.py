"""A user error raised while tf.data threads are busy still ends with status 2, never an abort or a hang."""

import os
import subprocess
import sys

import pytest

from cvft_tf.configs import synthetic as synthetic_config
from cvft_tf.models.cross_view import build_model
from tests.data.fixtures import write_cvusa

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAW_GROUND = (32, 176)


@pytest.mark.large
def test_a_truncated_validation_image_exits_2_every_time(tmp_path):
    root = str(tmp_path / "data")
    write_cvusa(root, 96, ground_raw=RAW_GROUND, aerial_raw=(64, 64), csv="val-19zl.csv")
    bad = os.path.join(root, "bingmap", "19", "0000003.jpg")
    with open(bad, "r+b") as handle:
        handle.truncate(300)
    config = synthetic_config.get_config("smoke")
    weights = str(tmp_path / "model.weights.h5")
    build_model(**config.model).save_weights(weights)
    command = [sys.executable, "-m", "cvft_tf.cli.evaluate", "--config=configs/synthetic.py:smoke",
               f"--config.data.root={root}", f"--config.data.raw_ground_size={RAW_GROUND}",
               f"--weights={weights}", f"--workdir={tmp_path / 'run'}"]  # fmt: skip
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    for _ in range(3):
        result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
        assert result.returncode == 2, result.stderr[-3000:]
        assert f"error: bad image in evaluation: {root}/splits/val-19zl.csv:3: {bad} is truncated" in result.stderr
        assert "terminate called" not in result.stderr and "Traceback" not in result.stderr
