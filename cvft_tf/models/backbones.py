"""Branch backbones: images -> feature maps. Each is a ``parts.Part``.

A backbone is called on a branch's ``keras.Input`` of BGR pixels, with an optional layer that
transforms the images first (the polar transform of aerial tiles, ``layers.polar``), and
returns a dict of symbolic feature tensors for the aggregator: ``{"features": [B, h, w, c]}`` (VGG16) or
``{"local_features": [B, h, w, C], "token": [B, C]}`` (DINOv2).
"""

import dataclasses

import keras

from cvft_tf.models import dinov2
from cvft_tf.models.parts import Part, unsaved
from cvft_tf.models.vgg16 import DROPOUT_RATE, FROZEN_BLOCKS, vgg16_trunk

VGG16_TRUNK_NAME = "vgg16"
"""Name of the VGG16 trunk model inside a branch (TF1 conversion and the frozen stem find it)."""


@keras.saving.register_keras_serializable(package="cvft_tf")
@dataclasses.dataclass
class VGG16Backbone(Part):
    """The original's VGG16 trunk (conv1_1 ... conv5_3, ``models.vgg16``).

    Attributes:
        frozen_blocks: VGG blocks frozen from the input side (3).
        dropout_rate: dropout after conv4_x/conv5_x (0.2 = 1 - keep_prob 0.8).

    Returns ``{"features": [B, ceil(H/16), ceil(W/16), 512]}`` (conv5_3).
    """

    frozen_blocks: int = FROZEN_BLOCKS
    dropout_rate: float = DROPOUT_RATE

    def __call__(self, images, branch, transform=None):
        """The transform is the trunk's first layer, so a frozen stem includes it."""
        trunk_input = transform(images) if transform is not None else images
        trunk = keras.Model(
            images,
            vgg16_trunk(trunk_input, frozen_blocks=self.frozen_blocks, dropout_rate=self.dropout_rate),
            name=VGG16_TRUNK_NAME,
        )
        return {"features": trunk(images)}


@keras.saving.register_keras_serializable(package="cvft_tf")
@dataclasses.dataclass
class DINOv2Backbone(Part):
    """DINOv2 (keras-hub) as SALAD uses it: patch tokens and the class token (``models.dinov2``).

    Images whose sides are not multiples of the patch size are resized bilinearly to the
    nearest multiples (256x256 aerial tiles -> 252x252).

    Attributes:
        backbone_kwargs: ``DINOV2Backbone`` architecture (default ViT-B/14); with a
            ``backbone_preset`` its architecture fills the keys not given. Its key
            ``position_interpolation`` (``dinov2.POSITION_INTERPOLATIONS``) says how position
            embeddings are resized (default ``"keras_hub"``).
        trainable_blocks: last transformer blocks fine-tuned (4).
        input_format: ``"cvft"`` (BGR pixels) or ``"imagenet"`` (``dinov2.INPUT_FORMATS``).
        backbone_preset: local keras-hub preset directory of pretrained weights (build time
            only).
        backbone_weights: ``.weights.h5`` of the backbone instead (build time only).

    Returns ``{"local_features": [B, h, w, C], "token": [B, C]}``.
    """

    backbone_kwargs: dict | None = None
    trainable_blocks: int = dinov2.SALAD_TRAINABLE_BLOCKS
    input_format: str = "cvft"
    backbone_preset: str | None = unsaved()
    backbone_weights: str | None = unsaved()

    def __post_init__(self):
        if self.input_format not in dinov2.INPUT_FORMATS:
            raise ValueError(f"Unknown input_format {self.input_format!r}; expected one of {dinov2.INPUT_FORMATS}.")
        if self.backbone_preset:
            self.backbone_kwargs = {
                **dinov2.backbone_kwargs_from_preset(self.backbone_preset),
                **(self.backbone_kwargs or {}),
            }

    def __call__(self, images, branch, transform=None):
        if transform is not None:
            images = transform(images)
        backbone = dinov2.build_dinov2_backbone(
            self.backbone_kwargs, preset=self.backbone_preset or None, weights=self.backbone_weights or None
        )
        image_size = tuple(images.shape[1:3])
        backbone_size = dinov2.patch_multiple(image_size, backbone.patch_size)
        x = images
        if self.input_format == "cvft":
            x = dinov2.CVFTToDINOv2Input(name="to_dinov2_input")(x)
        if backbone_size != image_size:
            x = dinov2.ResizeImages(*backbone_size, name="resize_to_patches")(x)
        interpolation = (self.backbone_kwargs or {}).get("position_interpolation", "keras_hub")
        features = dinov2.dinov2_features(
            backbone, backbone_size, self.trainable_blocks, position_interpolation=interpolation
        )
        return features(x)
