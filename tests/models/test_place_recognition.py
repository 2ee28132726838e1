"""Multi-similarity loss vs a numpy port of pytorch-metric-learning; the place-recognition model."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.losses import multi_similarity_loss
from cvft_tf.models.place_recognition import PlaceRecognitionModel

TINY_BACKBONE = dict(
    patch_size=14, num_layers=2, hidden_dim=32, num_heads=2, intermediate_dim=64, position_embedding_shape=(42, 42, 3)
)
TINY_SALAD = dict(num_clusters=4, cluster_dim=8, token_dim=8, hidden_dim=16)


def numpy_ms_miner(similarity, labels, epsilon):
    """``MultiSimilarityMiner.mine`` with an inverted (similarity) distance, by sorting as PML does."""
    batch = len(labels)
    same = labels[:, None] == labels[None, :]
    a1, p = np.nonzero(same & ~np.eye(batch, dtype=bool))
    a2, n = np.nonzero(~same)
    if len(a1) == 0 or len(a2) == 0:
        return [np.zeros(0, int)] * 4
    pos_sorting, neg_sorting = similarity.copy(), similarity.copy()
    pos_sorting[a2, n] = np.inf
    neg_sorting[a1, p] = -np.inf
    np.fill_diagonal(pos_sorting, np.inf)
    np.fill_diagonal(neg_sorting, -np.inf)
    pos_index, neg_index = np.argsort(pos_sorting, axis=1), np.argsort(neg_sorting, axis=1)
    pos_sorted = np.take_along_axis(pos_sorting, pos_index, axis=1)
    neg_sorted = np.take_along_axis(neg_sorting, neg_index, axis=1)
    hard_pos = np.nonzero(pos_sorted - epsilon < neg_sorted[:, -1:])
    hard_neg = np.nonzero(neg_sorted + epsilon > pos_sorted[:, :1])
    return hard_pos[0], pos_index[hard_pos], hard_neg[0], neg_index[hard_neg]


def numpy_ms_loss(descriptors, labels, alpha=1.0, beta=50.0, base=0.0, epsilon=0.1):
    """``MultiSimilarityLoss`` (GenericPairLoss, MeanReducer) on the miner's pairs, float64."""
    x = descriptors / np.linalg.norm(descriptors, axis=1, keepdims=True)
    similarity = x @ x.T
    a1, p, a2, n = numpy_ms_miner(similarity, labels, epsilon)
    if len(a1) <= 1 and len(p) <= 1 and len(a2) <= 1 and len(n) <= 1:
        return 0.0
    losses = []
    for anchor in range(len(labels)):
        pos = similarity[anchor, p[a1 == anchor]]
        neg = similarity[anchor, n[a2 == anchor]]
        pos_loss = np.log1p(np.exp(-alpha * (pos - base)).sum()) / alpha
        neg_loss = np.log1p(np.exp(beta * (neg - base)).sum()) / beta
        losses.append(pos_loss + neg_loss)
    return float(np.mean(losses))


@pytest.mark.parametrize(
    "labels",
    [[0, 0, 1, 1, 2, 2, 3, 3], [0, 0, 0, 0, 1, 1, 1, 1], [0, 1, 1, 2, 2, 2, 3, 4], [5, 5, 5, 5], [0, 1, 2, 3]],
)
@pytest.mark.parametrize("scale", [0.3, 3.0])
def test_multi_similarity_loss_matches_numpy(labels, scale):
    rng = np.random.default_rng(len(labels) + int(10 * scale))
    labels = np.asarray(labels)
    centres = rng.normal(size=(labels.max() + 1, 6))
    descriptors = (centres[labels] * scale + rng.normal(size=(len(labels), 6))).astype(np.float32)
    expected = numpy_ms_loss(descriptors.astype(np.float64), labels)
    got = float(multi_similarity_loss(descriptors, tf.constant(labels)))
    assert got == pytest.approx(expected, rel=1e-4, abs=1e-5)


