"""A VGG branch cut after its frozen blocks: a stem computed once, and a head that trains.

The original freezes VGG16's first blocks (``frozen_blocks``; 3 in the original). With no
dropout before the cut and no image augmentation, the frozen stem maps a training image to
the same features at every epoch, so they can be computed once and cached
(``cvft_tf.feature_cache``); training then runs only the head. ``head(stem(x))`` is the
branch itself, layer for layer and weight for weight (the head shares the branch's layers),
so the cached features give the same descriptors, losses and gradients as the images.

The cut is the output of ``block{k}_pool`` for ``k = frozen_blocks`` < 5, and of
``block5_conv3`` (the trunk's output) when all five blocks are frozen.
"""

import dataclasses

import keras

from cvft_tf.models.backbones import VGG16_TRUNK_NAME
from cvft_tf.models.vgg16 import VGG16_BLOCK_WIDTHS


def stem_output_layer(frozen_blocks):
    """Name of the trunk layer whose output is the frozen stem's."""
    if not 1 <= frozen_blocks <= len(VGG16_BLOCK_WIDTHS):
        raise ValueError(f"A frozen stem needs 1 to 5 frozen blocks, got frozen_blocks={frozen_blocks}.")
    if frozen_blocks == len(VGG16_BLOCK_WIDTHS):
        return f"block{frozen_blocks}_conv{len(VGG16_BLOCK_WIDTHS[-1])}"
    return f"block{frozen_blocks}_pool"


@dataclasses.dataclass(frozen=True)
class BranchSplit:
    """One branch as ``head(stem(images))``.

    Attributes:
        stem: ``keras.Model`` ``[B, H, W, 3]`` -> ``[B, h, w, c]`` frozen features.
        head: ``keras.Model`` ``[B, h, w, c]`` -> the branch's dict of outputs.
    """

    stem: keras.Model
    head: keras.Model

    @property
    def feature_shape(self):
        """``(h, w, c)`` of the stem's output."""
        return tuple(self.stem.output.shape[1:])


def split_branch(branch, frozen_blocks):
    """Cuts a VGG branch (``backbones.VGG16Backbone``) after its frozen blocks.

    Args:
        branch: functional branch model whose ``vgg16`` trunk has blocks
            ``1..frozen_blocks`` frozen.
        frozen_blocks: the branch's frozen block count.

    Returns:
        :class:`BranchSplit` sharing ``branch``'s layers.

    Raises:
        ValueError: the branch has no VGG trunk, or a layer before the cut trains.
    """
    names = [layer.name for layer in branch.layers]
    if VGG16_TRUNK_NAME not in names:
        raise ValueError(f"Branch {branch.name} has no {VGG16_TRUNK_NAME} trunk: only VGG variants have a frozen stem.")
    trunk = branch.get_layer(VGG16_TRUNK_NAME)
    cut = trunk.get_layer(stem_output_layer(frozen_blocks))
    stem = keras.Model(trunk.input, cut.output, name=f"{branch.name}_stem")
    if stem.trainable_weights:
        raise ValueError(
            f"{branch.name}: layers before {cut.name} train; frozen_blocks={frozen_blocks} is not the branch's."
        )
    consumer = branch.layers[names.index(VGG16_TRUNK_NAME) + 1]
    branch_tail = keras.Model(consumer.input, branch.output, name=f"{branch.name}_tail")
    features = keras.Input(shape=stem.output.shape[1:], name=f"{branch.name}_stem_features")
    trunk_features = features
    if cut.output is not trunk.output:
        trunk_features = keras.Model(cut.output, trunk.output, name=f"{branch.name}_trunk_tail")(features)
    head = keras.Model(features, branch_tail(trunk_features), name=f"{branch.name}_head")
    return BranchSplit(stem=stem, head=head)


@dataclasses.dataclass(frozen=True)
class ModelSplit:
    """Both branches of a ``CrossViewModel`` split at their frozen blocks."""

    ground: BranchSplit
    aerial: BranchSplit


def split_model(model):
    """:class:`ModelSplit` of a ``CrossViewModel`` of a VGG variant (see :func:`split_branch`)."""
    return ModelSplit(
        ground=split_branch(model.ground_branch, model.backbone.frozen_blocks),
        aerial=split_branch(model.aerial_branch, model.backbone.frozen_blocks),
    )
