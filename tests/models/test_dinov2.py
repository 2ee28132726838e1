"""DINOv2 backbone (tiny random keras-hub configuration), input conversion and the SALAD branch."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.losses import weighted_soft_margin_triplet_loss
from cvft_tf.models import dinov2
from cvft_tf.models.salad_branch import build_salad_branch

TINY_BACKBONE = dict(
    patch_size=14, num_layers=2, hidden_dim=32, num_heads=2, intermediate_dim=64, position_embedding_shape=(42, 42, 3)
)
TINY_SALAD = dict(num_clusters=4, cluster_dim=8, token_dim=8, hidden_dim=16)


def images(batch, size, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, *size, 3)).astype(np.float32)


def trainable_paths(model):
    return {v.path for v in model.trainable_variables}


@pytest.mark.parametrize("num_register_tokens", [0, 2])
def test_features_split_the_keras_hub_output(num_register_tokens):
    backbone = dinov2.build_dinov2_backbone({**TINY_BACKBONE, "num_register_tokens": num_register_tokens})
    features = dinov2.dinov2_features(backbone, (42, 42))
    x = images(2, (42, 42))
    tokens = backbone({"images": x}).numpy()
    out = features(x)
    assert out["local_features"].shape == (2, 3, 3, 32)
    np.testing.assert_allclose(out["token"].numpy(), tokens[:, 0], atol=1e-6)
    expected = tokens[:, 1 + num_register_tokens :].reshape(2, 3, 3, 32)
    np.testing.assert_allclose(out["local_features"].numpy(), expected, atol=1e-6)


def test_non_square_images_and_the_trainable_blocks():
    backbone = dinov2.build_dinov2_backbone(TINY_BACKBONE)
    features = dinov2.dinov2_features(backbone, (28, 56), trainable_blocks=1)
    assert features(images(1, (28, 56)))["local_features"].shape == (1, 2, 4, 32)
    paths = trainable_paths(features)
    assert paths and all(p.startswith(("encoder/layers_1/", "layernorm/")) for p in paths)
    assert any(p.startswith("layernorm/") for p in paths)
    dinov2.set_trainable_blocks(features, 0)
    assert not features.trainable_variables
    dinov2.set_trainable_blocks(features, 2)
    paths_all = trainable_paths(features)
    assert {p.split("/")[1] for p in paths_all if p.startswith("encoder/")} == {"layers_0", "layers_1"}
    assert not any(p.startswith("embeddings/") for p in trainable_paths(features))
    dinov2.set_trainable_blocks(features, 4)
    assert trainable_paths(features) == paths_all
    with pytest.raises(ValueError, match="trainable_blocks"):
        dinov2.set_trainable_blocks(features, -1)
    with pytest.raises(ValueError, match="multiples of 14"):
        dinov2.dinov2_features(backbone, (28, 50))


def test_cvft_input_becomes_the_imagenet_normalised_rgb_image():
    rgb = np.random.default_rng(1).integers(0, 256, size=(2, 14, 14, 3)).astype(np.uint8)
    expected = (rgb / 255.0 - np.asarray(dinov2.IMAGENET_MEAN_RGB)) / np.asarray(dinov2.IMAGENET_STD_RGB)
    bgr = rgb[..., ::-1]
    np.testing.assert_allclose(dinov2.CVFTToDINOv2Input()(bgr).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(dinov2.CVFTToDINOv2Input()(bgr.astype(np.float32)).numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(dinov2.preprocess_image(rgb[0, ..., ::-1], (14, 14)), expected[0], atol=1e-6)


def test_weights_from_a_local_preset_or_file(tmp_path):
    backbone = dinov2.build_dinov2_backbone(TINY_BACKBONE)
    x = {"images": images(1, (42, 42))}
    backbone.save_to_preset(str(tmp_path / "preset"))
    backbone.save_weights(str(tmp_path / "backbone.weights.h5"))
    from_preset = dinov2.build_dinov2_backbone(preset=str(tmp_path / "preset"))
    from_file = dinov2.build_dinov2_backbone(TINY_BACKBONE, weights=str(tmp_path / "backbone.weights.h5"))
    for loaded in (from_preset, from_file):
        np.testing.assert_allclose(loaded(x).numpy(), backbone(x).numpy(), atol=1e-6)
    assert dinov2.backbone_kwargs_from_preset(str(tmp_path / "preset"))["num_layers"] == 2
    with pytest.raises(FileNotFoundError, match="save_to_preset"):
        dinov2.build_dinov2_backbone(preset=str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="not found"):
        dinov2.build_dinov2_backbone(TINY_BACKBONE, weights=str(tmp_path / "missing.weights.h5"))


def test_salad_branch_outputs_and_keras_file_round_trip(tmp_path):
    branch = build_salad_branch(
        "aerial", (44, 44), backbone_kwargs=TINY_BACKBONE, salad_kwargs=TINY_SALAD, trainable_blocks=1
    )
    assert branch.get_layer("resize_to_patches").output.shape == (None, 42, 42, 3)
    x = images(3, (44, 44)) * 60.0
    out = branch(x)
    assert out["descriptor"].shape == (3, 8 + 8 * 4)
    assert out["plan"].shape == (3, 5, 9)
    np.testing.assert_allclose(np.linalg.norm(out["descriptor"].numpy(), axis=1), 1.0, atol=1e-5)
    path = str(tmp_path / "branch.keras")
    branch.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(restored(x)["descriptor"].numpy(), out["descriptor"].numpy())


def test_cross_view_salad_branches_learn_with_the_triplet_loss():
    kwargs = dict(backbone_kwargs=TINY_BACKBONE, salad_kwargs=TINY_SALAD, trainable_blocks=1)
    ground = build_salad_branch("ground", (28, 56), **kwargs)
    aerial = build_salad_branch("aerial", (42, 42), **kwargs)
    batch = {"ground": 128 + images(4, (28, 56), seed=2) * 60.0, "aerial": 128 + images(4, (42, 42), seed=3) * 60.0}
    variables = ground.trainable_variables + aerial.trainable_variables
    optimizer = keras.optimizers.Adam(1e-3)

    def step():
        with tf.GradientTape() as tape:
            loss = weighted_soft_margin_triplet_loss(
                aerial(batch["aerial"], training=True)["descriptor"],
                ground(batch["ground"], training=True)["descriptor"],
            )
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    def eval_loss():
        aerial_descriptors = aerial(batch["aerial"])["descriptor"]
        return float(weighted_soft_margin_triplet_loss(aerial_descriptors, ground(batch["ground"])["descriptor"]))

    before = eval_loss()
    for _ in range(4):
        step()
    assert eval_loss() < 0.5 * before


def test_mixed_precision_branch_gives_float32_unit_descriptors():
    keras.mixed_precision.set_global_policy("mixed_float16")
    branch = build_salad_branch("ground", (28, 56), backbone_kwargs=TINY_BACKBONE, salad_kwargs=TINY_SALAD)
    descriptor = branch(images(2, (28, 56)) * 60.0)["descriptor"]
    assert descriptor.dtype == tf.float32
    np.testing.assert_allclose(np.linalg.norm(descriptor.numpy(), axis=1), 1.0, atol=1e-3)


@pytest.mark.large
def test_real_sizes_vit_b_ground_panorama():
    branch = build_salad_branch("ground", (112, 616))
    out = branch(images(1, (112, 616)) * 60.0)
    assert out["local_features"].shape == (1, 8, 44, 768)
    assert out["descriptor"].shape == (1, 8448)
    assert out["plan"].shape == (1, 65, 352)
    blocks = {p.split("/")[1] for p in trainable_paths(branch) if p.startswith("encoder/")}
    assert blocks == {"layers_8", "layers_9", "layers_10", "layers_11"}
