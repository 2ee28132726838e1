"""Interop with the original CVFT: its TF1 checkpoints, and ImageNet VGG16 start-up weights."""

from cvft_tf.interop.imagenet import initialize_weights, load_imagenet_vgg16
from cvft_tf.interop.tf1_checkpoint import CheckpointMismatchError, load_tf1_checkpoint, variable_map

__all__ = [
    "CheckpointMismatchError",
    "initialize_weights",
    "load_imagenet_vgg16",
    "load_tf1_checkpoint",
    "variable_map",
]
