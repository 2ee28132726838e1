"""One step on 2 replicas (MirroredStrategy on 2 logical CPUs) equals one step on one device.

The global batch of 8 is split 4 + 4; each replica scores its pairs against all 8 aerials
(``models.replicas``). The loss and the weights after one step must agree within 1e-5 with
a single device on the same batch. SGD with a large rate makes every gradient error show in
the weights (a replica loss not divided by the replica count doubles the step, a loss of
the replica's own pairs moves them by about 0.05 here); Adam is the trainer's optimizer.
The logical devices must exist before TensorFlow initialises, so each case runs
``tests/distribute/mirrored_step.py`` in a fresh interpreter.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOLERANCE = 1e-5


def mirrored_against_one_device(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": REPO}
    done = subprocess.run(
        [sys.executable, "-m", "tests.distribute.mirrored_step", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "case, optimizer",
    [("exhaustive", "sgd"), ("hard_negatives", "sgd"), ("cvact_mask", "sgd"), ("exhaustive", "adam")],
)
def test_one_step_on_two_replicas_equals_one_device(case, optimizer):
    result = mirrored_against_one_device(case, optimizer)
    assert result["replicas"] == 2
    single_loss, mirrored_loss = result["loss"]
    assert abs(single_loss - mirrored_loss) <= TOLERANCE
    assert result["recall"][0] == pytest.approx(result["recall"][1])
    assert result["weight_difference"] <= TOLERANCE
    assert result["weight_change"] >= (1e-2 if optimizer == "sgd" else 5e-5)


def test_embedding_a_split_on_two_replicas_keeps_its_order_and_descriptors():
    result = mirrored_against_one_device("embed")
    assert result["replicas"] == 2 and result["rows"] == 5 and result["utm_kept"]
    assert result["difference"] <= TOLERANCE
