"""SALAD (Izquierdo & Civera, CVPR 2024): optimal-transport aggregation of DINOv2 features."""

import dataclasses

import keras

from cvft_tf.layers.salad import SALAD
from cvft_tf.models.parts import Part


@keras.saving.register_keras_serializable(package="cvft_tf")
@dataclasses.dataclass
class SALADAggregator(Part):
    """``{"local_features": [B, h, w, C], "token": [B, C]}`` -> ``descriptor`` ``[B, g + l*m]``
    (unit norm), ``plan`` ``[B, m + 1, h*w]`` (dustbin last), and the inputs passed through.

    Attributes:
        salad_kwargs: keyword arguments of ``layers.salad.SALAD`` (the paper's defaults).
    """

    salad_kwargs: dict | None = None

    def __call__(self, features, branch, map_size):
        salad = SALAD(**(self.salad_kwargs or {}), name="salad")(features["local_features"], features["token"])
        return {"descriptor": salad["descriptor"], "plan": salad["plan"], **features}
