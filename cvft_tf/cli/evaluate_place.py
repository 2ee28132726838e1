"""``cvft-eval-place --weights FILE --layout L ... --out DIR``: R@1/5/10 of a place recognition model.

Embeds the query and database images of a benchmark with a DINOv2-SALAD
:class:`~cvft_tf.models.place_recognition.PlaceRecognitionModel`, retrieves the K nearest
database images of each query and prints R@1, R@5, R@10: a query is correct at K when one of
its K nearest database images is one of its positives (NetVLAD, MSLS and SALAD's definition,
:mod:`cvft_tf.evaluation.place_recall`). See ``docs/place_evaluation.md``.

``--layout`` (the flags each one takes):

* ``lists`` (default): ``--query_dir``, ``--database_dir`` (image folders) and
  ``--ground_truth`` (``.json``, ``.csv`` or ``.npy`` positives: :mod:`cvft_tf.data.place_lists`);
* ``pittsburgh``: ``--mat`` (NetVLAD's ``pitts30k_test.mat``, ...) and ``--root`` (database
  images under it, queries under ``ROOT/queries_real``): :mod:`cvft_tf.data.pittsburgh`;
* ``msls``: ``--root`` (holding ``train_val/``) and ``--cities`` (default ``cph,sf``, MSLS-val):
  :mod:`cvft_tf.data.msls`;
* ``salad_npy``: ``--lists`` (a prefix such as ``datasets/msls_val/msls_val`` of SALAD's
  ``_dbImages.npy``, ``_qImages.npy``, ``_qIdx.npy``, ``_pIdx.npy`` / ``_gt.npy``) and ``--root``
  (the folder their paths are relative to): :mod:`cvft_tf.data.salad_lists`.

A ``.npy`` ground truth that is an object array (SALAD's ``_pIdx.npy`` / ``_gt.npy``) is a
pickle, which can run code when read: it is refused unless ``--allow_pickle_ground_truth``
is given (docs/security.md shows how to convert it once to a padded integer array).

``--positive_radius`` (metres; ``pittsburgh``: the file's ``posDistThr`` by default, ``msls``:
25) sets how far a positive may be.

Images are loaded on ``tf.data`` in parallel and prepared as the model's input format wants
(:mod:`cvft_tf.data.place_images`); an unreadable image stops the run with its name.

``--weights``: a ``.keras`` file (``model.save``; rebuilt at ``--image_size`` if it was saved
at another size: DINOv2's position embeddings are re-interpolated), or a ``.weights.h5``
file (``model.save_weights``) of the model built from ``--model_config``, a JSON file of
``PlaceRecognitionModel`` keyword arguments (``backbone_kwargs``, ``salad_kwargs``,
``input_format``; default DINOv2 ViT-B/14 + SALAD's defaults).

``--out DIR`` receives two files, both written in full under temporary names before either is
renamed into place (a failed run leaves an earlier result as it was):

* ``predictions.npz``: ``indices`` int64 ``[num_queries, top_k]`` (database indices, nearest
  first; ties: lower index first), ``distances`` float32 (squared L2), ``is_positive`` bool,
  ``query_names`` and ``database_names`` (the images, in the order the indices refer to);
* ``metrics.json``: ``layout``, ``recall@1``, ``recall@5``, ``recall@10`` (fractions in
  [0, 1]), ``num_queries``, ``num_database``, ``queries_without_positives`` (evaluated, each a
  miss) and ``excluded_queries`` (left out by the layout for having no positive).
"""

import json
import os
import tempfile
import zipfile

import keras
import numpy as np
from absl import app, flags, logging

from cvft_tf.cli.exits import exit_with_user_error, run_command
from cvft_tf.data.msls import POSITIVE_RADIUS_M, VAL_CITIES, read_msls
from cvft_tf.data.pipeline import FileIndex
from cvft_tf.data.pittsburgh import read_pittsburgh
from cvft_tf.data.place_images import checked_batches, place_image_dataset
from cvft_tf.data.place_lists import read_lists
from cvft_tf.data.place_sets import PlaceSetError
from cvft_tf.data.preprocess import ImageError
from cvft_tf.data.salad_lists import read_salad_lists
from cvft_tf.evaluation.place_recall import DEFAULT_CHUNK_SIZE, nearest_database, recall_at_k
from cvft_tf.evaluation.recall import REPORTED_KS
from cvft_tf.interop.imagenet import WeightsFileError
from cvft_tf.models.dinov2 import SALAD_TEST_SIZE
from cvft_tf.models.place_recognition import PlaceRecognitionModel
from cvft_tf.output_dirs import OutputDirectoryError, atomic_path, make_output_directory

