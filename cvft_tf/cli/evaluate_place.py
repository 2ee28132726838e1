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
as SALAD's ``T.Resize``; CVFT: ``INTER_AREA`` minus the VGG mean).

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
import tempfile

import keras
import numpy as np
from absl import app, flags, logging

from cvft_tf.cli.exits import exit_with_user_error, run_command
from cvft_tf.data.preprocess import ImageError, preprocess_aerial, read_image
from cvft_tf.evaluation.place_recall import DEFAULT_CHUNK_SIZE, place_recall
from cvft_tf.evaluation.recall import REPORTED_KS
from cvft_tf.models.dinov2 import SALAD_TEST_SIZE, preprocess_image
from cvft_tf.models.place_recognition import PlaceRecognitionModel

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

_WEIGHTS = flags.DEFINE_string("weights", None, "Model: .keras file, or .weights.h5 of --model_config's model.")
_MODEL_CONFIG = flags.DEFINE_string("model_config", None, "JSON of PlaceRecognitionModel kwargs (.weights.h5 only).")
_QUERY_DIR = flags.DEFINE_string("query_dir", None, "Folder of query images.")
_DATABASE_DIR = flags.DEFINE_string("database_dir", None, "Folder of database images.")
_GROUND_TRUTH = flags.DEFINE_string("ground_truth", None, "Positives per query: .json, .csv or .npy (see --help).")
_IMAGE_SIZE = flags.DEFINE_list("image_size", [str(s) for s in SALAD_TEST_SIZE], "Network input H,W (or one side).")
_OUT = flags.DEFINE_string("out", None, "Output directory for metrics.json.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Images per forward pass.")
_CHUNK_SIZE = flags.DEFINE_integer("chunk_size", DEFAULT_CHUNK_SIZE, "Queries per distance block.")
flags.mark_flags_as_required(["weights", "query_dir", "database_dir", "ground_truth"])


class GroundTruthError(ValueError):
    """A ground-truth file that does not fit the image folders."""


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
        GroundTruthError: unknown format, or names/indices not among the images.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"ground truth file {path!r} not found")
    extension = os.path.splitext(path)[1].lower()
    if extension == ".npy":
        positives = np.load(path, allow_pickle=True)
        if len(positives) != len(query_names):
            raise GroundTruthError(f"{path} has {len(positives)} rows for {len(query_names)} query images")
        positives = [np.asarray(p, np.int64).reshape(-1) for p in positives]
        bad = [p for p in positives if p.size and (p.min() < 0 or p.max() >= len(database_names))]
        if bad:
            raise GroundTruthError(f"{path} has database indices outside [0, {len(database_names)})")
        return list(query_names), positives
    if extension == ".json":
        with open(path) as file:
            mapping = json.load(file)
        if not isinstance(mapping, dict):
            raise GroundTruthError(f"{path} must hold an object mapping query names to lists of database names")
        rows = [(query, list(names)) for query, names in mapping.items()]
    elif extension == ".csv":
        with open(path, newline="") as file:
            rows = [(row[0], [name for name in row[1:] if name]) for row in csv.reader(file) if row]
        if rows and rows[0][0].strip().lower() == "query":
            rows = rows[1:]
    else:
        raise GroundTruthError(f"unknown ground truth format {extension!r} ({path}); expected .json, .csv or .npy")
    query_set = set(query_names)
    database_index = {name: index for index, name in enumerate(database_names)}
    missing = [query for query, _ in rows if query not in query_set]
    missing += [name for _, names in rows for name in names if name not in database_index]
    if missing:
        raise GroundTruthError(f"{path} names {len(missing)} images not in the folders, e.g. {missing[:3]}")
    return [query for query, _ in rows], [np.asarray([database_index[n] for n in names], np.int64) for _, names in rows]


def load_place_model(weights, image_size, model_config=None):
    """The :class:`PlaceRecognitionModel` of ``weights`` at ``image_size`` (see module docstring)."""
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"weights file {weights!r} not found")
    image_size = tuple(image_size)
    if weights.endswith(".keras"):
        model = keras.saving.load_model(weights)
        if not isinstance(model, PlaceRecognitionModel):
            raise ValueError(f"{weights} holds a {type(model).__name__}, not a PlaceRecognitionModel")
        if model.image_size == image_size:
            return model
        resized = PlaceRecognitionModel.from_config({**model.get_config(), "image_size": list(image_size)})
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.weights.h5")
            model.save_weights(path)
            resized.load_weights(path)
        return resized
    kwargs = {}
    if model_config is not None:
        with open(model_config) as file:
            kwargs = json.load(file)
    model = PlaceRecognitionModel(image_size=image_size, **kwargs)
    model.load_weights(weights)
    return model


def embed_images(model, paths, batch_size):
    """Descriptors ``[len(paths), D]`` float32 of image files, in order."""
    if model.input_format == "imagenet":
        prepare = preprocess_image
    else:
        prepare = preprocess_aerial
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
    """Embeds both folders, scores R@1/5/10 and writes ``out_dir/metrics.json``; returns the metrics."""
    query_names = list_images(query_dir)
    database_names = list_images(database_dir)
    queries, positives = load_ground_truth(ground_truth, query_names, database_names)
    model = load_place_model(weights, image_size, model_config)
    logging.info("Embedding %d queries and %d database images", len(queries), len(database_names))
    query_descriptors = embed_images(model, [os.path.join(query_dir, q) for q in queries], batch_size)
    database_descriptors = embed_images(model, [os.path.join(database_dir, d) for d in database_names], batch_size)
    recalls = place_recall(query_descriptors, database_descriptors, positives, REPORTED_KS, chunk_size=chunk_size)
    metrics = {f"recall@{k}": value for k, value in recalls.items()}
    metrics.update(num_queries=len(queries), num_database=len(database_names))
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "metrics.json"), "w") as file:
            json.dump(metrics, file, indent=2)
    return metrics


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    image_size = [int(s) for s in _IMAGE_SIZE.value]
    if len(image_size) == 1:
        image_size *= 2
    try:
        metrics = evaluate(
            _WEIGHTS.value,
            _QUERY_DIR.value,
            _DATABASE_DIR.value,
            _GROUND_TRUTH.value,
            image_size=tuple(image_size),
            out_dir=_OUT.value,
            model_config=_MODEL_CONFIG.value,
            batch_size=_BATCH_SIZE.value,
            chunk_size=_CHUNK_SIZE.value,
        )
    except (FileNotFoundError, GroundTruthError, ImageError) as error:
        exit_with_user_error(error)
    print("  ".join(f"R@{k}: {100 * metrics[f'recall@{k}']:.2f}" for k in REPORTED_KS))
    print(f"queries: {metrics['num_queries']}  database: {metrics['num_database']}")


def run():
    """Console entry point ``cvft-eval-place``."""
    run_command(main)


if __name__ == "__main__":
    run()
