"""The benchmark layouts (Pittsburgh .mat, MSLS csv, SALAD's npy lists) and the radius positives."""

import os

import numpy as np
import pytest
import scipy.io

from cvft_tf.data.msls import read_msls
from cvft_tf.data.pittsburgh import read_pittsburgh
from cvft_tf.data.place_sets import PlaceSetError, radius_positives
from cvft_tf.data.salad_lists import read_salad_lists
from tests.data.place_fixtures import (
    MSLS_POSITIVES,
    MSLS_QUERIES,
    PITTSBURGH_DATABASE,
    PITTSBURGH_POSITIVES,
    PITTSBURGH_QUERIES,
    write_msls,
    write_pittsburgh,
    write_salad_lists,
)


def brute_force_positives(query_utm, database_utm, radius):
    """Every (query, database) distance with numpy, then ``<= radius``."""
    distance = np.sqrt(((query_utm[:, None, :] - database_utm[None, :, :]) ** 2).sum(axis=-1))
    return [np.flatnonzero(row <= radius) for row in distance]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_radius_positives_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    database = rng.uniform(0, 200, size=(300, 2)) + [584_000.0, 4_477_000.0]
    query = rng.uniform(0, 400, size=(40, 2)) + [584_000.0, 4_477_000.0]
    got = radius_positives(query, database, 25.0)
    expected = brute_force_positives(query, database, 25.0)
    assert [g.tolist() for g in got] == [e.tolist() for e in expected]
    assert any(g.size == 0 for g in got) and max(g.size for g in got) > 3


def test_radius_positives_include_the_boundary():
    database = np.array([[0.0, 0.0], [15.0, 20.0], [15.0, 20.001], [-25.0, 0.0]])
    got = radius_positives(np.zeros((1, 2)), database, 25.0)
    assert got[0].tolist() == [0, 1, 3]
    assert radius_positives(np.zeros((2, 2)), np.zeros((0, 2)), 25.0)[1].tolist() == []


def test_pittsburgh_reads_the_released_struct(tmp_path):
    mat = write_pittsburgh(str(tmp_path))
    place_set = read_pittsburgh(mat, str(tmp_path))
    assert place_set.layout == "pittsburgh"
    assert place_set.database_names == list(PITTSBURGH_DATABASE)
    assert place_set.query_names == list(PITTSBURGH_QUERIES)
    assert place_set.query_paths[0] == os.path.join(str(tmp_path), "queries_real", "000/000100_pitch1_yaw1.png")
    assert [p.tolist() for p in place_set.positives] == PITTSBURGH_POSITIVES
    assert place_set.queries_without_positives == 1 and place_set.excluded_queries == 0
    assert [p.tolist() for p in read_pittsburgh(mat, str(tmp_path), positive_radius=10.0).positives] == [[0, 1], [], []]


def test_pittsburgh_utm_against_brute_force(tmp_path):
    rng = np.random.default_rng(5)
    database_utm, query_utm = rng.uniform(0, 120, size=(2, 50)), rng.uniform(0, 120, size=(2, 9))
    struct = {
        "whichSet": "val",
        "dbImage": np.array([f"{i:03d}.jpg" for i in range(50)], dtype=object).reshape(-1, 1),
        "utmDb": database_utm,
        "qImage": np.array([f"q{i}.jpg" for i in range(9)], dtype=object).reshape(-1, 1),
        "utmQ": query_utm,
        "posDistThr": 25,
    }
    scipy.io.savemat(tmp_path / "converted.mat", {"dbStruct": struct})
    place_set = read_pittsburgh(str(tmp_path / "converted.mat"), str(tmp_path))
    expected = brute_force_positives(query_utm.T, database_utm.T, 25.0)
    assert [p.tolist() for p in place_set.positives] == [e.tolist() for e in expected]


def test_pittsburgh_errors_name_the_file(tmp_path):
    mat = write_pittsburgh(str(tmp_path))
    bad = tmp_path / "bad.mat"
    for variables, message in (
        ({"other": 1.0}, r"has no dbStruct struct \(variables: \['other'\]\)"),
        ({"dbStruct": {"utmDb": np.zeros((2, 2))}}, "dbStruct has no field dbImageFns or dbImage"),
        (
            {"dbStruct": {**_struct(mat), "utmDb": np.zeros((3, 6))}},
            r"dbStruct.utmDb has shape \(3, 6\), expected 2 x 6",
        ),
        ({"dbStruct": {**_struct(mat), "numQueries": 4.0}}, "dbStruct.numQueries is 4, but it lists 3 images"),
    ):
        scipy.io.savemat(bad, variables)
        with pytest.raises(PlaceSetError, match=f"{bad}: {message}" if "dbStruct." in message else message):
            read_pittsburgh(str(bad), str(tmp_path))
    bad.write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    with pytest.raises(PlaceSetError, match=f"{bad} is not a readable MATLAB"):
        read_pittsburgh(str(bad), str(tmp_path))
    with pytest.raises(FileNotFoundError, match="missing.mat"):
        read_pittsburgh(str(tmp_path / "missing.mat"), str(tmp_path))