LAYOUT_FLAGS = {
    "lists": (("query_dir", "database_dir", "ground_truth"), ()),
    "pittsburgh": (("mat", "root"), ("positive_radius",)),
    "msls": (("root",), ("cities", "positive_radius")),
    "salad_npy": (("lists", "root"), ()),
}
"""Layout -> (flags it needs, flags it may take)."""

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.npz"

DEFAULT_TOP_K = 25
"""Nearest database images saved per query (SALAD's ``eval.py`` searches 25)."""

_LAYOUT = flags.DEFINE_enum("layout", "lists", list(LAYOUT_FLAGS), "Benchmark layout (see --help).")
_WEIGHTS = flags.DEFINE_string("weights", None, "Model: .keras file, or .weights.h5 of --model_config's model.")
_MODEL_CONFIG = flags.DEFINE_string("model_config", None, "JSON of PlaceRecognitionModel kwargs (.weights.h5 only).")
_QUERY_DIR = flags.DEFINE_string("query_dir", None, "lists: folder of query images.")
_DATABASE_DIR = flags.DEFINE_string("database_dir", None, "lists: folder of database images.")
_GROUND_TRUTH = flags.DEFINE_string("ground_truth", None, "lists: positives per query, .json, .csv or .npy.")
_ALLOW_PICKLE = flags.DEFINE_bool(
    "allow_pickle_ground_truth", False,
    "lists, salad_npy: read a .npy ground truth that is an object array (a pickle: it can run code).",
)
_ROOT = flags.DEFINE_string("root", None, "pittsburgh, msls, salad_npy: dataset root the image names are under.")
_MAT = flags.DEFINE_string("mat", None, "pittsburgh: NetVLAD dbStruct file, e.g. pitts30k_test.mat.")
_CITIES = flags.DEFINE_list("cities", list(VAL_CITIES), "msls: cities to evaluate (MSLS-val: cph,sf).")
_LISTS = flags.DEFINE_string("lists", None, "salad_npy: list prefix, e.g. datasets/msls_val/msls_val.")
_POSITIVE_RADIUS = flags.DEFINE_float(
    "positive_radius", None, "pittsburgh, msls: positive radius in metres.", lower_bound=0.0
)
_IMAGE_SIZE = flags.DEFINE_list("image_size", [str(s) for s in SALAD_TEST_SIZE], "Network input H,W (or one side).")
_OUT = flags.DEFINE_string("out", None, "Output directory for predictions.npz and metrics.json.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Images per forward pass.", lower_bound=1)
_CHUNK_SIZE = flags.DEFINE_integer("chunk_size", DEFAULT_CHUNK_SIZE, "Queries per distance block.", lower_bound=1)
_TOP_K = flags.DEFINE_integer(
    "top_k", DEFAULT_TOP_K, "Nearest database images saved per query.", lower_bound=max(REPORTED_KS)
)
flags.mark_flags_as_required(["weights"])


class PlaceModelError(ValueError):
    """A ``--weights`` or ``--model_config`` that does not give a PlaceRecognitionModel."""


def read_place_set(
    layout,
    query_dir=None,
    database_dir=None,
    ground_truth=None,
    root=None,
    mat=None,
    cities=VAL_CITIES,
    lists=None,
    positive_radius=None,
    allow_pickle=False,
):
    """The :class:`~cvft_tf.data.place_sets.PlaceSet` of ``layout`` (module docstring);
    ``allow_pickle``: accept an object-array ``.npy`` ground truth (it can run code)."""
    if layout == "lists":
        return read_lists(query_dir, database_dir, ground_truth, allow_pickle)
    if layout == "pittsburgh":
        return read_pittsburgh(mat, root, positive_radius)
    if layout == "msls":
        return read_msls(root, tuple(cities), POSITIVE_RADIUS_M if positive_radius is None else positive_radius)
    if layout == "salad_npy":
        return read_salad_lists(lists, root, allow_pickle)
    raise ValueError(f"unknown layout {layout!r}; expected one of {list(LAYOUT_FLAGS)}")


def check_layout_flags(layout, present):
    """Raises ``app.UsageError`` unless the flags ``present`` (names) fit ``layout``."""
    needed, optional = LAYOUT_FLAGS[layout]
    missing = [f"--{name}" for name in needed if name not in present]
    if missing:
        raise app.UsageError(f"--layout={layout} needs {', '.join(missing)}")
    own = {name for needs, takes in LAYOUT_FLAGS.values() for name in needs + takes}
    stray = sorted(f"--{name}" for name in present & own if name not in needed + optional)
    if stray:
        raise app.UsageError(f"--layout={layout} does not take {', '.join(stray)}")