def test_multi_similarity_loss_without_mining_and_gradients():
    rng = np.random.default_rng(0)
    descriptors = tf.constant(rng.normal(size=(6, 5)).astype(np.float32))
    labels = tf.constant([0, 0, 1, 1, 2, 2])
    x = descriptors.numpy() / np.linalg.norm(descriptors.numpy(), axis=1, keepdims=True)
    similarity = x @ x.T
    same = labels.numpy()[:, None] == labels.numpy()[None, :]
    positive = np.where(same & ~np.eye(6, dtype=bool), np.exp(-(similarity - 0.5) * 2.0), 0.0).sum(axis=1)
    negative = np.where(~same, np.exp((similarity - 0.5) * 40.0), 0.0).sum(axis=1)
    expected = np.mean(np.log1p(positive) / 2.0 + np.log1p(negative) / 40.0)
    with tf.GradientTape() as tape:
        tape.watch(descriptors)
        loss = multi_similarity_loss(descriptors, labels, alpha=2.0, beta=40.0, base=0.5, miner_margin=None)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    gradient = tape.gradient(loss, descriptors).numpy()
    assert np.all(np.isfinite(gradient)) and np.any(gradient != 0.0)


def tiny_model(**kwargs):
    return PlaceRecognitionModel(
        (42, 42), backbone_kwargs=TINY_BACKBONE, salad_kwargs=TINY_SALAD, trainable_blocks=1, **kwargs
    )


def place_batch(seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), 2)
    centres = rng.normal(size=(4, 42, 42, 3))
    return {"images": (centres[labels] + 0.5 * rng.normal(size=(8, 42, 42, 3))).astype(np.float32), "labels": labels}


def test_training_steps_lower_the_multi_similarity_loss():
    model = tiny_model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    batch = place_batch()
    before = model.test_on_batch(batch, return_dict=True)
    assert before["loss"] > 0.1
    for _ in range(5):
        model.train_on_batch(batch)
    after = model.test_on_batch(batch, return_dict=True)
    assert after["loss"] < 0.5 * before["loss"]
    assert model.descriptor_size == 8 + 8 * 4


def test_keras_file_round_trip_keeps_outputs_and_frozen_blocks(tmp_path):
    model = tiny_model(loss_beta=40.0, miner_margin=0.2)
    images = place_batch()["images"][:2]
    path = str(tmp_path / "place.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, PlaceRecognitionModel)
    np.testing.assert_array_equal(restored(images).numpy(), model(images).numpy())
    assert {v.path for v in restored.trainable_variables} == {v.path for v in model.trainable_variables}
    assert json.dumps(restored.get_config()) == json.dumps(model.get_config())
    assert restored.loss_beta == 40.0 and restored.miner_margin == 0.2


def test_preset_architecture_goes_into_the_config(tmp_path):
    from cvft_tf.models.dinov2 import build_dinov2_backbone

    build_dinov2_backbone(TINY_BACKBONE).save_to_preset(str(tmp_path / "preset"))
    salad_kwargs = dict(TINY_SALAD, num_clusters=3)
    model = PlaceRecognitionModel((28, 28), salad_kwargs=salad_kwargs, preset=str(tmp_path / "preset"))
    config = model.get_config()
    assert "preset" not in config
    assert config["backbone_kwargs"]["hidden_dim"] == 32 and config["backbone_kwargs"]["num_layers"] == 2


@pytest.mark.large
def test_xla_train_step_loss_matches_eager():
    model = PlaceRecognitionModel(
        (42, 42), backbone_kwargs=TINY_BACKBONE, salad_kwargs=dict(TINY_SALAD, dropout=0.0), trainable_blocks=1
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    batch = place_batch(1)
    eager = float(model.batch_loss(model(batch["images"], training=True), batch["labels"]))
    first = model.train_on_batch(batch, return_dict=True)["loss"]
    assert first == pytest.approx(eager, abs=1e-4)
    assert model.train_on_batch(batch, return_dict=True)["loss"] < first
