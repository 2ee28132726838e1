"""Limited field of view and unknown heading: crop geometry, recorded headings, seeding."""

import numpy as np
import pytest
import tensorflow as tf

from cvft_tf import data
from cvft_tf.data import cvusa
from cvft_tf.data.field_of_view import FieldOfView, crop_heading_deg, crop_query, panorama_size
from tests.data import fixtures

N_PAIRS = 8
CROP = (8, 22)  # a 90-degree crop of 8x88 panoramas
PANORAMA = (8, 88)


@pytest.fixture
def split(tmp_path):
    fixtures.write_cvusa(str(tmp_path), N_PAIRS, ground_raw=(16, 176))
    return cvusa.read_split(str(tmp_path), "train", raw_ground_size=(16, 176))


def _column_azimuths(width):
    """Azimuth of each panorama column, degrees clockwise from north (north = centre column)."""
    return 360.0 * (np.arange(width) + 0.5) / width - 180.0


def _circular_mean_deg(angles):
    radians = np.deg2rad(angles)
    return np.rad2deg(np.arctan2(np.sin(radians).mean(), np.cos(radians).mean()))


def _angle_difference(a, b):
    return (np.asarray(a) - np.asarray(b) + 180.0) % 360.0 - 180.0


def test_panorama_size_keeps_the_crops_resolution():
    assert panorama_size((48, 64), 90) == (48, 256)
    assert panorama_size((48, 128), 180) == (48, 256)
    assert panorama_size((48, 256), 360) == (48, 256)
    assert FieldOfView(70).covered_deg(52) == pytest.approx(360 * 52 / 267)


@pytest.mark.parametrize("fov", [0.0, -10.0, 361.0])
def test_a_field_of_view_outside_0_360_is_refused(fov):
    with pytest.raises(ValueError, match="field of view"):
        FieldOfView(fov)


@pytest.mark.parametrize("crop_width", [22, 21, 88])
def test_the_crops_centre_azimuth_is_its_recorded_heading(crop_width):
    width = 88
    azimuths = np.tile(_column_azimuths(width)[None, :, None], (1, 1, 1)).astype(np.float32)
    for seed in range(20):
        crop, heading = crop_query(
            tf.constant(azimuths), FieldOfView(360 * crop_width / width, True), crop_width, tf.constant([seed, 7])
        )
        columns = crop.numpy()[0, :, 0]
        centre = columns[0] + (crop_width - 1) / 2 * 360.0 / width
        assert abs(_angle_difference(centre, float(heading))) < 1e-3
        if crop_width < width:
            assert abs(_angle_difference(_circular_mean_deg(columns), float(heading))) < 1e-3
        steps = _angle_difference(columns[1:], columns[:-1])
        np.testing.assert_allclose(steps, 360.0 / width, atol=1e-3)


def test_crop_heading_wraps_into_minus_180_180():
    assert crop_heading_deg(0, 88, 88) == 0.0
    assert crop_heading_deg(44, 88, 88) == -180.0
    assert crop_heading_deg(87, 2, 88) == -180.0
    assert crop_heading_deg(86, 2, 88) == pytest.approx(180.0 - 360.0 / 88)


def _expected_crop(panorama, heading, crop_width):
    """The crop of a decoded panorama whose centre looks at ``heading``, from the geometry alone."""
    width = panorama.shape[1]
    start = (heading + 180.0) / 360.0 * width - crop_width / 2.0
    assert abs(start - round(start)) < 1e-3
    return np.take(panorama, (round(start) + np.arange(crop_width)) % width, axis=1)


def _eval_queries(split, seed, field_of_view):
    dataset = data.make_eval_dataset(split, 3, CROP, fixtures.AERIAL_OUT, field_of_view=field_of_view, seed=seed)
    batches = list(dataset)
    return np.concatenate([b["ground"].numpy() for b in batches]), np.concatenate([b["heading_deg"] for b in batches])


def test_evaluation_crops_at_seeded_recorded_headings(split):
    panoramas = [fixtures.expected(path, PANORAMA) for path in split.ground_paths]
    unknown = FieldOfView(90.0, unknown_heading=True)
    grounds, headings = _eval_queries(split, 0, unknown)
    assert grounds.shape == (N_PAIRS, *CROP, 3) and headings.dtype == np.float32
    for panorama, ground, heading in zip(panoramas, grounds, headings):
        np.testing.assert_array_equal(ground, _expected_crop(panorama, heading, CROP[1]))
    again, again_headings = _eval_queries(split, 0, unknown)
    np.testing.assert_array_equal(again_headings, headings)
    np.testing.assert_array_equal(again, grounds)
    _, other_headings = _eval_queries(split, 1, unknown)
    assert not np.array_equal(other_headings, headings)
    assert len(set(headings.tolist())) > N_PAIRS // 2


def test_a_known_heading_crop_faces_north(split):
    grounds, headings = _eval_queries(split, 0, FieldOfView(90.0))
    np.testing.assert_array_equal(headings, 0.0)
    panorama = fixtures.expected(split.ground_paths[0], PANORAMA)
    np.testing.assert_array_equal(grounds[0], panorama[:, 33:55])


def test_training_draws_new_headings_each_epoch_reproducibly(split):
    def epoch_headings(dataset):
        return [float(batch["heading_deg"][0]) for batch in dataset]

    def make():
        return data.make_train_dataset(
            split, 1, PANORAMA, fixtures.AERIAL_OUT, seed=3, deterministic=True,
            field_of_view=FieldOfView(360.0, unknown_heading=True),
        )  # fmt: skip

    dataset = make()
    first, second = epoch_headings(dataset), epoch_headings(dataset)
    assert len(first) == N_PAIRS and first != second
    assert epoch_headings(make()) == first
    assert next(iter(make()))["ground"].shape == (1, *PANORAMA, 3)


def test_orientation_noise_and_a_limited_field_of_view_do_not_combine(split):
    with pytest.raises(ValueError, match="do not combine"):
        data.make_eval_dataset(
            split, 3, CROP, fixtures.AERIAL_OUT, orientation_noise_deg=20.0, field_of_view=FieldOfView(90.0)
        )
