"""Training a cross-view model from a config: datasets, resume, validation, TensorBoard.

Each epoch: ``model.fit`` runs the custom ``train_step`` (progress bar with loss, in-batch
r@1 and step time), then :class:`EpochValidation` embeds the validation split once,
computes r@1/5/10/1% and the validation loss, logs scalars and images to TensorBoard and
keeps the best model (``checkpoints.is_better``); ``history.csv`` gets the epoch's logs and,
at the end, ``learning_curve.png`` draws them; then ``TrainingCheckpoints`` writes the
epoch's checkpoint. It also writes a step backup every ``config.train.backup_every_steps``
steps, and one when SIGINT or SIGTERM asks the run to stop (``stop_signals``).

Restarted on the same workdir, training resumes from the newest readable checkpoint, even
one in the middle of an epoch: its weights, optimizer moments and step count, dropout RNG,
running epoch metrics and decode counter come back (``run_state``), and the training stream
starts where an uninterrupted run would be (``pipeline.stream_position``). With
``config.train.deterministic`` the resumed run ends with the uninterrupted run's weights.

An epoch is ``len(split) // batch_size`` steps (or ``config.train.steps_per_epoch``) drawn
from the reshuffled, repeated training stream. With skipped pairs the original ended an
epoch a little early instead; a fixed epoch length keeps Keras' step count exact (with a
dataset of unknown length Keras 3 counts one optimizer step too many per epoch).

When the frozen blocks' features can be cached (``feature_cache_refusal``), the stream
serves them instead of the images, in the same order (``cvft_tf.feature_cache``); when the
ground images change every epoch (orientation noise, field-of-view crops), only the aerial
features are (``changing_ground_reason``).

Under a ``tf.distribute`` strategy (``cvft_tf.distribute``) the model and its optimizer are
made or loaded inside the strategy's scope, ``config.train.batch_size`` is the global
batch, split among the replicas, and each replica scores its pairs against the whole global
batch (``models.replicas``). Only the chief writes the workdir; the other workers of a
multi-worker run write into a temporary directory of their own (``distribute.writing_directory``).
"""

import csv
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from cvft_tf import checkpoints, distribute, feature_cache, run_state
from cvft_tf.config_schema import MIXED_PRECISION_POLICIES, ConfigError
from cvft_tf.data.from_config import eval_dataset, field_of_view, read_split
from cvft_tf.data.pipeline import DecodeCounter, dataset_errors, make_train_dataset
from cvft_tf.evaluation import embed, figure_sources, figures, recall, scoring
from cvft_tf.interop.imagenet import initialize_weights
from cvft_tf.models.cross_view import VGG_VARIANTS, CrossViewModel, build_model
from cvft_tf.models.replicas import number_rows
from cvft_tf.output_dirs import atomic_path
from cvft_tf.stop_signals import StopSignals
from cvft_tf.training_checkpoints import TrainingCheckpoints

TENSORBOARD_DIR = "tensorboard"
HISTORY_CSV = "history.csv"
"""Per-epoch logs (loss, validation recall and loss, learning rate), appended on resume."""
LEARNING_CURVE_PNG = "learning_curve.png"
VALIDATION_ONE_PERCENT = recall.TOP_ONE_PERCENT_TRAIN
"""The per-epoch validation's r@1% K, floor(0.01 N) + 1, as the original's training script logs it
(``cvft-eval`` reports the test scripts' K, see ``recall.top_one_percent_k``)."""


def new_model(config):
    """Builds and compiles a fresh model, initialised as ``config.train.init`` says."""
    logging.info("Training %s from %s", config.model.variant, config.train.init or "random init")
    model = build_model(**config.model.to_dict())
    if config.train.init:
        initialize_weights(model, config.train.init)
    compile_model(model, config)
    return model


