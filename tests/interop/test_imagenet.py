"""ImageNet VGG16 start-up weights from a local file, and the ``--init`` dispatcher.

No test downloads anything: the "ImageNet" file is a randomly initialised
``keras.applications.VGG16`` written here in the legacy HDF5 layout of the file keras
downloads (``layer_names`` on the root; per layer a group with ``weight_names`` and one dataset
per name), and ``keras.utils.get_file`` is replaced where a download would be tried.
"""

import os

import h5py
import keras
import numpy as np
import pytest

from cvft_tf.interop import imagenet
from cvft_tf.interop.imagenet import (
    VGG16_NOTOP_FILENAME,
    VGG16_NOTOP_URL,
    WeightsFileError,
    WeightsMismatchError,
    initialize_weights,
    load_imagenet_vgg16,
)
from cvft_tf.models.cross_view import CrossViewModel
from cvft_tf.models.vgg16 import VGG16_CONV_NAMES
from tests.tiny_models import TINY


def write_legacy_h5(model, path):
    """Writes ``model``'s weights as keras.applications' downloaded ``.h5`` files are laid out."""
    with h5py.File(path, "w") as file:
        file.attrs["layer_names"] = [layer.name.encode("utf8") for layer in model.layers]
        file.attrs["backend"] = b"tensorflow"
        file.attrs["keras_version"] = b"2.2.4"
        for layer in model.layers:
            group = file.create_group(layer.name)
            names = [f"{layer.name}/{kind}:0".encode("utf8") for kind in ("kernel", "bias")][: len(layer.weights)]
            group.attrs["weight_names"] = names
            for name, value in zip(names, layer.get_weights()):
                group.create_dataset(name.decode("utf8"), data=value)


@pytest.fixture(scope="module")
def imagenet_file(tmp_path_factory):
    """A stand-in for the downloaded no-top file (random values) and the model it came from."""
    reference = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    path = tmp_path_factory.mktemp("imagenet") / VGG16_NOTOP_FILENAME
    write_legacy_h5(reference, path)
    yield path, {name: reference.get_layer(name).get_weights() for name in VGG16_CONV_NAMES}
    path.unlink()


def trunk_weights(model, branch):
    trunk = getattr(model, f"{branch}_branch").get_layer("vgg16")
    return {name: trunk.get_layer(name).get_weights() for name in VGG16_CONV_NAMES}


def assert_trunks_hold(model, expected):
    for branch in ("ground", "aerial"):
        loaded = trunk_weights(model, branch)
        for name in VGG16_CONV_NAMES:
            for value, reference in zip(loaded[name], expected[name]):
                np.testing.assert_array_equal(value, reference)


def test_local_file_loads_identical_kernels_into_both_branches(imagenet_file):
    path, expected = imagenet_file
    model = CrossViewModel("vgg_conv", **TINY)
    reduction = model.ground_branch.get_layer("ground_reduction").get_weights()
    assert not np.array_equal(trunk_weights(model, "ground")["block5_conv3"][0], expected["block5_conv3"][0])
    assert load_imagenet_vgg16(model, path) == str(path)
    assert_trunks_hold(model, expected)
    for value, before in zip(model.ground_branch.get_layer("ground_reduction").get_weights(), reduction):
        np.testing.assert_array_equal(value, before)


def test_imagenet_init_reads_the_keras_cache(imagenet_file, tmp_path, monkeypatch):
    path, expected = imagenet_file
    os.makedirs(tmp_path / "models")
    os.symlink(path, tmp_path / "models" / VGG16_NOTOP_FILENAME)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras.utils, "get_file", lambda *args, **kwargs: pytest.fail("tried to download"))
    model = CrossViewModel("vgg_gp", **TINY)
    assert "ImageNet VGG16" in initialize_weights(model, "imagenet")
    assert_trunks_hold(model, expected)


def test_missing_file_names_the_file_the_place_and_the_url(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    expected_path = str(tmp_path / "models" / VGG16_NOTOP_FILENAME)
    assert imagenet.imagenet_cache_path() == expected_path
    with pytest.raises(FileNotFoundError) as caught:
        load_imagenet_vgg16(None, download=False)
    assert expected_path in str(caught.value) and VGG16_NOTOP_URL in str(caught.value)

    def no_network(*args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr(keras.utils, "get_file", no_network)
    with pytest.raises(FileNotFoundError, match="no route to host") as caught:
        load_imagenet_vgg16(None)
    assert expected_path in str(caught.value) and VGG16_NOTOP_URL in str(caught.value)


def test_other_weights_are_refused(tmp_path):
    inputs = keras.Input((8, 8, 3))
    small = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="block1_conv1")(inputs))
    path = tmp_path / "other.h5"
    write_legacy_h5(small, path)
    with pytest.raises(ValueError, match="does not hold keras.applications VGG16"):
        load_imagenet_vgg16(None, path)


def test_init_errors_for_paths_that_do_not_exist(tmp_path):
    for missing in ("nowhere/model.ckpt", "nowhere/run.weights.h5", "nowhere/model.keras", "nowhere/vgg16.h5"):
        with pytest.raises(FileNotFoundError, match="nowhere/"):
            initialize_weights(None, str(tmp_path / missing))


def test_keras_files_are_checked_then_loaded(tmp_path):
    source = CrossViewModel("cvft", **TINY)
    path = tmp_path / "model.keras"
    source.save(path)
    target = CrossViewModel("cvft", ground_size=(64, 256), aerial_size=(64, 64))
    assert initialize_weights(target, path) == f"Keras weights from {path}"
    for value, expected in zip(target.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(value, expected)
    with pytest.raises(WeightsMismatchError) as caught:
        initialize_weights(CrossViewModel("cvft", map_size=(4, 4), **TINY), path)
    expected = "wrong shape: ground_branch/layers/cost_regression/dense/vars/0: file [4, 16], model [16, 256]"
    assert expected in str(caught.value)
    path.unlink()


def test_unreadable_keras_files_are_named(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    for name, save in (("run.weights.h5", model.save_weights), ("run.keras", model.save)):
        path = tmp_path / name
        save(path)
        with open(path, "r+b") as handle:
            handle.truncate(os.path.getsize(path) // 2)
        with pytest.raises(WeightsFileError, match=f"{path} is not a readable (Keras weights file|.keras archive)"):
            initialize_weights(model, path)
