"""Mixed precision against float32 on the same weights: the transport runs in float32.

Measured with these weights and inputs (a peaked, non-permutation plan, as in the TF1 parity
test): the largest plan difference to float32 was 0.0074 under mixed_float16 and 0.075
under mixed_bfloat16; the smallest descriptor cosine 0.9999985 and 0.99963. The plan's
remaining difference comes from the backbone's float16 / bfloat16 features (the cost differs
by 0.003 / 0.016 before Sinkhorn multiplies it by -100); the bounds below leave about 2x.
"""

import keras
import numpy as np
import pytest

from cvft_tf.models.cross_view import CrossViewModel

SIZES = dict(ground_size=(64, 352), aerial_size=(128, 128))
BOUNDS = {"mixed_float16": (0.015, 0.99999), "mixed_bfloat16": (0.15, 0.999)}
"""policy -> (largest plan difference, smallest descriptor cosine) allowed against float32."""


def peaked_cost_weights(model):
    """Small 1x1-conv weights and a unit bias, so the cost regression's scores are alive and
    the plan is peaked but not a permutation (random He weights give an identity cost)."""
    conv = model.ground_branch.get_layer("cost_regression").conv
    kernel, bias = conv.get_weights()
    conv.set_weights([np.random.default_rng(0).normal(0, 0.05, kernel.shape).astype(np.float32), np.ones_like(bias)])
    return model.get_weights()


@pytest.mark.parametrize("policy", sorted(BOUNDS))
def test_mixed_precision_keeps_the_transport_in_float32_and_near_float32(policy):
    keras.utils.set_random_seed(0)
    reference = CrossViewModel("cvft", dropout_rate=0.0, **SIZES)
    weights = peaked_cost_weights(reference)
    rng = np.random.default_rng(1)
    batch = {
        "ground": np.clip(128 + 60 * rng.normal(size=(4, *SIZES["ground_size"], 3)), 0, 255).astype(np.uint8),
        "aerial": np.clip(128 + 60 * rng.normal(size=(4, *SIZES["aerial_size"], 3)), 0, 255).astype(np.uint8),
    }
    expected_maps, expected = reference.ground_feature_maps(batch["ground"]), reference(batch)
    assert 0.3 < expected_maps["plan"].numpy().max(axis=2).min() < 1.0  # peaked rows, not a permutation
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = CrossViewModel("cvft", dropout_rate=0.0, **SIZES)
        model.set_weights(weights)
        maps, descriptors = model.ground_feature_maps(batch["ground"]), model(batch)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert maps["feature_map"].dtype.name == policy.split("_")[1]
    assert {maps[key].dtype.name for key in ("cost", "plan", "transported", "descriptor")} == {"float32"}
    plan_bound, cosine_bound = BOUNDS[policy]
    assert np.abs(maps["plan"].numpy() - expected_maps["plan"].numpy()).max() <= plan_bound
    for key in ("ground", "aerial"):
        cosines = (descriptors[key].numpy() * expected[key].numpy()).sum(axis=1)
        assert cosines.min() >= cosine_bound
