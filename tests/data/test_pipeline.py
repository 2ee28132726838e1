"""tf.data behaviour shared by both datasets: order, skipping, errors, orientation noise."""

import os

import cv2
import numpy as np
import pytest
import tensorflow as tf

from cvft_tf import data
from cvft_tf.data import cvusa, pipeline
from tests.data import fixtures

N_PAIRS = 8
RAW_GROUND = (16, 88)


@pytest.fixture
def split(tmp_path):
    fixtures.write_cvusa(str(tmp_path), N_PAIRS)
    return cvusa.read_split(str(tmp_path), "train", raw_ground_size=RAW_GROUND)


def _train(split, batch_size=1, **kwargs):
    return data.make_train_dataset(
        split, batch_size, fixtures.GROUND_OUT, fixtures.AERIAL_OUT, **kwargs
    )


def _expected_grounds(split):
    return [fixtures.expected(path, fixtures.GROUND_OUT) for path in split.ground_paths]


def _pair_order(expected, dataset):
    """Indices of the pairs a dataset yields, found by their exact ground pixels."""
    order = []
    for batch in dataset:
        for ground in batch["ground"].numpy():
            (index,) = [i for i, image in enumerate(expected) if np.array_equal(image, ground)]
            order.append(index)
    return order


def _index_and_shift(noisy, expected):
    """(pair index, np.roll shift in [-W/2, W/2)) that turn an expected ground into ``noisy``."""
    width = noisy.shape[1]
    (found,) = [
        (i, s)
        for i, image in enumerate(expected)
        for s in range(-(width // 2), width // 2)
        if np.array_equal(np.roll(image, s, axis=1), noisy)
    ]
    return found


def test_deterministic_order_repeats_and_epochs_reshuffle(split):
    expected = _expected_grounds(split)
    first = _train(split, seed=5, deterministic=True)
    second = _train(split, seed=5, deterministic=True)
    epoch_1 = _pair_order(expected, first)
    assert sorted(epoch_1) == list(range(N_PAIRS))  # every pair once per epoch
    assert _pair_order(expected, second) == epoch_1
    epoch_2 = _pair_order(expected, first)
    assert sorted(epoch_2) == list(range(N_PAIRS))
    assert epoch_2 != epoch_1
    assert _pair_order(expected, second) == epoch_2
    assert _pair_order(expected, _train(split, seed=6, deterministic=True)) != epoch_1


def test_deterministic_needs_a_seed(split):
    with pytest.raises(ValueError, match="deterministic=True needs a seed"):
        _train(split, deterministic=True)


def test_split_smaller_than_a_batch(split):
    with pytest.raises(data.DatasetError, match=f"has {N_PAIRS} pairs, fewer than one batch of 9"):
        _train(split, batch_size=9)


def _break_pairs(split):
    """Bad at run time: a file removed, a truncated JPEG, a file that is no image."""
    os.remove(split.ground_paths[1])
    content = open(split.aerial_paths[4], "rb").read()
    with open(split.aerial_paths[4], "wb") as file:
        file.write(content[: len(content) // 2])
    with open(split.ground_paths[6], "wb") as file:
        file.write(b"GIF89a garbage")
    return [1, 4, 6]


@pytest.mark.parametrize("decoder", pipeline.DECODERS)
def test_training_skips_bad_pairs_and_counts_them(split, decoder):
    expected = _expected_grounds(split)
    bad = _break_pairs(split)
    counter = data.DecodeCounter()
    dataset = _train(split, seed=1, counter=counter, max_bad_fraction=0.5, decoder=decoder)
    good = [i for i in range(N_PAIRS) if i not in bad]
    assert sorted(_pair_order(expected, dataset)) == good
    assert (counter.seen, counter.skipped, counter.bad_pairs) == (N_PAIRS, 3, 3)
    assert sorted(_pair_order(expected, dataset)) == good
    assert (counter.seen, counter.skipped, counter.bad_pairs) == (2 * N_PAIRS, 6, 3)


def test_training_batches_stay_full_when_pairs_are_skipped(split):
    _break_pairs(split)
    batches = list(_train(split, batch_size=2, seed=1, max_bad_fraction=0.5))
    assert [b["ground"].shape[0] for b in batches] == [2, 2]  # 5 good pairs


def test_too_many_bad_pairs_stop_training_naming_the_file(split):
    _break_pairs(split)
    with pytest.raises(data.DatasetError) as error, data.dataset_errors():
        list(_train(split, seed=1, deterministic=True, max_bad_fraction=0.25))
    message = str(error.value)
    assert message.startswith(
        f"3 of the {N_PAIRS} pairs of {split.name} are bad, more than max_bad_fraction=0.25; "
        "the last: "
    )
    causes = {
        1: f"{split.sources[1]}: cannot open {split.ground_paths[1]}: No such file or directory",
        4: f"{split.sources[4]}: {split.aerial_paths[4]} is truncated (the JPEG has no "
        "end-of-image marker)",
        6: f"{split.sources[6]}: {split.ground_paths[6]} is not a readable image",
    }
    assert any(message.endswith(cause) for cause in causes.values())


def _batch_orders(expected, dataset, count):
    """The pair indices of the first ``count`` batches of the endless ``dataset``."""
    return [_pair_order(expected, [batch]) for batch in dataset.repeat().take(count)]


@pytest.mark.parametrize("broken", [False, True])
def test_a_stream_started_after_n_batches_reads_what_an_uninterrupted_one_reads(split, broken):
    expected = _expected_grounds(split)
    bad = _break_pairs(split) if broken else []
    counter = data.DecodeCounter()
    uninterrupted = _batch_orders(expected, _train(split, 2, seed=3, deterministic=True, counter=counter,
                                                   max_bad_fraction=0.5), 9)  # fmt: skip
    assert sum(uninterrupted, []) and not set(sum(uninterrupted, [])) & set(bad)
    for start in (1, 2, 4, 5):
        restored = data.DecodeCounter(counter.state())
        resumed = _train(split, 2, seed=3, deterministic=True, counter=restored, start_batch=start,
                         max_bad_fraction=0.5)  # fmt: skip
        assert _batch_orders(expected, resumed, 9 - start) == uninterrupted[start:], start


def test_stream_position_skips_the_known_bad_pairs():
    usable = np.ones(8, bool)
    usable[[1, 4]] = False  # 6 usable pairs: 2 batches of 3 per epoch
    order = pipeline.epoch_order(8, 7, 1)
    epoch, offset = pipeline.stream_position(3, usable, 3, seed=7)
    assert epoch == 1 and usable[order[offset]]
    assert int(np.sum(usable[order[:offset]])) == 3  # one batch of epoch 1 already read
    with pytest.raises(data.DatasetError, match="2 usable pairs are fewer than one batch of 3"):
        pipeline.stream_position(0, usable[:3], 3, seed=7)


def test_decode_counter_state_round_trips():
    counter = data.DecodeCounter({"seen": 5, "skipped": 2, "bad_pairs": [4, 1]})
    assert counter.state() == {"seen": 5, "skipped": 2, "bad_pairs": [1, 4]}
    assert counter.bad_pairs == 2 and counter.usable(6).tolist() == [True, False, True, True, False, True]


def test_run_time_error_without_the_context_manager_is_a_clear_tf_error(split):
    _break_pairs(split)
    with pytest.raises(tf.errors.InvalidArgumentError) as error:
        list(data.make_eval_dataset(split, 4, fixtures.GROUND_OUT, fixtures.AERIAL_OUT))
    assert (
        f"DatasetError: bad image in evaluation: {split.sources[1]}: cannot open "
        f"{split.ground_paths[1]}" in error.value.message
    )
    assert "Traceback" not in error.value.message


def test_tensorflow_decoder_is_within_a_level_of_opencv_and_names_bad_files(split):
    """decoder="tensorflow": uint8 pixels within 1 level of OpenCV's; a bad file is named."""
    batches = list(data.make_eval_dataset(split, 3, fixtures.GROUND_OUT, fixtures.AERIAL_OUT, decoder="tensorflow"))
    for key, paths, size in (
        ("ground", split.ground_paths, fixtures.GROUND_OUT),
        ("aerial", split.aerial_paths, fixtures.AERIAL_OUT),
    ):
        images = np.concatenate([batch[key].numpy() for batch in batches])
        assert images.dtype == np.uint8 and images.shape == (N_PAIRS, *size, 3)
        reference = np.stack([fixtures.expected(path, size) for path in paths]).astype(np.int32)
        assert np.abs(images.astype(np.int32) - reference).max() <= 1
    _break_pairs(split)
    with pytest.raises(data.DatasetError) as error, data.dataset_errors():
        list(data.make_eval_dataset(split, 4, fixtures.GROUND_OUT, fixtures.AERIAL_OUT, decoder="tensorflow"))
    assert str(error.value) == (
        f"bad image in evaluation: {split.sources[1]}: cannot open {split.ground_paths[1]}: "
        "No such file or directory"
    )
    with open(split.ground_paths[1], "wb") as file:
        file.write(b"GIF89a garbage")
    with pytest.raises(data.DatasetError) as error, data.dataset_errors():
        list(data.make_eval_dataset(split, 4, fixtures.GROUND_OUT, fixtures.AERIAL_OUT, decoder="tensorflow"))
    assert str(error.value).endswith(
        f"{split.ground_paths[1]} is neither a JPEG nor a PNG, the formats of the tensorflow decoder"
    )


def test_a_jpeg_only_opencv_decodes_is_a_named_skip_for_the_tensorflow_decoder(split):
    """A corrupt JPEG with its markers in place: OpenCV decodes it with a warning, TensorFlow refuses."""
    content = bytearray(open(split.ground_paths[3], "rb").read())
    middle = len(content) // 2
    content[middle : middle + 2] = b"\xff\x3a"  # a marker no JPEG has, inside the compressed data
    with open(split.ground_paths[3], "wb") as file:
        file.write(bytes(content))
    assert cv2.imread(split.ground_paths[3]) is not None
    counter = data.DecodeCounter()
    assert len(list(_train(split, seed=0, counter=counter, max_bad_fraction=0.5, decoder="tensorflow"))) == N_PAIRS - 1
    assert counter.state()["bad_pairs"] == [3]
    with pytest.raises(data.DatasetError) as error, data.dataset_errors():
        list(data.make_eval_dataset(split, 4, fixtures.GROUND_OUT, fixtures.AERIAL_OUT, decoder="tensorflow"))
    assert f"{split.ground_paths[3]} is not a readable image (TensorFlow: " in str(error.value)
    assert "{{" not in str(error.value)


@pytest.mark.parametrize("decoder", pipeline.DECODERS)
def test_a_panorama_of_the_wrong_size_is_skipped_and_named(tmp_path, decoder):
    fixtures.write_cvusa(str(tmp_path), 4)
    split = cvusa.read_split(str(tmp_path), "train", raw_ground_size=RAW_GROUND)
    fixtures.write_image(split.ground_paths[2], fixtures.make_image(16, 80, seed=1))
    counter = data.DecodeCounter()
    assert len(list(_train(split, seed=0, counter=counter, max_bad_fraction=0.5, decoder=decoder))) == 3
    assert counter.state()["bad_pairs"] == [2]
    with pytest.raises(data.DatasetError) as error, data.dataset_errors():
        list(data.make_eval_dataset(split, 4, fixtures.GROUND_OUT, fixtures.AERIAL_OUT, decoder=decoder))
    assert str(error.value).endswith(
        f"{split.ground_paths[2]} has size 16x80, expected {RAW_GROUND[0]}x{RAW_GROUND[1]} (raw_ground_size)"
    )
    with pytest.raises(ValueError, match="decoder must be one of"):
        data.make_eval_dataset(split, 4, decoder="pillow")


def test_evaluation_stops_at_the_first_bad_image(split):
    _break_pairs(split)
    with pytest.raises(data.DatasetError) as error, data.dataset_errors():
        list(data.make_eval_dataset(split, 4, fixtures.GROUND_OUT, fixtures.AERIAL_OUT))
    assert str(error.value) == (
        f"bad image in evaluation: {split.sources[1]}: cannot open {split.ground_paths[1]}: "
        "No such file or directory"
    )


def test_dataset_errors_lets_other_errors_through():
    with pytest.raises(tf.errors.InvalidArgumentError, match="other"):
        with data.dataset_errors():
            raise tf.errors.InvalidArgumentError(None, None, "other")
    with pytest.raises(KeyError):
        with data.dataset_errors():
            raise KeyError("x")


def test_evaluation_orientation_noise_is_seeded_and_bounded(split):
    expected = _expected_grounds(split)

    def shifts(seed):
        dataset = data.make_eval_dataset(
            split, 3, fixtures.GROUND_OUT, fixtures.AERIAL_OUT,
            orientation_noise_deg=90.0, seed=seed,
        )
        found = [_index_and_shift(g, expected) for b in dataset for g in b["ground"].numpy()]
        assert [index for index, _ in found] == list(range(N_PAIRS))
        return [shift for _, shift in found]

    first = shifts(0)
    assert shifts(0) == first
    assert shifts(1) != first
    assert max(abs(s) for s in first) <= round(90 / 360 * fixtures.GROUND_OUT[1])
    assert len(set(first)) > 1


def test_training_orientation_noise_changes_each_epoch(split):
    expected = _expected_grounds(split)

    def shifts(dataset):
        found = [_index_and_shift(b["ground"].numpy()[0], expected) for b in dataset]
        assert sorted(index for index, _ in found) == list(range(N_PAIRS))
        return dict(found)

    dataset = _train(split, seed=2, deterministic=True, orientation_noise_deg=90.0)
    epoch_1, epoch_2 = shifts(dataset), shifts(dataset)
    assert all(abs(s) <= 11 for s in [*epoch_1.values(), *epoch_2.values()])
    assert epoch_1 != epoch_2
    again = _train(split, seed=2, deterministic=True, orientation_noise_deg=90.0)
    assert shifts(again) == epoch_1


def test_load_dataset(tmp_path, split):
    root = os.path.dirname(os.path.dirname(split.sources[0].split(":")[0]))
    train = data.load_dataset(
        "cvusa", root, "train", 4, raw_ground_size=RAW_GROUND,
        ground_size=fixtures.GROUND_OUT, aerial_size=fixtures.AERIAL_OUT, seed=0,
    )
    assert [b["ground"].shape for b in train] == [(4, *fixtures.GROUND_OUT, 3)] * 2
    evaluation = data.load_dataset(
        "cvusa", root, "train", 5, training=False, raw_ground_size=RAW_GROUND,
        ground_size=fixtures.GROUND_OUT, aerial_size=fixtures.AERIAL_OUT,
    )
    assert [b["index"].numpy().tolist() for b in evaluation] == [[0, 1, 2, 3, 4], [5, 6, 7]]

    act_root = str(tmp_path / "act")
    fixtures.write_cvact(act_root, 3, test=[3, 2, 1])
    (batch,) = data.load_dataset(
        "cvact", act_root, "test", 8,
        ground_size=fixtures.GROUND_OUT, aerial_size=fixtures.AERIAL_OUT,
    )
    assert batch["index"].numpy().tolist() == [0, 1, 2]
    np.testing.assert_array_equal(batch["utm"][:, 0], [500020.0, 500010.0, 500000.0])
    with pytest.raises(ValueError, match="name must be one of"):
        data.load_dataset("kitti", root, "train", 4)
