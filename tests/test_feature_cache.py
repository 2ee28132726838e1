"""Cached frozen-stem features give the batches, losses and weights of training on images."""

import os

import keras
import numpy as np
import pytest

from cvft_tf.configs import synthetic as synthetic_config
from cvft_tf import feature_cache, training
from cvft_tf.data import cvusa
from cvft_tf.data.field_of_view import FieldOfView
from cvft_tf.data.pipeline import DatasetError, DecodeCounter, make_train_dataset
from cvft_tf.models.cross_view import CrossViewModel
from tests.data.fixtures import write_cvusa

GROUND, AERIAL = (32, 176), (64, 64)
SIZES = dict(ground_size=GROUND, aerial_size=AERIAL)
NUM_PAIRS, BATCH, SEED = 10, 4, 3


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("cvusa"))
    write_cvusa(root, NUM_PAIRS, ground_raw=GROUND, aerial_raw=AERIAL)
    return cvusa.read_split(root, "train", raw_ground_size=GROUND)


def tiny_model(frozen_blocks=4):
    model = CrossViewModel("cvft", frozen_blocks=frozen_blocks, dropout_rate=0.0, **SIZES)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8))
    return model


def build_cache(model, split, counter=None):
    return feature_cache.build_feature_cache(
        model.frozen_stem(), split, GROUND, AERIAL, 3, counter=counter or DecodeCounter(), max_bad_fraction=0.5
    )


def test_cached_batches_are_the_stems_of_the_image_batches_in_order(split):
    model = tiny_model()
    cache = build_cache(model, split)
    assert cache.ground.shape == (NUM_PAIRS, 2, 11, 512) and cache.aerial.shape == (NUM_PAIRS, 4, 4, 512)
    assert cache.nbytes == feature_cache.cache_nbytes(NUM_PAIRS, model.frozen_stem())
    images = make_train_dataset(split, BATCH, GROUND, AERIAL, seed=SEED, deterministic=True, start_batch=3)
    cached = feature_cache.make_cached_train_dataset(cache, split, BATCH, seed=SEED, start_batch=3)
    stems = model.frozen_stem()
    one_epoch = feature_cache.make_cached_train_dataset(cache, split, BATCH, seed=SEED)
    assert len(list(one_epoch)) == NUM_PAIRS // BATCH  # one epoch per iteration
    for image_batch, feature_batch in zip(images.repeat().take(6), cached.repeat().take(6)):  # from mid-epoch 1
        np.testing.assert_allclose(
            feature_batch["ground_features"].numpy(),
            stems.ground.stem(image_batch["ground"]).numpy(),
            rtol=1e-5,
            atol=1e-4,
        )
        np.testing.assert_allclose(
            feature_batch["aerial_features"].numpy(),
            stems.aerial.stem(image_batch["aerial"]).numpy(),
            rtol=1e-5,
            atol=1e-4,
        )