def compile_model(model, config, optimizer=None):
    """Compiles ``model`` with ``optimizer``, by default Adam with the config's learning rate,
    betas and epsilon (the original's TF1 1e-8); optional XLA and several steps per call
    (``config.train.jit_compile``, ``steps_per_execution``)."""
    if optimizer is None:
        optimizer = keras.optimizers.Adam(
            learning_rate=config.train.learning_rate,
            beta_1=config.train.beta_1,
            beta_2=config.train.beta_2,
            epsilon=config.train.adam_epsilon,
        )
    model.compile(
        optimizer=optimizer,
        jit_compile=bool(config.train.jit_compile),
        steps_per_execution=config.train.steps_per_execution,
    )


def set_execution(model, config):
    """Runs a resumed model as ``config.train`` says (XLA, steps per call), not as the run it was saved by."""
    model.jit_compile = bool(config.train.jit_compile)
    model.steps_per_execution = config.train.steps_per_execution


class BestModelKeeper(keras.callbacks.Callback):
    """A validation callback's memory of the best model: saves ``best.keras`` when an epoch's
    record beats the best so far (``checkpoints.is_better``).

    Args:
        workdir: where ``best.keras`` and ``best.json`` are written.
        best_record: the best record of the run so far (``checkpoints.read_best_record``), or None.
    """

    def __init__(self, workdir, best_record=None):
        super().__init__()
        self.workdir = workdir
        self.best_record = best_record

    def keep_if_better(self, record):
        """Saves the model as the best one when ``record`` (``epoch``, ``val_loss``, ``r@K``...)
        beats the best so far."""
        if checkpoints.is_better(record, self.best_record):
            self.best_record = record
            checkpoints.save_best_model(self.model, self.workdir, record)

    def best_r1(self):
        """The best validation r@1 so far, or None before the first validation."""
        return None if self.best_record is None else self.best_record["r@1"]


class EpochValidation(BestModelKeeper):
    """After each epoch: validate, log, keep the best model.

    The best model is the one with the best validation record by ``checkpoints.is_better``
    (r@1, ties broken by r@5, r@10, then the lower validation loss).

    Adds ``val_loss``, ``val_r@1``, ``val_r@5``, ``val_r@10``, ``val_r@1%``,
    ``learning_rate``, ``skipped_pairs`` and, for a model that estimates headings,
    ``val_heading_error_deg`` (median over the correctly retrieved queries) to the epoch
    logs (so Keras' TensorBoard callback placed after it records them) and writes images of
    top-5 retrievals, the
    ground feature map before/after transport beside the aerial one, and the transport
    plan under ``<workdir>/tensorboard/validation``.
    """

    def __init__(self, config, workdir, val_split, val_data, counter, best_record=None):
        super().__init__(workdir, best_record)
        self.config = config
        self.val_split = val_split
        self.val_data = val_data
        self.counter = counter
        self.writer = tf.summary.create_file_writer(os.path.join(workdir, TENSORBOARD_DIR, "validation"))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        started = time.time()
        print(f"\nValidating on {len(self.val_split)} pairs")  # a line below the epoch's bar, which ends later
        embeddings = embed.embed_split(self.model, self.val_data, total=len(self.val_split))
        metrics = scoring.score(
            embeddings,
            chunk_size=self.config.eval.chunk_size,
            one_percent_definition=VALIDATION_ONE_PERCENT,
            backend=self.config.eval.backend,
            matcher=self.model.matcher,
        )
        logs["val_loss"] = scoring.batched_loss(embeddings, self.config.train.batch_size, self.model.matcher)
        for key in recall.REPORTED_METRICS:
            logs[f"val_{key}"] = metrics[key]
        if "heading" in metrics:
            logs["val_heading_error_deg"] = metrics["heading"].get("median_error_deg", float("nan"))
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["skipped_pairs"] = self.counter.skipped
        logging.info(
            "epoch %d: val r@1 %.2f r@5 %.2f r@10 %.2f r@1%% %.2f, val loss %.4f, skipped %d (%.1fs)",
            epoch + 1, metrics["r@1"], metrics["r@5"], metrics["r@10"], metrics["r@1%"],
            logs["val_loss"], self.counter.skipped, time.time() - started,
        )  # fmt: skip
        self._log_images(embeddings, epoch + 1)
        record = {"epoch": epoch + 1, "val_loss": logs["val_loss"], **{k: metrics[k] for k in recall.REPORTED_METRICS}}
        self.keep_if_better(record)

    def _log_images(self, embeddings, step):
        count = min(self.config.eval.num_figure_queries, len(embeddings.ground))
        top = scoring.top_k_tiles(embeddings, count, min(5, len(embeddings.aerial)), self.model.matcher)
        grounds = [figure_sources.display_image(p, 64) for p in self.val_split.ground_paths[:count]]
        tiles = figure_sources.AerialTiles(self.val_split.aerial_paths, 64)
        retrievals = figures.retrieval_figure(grounds, tiles, top, true_index=np.arange(count), tile_size=64)
        with self.writer.as_default(step=step):
            tf.summary.image("top5_retrievals", retrievals[None])
            for name, image in figure_sources.feature_figures(self.model, self.val_data).items():
                tf.summary.image(name, image[None])
        self.writer.flush()


