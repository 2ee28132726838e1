"""Training a DINOv2 + SALAD place-recognition model on GSV-Cities-style places, as SALAD trains.

The run is ``cvft-train``'s (``training.fit_remaining_epochs``): resume from the newest
checkpoint of the workdir at any saved step, step backups and stop signals, ``history.csv``,
TensorBoard, ``config.json`` and the best model as ``best.keras``. What differs is the
data and the validation:

- training batches are P places x K images of ``config.data.cities``
  (``place_pipeline.make_place_train_dataset``) and the model's multi-similarity
  ``train_step`` (``PlaceRecognitionModel``), with AdamW and SALAD's linear learning-rate
  decay (:func:`compile_place_model`);
- after each epoch :class:`PlaceValidation` embeds the held-out places of
  ``config.data.val_cities``: each place's first image is a query, its other images are in
  the database (``gsv_cities.query_database_split``), and R@1/5/10 (in percent) are those of
  ``evaluation.place_recall``. The best model is the one with the best R@1 (ties: R@5, R@10,
  then the lower validation loss, the multi-similarity loss of all held-out images).

``best.keras`` is a ``PlaceRecognitionModel``: ``cvft-eval-place --weights best.keras``.
"""

import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from cvft_tf import checkpoints, distribute, training
from cvft_tf.config_schema import MIXED_PRECISION_POLICIES
from cvft_tf.data import gsv_cities
from cvft_tf.data.place_pipeline import batches_per_epoch, make_place_eval_dataset, make_place_train_dataset
from cvft_tf.evaluation.place_recall import place_recall
from cvft_tf.evaluation.recall import REPORTED_KS
from cvft_tf.models.place_recognition import PlaceRecognitionModel
from cvft_tf.stop_signals import StopSignals

def model_kwargs(model_config):
    """``PlaceRecognitionModel`` keyword arguments of a ``config.model`` (empty paths -> None)."""
    kwargs = model_config.to_dict()
    for path in ("preset", "backbone_weights"):
        kwargs[path] = kwargs[path] or None
    return kwargs


def compile_place_model(model, config):
    """AdamW with SALAD's schedule: ``config.train.learning_rate`` falling linearly to
    ``lr_end_factor`` times itself over ``lr_decay_steps`` optimizer steps, then constant
    (PyTorch's ``LinearLR``, stepped every step, is ``PolynomialDecay`` of power 1)."""
    rate = config.train.learning_rate
    schedule = keras.optimizers.schedules.PolynomialDecay(
        rate, config.train.lr_decay_steps, end_learning_rate=rate * config.train.lr_end_factor, power=1.0
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=config.train.weight_decay,
        beta_1=config.train.beta_1,
        beta_2=config.train.beta_2,
        epsilon=config.train.adam_epsilon,
    )
    training.compile_model(model, config, optimizer)


def new_place_model(config):
    """A fresh, compiled ``PlaceRecognitionModel`` of ``config.model``."""
    source = config.model.preset or config.model.backbone_weights or "a random DINOv2"
    logging.info("Training a DINOv2 + SALAD place model from %s", source)
    model = PlaceRecognitionModel(**model_kwargs(config.model))
    compile_place_model(model, config)
    return model


def read_validation_places(data_config):
    """The held-out places (``val_cities``, at least 2 images each), the first
    ``max_val_places`` of them when that is set."""
    places = gsv_cities.read_places(data_config.root, tuple(data_config.val_cities), min_images_per_place=2)
    if data_config.max_val_places and places.num_places > data_config.max_val_places:
        stop = places.starts[data_config.max_val_places]
        places = gsv_cities.Places(
            name=places.name,
            paths=places.paths[:stop],
            labels=places.labels[:stop],
            sources=places.sources[:stop],
            starts=places.starts[: data_config.max_val_places + 1],
        )
    return places


def chance_recall(positives, num_database, k):
    """R@K, in percent, of a random ranking: the mean over queries of
    ``1 - C(D - p, K) / C(D, K)``, the chance that one of a query's ``p`` positives is among
    K images drawn from the D of the database."""
    misses = []
    for count in (len(p) for p in positives):
        miss = 1.0
        for drawn in range(min(k, num_database)):
            miss *= max(num_database - count - drawn, 0) / (num_database - drawn)
        misses.append(miss)
    return 100.0 * (1.0 - float(np.mean(misses)))


