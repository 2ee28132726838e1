"""The port's train step against the original's as a ``tf.compat.v1`` graph, side by side in one run.

Each configuration runs in its own process, so that its peak memory (``ru_maxrss``) is its own:

* ``port``: the ``cvft`` model's ``train_step`` as ``cvft-train`` runs it (float32, Adam,
  blocks 1-3 frozen, dropout 0.2, i.e. keep_prob 0.8);
* ``port_xla``: the same compiled with XLA (``config.train.jit_compile``);
* ``port_mixed_bfloat16`` / ``port_mixed_float16``: the same under a mixed policy
  (``config.train.mixed_precision``); float16 is left out by default, as the CPU has no fast
  float16 kernels (``--configs=port,port_mixed_float16,compat_v1`` on a GPU);
* ``port_mirrored_2``: the same under ``MirroredStrategy`` on 2 logical CPUs
  (``config.distribute.logical_cpus=2``), the global batch split in two;
* ``compat_v1``: the original network written with ``tf.compat.v1`` graph ops (the graph of
  ``tests/interop/test_tf1_parity.py``), the original's exhaustive weighted soft-margin
  triplet loss, ``AdamOptimizer(1e-5)`` on blocks 4-5 and the heads, keep_prob 0.8, fed by
  placeholders and run by a ``Session``.

Every configuration trains on one fixed batch of random pixels at the same sizes (default:
the original's, batch 32, ground 112x616, aerial 256x256). It prints seconds per step (the
median of the timed steps, after ``--warmup`` untimed ones), peak resident memory, and their
ratios to the ``compat_v1`` graph. Not a test; at the original sizes a step takes tens of
seconds on 2 CPU cores:

    python benchmarks/train_step_benchmark.py --steps=3 --warmup=1
    python benchmarks/train_step_benchmark.py --batch=8 --ground_size=64,352 --aerial_size=128,128
"""

import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGURATIONS = ("port", "port_xla", "port_mixed_float16", "port_mixed_bfloat16", "port_mirrored_2", "compat_v1")
ON_A_CPU = ("port", "port_xla", "port_mixed_bfloat16", "port_mirrored_2", "compat_v1")
"""The default: float16 has no fast CPU kernels (a step takes many times float32's); bfloat16 does."""
REFERENCE = "compat_v1"

_BATCH = flags.DEFINE_integer("batch", 32, "Global batch (the original's 32).")
_GROUND = flags.DEFINE_list("ground_size", ["112", "616"], "Ground image height,width (the original's 112,616).")
_AERIAL = flags.DEFINE_list("aerial_size", ["256", "256"], "Aerial image height,width (the original's 256,256).")
_STEPS = flags.DEFINE_integer("steps", 3, "Timed steps per configuration.")
_WARMUP = flags.DEFINE_integer("warmup", 1, "Untimed steps first (tracing, XLA compilation).")
_CONFIGS = flags.DEFINE_list("configs", list(ON_A_CPU), f"Configurations to run, of {CONFIGURATIONS}.")
_RUN_ONE = flags.DEFINE_string("run_one", None, "Internal: run one configuration in this process, print JSON.")


def fixed_batch(batch, ground_size, aerial_size):
    """uint8 BGR pixels, ``{"ground": [B, *ground_size, 3], "aerial": [B, *aerial_size, 3]}``."""
    rng = np.random.default_rng(0)
    return {
        "ground": rng.integers(0, 256, (batch, *ground_size, 3), dtype=np.uint8),
        "aerial": rng.integers(0, 256, (batch, *aerial_size, 3), dtype=np.uint8),
    }


def port_step_times(name, batch, steps):
    """Seconds of each of ``steps`` train steps of the port's ``cvft`` model in configuration ``name``."""
    from cvft_tf import distribute

    mirrored = name == "port_mirrored_2"
    strategy = distribute.make_strategy("mirrored" if mirrored else "default", logical_cpus=2 if mirrored else 0)
    import keras
    import tensorflow as tf

    from cvft_tf.models.cross_view import CrossViewModel
    from cvft_tf.models.replicas import number_rows

    if name.startswith("port_mixed_"):
        keras.mixed_precision.set_global_policy(name.removeprefix("port_"))
    ground_size, aerial_size = batch["ground"].shape[1:3], batch["aerial"].shape[1:3]
    with strategy.scope():
        model = CrossViewModel("cvft", ground_size=ground_size, aerial_size=aerial_size)
        model.compile(optimizer=keras.optimizers.Adam(1e-5, epsilon=1e-8), jit_compile=name == "port_xla")
    times = []
    timer = keras.callbacks.LambdaCallback(
        on_train_batch_begin=lambda step, logs: times.append(-time.perf_counter()),
        on_train_batch_end=lambda step, logs: times.__setitem__(-1, times[-1] + time.perf_counter()),
    )
    dataset = tf.data.Dataset.from_tensors(batch).repeat().map(number_rows)
    model.fit(dataset, epochs=1, steps_per_epoch=steps, callbacks=[timer], verbose=0)
    return times


