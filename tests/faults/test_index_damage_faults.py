"""Damaged index files: a truncated ``search.faiss``, chunk or manifest.

``cvft-localize`` on a damaged index ends with status 2 and one line naming the file and how to
repair it; ``cvft-index`` run again on the map finds the damaged chunk (its size or SHA-256 is
not the manifest's), embeds it again and rebuilds ``search.faiss``, byte for byte what the
undamaged index holds. Each case breaks a copy of the shared index, never the index itself.
"""

import os

import pytest

from tests.faults.harness import assert_exit, digests, run, truncate
from tests.faults.test_localize_faults import built, index_args  # noqa: F401 - the shared index fixture
from tests.faults.worlds import copy_tree

pytestmark = pytest.mark.large
CHUNK = os.path.join("chunks", "map-000-000000.npz")


def localize(built, index_dir, out):  # noqa: F811
    return run("cvft-localize", f"--index={index_dir}", f"--image_dir={built / 'queries'}", f"--out={out}")


def reindex(built, index_dir):  # noqa: F811
    return run("cvft-index", *index_args(built / "run", built / "map.png", index_dir, "--stride_m=10"))


def test_a_truncated_search_index_is_named_and_a_rerun_rebuilds_it(built, tmp_path):  # noqa: F811
    index_dir = copy_tree(built / "index", tmp_path / "index")
    truncate(index_dir / "search.faiss")
    result = localize(built, index_dir, tmp_path / "out")
    assert_exit(result, 2, f"error: the search index {index_dir / 'search.faiss'} is damaged (FAISS cannot read it: ",
                f"run cvft-index again on any map of the index with --out={index_dir} to rebuild it")  # fmt: skip
    assert_exit(reindex(built, index_dir), 0)
    assert digests(index_dir) == digests(built / "index")
    assert_exit(localize(built, index_dir, tmp_path / "out"), 0)


def test_a_truncated_chunk_is_embedded_again_by_a_rerun(built, tmp_path):  # noqa: F811
    index_dir = copy_tree(built / "index", tmp_path / "index")
    whole = os.path.getsize(index_dir / CHUNK)
    truncate(index_dir / CHUNK)
    result = reindex(built, index_dir)
    assert_exit(result, 0, f"The chunk {index_dir / CHUNK} is damaged (300 bytes, the manifest records {whole}); "
                "embedding it again")  # fmt: skip
    assert "embedded 117 in" in result.stdout
    assert digests(index_dir) == digests(built / "index")


def test_localizing_in_an_index_with_a_truncated_chunk_names_the_chunk(built, tmp_path):  # noqa: F811
    index_dir = copy_tree(built / "index", tmp_path / "index")
    whole = os.path.getsize(index_dir / CHUNK)
    truncate(index_dir / CHUNK)
    result = localize(built, index_dir, tmp_path / "out")
    assert_exit(result, 2, f"error: the index chunk {index_dir / CHUNK} is damaged (300 bytes, the manifest records "
                f"{whole}): run cvft-index again on its map {built / 'map.png'} with --out={index_dir} "
                "to embed it again")  # fmt: skip


def test_a_truncated_manifest_is_named(built, tmp_path):  # noqa: F811
    index_dir = copy_tree(built / "index", tmp_path / "index")
    truncate(index_dir / "manifest.json", 100)
    result = localize(built, index_dir, tmp_path / "out")
    assert_exit(result, 2, f"error: {index_dir / 'manifest.json'} is not a readable index manifest (",
                "build the index again with cvft-index into a new directory")  # fmt: skip