def train_stream(config, model, train_split, counter):
    """The training stream: a function ``start_batch -> endless (repeated) tf.data.Dataset``
    starting after ``start_batch`` batches.

    When ``config.train.feature_cache`` allows it (``cvft_tf.feature_cache``; the cache is
    built here, once) the batches hold cached frozen-stem features; when only the aerial
    tiles stay the same every epoch (:func:`changing_ground_reason`), decoded ground images
    and cached aerial features; else decoded images.
    """
    ground_size, aerial_size = tuple(config.model.ground_size), tuple(config.model.aerial_size)
    ground_reason = changing_ground_reason(config)
    branches = ("aerial",) if ground_reason else feature_cache.BRANCHES
    reason = feature_cache_refusal(config, model, len(train_split), branches)

    def images(start_batch, with_index=False):
        return make_train_dataset(
            train_split,
            config.train.batch_size,
            ground_size,
            aerial_size,
            seed=config.train.seed,
            deterministic=config.train.deterministic,
            start_batch=start_batch,
            orientation_noise_deg=config.data.orientation_noise_deg,
            field_of_view=field_of_view(config.data),
            max_bad_fraction=config.data.max_bad_fraction,
            counter=counter,
            decoder=config.data.decoder,
            with_index=with_index,
        )

    if reason is not None:
        if config.train.feature_cache:
            logging.info("Training on images, not cached features: %s", reason)
        return lambda start_batch: images(start_batch).repeat()
    cache = feature_cache.load_or_build_feature_cache(
        model.frozen_stem(),
        train_split,
        ground_size,
        aerial_size,
        config.eval.batch_size,
        counter=counter,
        max_bad_fraction=config.data.max_bad_fraction,
        cache_dir=config.train.feature_cache_dir,
        decoder=config.data.decoder,
        branches=branches,
    )
    if ground_reason is not None:
        logging.info("Training on ground images and cached aerial features: %s", ground_reason)
        return lambda start_batch: feature_cache.with_cached_aerial_features(
            images(start_batch, with_index=True), cache
        ).repeat()
    return lambda start_batch: feature_cache.make_cached_train_dataset(
        cache, train_split, config.train.batch_size, seed=config.train.seed, start_batch=start_batch
    ).repeat()


def numbered(stream):
    """``stream`` with the rows of each global batch numbered (``replicas.number_rows``), so the
    replicas can put the gathered batch back in order."""
    return lambda start_batch: stream(start_batch).map(number_rows)


def feature_cache_refusal(config, model, num_pairs, branches=feature_cache.BRANCHES):
    """Why the frozen-stem features of ``branches`` cannot be cached for this run, or None
    when they can."""
    if not config.train.feature_cache:
        return "config.train.feature_cache is off"
    if model.variant not in VGG_VARIANTS:
        return f"the {model.variant} variant has no frozen VGG stem"
    if model.backbone.frozen_blocks < 1:
        return "no VGG block is frozen (config.model.backbone.frozen_blocks=0)"
    needed = feature_cache.cache_nbytes(num_pairs, model.frozen_stem(), branches)
    limit = config.train.feature_cache_max_gb * 2**30
    if needed > limit:
        return (
            f"the cache would take {needed / 2**30:.1f} GiB, more than "
            f"config.train.feature_cache_max_gb={config.train.feature_cache_max_gb}"
        )
    return None


