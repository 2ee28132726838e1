"""VGG16 convolutional trunk of the original CVFT code (conv1_1 ... conv5_3, no final pool).

3x3 convolutions, stride 1, SAME padding, ReLU; 2x2 max-pool stride 2 with SAME padding
after blocks 1-4 and no pool after block 5. Blocks 1-3 are frozen; every convolution of
blocks 4 and 5 is followed by dropout (keep probability 0.8 in the original, i.e. rate 0.2)
active in training only. Layers are named as keras.applications' VGG16
(``block4_conv2`` ...), so its ImageNet weights load by layer name; the original's TF1
scope ``conv4_2`` maps onto ``block4_conv2``.

The trunk's first layer subtracts the original's per-channel mean (``layers.pixels.CenterPixels``),
so the trunk, and every model built on it, takes BGR pixels in [0, 255], uint8 or float.

Sizes: aerial 256x256 -> 16x16x512; ground 112x616 -> 7x39x512.

The original always starts from ImageNet weights. For a start from random weights (no
download, e.g. the synthetic world) the kernels are He-normal: with Keras' default Glorot
init the activation variance halves at each of the 13 ReLU layers and every image ends up
with nearly the same descriptor (cosine > 0.98), which the loss cannot pull apart.
"""

import keras

from cvft_tf.layers.pixels import CenterPixels

VGG16_BLOCK_WIDTHS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))
"""Output channels of each convolution, per block."""

VGG16_CONV_NAMES = tuple(
    f"block{block}_conv{index}"
    for block, widths in enumerate(VGG16_BLOCK_WIDTHS, start=1)
    for index in range(1, len(widths) + 1)
)
"""Keras layer names of the 13 convolutions, in order."""

RANDOM_INIT = "he_normal"
"""Kernel initialiser of the convolutions when no pretrained weights are loaded."""

FROZEN_BLOCKS = 3
"""Blocks 1..3 are frozen in the original (only conv4_x and conv5_x are trained)."""

DROPOUT_RATE = 0.2
"""1 - keep_prob (0.8) of the original's dropout after the conv4/conv5 layers."""


def vgg16_trunk(inputs, frozen_blocks=FROZEN_BLOCKS, dropout_rate=DROPOUT_RATE, dtype=None):
    """Applies the VGG16 trunk to ``inputs`` with fresh layers.

    Args:
        inputs: ``[batch, height, width, 3]`` symbolic tensor, BGR pixels in [0, 255].
        frozen_blocks: blocks ``1..frozen_blocks`` get ``trainable=False``.
        dropout_rate: dropout after each convolution of the blocks not frozen.
        dtype: dtype policy of the layers (None: the global policy).

    Returns:
        ``[batch, ceil(height / 16), ceil(width / 16), 512]`` conv5_3 feature map.
    """
    x = CenterPixels(name="center_pixels")(inputs)
    for block, widths in enumerate(VGG16_BLOCK_WIDTHS, start=1):
        frozen = block <= frozen_blocks
        for index, width in enumerate(widths, start=1):
            name = f"block{block}_conv{index}"
            x = keras.layers.Conv2D(
                width,
                3,
                padding="same",
                activation="relu",
                kernel_initializer=RANDOM_INIT,
                trainable=not frozen,
                name=name,
                dtype=dtype,
            )(x)
            if not frozen and dropout_rate > 0:
                x = keras.layers.Dropout(dropout_rate, name=f"{name}_dropout", dtype=dtype)(x)
        if block < len(VGG16_BLOCK_WIDTHS):
            x = keras.layers.MaxPooling2D(2, 2, padding="same", name=f"block{block}_pool", dtype=dtype)(x)
    return x