def load_place_model(weights, image_size, model_config=None):
    """The :class:`PlaceRecognitionModel` of ``weights`` at ``image_size`` (see module docstring).

    Raises:
        FileNotFoundError: ``weights`` or ``model_config`` is missing.
        PlaceModelError: ``weights`` is a directory, of another format or another model, or
            does not fit the model; or ``model_config`` does not describe a model.
        WeightsFileError: a ``.weights.h5`` that cannot be read.
    """
    _check_weights_path(weights)
    image_size = tuple(image_size)
    if weights.endswith(".keras"):
        model = _load_keras_file(weights)
        if model.image_size == image_size:
            return model
        resized = PlaceRecognitionModel.from_config({**model.get_config(), "image_size": list(image_size)})
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.weights.h5")
            model.save_weights(path)
            resized.load_weights(path)
        return resized
    kwargs = {} if model_config is None else read_model_config(model_config)
    source = f"--model_config {model_config}" if model_config else "the default model (no --model_config)"
    try:
        model = PlaceRecognitionModel(image_size=image_size, **kwargs)
    except (TypeError, ValueError) as error:
        raise PlaceModelError(f"{source} does not describe a PlaceRecognitionModel: {error}") from None
    try:
        model.load_weights(weights)
    except OSError as error:
        raise WeightsFileError(
            f"{weights} is not a readable Keras weights file (truncated or not HDF5): {error}"
        ) from None
    except ValueError as error:
        raise PlaceModelError(f"{weights} does not fit the model of {source}: {error}") from None
    return model


def _check_weights_path(weights):
    """Raises unless ``weights`` is an existing ``.keras`` or ``.weights.h5`` file."""
    if os.path.isdir(weights):
        kind = "a SavedModel directory" if os.path.isfile(os.path.join(weights, "saved_model.pb")) else "a directory"
        raise PlaceModelError(f"--weights {weights} is {kind}; give a .keras file or a .weights.h5 file")
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"weights file {weights!r} not found")
    if not weights.endswith((".keras", ".weights.h5")):
        raise PlaceModelError(f"--weights {weights} is neither a .keras nor a .weights.h5 file")


def _load_keras_file(path):
    """The PlaceRecognitionModel saved in ``.keras`` file ``path``, its class checked before loading."""
    try:
        with zipfile.ZipFile(path) as archive:
            class_name = json.loads(archive.read("config.json")).get("class_name")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as error:
        raise PlaceModelError(f"{path} is not a readable .keras archive (truncated or corrupt): {error}") from None
    if class_name != PlaceRecognitionModel.__name__:
        raise PlaceModelError(f"{path} holds a {class_name}, not a PlaceRecognitionModel")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (TypeError, ValueError, KeyError, AttributeError, OSError) as error:  # a config Keras cannot rebuild
        raise PlaceModelError(f"{path} holds a PlaceRecognitionModel that cannot be rebuilt: {error}") from None