def changing_ground_reason(config):
    """Why the ground images change every epoch (so only aerial features are cached), or None."""
    if config.data.orientation_noise_deg:
        return "orientation noise turns the panoramas every epoch (config.data.orientation_noise_deg)"
    if not field_of_view(config.data).is_full_north_aligned:
        return "the ground crop changes every epoch (config.data.ground_fov_deg, config.data.unknown_heading)"
    return None


def write_config(config, workdir):
    """Writes ``<workdir>/config.json`` (through a temporary file and a rename)."""
    with atomic_path(os.path.join(workdir, "config.json")) as partial, open(partial, "w") as handle:
        handle.write(config.to_json_best_effort(indent=2))


def trim_history(workdir, epochs):
    """Keeps the rows of the first ``epochs`` epochs in ``history.csv`` (a resumed run logs the
    rest again); rewritten through a temporary file and a rename."""
    path = os.path.join(workdir, HISTORY_CSV)
    if not os.path.exists(path):
        return
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    kept = rows[:1] + [row for row in rows[1:] if row and int(row[0]) < epochs]
    if len(kept) == len(rows):
        return
    with atomic_path(path) as partial, open(partial, "w", newline="") as handle:
        csv.writer(handle).writerows(kept)


def read_history(workdir):
    """``history.csv`` as a dict column -> list of floats (one per epoch)."""
    with open(os.path.join(workdir, HISTORY_CSV), newline="") as handle:
        rows = list(csv.DictReader(handle))
    return {key: [float(row[key]) for row in rows] for key in (rows[0] if rows else {})}


def write_learning_curve(workdir, num_val_pairs):
    """Draws ``history.csv`` as ``learning_curve.png`` in ``workdir``, with the chance levels
    of a gallery of ``num_val_pairs``; returns its path."""
    path = os.path.join(workdir, LEARNING_CURVE_PNG)
    chance = recall.chance_levels(num_val_pairs, one_percent_definition=VALIDATION_ONE_PERCENT)
    figures.save_png(figures.learning_curve_figure(read_history(workdir), chance), path)
    return path


def resume_or_start(config, workdir, strategy, make_model=new_model, model_class=CrossViewModel):
    """The model to train and the run state it resumes from (None for a fresh run).

    The model, its optimizer and their variables are made inside ``strategy``'s scope; only
    the chief removes the unfinished writes of an earlier run. A fresh model is
    ``make_model(config)``, compiled; a checkpoint must hold a ``model_class`` matching
    ``config.model`` (``checkpoints.load_model``).

    Raises:
        checkpoints.CheckpointError: no checkpoint can be read, the newest does not match
            ``config.model``, or its position does not fit ``config.train``.
    """
    if distribute.is_chief(strategy):
        removed = checkpoints.remove_partial_files(workdir)
        if removed:
            logging.info("Removed unfinished writes of an earlier run: %s", removed)
    with strategy.scope():
        model, state = checkpoints.load_latest(workdir, config.model, model_class)
        if model is None:
            logging.info("A new run in %s", workdir)
            return make_model(config), None
    set_execution(model, config)
    try:
        run_state.restore_rng(model, state)
    except ValueError as error:
        raise checkpoints.CheckpointError(f"{state['path']}: {error}") from None
    logging.info("Resuming from %s: epoch %d, step %d", state["path"], state["epoch"] + 1, state["step_in_epoch"])
    return model, state


