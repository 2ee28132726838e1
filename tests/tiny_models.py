"""The one tiny cross-view model size and batch that the unit tests share.

``CrossViewModel(variant, **TINY)`` builds in a second on a CPU: 32x128 panoramas and 64x64
aerial tiles give 2x8 and 4x4 maps after VGG16's conv5 (2x2 after CVFT's reduction).
"""

import numpy as np

TINY = dict(ground_size=(32, 128), aerial_size=(64, 64))
"""Input sizes of the tests' cross-view models."""


def tiny_batch(batch=4, seed=0, ground_size=TINY["ground_size"], aerial_size=TINY["aerial_size"]):
    """``{"ground": [batch, h, w, 3], "aerial": [batch, s, s, 3]}`` random BGR pixels in [0, 255]
    (float32), as the model takes them."""
    rng = np.random.default_rng(seed)
    return {
        "ground": np.clip(128 + rng.normal(size=(batch, *ground_size, 3)) * 60, 0, 255).astype(np.float32),
        "aerial": np.clip(128 + rng.normal(size=(batch, *aerial_size, 3)) * 60, 0, 255).astype(np.float32),
    }
