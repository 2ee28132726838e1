"""Localizing queries: matches, their positions, errors in metres and the summary table."""

import os

import cv2
import numpy as np
import pytest

from cvft_tf.localization import index, localize
from cvft_tf.localization.errors import QueryError
from cvft_tf.localization.geomap import open_map, to_lat_lon
from cvft_tf.localization.heatmap import heatmap_figure
from tests.localization.fixtures import fake_encoders, write_png_map

pytest.importorskip("faiss")


def test_a_window_cut_from_the_map_is_found_where_it_was_cut(tmp_path):
    map_path = write_png_map(str(tmp_path), size=(60, 80), metres_per_pixel=2.0)
    encoders = fake_encoders(ground_size=(16, 16))
    index.build_index(open_map(map_path), encoders, str(tmp_path / "index"), 40.0, 10.0, progress=False)
    image = cv2.imread(map_path)
    cv2.imwrite(str(tmp_path / "query.png"), image[10:30, 25:45])  # window (row 2, col 5)
    truth_csv = tmp_path / "truth.csv"
    truth_csv.write_text("image,x,y\nquery.png,300073.0,4999960.0\n")
    loaded = localize.open_index(str(tmp_path / "index"))
    truth = localize.read_truth(str(truth_csv))
    records, descriptors = localize.localize(loaded, encoders, [str(tmp_path / "query.png")], 3, truth)
    (record,) = records
    best = record["matches"][0]
    # The window's centre: pixel (20, 35), 70 m east and 40 m south of the corner.
    assert (best["x"], best["y"]) == (300070.0, 4999960.0) and best["score"] == pytest.approx(1.0, abs=1e-5)
    assert (best["lat"], best["lon"]) == pytest.approx(
        tuple(float(v[0]) for v in to_lat_lon(loaded.manifest["crs"], [300070.0], [4999960.0]))
    )
    assert record["error_m"] == pytest.approx(3.0) and record["best_error_m"] == pytest.approx(3.0)
    assert [m["rank"] for m in record["matches"]] == [1, 2, 3]
    assert descriptors.shape == (1, 48)
    scores = loaded.descriptors() @ descriptors[0]
    figure = heatmap_figure(loaded.entries[0], scores, open_map(map_path).overview(64)[..., ::-1],
                            [(m["x"], m["y"]) for m in record["matches"]], (300073.0, 4999960.0), "query")  # fmt: skip
    assert figure.dtype == np.uint8 and figure.shape[2] == 3 and figure.std() > 10


def test_the_error_summary_by_hand():
    records = [
        localize.query_record("a", [{"x": 10.0, "y": 0.0}, {"x": 0.0, "y": 3.0}], truth=(0.0, 0.0)),
        localize.query_record("b", [{"x": 0.0, "y": 60.0}, {"x": 0.0, "y": 40.0}], truth=(0.0, 0.0)),
        localize.query_record("c", [{"x": 300.0, "y": 400.0}, {"x": 90.0, "y": 0.0}], truth=(0.0, 0.0)),
        localize.query_record("d", [{"x": 1.0, "y": 1.0}]),
    ]
    summary = localize.error_summary(records, top_ks=(1, 2))
    # Top-1 errors 10, 60, 500 m; nearest of the top 2: 3, 40, 90 m.
    assert summary["queries"] == 3
    assert summary["median_m"] == pytest.approx(60.0)
    assert summary["p90_m"] == pytest.approx(60.0 + 0.8 * 440.0)
    assert summary["within"]["top1"] == pytest.approx({"25m": 100 / 3, "50m": 100 / 3, "100m": 200 / 3})
    assert summary["within"]["top2"] == pytest.approx({"25m": 100 / 3, "50m": 200 / 3, "100m": 100.0})
    table = localize.summary_table(summary)
    assert "median 60.0 m" in table and "top2" in table and "100.0%" in table
    assert localize.error_summary(records[3:]) is None


def test_an_empty_query_folder_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("no image here")
    with pytest.raises(QueryError, match=f"the query folder {tmp_path} holds no image"):
        localize.query_paths(image_dir=str(tmp_path))
    with pytest.raises(QueryError, match="not found: .*missing.jpg"):
        localize.query_paths([str(tmp_path / "missing.jpg")])


def test_a_truncated_query_is_named(tmp_path):
    path = tmp_path / "query.jpg"
    cv2.imwrite(str(path), np.full((16, 88, 3), 90, np.uint8))
    with open(path, "r+b") as handle:
        handle.truncate(100)
    with pytest.raises(QueryError, match="query.jpg is truncated"):
        localize.read_queries([str(path)], (8, 32))