def fit_segments(epoch, step_in_epoch, epochs, steps_per_epoch, steps_per_execution=1):
    """The ``model.fit`` calls that train from ``(epoch, step_in_epoch)`` to the end:
    ``(initial_epoch, end_epoch, steps_per_epoch)`` each; the rest of a started epoch first.

    Raises:
        checkpoints.CheckpointError: the position lies past the end of an epoch of
            ``steps_per_epoch`` steps (the config changed since the checkpoint), or is not a
            multiple of ``steps_per_execution`` (the rest of the epoch would not end on a call).
    """
    if step_in_epoch >= steps_per_epoch:
        raise checkpoints.CheckpointError(
            f"the checkpoint is at step {step_in_epoch} of epoch {epoch + 1}, but an epoch now has "
            f"{steps_per_epoch} steps; resume with the run's batch size and steps_per_epoch"
        )
    if step_in_epoch % steps_per_execution:
        raise checkpoints.CheckpointError(
            f"the checkpoint is at step {step_in_epoch} of epoch {epoch + 1}, not a multiple of "
            f"config.train.steps_per_execution={steps_per_execution}; resume with the run's steps_per_execution"
        )
    segments = []
    if step_in_epoch:
        segments.append((epoch, epoch + 1, steps_per_epoch - step_in_epoch))
        epoch += 1
    if epoch < epochs:
        segments.append((epoch, epochs, steps_per_epoch))
    return segments


def check_distribution(config, strategy, steps_per_epoch):
    """Raises ConfigError when the global batch does not split evenly among ``strategy``'s
    replicas, or ``config.train.steps_per_execution`` does not divide an epoch."""
    replicas = strategy.num_replicas_in_sync
    if config.train.batch_size % replicas:
        raise ConfigError(
            f"config.train.batch_size={config.train.batch_size} (the global batch) must be a multiple of "
            f"the {replicas} replicas of config.distribute.strategy={config.distribute.strategy!r}"
        )
    check_steps_per_execution(config, steps_per_epoch)


def check_steps_per_execution(config, steps_per_epoch):
    """Raises ConfigError when ``config.train.steps_per_execution`` does not divide an epoch."""
    if steps_per_epoch % config.train.steps_per_execution:
        raise ConfigError(
            f"config.train.steps_per_execution={config.train.steps_per_execution} must divide the "
            f"{steps_per_epoch} steps of an epoch"
        )


def train(config, workdir, strategy=None):
    """Trains (or resumes) the model of ``config`` in ``workdir``; returns the model.

    The splits are read and checked before the workdir is locked, so a bad split or a batch
    larger than it leaves the workdir untouched. ``config.json`` is written once the run is known to start or to resume with a matching
    checkpoint, never before a mismatch is reported.

    Args:
        config: the run's config.
        workdir: the run directory (read by every worker, written by the chief).
        strategy: the ``tf.distribute.Strategy`` to train under (``distribute.make_strategy``);
            None: TensorFlow's default, one device.

    Raises:
        StoppedBySignal: SIGINT or SIGTERM stopped the run (its state is saved first when
            it was training).
    """
    strategy = strategy or tf.distribute.get_strategy()
    keras.utils.set_random_seed(config.train.seed)
    keras.mixed_precision.set_global_policy(MIXED_PRECISION_POLICIES[config.train.mixed_precision])

    train_split = read_split(config.data, config.data.train_split)
    val_split = read_split(config.data, config.data.val_split)
    if len(train_split) < config.train.batch_size:
        raise ConfigError(
            f"config.train.batch_size={config.train.batch_size} is larger than the "
            f"{len(train_split)} pairs of {train_split.name}: use a batch of at most {len(train_split)}"
        )
    with distribute.writing_directory(workdir, strategy) as output:
        model, val_split = _train(config, workdir, strategy, output, train_split, val_split)
        if val_split is not None:
            logging.info("Best validation: %s", checkpoints.read_best_record(output))
            logging.info("Learning curve: %s", write_learning_curve(output, len(val_split)))
    return model


