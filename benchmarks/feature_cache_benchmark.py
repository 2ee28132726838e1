"""Train steps on images vs on cached frozen-stem features, side by side in one run.

Four settings at the main job's sizes (48x264 ground, 96x96 aerial, batch 16, cvft):
- blocks 1-3 frozen (the original's), images;
- blocks 1-3 frozen, cached block-3 features;
- blocks 1-4 frozen (the synthetic recipe), images;
- blocks 1-4 frozen, cached block-4 features.
Each trains ``--steps`` steps after ``--warmup`` untimed ones on random inputs; the script
prints seconds per step and each setting's speed-up over "blocks 1-3, images". The cost of
building the cache (one stem pass per pair, once per run) is printed too. Not a test:

    python benchmarks/feature_cache_benchmark.py --steps=20
"""

import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from cvft_tf.feature_cache import AERIAL_FEATURES, GROUND_FEATURES
from cvft_tf.models.cross_view import CrossViewModel

_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per setting.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps first (tracing).")
_BATCH = flags.DEFINE_integer("batch", 16, "Pairs per step.")
GROUND, AERIAL = (48, 264), (96, 96)


def time_steps(model, batch):
    """Seconds per ``train_step`` on ``batch`` (a fixed batch, repeated), after a warm-up."""
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(dataset, epochs=1, steps_per_epoch=_WARMUP.value, shuffle=False, verbose=0)
    started = time.perf_counter()
    model.fit(dataset, epochs=1, steps_per_epoch=_STEPS.value, shuffle=False, verbose=0)
    return (time.perf_counter() - started) / _STEPS.value


def setting(frozen_blocks, cached, images):
    model = CrossViewModel(
        "cvft", ground_size=GROUND, aerial_size=AERIAL, frozen_blocks=frozen_blocks, dropout_rate=0.0
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-4, epsilon=1e-8))
    stem_seconds = None
    if cached:
        split = model.frozen_stem()
        started = time.perf_counter()
        batch = {
            GROUND_FEATURES: split.ground.stem(images["ground"]).numpy(),
            AERIAL_FEATURES: split.aerial.stem(images["aerial"]).numpy(),
        }
        stem_seconds = (time.perf_counter() - started) / _BATCH.value
    else:
        batch = images
    return time_steps(model, batch), stem_seconds


def main(argv):
    del argv
    rng = np.random.default_rng(0)
    images = {
        "ground": tf.constant(rng.normal(0, 60, (_BATCH.value, *GROUND, 3)), tf.float32),
        "aerial": tf.constant(rng.normal(0, 60, (_BATCH.value, *AERIAL, 3)), tf.float32),
    }
    rows = []
    for frozen_blocks in (3, 4):
        for cached in (False, True):
            seconds, stem = setting(frozen_blocks, cached, images)
            source = "cached features" if cached else "images"
            rows.append((f"blocks 1-{frozen_blocks} frozen, {source}", seconds, stem))
    base = rows[0][1]
    print(f"cvft, batch {_BATCH.value}, ground {GROUND}, aerial {AERIAL}, {_STEPS.value} steps each")
    print(f"{'setting':<36}{'s/step':>9}{'speed-up':>10}{'cache build s/pair':>20}")
    for name, seconds, stem in rows:
        stem_text = f"{stem:.4f}" if stem is not None else "-"
        print(f"{name:<36}{seconds:>9.3f}{base / seconds:>9.1f}x{stem_text:>20}")


if __name__ == "__main__":
    app.run(main)
