"""One train step under MirroredStrategy on 2 logical CPUs against one device, run as its own process.

Logical devices must be set before TensorFlow initialises its devices, so the test runs this
file in a fresh interpreter: ``python -m tests.distribute.mirrored_step CASE OPTIMIZER``. It prints
one JSON line: the loss on each side and the largest weight difference after the step.
``python -m tests.distribute.mirrored_step embed`` instead embeds 5 pairs in batches of 4 (the
last batch leaves one replica empty) on both sides and prints the largest descriptor
difference and whether the order was kept.
"""

import json
import sys

import numpy as np

from cvft_tf import distribute

MIRRORED = distribute.make_strategy("mirrored", logical_cpus=2)

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from cvft_tf.evaluation.embed import embed_split  # noqa: E402
from cvft_tf.models.cross_view import CrossViewModel  # noqa: E402
from cvft_tf.models.replicas import number_rows  # noqa: E402

SIZES = dict(ground_size=(32, 128), aerial_size=(64, 64))
GLOBAL_BATCH = 8
CASES = {
    "exhaustive": {},
    "hard_negatives": {"hard_negatives": 3},
    "cvact_mask": {},
}
OPTIMIZERS = {"adam": lambda: keras.optimizers.Adam(1e-4, epsilon=1e-8), "sgd": lambda: keras.optimizers.SGD(0.5)}
"""Adam at the synthetic config's rate and the original's epsilon; SGD with a rate at which a wrong gradient shows."""


def global_batch(case):
    """A fixed global batch; with ``cvact_mask``, positions where pairs 0-1-2 and 4-5 lie within 25 m."""
    rng = np.random.default_rng(0)
    batch = {
        "ground": np.clip(128 + 60 * rng.normal(size=(GLOBAL_BATCH, *SIZES["ground_size"], 3)), 0, 255),
        "aerial": np.clip(128 + 60 * rng.normal(size=(GLOBAL_BATCH, *SIZES["aerial_size"], 3)), 0, 255),
    }
    batch = {key: value.astype(np.uint8) for key, value in batch.items()}
    if case == "cvact_mask":
        utm = np.array([[0, 0], [10, 0], [0, 20], [500, 0], [900, 900], [905, 890], [-700, 0], [0, 800]], np.float64)
        batch["distance_sq"] = ((utm[:, None] - utm[None]) ** 2).sum(-1).astype(np.float32)
    return batch


def one_step(strategy, weights, case, optimizer):
    with strategy.scope():
        model = CrossViewModel("cvft", dropout_rate=0.0, **SIZES, **CASES[case])
        model.set_weights(weights)
        model.compile(optimizer=OPTIMIZERS[optimizer]())
    dataset = tf.data.Dataset.from_tensors(global_batch(case)).map(number_rows)
    logs = model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False).history
    return logs, model.get_weights()


def main(case, optimizer):
    keras.utils.set_random_seed(0)
    weights = CrossViewModel("cvft", dropout_rate=0.0, **SIZES).get_weights()
    single_logs, single = one_step(tf.distribute.get_strategy(), weights, case, optimizer)
    mirrored_logs, mirrored = one_step(MIRRORED, weights, case, optimizer)
    print(json.dumps({
        "replicas": MIRRORED.num_replicas_in_sync,
        "loss": [single_logs["loss"][0], mirrored_logs["loss"][0]],
        "recall": [single_logs["recall@1"][0], mirrored_logs["recall@1"][0]],
        "weight_difference": max(float(np.abs(a - b).max()) for a, b in zip(single, mirrored)),
        "weight_change": max(float(np.abs(a - b).max()) for a, b in zip(single, weights)),
    }))


def embed():
    batch = global_batch("exhaustive")
    pairs = {key: value[:5] for key, value in batch.items()}
    pairs["index"] = np.arange(5, dtype=np.int64)
    pairs["utm"] = np.arange(10, dtype=np.float32).reshape(5, 2)
    dataset = tf.data.Dataset.from_tensor_slices(pairs).batch(4)
    with MIRRORED.scope():
        model = CrossViewModel("cvft", dropout_rate=0.0, **SIZES)
    single, mirrored = embed_split(model, dataset), embed_split(model, dataset, MIRRORED)
    differences = [np.abs(getattr(single, key) - getattr(mirrored, key)).max() for key in ("ground", "aerial")]
    print(json.dumps({
        "replicas": MIRRORED.num_replicas_in_sync,
        "difference": float(max(differences)),
        "utm_kept": bool(np.array_equal(mirrored.utm, pairs["utm"])),
        "rows": len(mirrored.ground),
    }))


if __name__ == "__main__":
    if sys.argv[1] == "embed":
        embed()
    else:
        main(*sys.argv[1:3])
