"""Output files are written whole or not at all; output directories are checked up front."""

import os

import pytest

from cvft_tf.output_dirs import OutputDirectoryError, atomic_path, make_output_directory


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


def test_a_file_in_the_way_of_an_output_directory(tmp_path):
    blocker = tmp_path / "out"
    blocker.write_text("keep")
    with pytest.raises(OutputDirectoryError, match="it is a file, not a directory"):
        make_output_directory(str(blocker))
    assert make_output_directory(str(tmp_path / "new" / "dir")) == str(tmp_path / "new" / "dir")
