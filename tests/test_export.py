"""SavedModel export: four signatures, reloaded descriptors equal the in-memory model's."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from cvft_tf import output_dirs
from cvft_tf.data import cvact
from cvft_tf.data.preprocess import resize_image, resize_to_bgr_tf
from cvft_tf.export import EXPORT_INFO, SIGNATURES, export_saved_model
from cvft_tf.models.cross_view import CrossViewModel
from tests.faults.harness import digests


@pytest.mark.large
def test_export_reload_matches_in_memory(tmp_path):
    model = CrossViewModel("cvft", ground_size=(32, 128), aerial_size=(64, 64))
    rng = np.random.default_rng(0)
    ground_raw = rng.integers(0, 256, size=(2, 48, 200, 3), dtype=np.uint8)
    aerial_raw = rng.integers(0, 256, size=(2, 100, 100, 3), dtype=np.uint8)
    path = export_saved_model(model, tmp_path / "saved")
    loaded = tf.saved_model.load(str(path))
    assert set(SIGNATURES) <= set(loaded.signatures)

    ground_ready = resize_to_bgr_tf(ground_raw, (32, 128))
    aerial_ready = resize_to_bgr_tf(aerial_raw, (64, 64))
    expected_ground = model.ground_encoder(ground_ready).numpy()
    expected_aerial = model.aerial_encoder(aerial_ready).numpy()

    got = loaded.signatures["ground"](images=tf.constant(ground_raw))["descriptor"].numpy()
    np.testing.assert_allclose(got, expected_ground, atol=1e-5)
    got = loaded.signatures["aerial"](images=tf.constant(aerial_raw))["descriptor"].numpy()
    np.testing.assert_allclose(got, expected_aerial, atol=1e-5)
    got = loaded.signatures["ground_resized"](images=tf.cast(ground_ready, tf.float32))["descriptor"].numpy()
    np.testing.assert_allclose(got, expected_ground, atol=1e-5)
    got = loaded.signatures["aerial_resized"](images=tf.cast(aerial_ready, tf.float32))["descriptor"].numpy()
    np.testing.assert_allclose(got, expected_aerial, atol=1e-5)
    assert got.shape == (2, model.descriptor_size)
    assert os.listdir(tmp_path) == ["saved"]


@pytest.mark.large
def test_a_replaced_export_is_kept_until_the_new_one_is_in_place(tmp_path, monkeypatch):
    model = CrossViewModel("vgg_conv", ground_size=(32, 128), aerial_size=(64, 64))
    path = export_saved_model(model, tmp_path / "saved")
    before = digests(path)
    moves = []

    def replace_then_fail(source, destination):
        moves.append(os.path.basename(source))
        if len(moves) == 2:  # the old export is aside, the new one not yet in place
            raise OSError(28, "No space left on device")
        real_replace(source, destination)

    real_replace = os.replace
    monkeypatch.setattr(output_dirs.os, "replace", replace_then_fail)
    with pytest.raises(OSError, match="No space left"):
        export_saved_model(model, path)
    assert moves[0] == "saved" and moves[1].startswith(output_dirs.WRITING_PREFIX)
    assert digests(path) == before and os.listdir(tmp_path) == ["saved"]


@pytest.mark.large
def test_a_raw_cvact_panorama_gives_the_loaders_descriptor_and_a_wrong_aerial_a_clear_error(tmp_path):
    model = CrossViewModel("vgg_conv", ground_size=(32, 176), aerial_size=(64, 64))
    path = export_saved_model(model, tmp_path / "saved", raw_ground="cvact")
    with open(tmp_path / "saved" / EXPORT_INFO) as handle:
        assert json.load(handle)["raw_ground"] == "cvact"
    signatures = tf.saved_model.load(str(path)).signatures
    rng = np.random.default_rng(3)
    raw_rgb = rng.integers(0, 256, size=(1, 128, 256, 3), dtype=np.uint8)  # width = 2 x height
    start, stop = cvact.ground_rows(128, 256)
    loader_input = resize_image(raw_rgb[0][start:stop, :, ::-1], (32, 176))
    expected = model.ground_encoder(loader_input[None]).numpy()
    got = signatures["ground"](images=tf.constant(raw_rgb))["descriptor"].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-3)
    squashed = model.ground_encoder(resize_image(raw_rgb[0][..., ::-1], (32, 176))[None]).numpy()
    assert np.abs(squashed - expected).max() > 1e-2  # the cut matters
    with pytest.raises(tf.errors.InvalidArgumentError, match="aerial images must be square"):
        signatures["aerial"](images=tf.constant(np.zeros((1, 64, 80, 3), np.uint8)))
