"""``cvft-eval-place --weights FILE --query_dir Q --database_dir D --ground_truth GT --out DIR``.

Embeds every image of a query folder and of a database folder with a DINOv2-SALAD
:class:`~cvft_tf.models.place_recognition.PlaceRecognitionModel`, prints R@1, R@5, R@10
(each query is correct at K when one of its K nearest database images is one of its
positives: MSLS / Pittsburgh, :mod:`cvft_tf.evaluation.place_recall`) and writes
``DIR/metrics.json``: ``{"recall@1": .., "recall@5": .., "recall@10": .., "num_queries": ..,
"num_database": ..}`` (fractions in [0, 1]).

``--weights``: a ``.keras`` file (``model.save``; rebuilt at ``--image_size`` if it was saved
at another size: DINOv2's position embeddings are re-interpolated), or a ``.weights.h5``
file (``model.save_weights``) of the model built from ``--model_config``, a JSON file of
``PlaceRecognitionModel`` keyword arguments (``backbone_kwargs``, ``salad_kwargs``,
``input_format``; default DINOv2 ViT-B/14 + SALAD's defaults).

Images: ``.jpg``, ``.jpeg``, ``.png`` files anywhere under each folder, named by their path
relative to it with ``/`` separators, in sorted order. They are read with OpenCV and resized
to ``--image_size`` as the model's input format wants (ImageNet: bilinear with antialiasing,
as SALAD's ``T.Resize``; CVFT: ``INTER_AREA`` to uint8 BGR, the model subtracting the VGG mean).

``--ground_truth`` formats (the queries evaluated are those it lists):

* ``.json``: ``{"query name": ["database name", ...], ...}``;
* ``.csv``: one row per query: the query name, then its positive database names, one per
  column; a first row whose first cell is ``query`` is a header;
* ``.npy``: one array of database indices per query (an object array, or a 2-D int array),
  for every query image in sorted order, indexing database images in sorted order: the
  layout of SALAD's ``pitts30k_test_gt.npy`` / ``msls_val_pIdx.npy``. Loaded with
  ``allow_pickle=True``: only use files you trust.

A query without positives counts as a miss (as in SALAD's evaluation).
"""

import csv
import json
import os
import pickle
import tempfile
import zipfile

import keras
import numpy as np
from absl import app, flags, logging

from cvft_tf.checkpoints import write_json_atomic
from cvft_tf.cli.exits import exit_with_user_error, run_command
from cvft_tf.data.preprocess import ImageError, read_image, resize_image
from cvft_tf.evaluation.place_recall import DEFAULT_CHUNK_SIZE, place_recall
from cvft_tf.evaluation.recall import REPORTED_KS
from cvft_tf.interop.imagenet import WeightsFileError
from cvft_tf.models.dinov2 import SALAD_TEST_SIZE, preprocess_image
from cvft_tf.models.place_recognition import PlaceRecognitionModel
from cvft_tf.output_dirs import OutputDirectoryError, make_output_directory

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

_WEIGHTS = flags.DEFINE_string("weights", None, "Model: .keras file, or .weights.h5 of --model_config's model.")
_MODEL_CONFIG = flags.DEFINE_string("model_config", None, "JSON of PlaceRecognitionModel kwargs (.weights.h5 only).")
_QUERY_DIR = flags.DEFINE_string("query_dir", None, "Folder of query images.")
_DATABASE_DIR = flags.DEFINE_string("database_dir", None, "Folder of database images.")
_GROUND_TRUTH = flags.DEFINE_string("ground_truth", None, "Positives per query: .json, .csv or .npy (see --help).")
_IMAGE_SIZE = flags.DEFINE_list("image_size", [str(s) for s in SALAD_TEST_SIZE], "Network input H,W (or one side).")
_OUT = flags.DEFINE_string("out", None, "Output directory for metrics.json.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Images per forward pass.", lower_bound=1)
_CHUNK_SIZE = flags.DEFINE_integer("chunk_size", DEFAULT_CHUNK_SIZE, "Queries per distance block.", lower_bound=1)
flags.mark_flags_as_required(["weights", "query_dir", "database_dir", "ground_truth"])


class GroundTruthError(ValueError):
    """A ground-truth file that cannot be read or does not fit the image folders."""


class PlaceModelError(ValueError):
    """A ``--weights`` or ``--model_config`` that does not give a PlaceRecognitionModel."""


def list_images(folder):
    """Sorted paths, relative to ``folder`` with ``/`` separators, of its image files."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"image folder {folder!r} not found")
    names = []
    for root, _, files in os.walk(folder):
        for file in files:
            if file.lower().endswith(IMAGE_EXTENSIONS):
                names.append(os.path.relpath(os.path.join(root, file), folder).replace(os.sep, "/"))
    if not names:
        raise FileNotFoundError(f"no {'/'.join(IMAGE_EXTENSIONS)} images under {folder!r}")
    return sorted(names)


def load_ground_truth(path, query_names, database_names):
    """Reads a ground-truth file (formats in the module docstring).

    Args:
        path: ``.json``, ``.csv`` or ``.npy`` file.
        query_names: sorted query image names (from :func:`list_images`).
        database_names: sorted database image names.

    Returns:
        ``(queries, positives)``: the query names evaluated, and for each one an int64 array
        of indices into ``database_names``.

    Raises:
        FileNotFoundError: ``path`` is missing.
        GroundTruthError: unknown format, a file that cannot be read as its format, or
            names/indices not among the images.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ground truth file {path!r} not found")
    extension = os.path.splitext(path)[1].lower()
    if extension == ".npy":
        return list(query_names), _read_npy_positives(path, len(query_names), len(database_names))
    readers = {".json": _read_json_rows, ".csv": _read_csv_rows}
    if extension not in readers:
        raise GroundTruthError(f"unknown ground truth format {extension!r} ({path}); expected .json, .csv or .npy")
    rows = readers[extension](path)
    query_set = set(query_names)
    database_index = {name: index for index, name in enumerate(database_names)}
    missing = [query for query, _ in rows if query not in query_set]
    missing += [name for _, names in rows for name in names if name not in database_index]
    if missing:
        raise GroundTruthError(f"{path} names {len(missing)} images not in the folders, e.g. {missing[:3]}")
    return [query for query, _ in rows], [np.asarray([database_index[n] for n in names], np.int64) for _, names in rows]