def test_training_on_the_cache_equals_training_on_the_images(split):
    on_images, on_cache = tiny_model(), tiny_model()
    on_cache.set_weights(on_images.get_weights())
    images = make_train_dataset(split, BATCH, GROUND, AERIAL, seed=SEED, deterministic=True).repeat()
    cached = feature_cache.make_cached_train_dataset(build_cache(on_cache, split), split, BATCH, seed=SEED).repeat()
    initial = [w.numpy().copy() for w in on_cache.trainable_weights]
    first = on_images.fit(images, epochs=2, steps_per_epoch=2, shuffle=False, verbose=0).history["loss"]
    second = on_cache.fit(cached, epochs=2, steps_per_epoch=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(second, first, rtol=1e-5)
    assert first[1] != first[0]
    for cached_weight, image_weight in zip(on_cache.trainable_weights, on_images.trainable_weights):
        np.testing.assert_allclose(cached_weight.numpy(), image_weight.numpy(), rtol=1e-4, atol=1e-6)
    assert max(np.abs(w.numpy() - v).max() for w, v in zip(on_cache.trainable_weights, initial)) > 1e-4


def test_cropped_queries_with_cached_aerial_features_train_as_on_images(split):
    """Field-of-view crops change every epoch, the polar aerial stems do not: training on
    ground images with cached aerial features (``dsm``) equals training on the images."""
    crop, polar = (32, 32), (32, 128)

    def dsm_model():
        model = CrossViewModel("dsm", ground_size=crop, aerial_size=AERIAL, polar_size=polar,
                               frozen_blocks=4, dropout_rate=0.0)  # fmt: skip
        model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-8))
        return model

    def images(**kwargs):
        field_of_view = FieldOfView(90.0, unknown_heading=True)
        return make_train_dataset(
            split, BATCH, crop, AERIAL, seed=SEED, deterministic=True, field_of_view=field_of_view, **kwargs
        )

    on_images, on_cache = dsm_model(), dsm_model()
    on_cache.set_weights(on_images.get_weights())
    cache = feature_cache.build_feature_cache(
        on_cache.frozen_stem(), split, crop, AERIAL, 3, counter=DecodeCounter(), max_bad_fraction=0.5,
        branches=("aerial",),
    )  # fmt: skip
    assert cache.ground is None and cache.nbytes == feature_cache.cache_nbytes(
        NUM_PAIRS, on_cache.frozen_stem(), ("aerial",)
    )
    fingerprints = {
        feature_cache.cache_fingerprint(on_cache.frozen_stem(), split, size, AERIAL, branches=("aerial",))
        for size in (crop, (32, 64))
    }
    assert len(fingerprints) == 1  # runs cutting other crops share the aerial cache
    tiles = CrossViewModel("cvft", ground_size=crop, aerial_size=AERIAL, frozen_blocks=4, dropout_rate=0.0)
    tiles.frozen_stem().aerial.stem.set_weights(on_cache.frozen_stem().aerial.stem.get_weights())
    assert feature_cache.cache_fingerprint(tiles.frozen_stem(), split, crop, AERIAL, branches=("aerial",)) not in (
        fingerprints
    )  # the same VGG weights on tiles instead of polar images are another cache
    mixed = feature_cache.with_cached_aerial_features(images(with_index=True), cache)
    assert set(mixed.element_spec) == {"ground", "aerial_features", "heading_deg"}
    first = on_images.fit(images().repeat(), epochs=2, steps_per_epoch=2, shuffle=False, verbose=0).history["loss"]
    second = on_cache.fit(mixed.repeat(), epochs=2, steps_per_epoch=2, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(second, first, rtol=1e-5)
    assert first[1] != first[0]
    for cached_weight, image_weight in zip(on_cache.trainable_weights, on_images.trainable_weights):
        np.testing.assert_allclose(cached_weight.numpy(), image_weight.numpy(), rtol=1e-4, atol=1e-6)


def test_a_bad_pair_is_counted_once_and_never_served(split, tmp_path):
    root = str(tmp_path)
    write_cvusa(root, 6, ground_raw=GROUND, aerial_raw=AERIAL)
    with open(os.path.join(root, "bingmap", "19", "0000003.jpg"), "r+b") as handle:
        handle.truncate(300)
    bad_split = cvusa.read_split(root, "train", raw_ground_size=GROUND)
    counter = DecodeCounter()
    model = tiny_model()
    cache = build_cache(model, bad_split, counter)
    assert counter.bad_pairs == 1 and counter.skipped == 1
    np.testing.assert_array_equal(cache.rows, [0, 1, -1, 2, 3, 4])
    served = feature_cache.make_cached_train_dataset(cache, bad_split, 5, seed=0).repeat()
    for batch in served.take(4):
        rows = {tuple(np.round(f[0, 0, :4], 4)) for f in batch["aerial_features"].numpy()}
        assert len(rows) == 5
    with pytest.raises(DatasetError, match="5 usable pairs, fewer than one batch of 6"):
        feature_cache.make_cached_train_dataset(cache, bad_split, 6, seed=0)


def test_the_trainer_says_when_it_cannot_cache():
    config = synthetic_config.get_config("smoke")
    model = CrossViewModel("cvft", frozen_blocks=4, dropout_rate=0.0, **SIZES)
    assert training.feature_cache_refusal(config, model, 100) is None
    assert training.changing_ground_reason(config) is None
    config.data.orientation_noise_deg = 20.0
    assert training.feature_cache_refusal(config, model, 100) is None
    assert "orientation noise" in training.changing_ground_reason(config)
    config.data.orientation_noise_deg = 0.0
    config.data.ground_fov_deg = 90.0
    assert "ground crop" in training.changing_ground_reason(config)
    config.train.feature_cache_max_gb = 0.001
    assert "more than config.train.feature_cache_max_gb=0.001" in training.feature_cache_refusal(config, model, 100)
    config.train.feature_cache = False
    assert "off" in training.feature_cache_refusal(config, model, 100)
