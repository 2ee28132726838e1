"""The dsm preset: polar aerial branch, width-aligned maps, saving, and its alignment check."""

import keras
import numpy as np
import pytest

from cvft_tf.layers.polar import PolarTransform
from cvft_tf.models.aggregators.azimuth_map import AzimuthMap
from cvft_tf.models.cross_view import CrossViewModel
from cvft_tf.models.matchers import HeadingCorrelation

SIZES = dict(ground_size=(32, 32), aerial_size=(64, 64), polar_size=(32, 128))


def batch(model, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "ground": rng.integers(0, 256, (2, *model.ground_size, 3)).astype(np.uint8),
        "aerial": rng.integers(0, 256, (2, *model.aerial_size, 3)).astype(np.uint8),
    }


def test_dsm_maps_are_width_aligned_and_the_aerial_trunk_sees_polar_images():
    model = CrossViewModel("dsm", **SIZES)
    assert isinstance(model.aggregator, AzimuthMap) and isinstance(model.matcher, HeadingCorrelation)
    assert model.aerial_polar_size == (32, 128)
    descriptors = model(batch(model))
    assert descriptors["ground"].shape == (2, 2, 2, 16) and descriptors["aerial"].shape == (2, 2, 8, 16)
    trunk = model.aerial_branch.get_layer("vgg16")
    assert isinstance(trunk.layers[1], PolarTransform)
    assert CrossViewModel("vgg_conv", **SIZES).aerial_polar_size is None


def test_a_dsm_model_saves_and_loads(tmp_path):
    model = CrossViewModel("dsm", map_channels=8, frozen_blocks=4, **SIZES)
    path = tmp_path / "dsm.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.settings() == model.settings() and loaded.settings()["polar_size"] == [32, 128]
    pixels = batch(model, 1)
    np.testing.assert_array_equal(loaded(pixels)["aerial"].numpy(), model(pixels)["aerial"].numpy())


def test_maps_that_are_not_width_aligned_are_refused_when_the_model_is_built():
    with pytest.raises(ValueError, match="compares width-aligned maps"):
        CrossViewModel("dsm", ground_size=(32, 40), aerial_size=(64, 64), polar_size=(32, 128))
    with pytest.raises(ValueError, match="compares width-aligned maps"):
        CrossViewModel("vgg_conv", matcher=HeadingCorrelation(), aerial_polar=True, **SIZES)