class PlaceValidation(training.BestModelKeeper):
    """After each epoch: R@1/5/10 of the held-out places, the validation loss, the best model.

    Adds ``val_r@1``, ``val_r@5``, ``val_r@10`` (percent), ``val_loss`` and ``learning_rate``
    to the epoch logs (for ``history.csv`` and TensorBoard) and saves ``best.keras`` with
    its record when the epoch is better (``checkpoints.is_better``).
    """

    def __init__(self, config, workdir, places, best_record=None):
        super().__init__(workdir, best_record)
        queries, database, self.positives = gsv_cities.query_database_split(places)
        self.num_queries = len(queries)
        order = np.concatenate([queries, database])
        self.images = make_place_eval_dataset(places, order, tuple(config.model.image_size), config.eval.batch_size)
        self.labels = np.concatenate([places.labels[queries], places.labels[database]])
        self.chance = {f"r@{k}": chance_recall(self.positives, len(database), k) for k in REPORTED_KS}

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        started = time.time()
        descriptors = np.asarray(self.model.predict(self.images, verbose=0), np.float32)
        query, database = descriptors[: self.num_queries], descriptors[self.num_queries :]
        recalls = place_recall(query, database, self.positives, REPORTED_KS)
        metrics = {f"r@{k}": 100.0 * value for k, value in recalls.items()}
        logs["val_loss"] = float(self.model.batch_loss(tf.constant(descriptors), tf.constant(self.labels)))
        for key, value in metrics.items():
            logs[f"val_{key}"] = value
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logging.info(
            "epoch %d: held-out %d places: R@1 %.2f R@5 %.2f R@10 %.2f (chance %.2f %.2f %.2f), val loss %.4f (%.1fs)",
            epoch + 1, self.num_queries, metrics["r@1"], metrics["r@5"], metrics["r@10"],
            self.chance["r@1"], self.chance["r@5"], self.chance["r@10"], logs["val_loss"], time.time() - started,
        )  # fmt: skip
        self.keep_if_better({"epoch": epoch + 1, "val_loss": logs["val_loss"], **metrics})


def train_place(config, workdir):
    """Trains (or resumes) the place-recognition model of ``config`` in ``workdir``; returns it.

    Raises:
        StoppedBySignal: SIGINT or SIGTERM stopped the run (its state saved first).
        ConfigError, DatasetError, checkpoints.CheckpointError: see ``cvft-train-place``.
    """
    strategy = tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.train.seed)
    keras.mixed_precision.set_global_policy(MIXED_PRECISION_POLICIES[config.train.mixed_precision])
    with distribute.writing_directory(workdir, strategy) as output, StopSignals() as stop:
        cities = tuple(config.data.cities)
        train_places = gsv_cities.read_places(config.data.root, cities, config.data.min_images_per_place)
        val_places = read_validation_places(config.data)
        logging.info(
            "Training on %d places (%d images), validating on %d held-out places",
            train_places.num_places, len(train_places), val_places.num_places,
        )  # fmt: skip
        steps_per_epoch = config.train.steps_per_epoch or batches_per_epoch(train_places, config.data.places_per_batch)
        training.check_steps_per_execution(config, steps_per_epoch)
        model, state = training.resume_or_start(config, workdir, strategy, new_place_model, PlaceRecognitionModel)
        training.fit_remaining_epochs(
            config,
            workdir,
            output,
            strategy,
            stop,
            model=model,
            state=state,
            steps_per_epoch=steps_per_epoch,
            validation=lambda counter, best: PlaceValidation(config, output, val_places, best),
            stream=lambda counter: lambda start_batch: make_place_train_dataset(
                train_places,
                config.data.places_per_batch,
                config.data.images_per_place,
                tuple(config.model.image_size),
                seed=config.train.seed,
                start_batch=start_batch,
                shuffle_all=config.data.shuffle_all,
            ),
        )
        logging.info("Best validation: %s", checkpoints.read_best_record(output))
    return model