def compat_v1_step_times(batch, steps):
    """Seconds of each of ``steps`` training steps of the original network as a ``tf.compat.v1`` graph."""
    import tensorflow as tf

    sys.path.insert(0, REPO)
    from tests.interop.test_tf1_parity import MEAN_BGR, l2_flat, tf1_conv, tf1_cost_regression_and_transport, tf1_vgg16

    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        grd_x = v1.placeholder(tf.float32, [None, *batch["ground"].shape[1:]])
        sat_x = v1.placeholder(tf.float32, [None, *batch["aerial"].shape[1:]])
        keep_prob = v1.placeholder(tf.float32, [])
        grd_reduced = tf1_conv(tf1_vgg16(grd_x, keep_prob, "VGG_grd"), "grd_conv", 3, 64, stride=2)
        sat_reduced = tf1_conv(tf1_vgg16(sat_x, keep_prob, "VGG_sat"), "sat_conv", 3, 64, stride=2)
        height, width = sat_reduced.shape[1:3]
        grd_resized = v1.image.resize_bilinear(grd_reduced, [height, width], half_pixel_centers=False)
        grd_global = l2_flat(tf1_cost_regression_and_transport(grd_resized)[0])
        sat_global = l2_flat(sat_reduced)
        distances = 2 - 2 * tf.matmul(sat_global, grd_global, transpose_b=True)
        positive = tf.linalg.diag_part(distances)
        pairs = float(batch["ground"].shape[0] * (batch["ground"].shape[0] - 1))
        loss_g2a = tf.reduce_sum(tf.math.log(1 + tf.exp(10.0 * (positive[None, :] - distances)))) / pairs
        loss_a2g = tf.reduce_sum(tf.math.log(1 + tf.exp(10.0 * (positive[:, None] - distances)))) / pairs
        loss = (loss_g2a + loss_a2g) / 2.0
        frozen = ("conv1_", "conv2_", "conv3_")
        trained = [v for v in v1.trainable_variables() if not any(f"/{block}" in v.op.name for block in frozen)]
        train_op = v1.train.AdamOptimizer(1e-5, 0.9, 0.999, 1e-8).minimize(loss, var_list=trained)
        feed = {grd_x: batch["ground"] - MEAN_BGR, sat_x: batch["aerial"] - MEAN_BGR, keep_prob: 0.8}
        times = []
        with v1.Session(graph=graph) as session:
            session.run(v1.global_variables_initializer())
            for _ in range(steps):
                started = time.perf_counter()
                session.run([train_op, loss], feed)
                times.append(time.perf_counter() - started)
    return times


def run_one(name):
    """Runs configuration ``name`` here and prints ``{"seconds": [...], "peak_rss_mib": ...}``."""
    ground_size = tuple(int(side) for side in _GROUND.value)
    aerial_size = tuple(int(side) for side in _AERIAL.value)
    batch = fixed_batch(_BATCH.value, ground_size, aerial_size)
    if name == REFERENCE:
        batch = {key: value.astype(np.float32) for key, value in batch.items()}
        times = compat_v1_step_times(batch, _WARMUP.value + _STEPS.value)
    else:
        times = port_step_times(name, batch, _WARMUP.value + _STEPS.value)
    peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": times[_WARMUP.value :], "first": times[0], "peak_rss_mib": peak_rss_mib}))


def measure(name):
    """Runs configuration ``name`` in a fresh process, with this run's sizes and steps; its JSON result."""
    passed_on = (_BATCH, _GROUND, _AERIAL, _STEPS, _WARMUP)
    sizes = [f"--{flag.name}={flag.serialize().split('=', 1)[1]}" for flag in passed_on]
    command = [sys.executable, os.path.abspath(__file__), f"--run_one={name}", *sizes]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv):
    if _RUN_ONE.value:
        run_one(_RUN_ONE.value)
        return
    unknown = sorted(set(_CONFIGS.value) - set(CONFIGURATIONS))
    if unknown:
        raise app.UsageError(f"Unknown configurations {unknown}; expected some of {CONFIGURATIONS}.")
    results = {name: measure(name) for name in _CONFIGS.value}
    reference = results.get(REFERENCE, {})
    print(
        f"{os.cpu_count()} CPUs; batch {_BATCH.value}, ground {'x'.join(_GROUND.value)}, "
        f"aerial {'x'.join(_AERIAL.value)}; median of {_STEPS.value} steps after {_WARMUP.value} untimed"
    )
    print(f"| configuration | s/step | first step (s) | peak RSS (MiB) | time / {REFERENCE} | memory / {REFERENCE} |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, result in results.items():
        if "error" in result:
            print(f"| {name} | failed: {result['error']} | | | | |")
            continue
        step = float(np.median(result["seconds"]))
        row = f"| {name} | {step:.2f} | {result['first']:.1f} | {result['peak_rss_mib']:.0f} |"
        if "seconds" in reference:
            row += f" {step / float(np.median(reference['seconds'])):.2f}x |"
            row += f" {result['peak_rss_mib'] / reference['peak_rss_mib']:.2f}x |"
        else:
            row += " | |"
        print(row)


if __name__ == "__main__":
    app.run(main)
