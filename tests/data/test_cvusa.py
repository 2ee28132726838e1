"""CVUSA split reading and pipelines on a tiny dataset in the real layout."""

import os

import numpy as np
import pytest

from cvft_tf import data
from cvft_tf.data import cvusa
from tests.data import fixtures

RAW_GROUND = (16, 88)


@pytest.fixture
def root(tmp_path):
    fixtures.write_cvusa(str(tmp_path), 5)
    return str(tmp_path)


def _eval(split, batch_size=2):
    return list(
        data.make_eval_dataset(split, batch_size, fixtures.GROUND_OUT, fixtures.AERIAL_OUT)
    )


def test_read_split_lists_pairs_in_file_order(root):
    split = cvusa.read_split(root, "train", raw_ground_size=RAW_GROUND)
    csv = os.path.join(root, "splits", "train-19zl.csv")
    assert len(split) == 5
    assert split.ground_paths[2] == os.path.join(root, "streetview/panos/0000003.jpg")
    assert split.aerial_paths[2] == os.path.join(root, "bingmap/19/0000003.jpg")
    assert split.sources[2] == f"{csv}:3"
    assert split.utm is None
    by_path = cvusa.read_split(root, csv, raw_ground_size=RAW_GROUND)
    assert by_path.ground_paths == split.ground_paths


def test_eval_dataset_every_pair_once_in_order_with_opencv_pixels(root):
    split = cvusa.read_split(root, "train", raw_ground_size=RAW_GROUND)
    batches = _eval(split)
    assert [b["ground"].shape[0] for b in batches] == [2, 2, 1]
    assert set(batches[0]) == {"ground", "aerial", "index"}
    assert batches[0]["ground"].dtype == "uint8" and batches[0]["aerial"].dtype == "uint8"
    assert batches[0]["index"].dtype == "int64"
    ground = np.concatenate([b["ground"] for b in batches])
    aerial = np.concatenate([b["aerial"] for b in batches])
    np.testing.assert_array_equal(np.concatenate([b["index"] for b in batches]), range(5))
    for i in range(5):
        np.testing.assert_array_equal(
            ground[i], fixtures.expected(split.ground_paths[i], fixtures.GROUND_OUT)
        )
        np.testing.assert_array_equal(
            aerial[i], fixtures.expected(split.aerial_paths[i], fixtures.AERIAL_OUT)
        )


def test_train_dataset_full_batches_of_the_split_pairs(root):
    split = cvusa.read_split(root, "train", raw_ground_size=RAW_GROUND)
    batches = list(
        data.make_train_dataset(split, 2, fixtures.GROUND_OUT, fixtures.AERIAL_OUT, seed=3)
    )
    assert len(batches) == 2  # 5 pairs, the last incomplete batch dropped
    assert set(batches[0]) == {"ground", "aerial"}
    assert batches[0]["ground"].shape == (2, *fixtures.GROUND_OUT, 3)
    assert batches[0]["aerial"].shape == (2, *fixtures.AERIAL_OUT, 3)
    expected = {
        i: fixtures.expected(split.ground_paths[i], fixtures.GROUND_OUT) for i in range(5)
    }
    for batch in batches:
        for ground, aerial in zip(batch["ground"].numpy(), batch["aerial"].numpy()):
            (i,) = [i for i in expected if np.array_equal(expected[i], ground)]
            # The aerial tile travels with its own panorama.
            np.testing.assert_array_equal(
                aerial, fixtures.expected(split.aerial_paths[i], fixtures.AERIAL_OUT)
            )


def test_default_sizes_are_the_networks(root):
    split = cvusa.read_split(root, "train", raw_ground_size=RAW_GROUND)
    (batch, *_) = data.make_eval_dataset(split, 5)
    assert batch["ground"].shape == (5, 112, 616, 3)
    assert batch["aerial"].shape == (5, 256, 256, 3)


def test_missing_files_all_reported_with_line(root):
    os.remove(os.path.join(root, "bingmap/19/0000002.jpg"))
    os.remove(os.path.join(root, "streetview/panos/0000004.jpg"))
    with pytest.raises(data.DatasetError) as error:
        cvusa.read_split(root, "train")
    csv = os.path.join(root, "splits", "train-19zl.csv")
    message = str(error.value)
    assert "2 problem(s)" in message
    assert f"{csv}:2: aerial image {root}/bingmap/19/0000002.jpg does not exist" in message
    assert f"{csv}:4: ground image {root}/streetview/panos/0000004.jpg does not exist" in message
    assert len(error.value.problems) == 2


def test_malformed_lines_reported_with_line(root):
    csv = os.path.join(root, "splits", "train-19zl.csv")
    lines = open(csv).read().splitlines()
    lines[1] = "bingmap/19/0000002.jpg;streetview/panos/0000002.jpg"
    lines[3] = "bingmap/19/0000004.jpg,,streetview/annotations/0000004.png"
    with open(csv, "w") as file:
        file.write("\n".join(lines) + "\n")
    with pytest.raises(data.DatasetError) as error:
        cvusa.read_split(root, "train")
    message = str(error.value)
    assert (
        f"{csv}:2: expected 3 comma-separated paths (aerial,ground,annotation), got 'bingmap"
        in message
    )
    assert f"{csv}:4: expected 3 comma-separated paths" in message
    assert len(error.value.problems) == 2


def test_empty_and_missing_split_file(root):
    empty = os.path.join(root, "splits", "val-19zl.csv")
    open(empty, "w").write("\n")
    with pytest.raises(data.DatasetError, match=f"{empty}: the split is empty"):
        cvusa.read_split(root, "val")
    with pytest.raises(data.DatasetError, match="nothing.csv: cannot read it: No such file"):
        cvusa.read_split(root, "splits/nothing.csv")


def test_wrong_size_panorama_is_skipped_in_training_and_an_error_in_evaluation(root):
    fixtures.write_image(
        os.path.join(root, "streetview/panos/0000003.jpg"), fixtures.make_image(20, 88, seed=1)
    )
    split = cvusa.read_split(root, "train", raw_ground_size=RAW_GROUND)
    counter = data.DecodeCounter()
    batches = list(
        data.make_train_dataset(
            split, 1, fixtures.GROUND_OUT, fixtures.AERIAL_OUT, counter=counter,
            max_bad_fraction=0.2,
        )
    )
    assert len(batches) == 4
    assert (counter.seen, counter.skipped, counter.bad_pairs) == (5, 1, 1)
    with pytest.raises(data.DatasetError) as error, data.dataset_errors():
        _eval(split)
    assert str(error.value) == (
        f"bad image in evaluation: {split.sources[2]}: {split.ground_paths[2]} has size 20x88, "
        "expected 16x88 (raw_ground_size)"
    )


def test_non_square_aerial_is_bad(root):
    fixtures.write_image(
        os.path.join(root, "bingmap/19/0000001.jpg"), fixtures.make_image(40, 41, seed=1)
    )
    split = cvusa.read_split(root, "train", raw_ground_size=RAW_GROUND)
    with pytest.raises(data.DatasetError, match="0000001.jpg has size 40x41, expected a square"):
        with data.dataset_errors():
            _eval(split)


def test_raw_ground_size_none_accepts_any_size(root):
    fixtures.write_image(
        os.path.join(root, "streetview/panos/0000003.jpg"), fixtures.make_image(20, 100, seed=1)
    )
    split = cvusa.read_split(root, "train", raw_ground_size=None)
    ground = np.concatenate([b["ground"] for b in _eval(split)])
    np.testing.assert_array_equal(
        ground[2], fixtures.expected(split.ground_paths[2], fixtures.GROUND_OUT)
    )
