"""Output files are written whole or not at all; output directories are checked up front."""

import os

import pytest

import json

from cvft_tf.output_dirs import OutputDirectoryError, atomic_path, make_output_directory, write_json_atomic


def test_a_finished_write_replaces_the_file_and_a_failed_one_leaves_it(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(path) as partial:
        with open(partial, "w") as handle:
            handle.write("half")
        assert path.read_text() == "old"
        raise RuntimeError("killed")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["metrics.json"]
    with atomic_path(path) as partial, open(partial, "w") as handle:
        handle.write("new")
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["metrics.json"]


def test_two_writers_of_one_file_never_share_a_temporary_name(tmp_path):
    path = tmp_path / "epoch-0002.keras"
    with atomic_path(path) as first, atomic_path(path) as second:
        assert first != second and os.path.dirname(first) == str(tmp_path)
        assert os.path.basename(first).startswith(f".partial-{os.getpid()}-") and first.endswith(".keras")
        for partial in (first, second):
            with open(partial, "w") as handle:
                handle.write(os.path.basename(partial))
    assert os.listdir(tmp_path) == ["epoch-0002.keras"]


def test_json_is_written_whole_with_the_keys_as_asked(tmp_path):
    write_json_atomic({"b": 1, "a": [2]}, tmp_path / "manifest.json")
    write_json_atomic({"b": 1, "a": [2]}, tmp_path / "state.json", sort_keys=True)
    assert (tmp_path / "manifest.json").read_text() == json.dumps({"b": 1, "a": [2]}, indent=2)
    assert (tmp_path / "state.json").read_text() == json.dumps({"a": [2], "b": 1}, indent=2)
    assert sorted(os.listdir(tmp_path)) == ["manifest.json", "state.json"]


def test_a_file_in_the_way_of_an_output_directory(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("keep")
    with pytest.raises(OutputDirectoryError, match="it is a file, not a directory"):
        make_output_directory(str(blocker))
    assert make_output_directory(str(tmp_path / "new" / "dir")) == str(tmp_path / "new" / "dir")
