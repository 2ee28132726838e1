"""Matchers: how a batch of (ground, aerial) descriptor pairs is scored into the loss."""

import dataclasses

import keras

from cvft_tf import losses
from cvft_tf.data.cvact import SAME_PLACE_RADIUS_M
from cvft_tf.models.parts import Part


@keras.saving.register_keras_serializable(package="cvft_tf")
@dataclasses.dataclass
class SoftMarginTriplet(Part):
    """The original's weighted soft-margin triplet loss over every pair of the batch.

    When a batch carries ``"distance_sq"`` ``[B, B]`` (CVACT), negatives closer than
    ``same_place_radius_m`` are masked out.

    Attributes:
        loss_gamma: gamma of ``log(1 + exp(gamma * (d_pos - d_neg)))`` (10).
        hard_negatives: batch-hard variant, keep this many hardest terms per anchor (0: off).
        same_place_radius_m: the CVACT mask radius in metres (25).
    """

    loss_gamma: float = losses.SOFT_MARGIN_GAMMA
    hard_negatives: int = 0
    same_place_radius_m: float = SAME_PLACE_RADIUS_M

    def loss(self, descriptors, batch):
        """Scalar loss of ``{"ground": [B, D], "aerial": [B, D]}`` and the batch they came from."""
        negative_mask = None
        if "distance_sq" in batch:
            negative_mask = losses.same_place_negative_mask(batch["distance_sq"], self.same_place_radius_m)
        return losses.weighted_soft_margin_triplet_loss(
            descriptors["aerial"],
            descriptors["ground"],
            gamma=self.loss_gamma,
            negative_mask=negative_mask,
            hard_negatives=self.hard_negatives,
        )
