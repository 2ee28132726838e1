"""The two-branch model: shapes, trainable set, variants, saving, training steps."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.data.preprocess import VGG_MEAN_BGR
from cvft_tf.models.cross_view import CrossViewModel, build_model
from cvft_tf.models.vgg16 import VGG16_CONV_NAMES
from tests.tiny_models import TINY, tiny_batch


def trainable_layer_names(model):
    return sorted({v.path.split("/")[0] for v in model.trainable_variables})


@pytest.mark.large
def test_original_sizes_give_unit_descriptors():
    batch = tiny_batch(1, ground_size=(112, 616), aerial_size=(256, 256))
    expected = {"cvft": 4096, "vgg_conv": 4096, "vgg_gp": 512}
    for variant, size in expected.items():
        model = CrossViewModel(variant)
        out = model(batch)
        for key in ("ground", "aerial"):
            assert out[key].shape == (1, size)
            np.testing.assert_allclose(np.linalg.norm(out[key].numpy(), axis=1), 1.0, atol=1e-5)
    maps = CrossViewModel("cvft").ground_feature_maps(batch["ground"])
    assert maps["feature_map"].shape == (1, 8, 8, 64)
    assert maps["plan"].shape == (1, 64, 64)


def test_only_conv4_conv5_reductions_and_cost_regression_train():
    model = CrossViewModel("cvft", **TINY)
    conv45 = [n for n in VGG16_CONV_NAMES if n.startswith(("block4", "block5"))]
    assert trainable_layer_names(model) == sorted(conv45 + ["aerial_reduction", "ground_reduction", "cost_regression"])
    assert len(model.trainable_variables) == 2 * 2 * 6 + 2 * 2 + 4
    frozen = {v.path.split("/")[0] for v in model.non_trainable_variables if not v.path.startswith("seed_generator")}
    assert frozen == {n for n in VGG16_CONV_NAMES if n[5] in "123"}
    assert trainable_layer_names(CrossViewModel("vgg_gp", **TINY)) == sorted(conv45)


def test_layer_names_load_keras_applications_vgg16_weights_by_name():
    reference = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    model = CrossViewModel("vgg_conv", **TINY)
    trunk = model.aerial_branch.get_layer("vgg16")
    for name in VGG16_CONV_NAMES:
        trunk.get_layer(name).set_weights(reference.get_layer(name).get_weights())
    conv5_3 = keras.Model(reference.input, reference.get_layer("block5_conv3").output)
    image = tiny_batch(1)["aerial"]
    centred = image - np.float32(VGG_MEAN_BGR)  # keras.applications' VGG16 takes the centred image
    np.testing.assert_allclose(trunk(image).numpy(), conv5_3(centred).numpy(), rtol=1e-4, atol=1e-3)


def test_variants_shapes_and_map_size():
    batch = tiny_batch(2)
    assert CrossViewModel("cvft", **TINY)(batch)["ground"].shape == (2, 2 * 2 * 64)
    assert CrossViewModel("vgg_gp", **TINY)(batch)["aerial"].shape == (2, 512)
    model = CrossViewModel("cvft", map_size=(2, 4), reduced_channels=8, **TINY)
    out = model(batch)
    assert out["ground"].shape == out["aerial"].shape == (2, 2 * 4 * 8)
    assert model.ground_feature_maps(batch["ground"])["plan"].shape == (2, 8, 8)
    with pytest.raises(ValueError, match="Unknown variant"):
        CrossViewModel("resnet", **TINY)


def test_cvft_ground_descriptor_is_transported_map():
    model = CrossViewModel("cvft", **TINY)
    maps = model.ground_feature_maps(tiny_batch(2)["ground"])
    flat = maps["feature_map"].numpy().reshape(2, 4, -1)
    plan = maps["plan"].numpy()
    transported = np.einsum("bio,bic->boc", plan, flat).reshape(2, -1)
    expected = transported / np.linalg.norm(transported, axis=1, keepdims=True)
    np.testing.assert_allclose(maps["descriptor"].numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(plan.sum(axis=1), 1.0, atol=1e-4)


def test_encoders_usable_alone_and_dropout_training_only():
    """Each encoder is a one-input model on the model's own weights; dropout acts in training only."""
    model = CrossViewModel("cvft", **TINY)
    batch, other = tiny_batch(2, seed=0), tiny_batch(2, seed=1)
    assert len(model.aerial_encoder.inputs) == len(model.ground_encoder.inputs) == 1
    alone = model.aerial_encoder(batch["aerial"]).numpy()
    assert alone.shape == (2, 2 * 2 * 64)
    np.testing.assert_allclose(np.linalg.norm(alone, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(model({"ground": other["ground"], "aerial": batch["aerial"]})["aerial"].numpy(), alone)

    reduction = model.aerial_branch.get_layer("aerial_reduction")
    reduction.set_weights([w + 0.5 for w in reduction.get_weights()])
    changed = model.aerial_encoder(batch["aerial"]).numpy()
    assert np.abs(changed - alone).max() > 1e-3
    np.testing.assert_allclose(model(batch)["aerial"].numpy(), changed, atol=1e-6)

    np.testing.assert_array_equal(model.aerial_encoder(batch["aerial"]).numpy(), changed)
    first = model.aerial_encoder(batch["aerial"], training=True).numpy()
    second = model.aerial_encoder(batch["aerial"], training=True).numpy()
    assert np.abs(first - second).max() > 1e-4


@pytest.mark.large
def test_save_and_load_keras_file(tmp_path):
    model = build_model("cvft", map_size=(2, 2), **TINY)
    batch = tiny_batch(2)
    before = model(batch)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, CrossViewModel)
    assert loaded.get_config()["map_size"] == [2, 2]
    after = loaded(batch)
    for key in ("ground", "aerial"):
        np.testing.assert_allclose(after[key].numpy(), before[key].numpy(), atol=1e-6)


@pytest.mark.parametrize("variant", ["cvft", "vgg_conv", "vgg_gp"])
def test_train_steps_lower_loss_on_fixed_batch(variant):
    model = CrossViewModel(variant, dropout_rate=0.0, **TINY)
    model.compile(optimizer=keras.optimizers.Adam(1e-5))
    batch = tiny_batch(4)
    dataset = tf.data.Dataset.from_tensors(batch).repeat(8)
    first = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    model.fit(dataset, epochs=1, verbose=0)
    last = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    assert set(last) == {"loss", "recall@1"}
    assert last["loss"] < first["loss"] - 1e-3


def numpy_masked_triplet_loss(aerial, ground, mask, gamma=10.0):
    """Eq. (6) with the CVACT mask, written independently: masked differences add log 2."""
    distance = 2.0 - 2.0 * aerial.astype(np.float64) @ ground.astype(np.float64).T
    positive = np.diag(distance)
    ground_to_aerial = np.logaddexp(0.0, gamma * (positive[None, :] - distance) * mask)
    aerial_to_ground = np.logaddexp(0.0, gamma * (positive[:, None] - distance) * mask)
    return (ground_to_aerial.sum() + aerial_to_ground.sum()) / mask.sum() / 2.0


def test_train_step_with_distance_mask_xla_and_recall():
    """Under XLA the step's loss masks the negatives within 25 m, and its r@1 is the batch's."""
    model = CrossViewModel("cvft", dropout_rate=0.0, **TINY)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=True)
    batch = tiny_batch(4)
    east = np.array([0.0, 10.0, 100.0, 200.0])  # places 0 and 1 are 10 m apart: one place
    batch["distance_sq"] = ((east[:, None] - east[None, :]) ** 2).astype(np.float32)
    mask = (batch["distance_sq"] >= 25.0**2).astype(np.float64)
    assert mask.sum() == 10  # the diagonal and the (0, 1) pairs are removed

    out = model(batch)
    aerial, ground = out["aerial"].numpy(), out["ground"].numpy()
    logs = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)
    masked = numpy_masked_triplet_loss(aerial, ground, mask)
    unmasked = numpy_masked_triplet_loss(aerial, ground, 1.0 - np.eye(4))
    np.testing.assert_allclose(logs["loss"], masked, rtol=1e-4)
    assert abs(masked - unmasked) > 1e-3 * abs(masked)
    distance = 2.0 - 2.0 * aerial @ ground.T
    expected_recall = np.mean([np.sum(distance[:, i] < distance[i, i]) == 0 for i in range(4)])
    np.testing.assert_allclose(logs["recall@1"], expected_recall, atol=1e-6)

    before = [v.numpy().copy() for v in model.trainable_variables]
    fit_logs = model.fit(tf.data.Dataset.from_tensors(batch).repeat(3), epochs=1, verbose=0).history
    assert np.isfinite(fit_logs["loss"][-1])
    assert any(not np.allclose(b, v.numpy()) for b, v in zip(before, model.trainable_variables))


