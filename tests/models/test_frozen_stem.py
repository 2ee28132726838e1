"""A branch cut at its frozen blocks: head(stem(x)) is the branch, and only the head trains."""

import numpy as np
import pytest

from cvft_tf.models import frozen_stem
from cvft_tf.models.cross_view import CrossViewModel
from tests.tiny_models import TINY, tiny_batch


@pytest.mark.parametrize(
    "variant, frozen_blocks, stem_shape",
    [("cvft", 3, (4, 16, 256)), ("cvft", 4, (2, 8, 512)), ("vgg_conv", 1, (16, 64, 64)), ("vgg_gp", 5, (2, 8, 512))],
)
def test_head_of_stem_is_the_branch(variant, frozen_blocks, stem_shape):
    model = CrossViewModel(variant, frozen_blocks=frozen_blocks, dropout_rate=0.0, **TINY)
    split = model.frozen_stem()
    batch = tiny_batch(3)
    assert split.ground.feature_shape == stem_shape
    for branch_name in ("ground", "aerial"):
        branch = getattr(model, f"{branch_name}_branch")
        part = getattr(split, branch_name)
        full = branch(batch[branch_name])
        cut = part.head(part.stem(batch[branch_name]))
        assert set(cut) == set(full)
        for key in full:
            np.testing.assert_array_equal(cut[key].numpy(), full[key].numpy())
        assert not part.stem.trainable_weights
        assert {v.path for v in part.head.trainable_weights} == {v.path for v in branch.trainable_weights}


def test_the_head_shares_the_models_weights():
    model = CrossViewModel("cvft", frozen_blocks=4, dropout_rate=0.0, **TINY)
    split = model.frozen_stem()
    assert model.frozen_stem() is split
    features = split.ground.stem(tiny_batch(2)["ground"])
    before = split.ground.head(features)["descriptor"].numpy()
    conv = model.ground_branch.get_layer("vgg16").get_layer("block5_conv1")
    kernel, bias = conv.get_weights()
    conv.set_weights([kernel * 0.5, bias])
    assert not np.allclose(split.ground.head(features)["descriptor"].numpy(), before)
    assert len(model.weights) == len(CrossViewModel("cvft", frozen_blocks=4, dropout_rate=0.0, **TINY).weights)


def test_a_cut_that_does_not_match_the_frozen_blocks_is_refused():
    model = CrossViewModel("cvft", frozen_blocks=3, dropout_rate=0.0, **TINY)
    with pytest.raises(ValueError, match="layers before block4_pool train"):
        frozen_stem.split_branch(model.ground_branch, 4)
    with pytest.raises(ValueError, match="1 to 5 frozen blocks"):
        frozen_stem.stem_output_layer(0)
