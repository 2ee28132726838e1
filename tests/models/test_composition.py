"""The model as a composition of parts: presets, settings routing, saving, a new aggregator."""

import dataclasses
import json
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.layers.normalize import L2Normalize
from cvft_tf.models import presets
from cvft_tf.models.aggregators.flat_map import FlatMap
from cvft_tf.models.aggregators.transport import Transport
from cvft_tf.models.backbones import VGG16Backbone
from cvft_tf.models.cross_view import CrossViewModel
from cvft_tf.models.matchers import SoftMarginTriplet
from cvft_tf.models.parts import Part
from tests.tiny_models import TINY


def pixels(model, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "ground": rng.integers(0, 256, (2, *model.ground_size, 3)).astype(np.uint8),
        "aerial": rng.integers(0, 256, (2, *model.aerial_size, 3)).astype(np.uint8),
    }


@keras.saving.register_keras_serializable(package="cvft_tf_tests")
@dataclasses.dataclass
class MeanOfChannels(Part):
    """A toy aggregator: the mean of each channel over the map, scaled, L2-normalised."""

    scale: float = 1.0

    def __call__(self, features, branch, map_size):
        pooled = keras.layers.GlobalAveragePooling2D(name="mean_of_channels")(features["features"])
        scaled = keras.layers.Rescaling(self.scale, name="scale")(pooled)
        return {"descriptor": L2Normalize(name="descriptor")(scaled)}


def test_a_new_aggregator_is_one_class_and_one_preset_line(monkeypatch, tmp_path):
    monkeypatch.setitem(presets.PRESETS, "mean", presets.Preset(VGG16Backbone, MeanOfChannels))
    model = CrossViewModel("mean", scale=2.0, frozen_blocks=4, **TINY)
    assert model.aggregator == MeanOfChannels(scale=2.0) and model.backbone.frozen_blocks == 4
    assert model.descriptor_size == 512
    batch = pixels(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    history = model.fit(_repeat(batch, 2), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    path = tmp_path / "mean.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.aggregator == MeanOfChannels(scale=2.0)
    np.testing.assert_array_equal(loaded(batch)["ground"].numpy(), model(batch)["ground"].numpy())


def _repeat(batch, times):
    return tf.data.Dataset.from_tensors(batch).repeat(times)


def test_presets_settings_and_parts():
    model = CrossViewModel("cvft", sinkhorn_iterations=5, loss_gamma=4.0, salad_kwargs={"num_clusters": 3}, **TINY)
    assert model.aggregator == Transport(sinkhorn_iterations=5)
    assert model.matcher == SoftMarginTriplet(loss_gamma=4.0)
    assert model.backbone == VGG16Backbone()
    assert model.settings()["sinkhorn_iterations"] == 5 and "salad_kwargs" not in model.settings()
    given = CrossViewModel("vgg_conv", aggregator={"reduced_channels": 16}, **TINY)
    assert given.aggregator == FlatMap(reduced_channels=16)
    assert given.descriptor_size == 2 * 2 * 16  # 64x64 -> 4x4 (VGG) -> 2x2 (reduction)
    ignored = CrossViewModel("vgg_conv", aggregator={"sinkhorn_iterations": 3}, **TINY)  # a Transport setting
    assert ignored.aggregator == FlatMap()
    with pytest.raises(TypeError, match=r"FlatMap \(aggregator\) has no setting \['sinkhorn_iteration'\]"):
        CrossViewModel("vgg_conv", aggregator={"sinkhorn_iteration": 3}, **TINY)
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to CrossViewModel: {'frozen_block'"):
        CrossViewModel("cvft", frozen_block=4, **TINY)
    with pytest.raises(ValueError, match="Unknown variant 'cvft2'"):
        CrossViewModel("cvft2", **TINY)


def test_a_keras_file_saved_before_the_parts_loads_with_its_weights(tmp_path):
    """A .keras file whose config holds the flat settings of the one-constructor model."""
    model = CrossViewModel("cvft", frozen_blocks=4, dropout_rate=0.0, sinkhorn_iterations=7, **TINY)
    path = tmp_path / "model.keras"
    model.save(path)
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(old, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "config.json":
                saved = json.loads(data)
                parts = ("backbone", "aggregator", "matcher")
                flat = {key: value for key, value in saved["config"].items() if key not in parts}
                flat.update(
                    reduced_channels=64, dropout_rate=0.0, frozen_blocks=4, sinkhorn_iterations=7, cost_scale=100.0,
                    transport_scale_by_positions=False, cost_dense_l2=0.0, loss_gamma=10.0, hard_negatives=0,
                    same_place_radius_m=25.0, backbone_kwargs=None, salad_kwargs=None, trainable_blocks=4,
                )  # fmt: skip
                saved["config"] = flat
                data = json.dumps(saved).encode()
            target.writestr(item, data)
    loaded = keras.saving.load_model(old)
    assert loaded.backbone == VGG16Backbone(frozen_blocks=4, dropout_rate=0.0)
    assert loaded.aggregator == Transport(sinkhorn_iterations=7)
    batch = pixels(model, seed=1)
    np.testing.assert_array_equal(loaded(batch)["ground"].numpy(), model(batch)["ground"].numpy())


def test_the_vgg_variants_need_no_keras_hub():
    """keras-hub is the salad extra's: the VGG models import and build without it."""
    code = (
        "import sys; sys.modules['keras_hub'] = None\n"
        "import cvft_tf.training, cvft_tf.cli.train\n"
        "from cvft_tf.models.cross_view import CrossViewModel\n"
        "CrossViewModel('vgg_gp', ground_size=(32, 176), aerial_size=(64, 64))\n"
        "try:\n"
        "    CrossViewModel('salad', ground_size=(28, 154), aerial_size=(56, 56))\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = "DINOv2 (the salad variant, PlaceRecognitionModel) needs keras-hub: pip install -e '.[salad]'"
    assert result.stdout.strip() == expected