def test_mixed_precision_train_step_is_finite():
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = CrossViewModel("cvft", dropout_rate=0.0, **TINY)
    model.compile(optimizer=keras.optimizers.Adam(1e-4))
    out = model(tiny_batch(2))
    assert out["ground"].dtype == tf.float32
    logs = model.fit(tf.data.Dataset.from_tensors(tiny_batch(4)).repeat(2), epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][-1])
    assert any("float16" in str(layer.compute_dtype) for layer in model.ground_branch.get_layer("vgg16").layers)


def test_salad_variant_builds_trains_and_reloads(tmp_path):
    from cvft_tf.config_schema import SMOKE_BACKBONE, SMOKE_SALAD

    sizes = dict(ground_size=(28, 154), aerial_size=(56, 56))
    model = CrossViewModel("salad", backbone_kwargs=SMOKE_BACKBONE, salad_kwargs=SMOKE_SALAD, **sizes)
    batch = tiny_batch(4, ground_size=(28, 154), aerial_size=(56, 56))
    out = model(batch)
    descriptor_size = SMOKE_SALAD["token_dim"] + SMOKE_SALAD["cluster_dim"] * SMOKE_SALAD["num_clusters"]
    assert out["ground"].shape == out["aerial"].shape == (4, descriptor_size)
    np.testing.assert_allclose(np.linalg.norm(out["aerial"].numpy(), axis=1), 1.0, atol=1e-5)
    assert model.ground_feature_maps(batch["ground"])["plan"].shape == (4, SMOKE_SALAD["num_clusters"] + 1, 2 * 11)

    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    first = model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)["loss"]
    model.fit(tf.data.Dataset.from_tensors(batch).repeat(6), epochs=1, verbose=0)
    assert model.evaluate(tf.data.Dataset.from_tensors(batch), verbose=0, return_dict=True)["loss"] < first - 1e-3

    path = tmp_path / "salad.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.backbone.backbone_kwargs["num_layers"] == 2
    np.testing.assert_allclose(loaded(batch)["ground"].numpy(), model(batch)["ground"].numpy(), atol=1e-5)