def read_model_config(path):
    """The keyword arguments of ``PlaceRecognitionModel`` in JSON file ``path``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model config file {path!r} not found")
    try:
        with open(path, encoding="utf-8") as file:
            kwargs = json.load(file)
    except ValueError as error:
        raise PlaceModelError(f"--model_config {path} is not valid JSON ({error})") from None
    if not isinstance(kwargs, dict):
        raise PlaceModelError(f"--model_config {path} must hold a JSON object of PlaceRecognitionModel arguments")
    return kwargs


def embed_images(model, paths, batch_size):
    """Descriptors ``[len(paths), D]`` float32 of image files, in order (loaded on tf.data).

    Raises:
        ImageError: an image that cannot be read; the message names it.
    """
    dataset = place_image_dataset(paths, model.image_size, model.input_format, batch_size)
    progress = keras.utils.Progbar(len(paths), unit_name="image")
    descriptors = []
    for images in checked_batches(dataset):
        descriptors.append(np.asarray(model.predict_on_batch(images), np.float32))
        progress.add(len(images))
    return np.concatenate(descriptors)


def check_images_exist(paths, what):
    """Raises FileNotFoundError naming the missing images of ``paths`` (one listing per folder)."""
    index = FileIndex()
    missing = [path for path in paths if not index.exists(path)]
    if missing:
        raise FileNotFoundError(f"{len(missing)} of the {len(paths)} {what} images are missing, e.g. {missing[:3]}")


def write_outputs(out_dir, place_set, indices, distances, metrics):
    """Writes ``predictions.npz`` and ``metrics.json`` (module docstring) into ``out_dir``.

    Both are written in full under temporary names, then renamed, predictions first: an error
    while writing either leaves both earlier files as they were.
    """
    is_positive = np.stack([np.isin(row, p) for row, p in zip(indices, place_set.positives)])
    with (
        atomic_path(os.path.join(out_dir, METRICS_FILE)) as metrics_partial,
        atomic_path(os.path.join(out_dir, PREDICTIONS_FILE)) as predictions_partial,
    ):
        with open(predictions_partial, "wb") as file:
            np.savez(
                file,
                indices=indices,
                distances=distances.astype(np.float32),
                is_positive=is_positive,
                query_names=np.asarray(place_set.query_names, str),
                database_names=np.asarray(place_set.database_names, str),
            )
        with open(metrics_partial, "w") as file:
            json.dump(metrics, file, indent=2, sort_keys=True)


def evaluate(
    weights,
    place_set,
    image_size=SALAD_TEST_SIZE,
    out_dir=None,
    model_config=None,
    batch_size=16,
    chunk_size=DEFAULT_CHUNK_SIZE,
    top_k=DEFAULT_TOP_K,
):
    """Embeds ``place_set``, scores R@1/5/10 and writes ``out_dir``'s files; returns the metrics.

    The images' existence, the model and ``out_dir`` are checked before anything is embedded.
    """
    query_paths, database_paths = place_set.query_paths, place_set.database_paths
    check_images_exist(query_paths, "query")
    check_images_exist(database_paths, "database")
    model = load_place_model(weights, image_size, model_config)
    if out_dir is not None:
        make_output_directory(out_dir, "--out directory")
    logging.info("Embedding %d queries and %d database images", len(query_paths), len(database_paths))
    query_descriptors = embed_images(model, query_paths, batch_size)
    database_descriptors = embed_images(model, database_paths, batch_size)
    indices, distances = nearest_database(query_descriptors, database_descriptors, top_k, chunk_size=chunk_size)
    metrics = {f"recall@{k}": value for k, value in recall_at_k(indices, place_set.positives, REPORTED_KS).items()}
    metrics.update(
        layout=place_set.layout,
        num_queries=len(place_set.query_names),
        num_database=len(place_set.database_names),
        queries_without_positives=place_set.queries_without_positives,
        excluded_queries=place_set.excluded_queries,
    )
    if out_dir is not None:
        write_outputs(out_dir, place_set, indices, distances, metrics)
    return metrics


def image_size_flag(values):
    """``--image_size H,W`` (or one side for a square) -> (H, W), positive integers."""
    try:
        size = tuple(int(value) for value in values)
    except ValueError:
        size = ()
    if len(size) == 1:
        size *= 2
    if len(size) != 2 or min(size) < 1:
        raise app.UsageError(f"--image_size takes one or two positive integers (H,W); got {','.join(values)!r}.")
    return size


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    layout = _LAYOUT.value
    check_layout_flags(layout, {name for name in flags.FLAGS if flags.FLAGS[name].present})
    try:
        place_set = read_place_set(
            layout,
            query_dir=_QUERY_DIR.value,
            database_dir=_DATABASE_DIR.value,
            ground_truth=_GROUND_TRUTH.value,
            root=_ROOT.value,
            mat=_MAT.value,
            cities=_CITIES.value,
            lists=_LISTS.value,
            positive_radius=_POSITIVE_RADIUS.value,
            allow_pickle=_ALLOW_PICKLE.value,
        )
        metrics = evaluate(
            _WEIGHTS.value,
            place_set,
            image_size=image_size_flag(_IMAGE_SIZE.value),
            out_dir=_OUT.value,
            model_config=_MODEL_CONFIG.value,
            batch_size=_BATCH_SIZE.value,
            chunk_size=_CHUNK_SIZE.value,
            top_k=_TOP_K.value,
        )
    except (
        FileNotFoundError,
        PlaceSetError,
        PlaceModelError,
        ImageError,
        WeightsFileError,
        OutputDirectoryError,
    ) as error:
        exit_with_user_error(error)
    print("  ".join(f"R@{k}: {100 * metrics[f'recall@{k}']:.2f}" for k in REPORTED_KS))
    print(f"layout: {layout}  queries: {metrics['num_queries']}  database: {metrics['num_database']}")


def run():
    """Console entry point ``cvft-eval-place``."""
    run_command(main)


if __name__ == "__main__":
    run()