def _train(config, workdir, strategy, output, train_split, val_split):
    """:func:`train` writing into ``output`` (the splits read and checked first): the model, and
    the validation split (None when there was nothing left to train)."""
    with StopSignals() as stop:
        steps_per_epoch = config.train.steps_per_epoch or len(train_split) // config.train.batch_size
        check_distribution(config, strategy, steps_per_epoch)
        model, state = resume_or_start(config, workdir, strategy)
        trained = fit_remaining_epochs(
            config,
            workdir,
            output,
            strategy,
            stop,
            model=model,
            state=state,
            steps_per_epoch=steps_per_epoch,
            validation=lambda counter, best: EpochValidation(
                config, output, val_split, eval_dataset(config, val_split), counter, best
            ),
            stream=lambda counter: train_stream(config, model, train_split, counter),
            split=train_split,
        )
    return model, val_split if trained else None


def fit_remaining_epochs(
    config, workdir, output, strategy, stop, *, model, state, steps_per_epoch, validation, stream, split=None
):
    """Trains ``model`` from the run ``state`` to ``config.train.epochs``; False when nothing was left.

    Writes ``config.json``, then runs ``model.fit`` over :func:`fit_segments` with the
    callbacks every run has: ``validation`` of each epoch (which keeps the best model),
    ``history.csv``, TensorBoard and ``TrainingCheckpoints``.

    Args:
        config: the run's config (``config.train``).
        workdir: the run directory read (its ``best.keras`` record).
        output: the directory written (``distribute.writing_directory``).
        strategy: the run's ``tf.distribute`` strategy.
        stop: the run's ``StopSignals``.
        model: the compiled model (fresh or resumed).
        state: the run state it resumes from, or None.
        steps_per_epoch: steps of one epoch.
        validation: ``(DecodeCounter, best record or None) -> keras.callbacks.Callback`` with a
            ``best_r1()`` method, placed first among the callbacks.
        stream: ``DecodeCounter -> (start_batch -> endless tf.data.Dataset)``, called inside
            the strategy's scope.
        split: the training ``Split`` the bad pairs index (``DecodeCounter``); None: not checked.
    """
    best_record = checkpoints.read_best_record(workdir)
    write_config(config, output)
    position = state or {"epoch": 0, "step_in_epoch": 0, "batches": 0}
    segments = fit_segments(
        position["epoch"],
        position["step_in_epoch"],
        config.train.epochs,
        steps_per_epoch,
        config.train.steps_per_execution,
    )
    if not segments:
        logging.info("Already trained %d epochs (config.train.epochs=%d).", position["epoch"], config.train.epochs)
        return False
    trim_history(output, position["epoch"])

    counter = DecodeCounter((state or {}).get("decode"), split)
    if counter.saved_pairs is not None:
        logging.warning(
            "The training split changed since the checkpoint (%d pairs then, %d now): its list of %d bad "
            "pair(s) is dropped and every pair is checked again as it is read",
            counter.saved_pairs, len(split), counter.forgotten,
        )  # fmt: skip
    epoch_validation = validation(counter, best_record)
    checkpointing = TrainingCheckpoints(
        output,
        steps_per_epoch=steps_per_epoch,
        epochs=config.train.epochs,
        backup_every_steps=config.train.backup_every_steps,
        keep=config.train.keep_checkpoints,
        counter=counter,
        best_r1=epoch_validation.best_r1,
        stop=stop,
        resume_state=state,
    )
    callbacks = [
        epoch_validation,
        keras.callbacks.CSVLogger(os.path.join(output, HISTORY_CSV), append=True),
        keras.callbacks.TensorBoard(os.path.join(output, TENSORBOARD_DIR), update_freq="epoch"),
        checkpointing,
    ]
    with dataset_errors():
        with strategy.scope():
            batches = stream(counter)
        if strategy.num_replicas_in_sync > 1:
            batches = numbered(batches)
        for initial_epoch, end_epoch, steps in segments:
            stop.deferring = True
            try:
                model.fit(
                    batches(checkpointing.batches),
                    epochs=end_epoch,
                    initial_epoch=initial_epoch,
                    steps_per_epoch=steps,
                    callbacks=callbacks,
                    shuffle=False,
                    verbose=1 if os.isatty(1) else 2,
                )
            finally:
                stop.deferring = False
    return True