def _struct(mat):
    """The fields of a written dbStruct, as a dict to change and write again."""
    struct = scipy.io.loadmat(mat, squeeze_me=True)["dbStruct"]
    fields = {name: struct[name].item() for name in struct.dtype.names}
    fields["dbImageFns"] = np.array(list(fields["dbImageFns"]), dtype=object).reshape(-1, 1)
    fields["qImageFns"] = np.array(list(fields["qImageFns"]), dtype=object).reshape(-1, 1)
    return fields


def test_msls_filters_panoramas_subtask_and_queries_without_positives(tmp_path):
    write_msls(str(tmp_path))
    place_set = read_msls(str(tmp_path))
    assert place_set.layout == "msls"
    assert place_set.query_names == MSLS_QUERIES
    assert place_set.database_names == [
        "train_val/cph/database/images/d0.jpg",
        "train_val/cph/database/images/d1.jpg",
        "train_val/cph/database/images/d3.jpg",
        "train_val/sf/database/images/e0.jpg",
        "train_val/sf/database/images/e1.jpg",
    ]
    assert [p.tolist() for p in place_set.positives] == MSLS_POSITIVES
    assert place_set.excluded_queries == 1 and place_set.queries_without_positives == 0
    assert all(os.path.isfile(path) for path in place_set.query_paths + place_set.database_paths)
    sf_only = read_msls(str(tmp_path), cities=("sf",), positive_radius=30.0)
    assert [p.tolist() for p in sf_only.positives] == [[0, 1]]


def test_msls_errors_name_the_file(tmp_path):
    write_msls(str(tmp_path))
    raw = tmp_path / "train_val" / "cph" / "query" / "raw.csv"
    text = raw.read_text()
    raw.write_text(text.replace(",False\n", ",maybe\n", 1))
    with pytest.raises(PlaceSetError, match=f"{raw} line 2: pano is 'maybe', expected True or False"):
        read_msls(str(tmp_path))
    raw.write_text(text.replace("q1", "qX"))
    with pytest.raises(PlaceSetError, match=f"{raw} line 3: key 'qX', but postprocessed.csv has 'q1'"):
        read_msls(str(tmp_path))
    raw.write_text("\n".join(text.splitlines()[:-1]) + "\n")
    with pytest.raises(PlaceSetError, match=f"{raw} has 3 rows, but postprocessed.csv has 4"):
        read_msls(str(tmp_path))
    raw.write_text(text.replace("pano", "panorama"))
    with pytest.raises(PlaceSetError, match=f"{raw} has no column pano"):
        read_msls(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="train_val/athens/query"):
        read_msls(str(tmp_path), cities=("athens",))


def test_salad_lists_msls_and_pittsburgh(tmp_path):
    names = [f"train_val/cph/query/images/q{i}.jpg" for i in range(4)]
    database = [f"train_val/cph/database/images/d{i}.jpg" for i in range(5)]
    write_salad_lists(str(tmp_path / "msls_val" / "msls_val"), names, database, [[4, 0], [2]], query_index=[1, 3])
    place_set = read_salad_lists(str(tmp_path / "msls_val" / "msls_val"), "/data/msls", allow_pickle=True)
    assert place_set.layout == "salad_npy" and place_set.excluded_queries == 2
    assert place_set.query_names == [names[1], names[3]] and place_set.database_names == database
    assert place_set.query_paths[0] == os.path.join("/data/msls", names[1])
    assert [p.tolist() for p in place_set.positives] == [[4, 0], [2]]
    write_salad_lists(str(tmp_path / "pitts" / "pitts30k_test"), names, database, [[0], [], [1, 2], [3]])
    place_set = read_salad_lists(str(tmp_path / "pitts" / "pitts30k_test"), "/data/pitts", allow_pickle=True)
    assert place_set.query_names == names and place_set.queries_without_positives == 1


def test_salad_lists_errors_name_the_file(tmp_path):
    prefix = str(tmp_path / "msls_val")
    write_salad_lists(prefix, ["q0.jpg", "q1.jpg"], ["d0.jpg"], [[0]], query_index=[1])
    np.save(f"{prefix}_qIdx.npy", np.array([2]))
    with pytest.raises(PlaceSetError, match=r"msls_val_qIdx.npy has query indices outside \[0, 2\)"):
        read_salad_lists(prefix, str(tmp_path), allow_pickle=True)
    np.save(f"{prefix}_qIdx.npy", np.array([0, 1]))
    with pytest.raises(PlaceSetError, match="msls_val_pIdx.npy has 1 rows for 2 query images"):
        read_salad_lists(prefix, str(tmp_path), allow_pickle=True)
    np.save(f"{prefix}_dbImages.npy", np.array([1, 2]))
    with pytest.raises(PlaceSetError, match="msls_val_dbImages.npy must be a non-empty vector of image names"):
        read_salad_lists(prefix, str(tmp_path), allow_pickle=True)
    os.remove(f"{prefix}_pIdx.npy")
    np.save(f"{prefix}_dbImages.npy", np.array(["d0.jpg"]))
    with pytest.raises(FileNotFoundError, match="no ground truth list: neither .*msls_val_pIdx.npy"):
        read_salad_lists(prefix, str(tmp_path), allow_pickle=True)
