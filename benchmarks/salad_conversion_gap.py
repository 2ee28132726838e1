"""Converted DINOv2 ViT-B/14 + SALAD vs PyTorch at the released sizes, random weights.

Builds a random state dict with the shapes of the authors' ``dino_salad.ckpt`` (C = 768,
12 blocks of 12 heads, MLP 3072, 37x37 trained position grid; SALAD 64 clusters of 128, a
256-d token part, 512-wide MLPs; weights scaled as :func:`well_scaled` says), converts it
with ``cvft_tf.interop.salad_torch``, and compares the Keras descriptors with the PyTorch
reference of ``tests/interop/test_salad_torch.py`` at ``--image_size`` (SALAD evaluates at
322x322), once with the converter's torch-exact position interpolation and once with
keras-hub's (TF bicubic). Position grids: i.i.d. normal (``iid``) and smooth (a few
low-frequency waves per channel, closer to trained ones). Prints the largest absolute
difference and the smallest cosine similarity per setting, and the difference between the
PyTorch reference in float32 and in float64 (the noise floor). Needs torch. Not a test:

    python benchmarks/salad_conversion_gap.py --image_size=322,322 [--weight_std=0]
"""

import os
import sys
import tempfile

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cvft_tf.interop import salad_torch  # noqa: E402
from cvft_tf.models.place_recognition import PlaceRecognitionModel  # noqa: E402
from tests.interop.test_salad_torch import images, tiny_checkpoint, torch_descriptors, torch_salad_model  # noqa: E402

_IMAGE_SIZE = flags.DEFINE_list("image_size", ["322", "322"], "Image H,W.")
_BATCH = flags.DEFINE_integer("batch", 2, "Images compared.")
_WEIGHT_STD = flags.DEFINE_float(
    "weight_std", 0.5, "Std of the weight matrices times sqrt(fan_in); 0: the test's std 0.2 at every width."
)

RELEASED = dict(
    hidden=768, heads=12, layers=12, mlp=3072, patch=14, grid=37, clusters=64, cluster_dim=128, token_dim=256, width=512
)
"""The shapes of dino_salad.ckpt, in the keys of the test's ``TINY``."""


def smooth_grid(rng, side, channels, waves=4):
    """``[side * side, channels]`` sums of random low-frequency 2-D cosines, unit variance."""
    y, x = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    grid = np.zeros((side, side, channels))
    for _ in range(waves):
        fy, fx = rng.uniform(-3, 3, (2, channels)) * np.pi / side
        phase = rng.uniform(0, 2 * np.pi, channels)
        grid += np.cos(y[..., None] * fy + x[..., None] * fx + phase)
    return (grid / np.sqrt(waves / 2)).reshape(side * side, channels).astype(np.float32)


def well_scaled(checkpoint, std):
    """The test's weight matrices (std 0.2 whatever the width) rescaled to std ``std / sqrt(fan_in)``,
    so that 12 blocks of 768 channels keep activations of order one; ``std`` 0: unchanged
    (std 0.2 at 768 channels: large activations and saturated attention, ill-conditioned)."""
    if not std:
        return checkpoint
    scaled = dict(checkpoint)
    for key, value in checkpoint.items():
        if key.endswith(".weight") and value.ndim >= 2:
            scaled[key] = (value * (std / 0.2) / np.sqrt(np.prod(value.shape[1:]))).astype(np.float32)
    return scaled


def torch_float64_descriptors(checkpoint, batch):
    """The PyTorch reference in float64: the float32 noise floor of the comparison."""
    import torch

    model = torch_salad_model(checkpoint, RELEASED).double()
    with torch.no_grad():
        return model(torch.from_numpy(batch.transpose(0, 3, 1, 2).astype(np.float64))).numpy()


def main(argv):
    del argv
    image_size = tuple(int(side) for side in _IMAGE_SIZE.value)
    checkpoint = well_scaled(tiny_checkpoint(seed=0, **RELEASED), _WEIGHT_STD.value)
    batch = images(image_size, batch=_BATCH.value)
    rng = np.random.default_rng(3)
    for grid_name in ("iid", "smooth"):
        if grid_name == "smooth":
            pos = checkpoint["backbone.model.pos_embed"].copy()
            pos[0, 1:] = 0.5 * smooth_grid(rng, RELEASED["grid"], RELEASED["hidden"])
            checkpoint["backbone.model.pos_embed"] = pos
        expected = torch_descriptors(torch_salad_model(checkpoint, RELEASED), batch)
        exact = torch_float64_descriptors(checkpoint, batch)
        print(f"{grid_name:6s} positions: torch float32 vs float64: max |diff| {np.abs(expected - exact).max():.2e}")
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "salad.weights.h5")
            sources = salad_torch.split_sources(checkpoint, "random ViT-B/14 checkpoint")
            _, _, config = salad_torch.convert(sources, out, image_size=image_size)
            for interpolation in ("torch", "keras_hub"):
                backbone_kwargs = {**config["backbone_kwargs"], "position_interpolation": interpolation}
                model = PlaceRecognitionModel(image_size, **{**config, "backbone_kwargs": backbone_kwargs})
                model.load_weights(out)
                found = model(batch).numpy()
                cosine = np.sum(found * expected, axis=1).min()
                print(
                    f"{image_size[0]}x{image_size[1]} {grid_name:6s} positions, {interpolation:9s} interpolation: "
                    f"max |diff| {np.abs(found - expected).max():.2e}, min cosine {cosine:.6f}"
                )


if __name__ == "__main__":
    app.run(main)
