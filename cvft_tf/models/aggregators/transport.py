"""CVFT's aggregator (Sec. 4.2, Fig. 3): the ground map transported into the aerial layout.

The ground branch's reduced map (``flat_map.reduced_map``) gives a cost matrix (cost
regression), the unrolled log-domain Sinkhorn a transport plan, and the plan moves the
ground features to the aerial map's positions before flattening. The aerial branch is
``flat_map.FlatMap``'s.
"""

import dataclasses

import keras

from cvft_tf.layers.sinkhorn import CVFT_COST_SCALE, CVFT_NUM_ITERATIONS, Sinkhorn
from cvft_tf.layers.transport import CostRegression, FeatureTransport
from cvft_tf.models.aggregators.flat_map import REDUCED_CHANNELS, flat_descriptor, reduced_map
from cvft_tf.models.parts import Part


@keras.saving.register_keras_serializable(package="cvft_tf")
@dataclasses.dataclass
class Transport(Part):
    """Ground: ``{"features"}`` -> ``feature_map``, ``cost`` / ``plan`` ``[B, h*w, h*w]``,
    ``transported`` ``[B, h, w, c]`` and ``descriptor`` (of the transported map); aerial: as
    ``FlatMap``.

    Attributes:
        reduced_channels: channels after the reduction conv (64).
        sinkhorn_iterations: unrolled Sinkhorn iterations (20).
        cost_scale: lambda of ``exp(-lambda C)`` (100).
        transport_scale_by_positions: apply the paper's ``n_a`` factor of Eq. (5) (the
            original code does not).
        cost_dense_l2: L2 on the cost regression's dense weights (the original declares
            0.01 but never adds it: 0 reproduces it).
    """

    reduced_channels: int = REDUCED_CHANNELS
    sinkhorn_iterations: int = CVFT_NUM_ITERATIONS
    cost_scale: float = CVFT_COST_SCALE
    transport_scale_by_positions: bool = False
    cost_dense_l2: float = 0.0

    def __call__(self, features, branch, map_size):
        feature_map = reduced_map(features["features"], branch, map_size, self.reduced_channels)
        outputs = {"feature_map": feature_map}
        if branch == "ground":
            cost = CostRegression(dense_l2=self.cost_dense_l2, name="cost_regression")(feature_map)
            plan = Sinkhorn(num_iterations=self.sinkhorn_iterations, cost_scale=self.cost_scale, name="sinkhorn")(cost)
            transported = FeatureTransport(scale_by_positions=self.transport_scale_by_positions, name="transport")(
                feature_map, plan
            )
            outputs.update(cost=cost, plan=plan, transported=transported)
            feature_map = transported
        outputs["descriptor"] = flat_descriptor(feature_map)
        return outputs
