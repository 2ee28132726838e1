"""CVACT split reading (ACT_data.mat) and pipelines on a tiny dataset in the real layout."""

import os

import cv2
import numpy as np
import pytest
import scipy.io

from cvft_tf import data
from cvft_tf.data import cvact
from tests.data import fixtures

N_PLACES = 6
TRAIN, VAL, TEST = [2, 4, 6, 1], [3, 5], [1, 2, 3, 4, 5, 6]  # 1-based, as in the real file


@pytest.fixture
def root(tmp_path):
    fixtures.write_cvact(str(tmp_path), N_PLACES, train=TRAIN, val=VAL, test=TEST)
    return str(tmp_path)


def _eval(split, batch_size=4):
    return list(
        data.make_eval_dataset(split, batch_size, fixtures.GROUND_OUT, fixtures.AERIAL_OUT)
    )


def _mat(root):
    mat = scipy.io.loadmat(os.path.join(root, "ACT_data.mat"))
    return {key: value for key, value in mat.items() if not key.startswith("__")}


def test_same_place_radius():
    assert cvact.SAME_PLACE_RADIUS_M == 25.0


@pytest.mark.parametrize("name, indices", [("train", TRAIN), ("val", VAL), ("test", TEST)])
def test_read_split_follows_the_one_based_indices(root, name, indices):
    split = cvact.read_split(root, name)
    ids = [f"pano{i - 1:04d}xyz" for i in indices]
    assert split.ground_paths == tuple(fixtures.cvact_ground_path(root, i) for i in ids)
    assert split.aerial_paths == tuple(fixtures.cvact_aerial_path(root, i) for i in ids)
    np.testing.assert_array_equal(split.utm, fixtures.cvact_utm(N_PLACES)[np.subtract(indices, 1)])
    struct, field = {"train": ("trainSet", "trainInd"), "val": ("valSet", "valInd"),
                     "test": ("valSetAll", "valInd")}[name]
    assert split.sources[1] == (
        f"{root}/ACT_data.mat {struct}.{field} row 2 (panoId {ids[1]})"
    )


def test_raw_images_are_cut_and_resized_like_the_original_test_reader(root):
    """832x1664-style panoramas: rows H/4..3H/4, INTER_AREA; aerial INTER_AREA."""
    split = cvact.read_split(root, "test")
    batches = _eval(split)
    assert [b["ground"].shape[0] for b in batches] == [4, 2]
    assert set(batches[0]) == {"ground", "aerial", "utm", "index"}
    ground = np.concatenate([b["ground"] for b in batches])
    aerial = np.concatenate([b["aerial"] for b in batches])
    utm = np.concatenate([b["utm"] for b in batches])
    assert utm.dtype == np.float32
    np.testing.assert_array_equal(utm, fixtures.cvact_utm(N_PLACES).astype(np.float32))
    for i in range(N_PLACES):
        np.testing.assert_array_equal(
            ground[i], fixtures.expected(split.ground_paths[i], fixtures.GROUND_OUT, rows=(8, 24))
        )
        np.testing.assert_array_equal(
            aerial[i], fixtures.expected(split.aerial_paths[i], fixtures.AERIAL_OUT)
        )


def test_the_tensorflow_decoder_cuts_raw_panoramas_too(root):
    split = cvact.read_split(root, "test")
    batches = list(data.make_eval_dataset(split, 4, fixtures.GROUND_OUT, fixtures.AERIAL_OUT, decoder="tensorflow"))
    ground = np.concatenate([b["ground"] for b in batches]).astype(np.int32)
    for i in range(N_PLACES):
        expected = fixtures.expected(split.ground_paths[i], fixtures.GROUND_OUT, rows=(8, 24)).astype(np.int32)
        assert np.abs(ground[i] - expected).max() <= 1


def test_pre_cut_images_are_used_as_they_are(tmp_path):
    root = str(tmp_path)
    fixtures.write_cvact(
        root, 3, val=[1, 2, 3], ground_raw=fixtures.GROUND_OUT,
        aerial_raw=fixtures.AERIAL_OUT, extension=".jpg",
    )
    split = cvact.read_split(root, "val")
    assert split.ground_paths[0].endswith("pano0000xyz_grdView.jpg")
    (batch,) = _eval(split)
    for i in range(3):
        for key, path in (("ground", split.ground_paths[i]), ("aerial", split.aerial_paths[i])):
            np.testing.assert_array_equal(batch[key][i], cv2.imread(path))


def test_png_is_preferred_when_both_exist(root):
    pano_id = "pano0001xyz"
    fixtures.write_image(
        fixtures.cvact_ground_path(root, pano_id, ".jpg"), fixtures.make_image(32, 64, 99)
    )
    split = cvact.read_split(root, "train")
    assert split.ground_paths[0] == fixtures.cvact_ground_path(root, pano_id, ".png")


