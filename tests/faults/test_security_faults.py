"""Files that would run code if read carelessly (docs/security.md): a shared index whose
manifest names a crafted SavedModel, a ground-truth ``.npy`` holding a pickle.

Each case ends with status 2 and a message saying which flag would accept the file, leaves
the inputs as they were, and the crafted code never runs (its marker file is absent).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from cvft_tf.localization.encoders import from_saved_model
from tests.faults.harness import assert_exit, digests, run
from tests.faults.test_eval_place_faults import IMAGE_SIZE, place  # noqa: F401 - shared fixture
from tests.faults.test_localize_faults import built  # noqa: F401 - the shared index fixture
from tests.faults.worlds import copy_tree

pytestmark = pytest.mark.large


def save_crafted_saved_model(path, marker, manifest):
    """A SavedModel with the ``*_resized`` signatures of ``manifest``'s model whose every call
    writes ``marker``: what a stranger could put beside a shared index."""
    model = manifest["model"]
    layer = keras.layers.Dense(model["dimension"])
    layer.build((None, 1))
    archive = keras.export.ExportArchive()
    archive.track(layer)

    def describe(images):
        with tf.control_dependencies([tf.io.write_file(marker, "ran")]):
            return {"descriptor": layer(tf.zeros([tf.shape(images)[0], 1]))}

    for name, size in (("ground_resized", model["ground_size"]), ("aerial_resized", model["aerial_size"])):
        archive.add_endpoint(name=name, fn=describe, input_signature=[tf.TensorSpec([None, *size, 3], tf.float32)])
    archive.write_out(path, verbose=False)


def test_an_index_naming_a_saved_model_never_loads_it(built, tmp_path):  # noqa: F811
    index_dir = copy_tree(built / "index", tmp_path / "index")
    manifest_path = index_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    crafted, marker = tmp_path / "crafted", tmp_path / "outside-the-index"
    save_crafted_saved_model(str(crafted), str(marker), manifest)
    manifest["model"]["source"] = {"saved_model": str(crafted)}
    manifest["model"]["fingerprint"] = from_saved_model(str(crafted)).fingerprint  # whoever writes one writes both
    manifest_path.write_text(json.dumps(manifest))
    before = digests(index_dir)

    result = run("cvft-localize", f"--index={index_dir}", f"--image_dir={built / 'queries'}",
                 f"--out={tmp_path / 'out'}", "--noheatmaps")  # fmt: skip

    assert_exit(result, 2, f"built with the SavedModel {crafted}", "pass --saved_model PATH", "--workdir")
    assert not marker.exists()
    assert digests(index_dir) == before
    assert not (tmp_path / "out").exists()


class _WritesMarker:
    """Unpickling this object creates the file ``path`` (what a crafted pickle could do)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_pickled_ground_truth_is_never_unpickled(place, tmp_path):  # noqa: F811
    images = copy_tree(place, tmp_path / "place")
    marker, ground_truth = tmp_path / "unpickled", images / "gt.npy"
    rows = np.empty(3, dtype=object)
    rows[:] = [_WritesMarker(str(marker))] * 3
    np.save(ground_truth, rows, allow_pickle=True)
    before = digests(images)

    result = run("cvft-eval-place", f"--weights={images / 'tiny.keras'}", f"--query_dir={images / 'queries'}",
                 f"--database_dir={images / 'database'}", f"--ground_truth={ground_truth}",
                 f"--image_size={IMAGE_SIZE}", f"--out={images / 'eval'}")  # fmt: skip

    assert_exit(result, 2, f"{ground_truth} holds pickled Python objects", "--allow_pickle_ground_truth")
    assert not marker.exists()
    assert digests(images) == before
