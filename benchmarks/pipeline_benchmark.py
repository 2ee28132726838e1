"""The input pipeline's pairs per second next to the model's train step, side by side in one run.

At the original sizes: raw CVUSA files (224x1232 ground and 750x750 aerial JPEGs, written
here with smooth content and noise) go through the training pipeline (``data.load_dataset``) to the model's
112x616 and 256x256 uint8 inputs, once per decoder (``pipeline.DECODERS``); the ``cvft``
model (blocks 1-3 frozen, dropout, the original's setting) then trains on a fixed batch of
those sizes. The script prints pairs per second of each and the pipeline's margin over the
step (the goal is at least 3x, so the pipeline never makes the step wait), and the bytes of
one batch as uint8 and as the float32 the pipelines used to ship. Not a test:

    python benchmarks/pipeline_benchmark.py --pairs=256 --steps=3
"""

import os
import tempfile
import time

import cv2
import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from cvft_tf import data
from cvft_tf.data import cvusa, pipeline
from cvft_tf.data.preprocess import AERIAL_SIZE, GROUND_SIZE
from cvft_tf.models.cross_view import CrossViewModel

_PAIRS = flags.DEFINE_integer("pairs", 256, "Pairs read per decoder (after one untimed batch).")
_DISTINCT = flags.DEFINE_integer("distinct", 32, "Distinct image files per view (the split cycles through them).")
_BATCH = flags.DEFINE_integer("batch", 32, "Pairs per batch and per train step (the original's 32).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed train steps (after one untimed step).")
RAW_GROUND, RAW_AERIAL = cvusa.RAW_GROUND_SIZE, (750, 750)


def photo_like(height, width, rng):
    """uint8 BGR [height, width, 3]: smooth colour fields plus fine noise (JPEG-compressible)."""
    coarse = rng.uniform(0, 255, (max(2, height // 32), max(2, width // 32), 3)).astype(np.float32)
    smooth = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)


def write_cvusa_like(root, num_pairs, distinct, rng):
    """A CVUSA layout whose ``num_pairs`` CSV lines cycle through ``distinct`` file pairs."""
    for folder in ("streetview/panos", "bingmap/19", "splits"):
        os.makedirs(os.path.join(root, folder), exist_ok=True)
    for index in range(distinct):
        cv2.imwrite(os.path.join(root, f"streetview/panos/{index:07d}.jpg"), photo_like(*RAW_GROUND, rng))
        cv2.imwrite(os.path.join(root, f"bingmap/19/{index:07d}.jpg"), photo_like(*RAW_AERIAL, rng))
    with open(os.path.join(root, "splits/train-19zl.csv"), "w") as handle:
        for line in range(num_pairs):
            name = f"{line % distinct:07d}.jpg"
            handle.write(f"bingmap/19/{name},streetview/panos/{name},annotations/{name}\n")


def pipeline_pairs_per_second(root, decoder):
    """Pairs per second of the training pipeline over the split, after one untimed batch."""
    dataset = data.load_dataset(
        "cvusa", root, "train", _BATCH.value, ground_size=GROUND_SIZE, aerial_size=AERIAL_SIZE, seed=0, decoder=decoder
    )
    iterator = iter(dataset)
    next(iterator)
    started, pairs = time.perf_counter(), 0
    for batch in iterator:
        pairs += int(batch["ground"].shape[0])
    return pairs / (time.perf_counter() - started), batch


def train_step_pairs_per_second(batch):
    """Pairs per second of the ``cvft`` model's ``train_step`` on a fixed batch."""
    model = CrossViewModel("cvft", ground_size=GROUND_SIZE, aerial_size=AERIAL_SIZE)
    model.compile(optimizer=keras.optimizers.Adam(1e-5, epsilon=1e-8))
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=_STEPS.value, verbose=0)
    return _STEPS.value * _BATCH.value / (time.perf_counter() - started)


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as root:
        write_cvusa_like(root, _PAIRS.value + _BATCH.value, _DISTINCT.value, rng)
        rates = {}
        for decoder in pipeline.DECODERS:
            rates[decoder], batch = pipeline_pairs_per_second(root, decoder)
    step = train_step_pairs_per_second({"ground": batch["ground"], "aerial": batch["aerial"]})
    ground = f"ground {RAW_GROUND[0]}x{RAW_GROUND[1]} -> {GROUND_SIZE[0]}x{GROUND_SIZE[1]}"
    aerial = f"aerial {RAW_AERIAL[0]}x{RAW_AERIAL[1]} -> {AERIAL_SIZE[0]}x{AERIAL_SIZE[1]}"
    print(f"{os.cpu_count()} CPUs; {ground}, {aerial}, batch {_BATCH.value}")
    print("| stage | pairs/s | pipeline / train step |")
    print("| --- | ---: | ---: |")
    for decoder, rate in rates.items():
        print(f"| pipeline, decoder={decoder} | {rate:.1f} | {rate / step:.1f}x |")
    print(f"| cvft train step (blocks 1-3 frozen) | {step:.1f} | 1.0x |")
    pixels = _BATCH.value * 3 * (GROUND_SIZE[0] * GROUND_SIZE[1] + AERIAL_SIZE[0] * AERIAL_SIZE[1])
    print(f"One batch of images: {pixels / 2**20:.1f} MiB as uint8, {4 * pixels / 2**20:.1f} MiB as float32.")


if __name__ == "__main__":
    app.run(main)