def test_train_batches_carry_utm_and_squared_distances(root):
    split = cvact.read_split(root, "train")
    batches = list(
        data.make_train_dataset(split, 3, fixtures.GROUND_OUT, fixtures.AERIAL_OUT, seed=0)
    )
    assert len(batches) == 1
    (batch,) = batches
    assert set(batch) == {"ground", "aerial", "utm", "distance_sq"}
    assert batch["utm"].shape == (3, 2) and batch["utm"].dtype == "float32"
    assert batch["distance_sq"].shape == (3, 3) and batch["distance_sq"].dtype == "float32"
    grounds = {
        i: fixtures.expected(split.ground_paths[i], fixtures.GROUND_OUT, rows=(8, 24))
        for i in range(len(split))
    }
    rows = [
        next(i for i in grounds if np.array_equal(grounds[i], g)) for g in batch["ground"].numpy()
    ]
    utm = split.utm[rows]
    np.testing.assert_array_equal(batch["utm"], utm.astype(np.float32))
    # Places are 10 m apart along x: squared distances 100 * k^2, exact despite 5e5 m eastings.
    expected = ((utm[:, None] - utm[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(batch["distance_sq"], expected.astype(np.float32))
    same_place = batch["distance_sq"].numpy() < cvact.SAME_PLACE_RADIUS_M**2
    np.testing.assert_array_equal(same_place, np.abs(np.subtract.outer(utm[:, 0], utm[:, 0])) < 25)


def test_pano_ids_as_a_cell_array(tmp_path):
    root = str(tmp_path)
    fixtures.write_cvact(root, 3, test=[3, 1])
    mat = _mat(root)
    ids = np.empty((3, 1), dtype=object)
    ids[:, 0] = [str(i) for i in mat["panoIds"]]
    scipy.io.savemat(os.path.join(root, "ACT_data.mat"), {**mat, "panoIds": ids})
    assert isinstance(_mat(root)["panoIds"][0, 0], np.ndarray)
    split = cvact.read_split(root, "test")
    assert split.ground_paths == (
        fixtures.cvact_ground_path(root, "pano0002xyz"),
        fixtures.cvact_ground_path(root, "pano0000xyz"),
    )


def test_mat_without_expected_fields_reports_all(root):
    mat = _mat(root)
    del mat["panoIds"], mat["valSet"]
    scipy.io.savemat(os.path.join(root, "ACT_data.mat"), mat)
    with pytest.raises(data.DatasetError) as error:
        cvact.read_split(root, "val")
    mat_path = os.path.join(root, "ACT_data.mat")
    assert error.value.problems == [
        f"{mat_path}: no field 'panoIds'",
        f"{mat_path}: no field 'valSet' (split 'val')",
    ]
    assert f"CVACT split 'val' of {mat_path}: 2 problem(s):" in str(error.value)


def test_struct_without_index_field(root):
    mat = _mat(root)
    mat["valSetAll"] = {"otherInd": np.ones((2, 1))}
    scipy.io.savemat(os.path.join(root, "ACT_data.mat"), mat)
    with pytest.raises(data.DatasetError) as error:
        cvact.read_split(root, "test")
    assert "'valSetAll' has no field 'valInd' (split 'test')" in str(error.value)


def test_indices_out_of_range_and_bad_utm(root):
    mat = _mat(root)
    mat["trainSet"] = {"trainInd": np.array([[1.0], [0.0], [7.0]])}
    mat["utm"] = mat["utm"][:5]
    scipy.io.savemat(os.path.join(root, "ACT_data.mat"), mat)
    with pytest.raises(data.DatasetError) as error:
        cvact.read_split(root, "train")
    message = str(error.value)
    assert "'utm' has shape (5, 2), expected (6, 2)" in message
    assert "trainSet.trainInd row 2 is 0, outside 1..6" in message
    assert "trainSet.trainInd row 3 is 7, outside 1..6" in message
    assert len(error.value.problems) == 3


def test_empty_split(root):
    mat = _mat(root)
    mat["valSet"] = {"valInd": np.zeros((0, 1))}
    scipy.io.savemat(os.path.join(root, "ACT_data.mat"), mat)
    with pytest.raises(data.DatasetError, match="valSet.valInd is empty \\(no pairs\\)"):
        cvact.read_split(root, "val")


def test_missing_or_unreadable_mat(tmp_path):
    root = str(tmp_path)
    with pytest.raises(data.DatasetError, match="ACT_data.mat: the file does not exist"):
        cvact.read_split(root, "train")
    open(os.path.join(root, "ACT_data.mat"), "w").write("not a mat file")
    with pytest.raises(data.DatasetError, match="ACT_data.mat: cannot load it as a .mat file"):
        cvact.read_split(root, "train")
    with pytest.raises(ValueError, match="split must be one of"):
        cvact.read_split(root, "validation")


def test_missing_images_reported_with_row_and_pano_id(root):
    os.remove(fixtures.cvact_ground_path(root, "pano0003xyz"))
    os.remove(fixtures.cvact_aerial_path(root, "pano0005xyz"))
    with pytest.raises(data.DatasetError) as error:
        cvact.read_split(root, "train")
    mat_path = os.path.join(root, "ACT_data.mat")
    assert error.value.problems == [
        f"{mat_path} trainSet.trainInd row 2 (panoId pano0003xyz): no ground image "
        f"{root}/streetview/pano0003xyz_grdView.png or .jpg",
        f"{mat_path} trainSet.trainInd row 3 (panoId pano0005xyz): no aerial image "
        f"{root}/satview_polish/pano0005xyz_satView_polish.png or .jpg",
    ]


def test_wrong_size_panorama_is_an_evaluation_error(root):
    path = fixtures.cvact_ground_path(root, "pano0002xyz")
    fixtures.write_image(path, fixtures.make_image(30, 40, seed=1))
    split = cvact.read_split(root, "test")
    with pytest.raises(data.DatasetError) as error, data.dataset_errors():
        _eval(split)
    assert str(error.value) == (
        f"bad image in evaluation: {split.sources[2]}: {path} has size 30x40, expected a raw "
        "panorama (width = 2 x height, e.g. 832x1664) or one cut to its middle half "
        "(e.g. 112x616)"
    )