def _read_npy_positives(path, num_queries, num_database):
    """The ``.npy`` format: one int64 array of database indices per query, checked."""
    try:
        positives = [np.asarray(p, np.int64).reshape(-1) for p in np.load(path, allow_pickle=True)]
    except (ValueError, TypeError, OSError, EOFError, pickle.UnpicklingError) as error:
        raise GroundTruthError(f"{path} is not a readable .npy array of database indices per query ({error})") from None
    if len(positives) != num_queries:
        raise GroundTruthError(f"{path} has {len(positives)} rows for {num_queries} query images")
    if any(p.size and (p.min() < 0 or p.max() >= num_database) for p in positives):
        raise GroundTruthError(f"{path} has database indices outside [0, {num_database})")
    return positives


def _read_json_rows(path):
    """The ``.json`` format: ``[(query name, [database name, ...]), ...]``."""
    try:
        with open(path, encoding="utf-8") as file:
            mapping = json.load(file)
    except ValueError as error:
        raise GroundTruthError(f"{path} is not valid JSON ({error})") from None
    is_mapping = isinstance(mapping, dict) and all(
        isinstance(names, list) and all(isinstance(name, str) for name in names) for names in mapping.values()
    )
    if not is_mapping:
        raise GroundTruthError(f"{path} must hold an object mapping query names to lists of database names")
    return list(mapping.items())


def _read_csv_rows(path):
    """The ``.csv`` format: ``[(query name, [database name, ...]), ...]``, without a header row."""
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = [(row[0], [name for name in row[1:] if name]) for row in csv.reader(file) if row]
    except (ValueError, csv.Error) as error:
        raise GroundTruthError(f"{path} is not a readable CSV file ({error})") from None
    if rows and rows[0][0].strip().lower() == "query":
        rows = rows[1:]
    return rows


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
    return keras.saving.load_model(path)


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
    """Descriptors ``[len(paths), D]`` float32 of image files, in order."""
    if model.input_format == "imagenet":
        prepare = preprocess_image
    else:
        prepare = resize_image
    progress = keras.utils.Progbar(len(paths), unit_name="image")
    descriptors = []
    for start in range(0, len(paths), batch_size):
        batch = np.stack([prepare(read_image(p), model.image_size) for p in paths[start : start + batch_size]])
        descriptors.append(np.asarray(model.predict_on_batch(batch), np.float32))
        progress.add(len(batch))
    return np.concatenate(descriptors)


def evaluate(
    weights,
    query_dir,
    database_dir,
    ground_truth,
    image_size=SALAD_TEST_SIZE,
    out_dir=None,
    model_config=None,
    batch_size=16,
    chunk_size=DEFAULT_CHUNK_SIZE,
):
    """Embeds both folders, scores R@1/5/10 and writes ``out_dir/metrics.json``; returns the metrics.

    Every input and ``out_dir`` are checked before the images are embedded.
    """
    query_names = list_images(query_dir)
    database_names = list_images(database_dir)
    queries, positives = load_ground_truth(ground_truth, query_names, database_names)
    model = load_place_model(weights, image_size, model_config)
    if out_dir is not None:
        make_output_directory(out_dir, "--out directory")
    logging.info("Embedding %d queries and %d database images", len(queries), len(database_names))
    query_descriptors = embed_images(model, [os.path.join(query_dir, q) for q in queries], batch_size)
    database_descriptors = embed_images(model, [os.path.join(database_dir, d) for d in database_names], batch_size)
    recalls = place_recall(query_descriptors, database_descriptors, positives, REPORTED_KS, chunk_size=chunk_size)
    metrics = {f"recall@{k}": value for k, value in recalls.items()}
    metrics.update(num_queries=len(queries), num_database=len(database_names))
    if out_dir is not None:
        write_json_atomic(metrics, os.path.join(out_dir, "metrics.json"))
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
    try:
        metrics = evaluate(
            _WEIGHTS.value,
            _QUERY_DIR.value,
            _DATABASE_DIR.value,
            _GROUND_TRUTH.value,
            image_size=image_size_flag(_IMAGE_SIZE.value),
            out_dir=_OUT.value,
            model_config=_MODEL_CONFIG.value,
            batch_size=_BATCH_SIZE.value,
            chunk_size=_CHUNK_SIZE.value,
        )
    except (
        FileNotFoundError,
        GroundTruthError,
        PlaceModelError,
        ImageError,
        WeightsFileError,
        OutputDirectoryError,
    ) as error:
        exit_with_user_error(error)
    print("  ".join(f"R@{k}: {100 * metrics[f'recall@{k}']:.2f}" for k in REPORTED_KS))
    print(f"queries: {metrics['num_queries']}  database: {metrics['num_database']}")


def run():
    """Console entry point ``cvft-eval-place``."""
    run_command(main)


if __name__ == "__main__":
    run()
