"""Matchers: how a batch of (ground, aerial) descriptor pairs is scored into the loss.

A matcher gives ``distances(descriptors)`` ``[B, B]`` (aerial ``i`` against ground ``j``,
pairs on the diagonal) and the loss of a batch. ``SoftMarginTriplet`` compares descriptor
vectors by their dot product (the original's). ``HeadingCorrelation`` compares width-aligned
maps at every azimuth (DSM) and also says where each query looks; its ``compares_maps`` is
True, and evaluation ranks with its :meth:`HeadingCorrelation.match` instead of dot products.
"""

import dataclasses
from typing import ClassVar

import keras
import tensorflow as tf

from cvft_tf import losses
from cvft_tf.data.cvact import SAME_PLACE_RADIUS_M
from cvft_tf.layers.azimuth_correlation import AzimuthCorrelation, best_shift, shift_heading_deg
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

    compares_maps: ClassVar[bool] = False

    loss_gamma: float = losses.SOFT_MARGIN_GAMMA
    hard_negatives: int = 0
    same_place_radius_m: float = SAME_PLACE_RADIUS_M

    def distances(self, descriptors):
        """``2 - 2 S G^T`` ``[B, B]`` of ``{"ground": [B, D], "aerial": [B, D]}`` unit descriptors."""
        return losses.pairwise_distances(
            tf.cast(descriptors["aerial"], tf.float32), tf.cast(descriptors["ground"], tf.float32)
        )

    def loss(self, descriptors, batch):
        """Scalar loss of a batch's descriptors and the batch they came from."""
        negative_mask = None
        if "distance_sq" in batch:
            negative_mask = losses.same_place_negative_mask(batch["distance_sq"], self.same_place_radius_m)
        return losses.soft_margin_triplet_loss_of_distances(
            self.distances(descriptors),
            gamma=self.loss_gamma,
            negative_mask=negative_mask,
            hard_negatives=self.hard_negatives,
        )


@keras.saving.register_keras_serializable(package="cvft_tf")
@dataclasses.dataclass
class HeadingCorrelation(SoftMarginTriplet):
    """DSM's matching: the best azimuth correlation of a ground map and a polar aerial map.

    The descriptors are width-aligned maps (``aggregators.azimuth_map``); the distance of a
    pair is ``2 - 2 sim`` with ``sim`` the best similarity over all shifts
    (``layers.azimuth_correlation``), the same scale as unit descriptors' distances, and the
    loss is the original's triplet loss on those distances (as DSM trains). The best shift
    gives the query's heading.
    """

    compares_maps: ClassVar[bool] = True

    def match(self, ground, aerial):
        """Every ground map against every aerial map.

        Args:
            ground: ``[Bq, h, w_g, c]`` ground maps.
            aerial: ``[Bg, h, w_a, c]`` polar aerial maps.

        Returns:
            ``(similarity [Bq, Bg], heading_deg [Bq, Bg])``: the best similarity and the
            heading it implies, degrees clockwise from north in [-180, 180).
        """
        similarity, shift = best_shift(AzimuthCorrelation()(ground, aerial))
        return similarity, shift_heading_deg(shift, ground.shape[2], aerial.shape[2])

    def distances(self, descriptors):
        """``2 - 2 sim`` ``[B, B]``, rows aerial, columns ground."""
        similarity, _ = self.match(descriptors["ground"], descriptors["aerial"])
        return 2.0 - 2.0 * tf.transpose(similarity)