def test_a_malformed_truth_line_is_named(tmp_path):
    path = tmp_path / "truth.csv"
    path.write_text("image,x,y\na.jpg,1,2\nb.jpg,east,2\n")
    with pytest.raises(QueryError, match=r"truth.csv:3: expected columns image,x,y"):
        localize.read_truth(str(path))


def test_csv_rows_flatten_nested_records(tmp_path):
    rows = [{"image": "a", "truth": {"x": 1.0, "y": 2.0}, "matches": [1]}, {"image": "b", "heading_deg": 90.0}]
    localize.write_csv(rows, str(tmp_path / "rows.csv"))
    lines = (tmp_path / "rows.csv").read_text().splitlines()
    assert lines == ["image,truth_x,truth_y,heading_deg", "a,1.0,2.0,", "b,,,90.0"]
    assert not any(name.startswith(".partial") for name in os.listdir(tmp_path))


def test_spread_out_matches_are_distinct_places():
    positions = np.array([[0.0, 0.0], [5.0, 0.0], [30.0, 0.0], [10.0, 20.0], [60.0, 0.0]])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    ids = np.array([0, 1, 2, 3, 4])
    kept_scores, kept = localize.spread_out(scores, ids, positions, 3, 25.0)
    # 1 is 5 m from 0; 3 is 22.4 m from 0; 2 (30 m) and 4 are kept.
    assert kept.tolist() == [0, 2, 4] and kept_scores.tolist() == pytest.approx([0.9, 0.7, 0.5])
    assert localize.spread_out(scores, ids, positions, 2, 0.0)[1].tolist() == [0, 1]
    assert localize.spread_out(scores, np.array([0, 1, -1, -1, -1]), positions, 3, 25.0)[1].tolist() == [0]


def test_a_per_query_estimate_reaches_every_csv_row():
    record = localize.query_record(
        "q.jpg", [{"rank": 1, "x": 3.0, "y": 4.0}, {"rank": 2, "x": 0.0, "y": 1.0}], (0.0, 0.0)
    )
    record["heading_deg"] = 87.5
    rows = localize.match_rows(record)
    assert [row["rank"] for row in rows] == [1, 2]
    assert all(row["heading_deg"] == 87.5 and row["image"] == "q.jpg" and row["error_m"] == 5.0 for row in rows)
    assert "distances_m" not in rows[0] and "truth" not in rows[0]


def test_a_map_matcher_model_is_searched_by_its_matcher_and_gives_headings(tmp_path):
    """dsm: the index holds flattened polar maps; every window is scored by the azimuth
    correlation (not FAISS's inner product), and each match says where the query looks."""
    from cvft_tf.localization.encoders import from_model
    from cvft_tf.models.cross_view import CrossViewModel

    model = CrossViewModel("dsm", ground_size=(32, 32), aerial_size=(32, 32), polar_size=(32, 128))
    encoders = from_model(model, {"workdir": str(tmp_path)})
    assert encoders.aerial_map_shape == (2, 8, 16) and encoders.dimension == 2 * 8 * 16
    map_path = write_png_map(str(tmp_path), size=(60, 80), metres_per_pixel=2.0)
    index.build_index(open_map(map_path), encoders, str(tmp_path / "index"), 40.0, 10.0, progress=False)
    query = np.random.default_rng(3).integers(0, 256, (48, 64, 3)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "query.png"), query)
    loaded = localize.open_index(str(tmp_path / "index"))
    (record,), descriptors = localize.localize(loaded, encoders, [str(tmp_path / "query.png")], 3)
    windows = loaded.descriptors()
    similarity, heading = model.matcher.match(
        encoders.ground_maps(descriptors), windows.reshape(-1, *encoders.aerial_map_shape)
    )
    best = np.argsort(-similarity.numpy()[0], kind="stable")[:3]
    assert [m["score"] for m in record["matches"]] == pytest.approx(similarity.numpy()[0, best].tolist(), abs=1e-5)
    assert [m["heading_deg"] for m in record["matches"]] == pytest.approx(heading.numpy()[0, best].tolist(), abs=1e-3)
    assert record["heading_deg"] == record["matches"][0]["heading_deg"]
    assert descriptors.shape == (1, 2 * 2 * 16)  # a 90-degree map: no inner product with the 2x8 windows
