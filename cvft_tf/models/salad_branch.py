"""A DINOv2 + SALAD branch on its own: the place-recognition model's, and SALAD's as a
cross-view branch (``backbones.DINOv2Backbone`` then ``aggregators.salad.SALADAggregator``)."""

import keras

from cvft_tf.models import dinov2
from cvft_tf.models.aggregators.salad import SALADAggregator
from cvft_tf.models.backbones import DINOv2Backbone


def build_salad_branch(
    branch,
    image_size,
    backbone_kwargs=None,
    salad_kwargs=None,
    trainable_blocks=dinov2.SALAD_TRAINABLE_BLOCKS,
    preset=None,
    backbone_weights=None,
    input_format="cvft",
    name=None,
):
    """A DINOv2 + SALAD branch as a functional model with a dict of named outputs.

    Images whose sides are not multiples of the patch size are resized bilinearly inside the
    branch to the nearest multiples (256x256 aerial tiles -> 252x252).

    Args:
        branch: a name for the branch (``"ground"``, ``"aerial"``, ``"place"``): the input is
            ``f"{branch}_images"``, the model ``f"{branch}_branch"`` unless ``name``.
        image_size: ``(H, W)`` of the input images.
        backbone_kwargs: ``DINOV2Backbone`` architecture (default ViT-B/14), see
            ``dinov2.build_dinov2_backbone``.
        salad_kwargs: keyword arguments of :class:`~cvft_tf.layers.salad.SALAD`.
        trainable_blocks: last transformer blocks fine-tuned (4).
        preset: local keras-hub preset directory of pretrained DINOv2 weights.
        backbone_weights: ``.weights.h5`` file of the backbone (instead of ``preset``).
        input_format: one of ``dinov2.INPUT_FORMATS``; ``"cvft"`` adds ``dinov2.CVFTToDINOv2Input``.
        name: model name.

    Returns:
        ``keras.Model`` mapping ``[B, H, W, 3]`` to a dict: ``"descriptor"``
        ``[B, g + l*m]`` unit-norm, ``"plan"`` ``[B, m + 1, h*w]`` (SALAD's transport plan,
        dustbin last), ``"local_features"`` ``[B, h, w, C]`` and ``"token"`` ``[B, C]``.
    """
    backbone = DINOv2Backbone(backbone_kwargs, trainable_blocks, input_format, preset, backbone_weights)
    images = keras.Input((*image_size, 3), name=f"{branch}_images")
    outputs = SALADAggregator(salad_kwargs)(backbone(images, branch), branch, None)
    return keras.Model(images, outputs, name=name or f"{branch}_branch")
