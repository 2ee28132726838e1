"""Training a cross-view model from a config: datasets, resume, validation, TensorBoard.

Each epoch: ``model.fit`` runs the custom ``train_step`` (progress bar with loss, in-batch
r@1 and step time), then :class:`EpochValidation` embeds the validation split once,
computes r@1/5/10/1% and the validation loss, logs scalars and images to TensorBoard,
keeps the best model by r@1, and writes a resumable checkpoint (see ``checkpoints``).
Restarted on the same workdir, training resumes from the latest checkpoint with its epoch,
step and optimizer moments.

An epoch is ``len(split) // batch_size`` steps (or ``config.train.steps_per_epoch``) drawn
from the reshuffled, repeated training stream. With skipped pairs the original ended an
epoch a little early instead; a fixed epoch length keeps Keras' step count exact (with a
dataset of unknown length Keras 3 counts one optimizer step too many per epoch).
"""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from cvft_tf import checkpoints
from cvft_tf.data import cvact, cvusa
from cvft_tf.data.pipeline import DecodeCounter, dataset_errors, make_eval_dataset, make_train_dataset
from cvft_tf.evaluation import embed, figures, recall
from cvft_tf.interop.imagenet import initialize_weights
from cvft_tf.models.cross_view import build_model

TENSORBOARD_DIR = "tensorboard"


def read_split(data_config, split):
    """Reads and checks one split named by a ``config.data`` section."""
    root = data_config.root
    if not root:
        raise ValueError("config.data.root is empty: pass --config.data.root=/path/to/dataset")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Dataset root {root} does not exist (config.data.root).")
    if data_config.name == "cvusa":
        return cvusa.read_split(root, split, raw_ground_size=tuple(data_config.raw_ground_size))
    if data_config.name == "cvact":
        return cvact.read_split(root, split)
    raise ValueError(f"Unknown dataset {data_config.name!r} (config.data.name): expected 'cvusa' or 'cvact'.")


def eval_dataset(config, split):
    """The evaluation pipeline of ``split`` at the model's input sizes."""
    return make_eval_dataset(
        split,
        config.eval.batch_size,
        tuple(config.model.ground_size),
        tuple(config.model.aerial_size),
        orientation_noise_deg=config.eval.orientation_noise_deg,
        seed=config.eval.orientation_seed,
    )


def new_model(config):
    """Builds and compiles a fresh model, initialised as ``config.train.init`` says."""
    model = build_model(**config.model)
    if config.train.init:
        initialize_weights(model, config.train.init)
    compile_model(model, config)
    return model


def compile_model(model, config):
    """Adam with the config's learning rate and betas; optional XLA."""
    optimizer = keras.optimizers.Adam(
        learning_rate=config.train.learning_rate, beta_1=config.train.beta_1, beta_2=config.train.beta_2
    )
    model.compile(optimizer=optimizer, jit_compile=bool(config.train.jit_compile))


class EpochValidation(keras.callbacks.Callback):
    """After each epoch: validate, log, keep the best model, write the checkpoint.

    Adds ``val_loss``, ``val_r@1``, ``val_r@5``, ``val_r@10``, ``val_r@1%``,
    ``learning_rate`` and ``skipped_pairs`` to the epoch logs (so Keras' TensorBoard
    callback placed after it records them) and writes images of top-5 retrievals, the
    ground feature map before/after transport beside the aerial one, and the transport
    plan under ``<workdir>/tensorboard/validation``.
    """

    def __init__(self, config, workdir, val_split, val_data, counter, best_r1=-1.0):
        super().__init__()
        self.config = config
        self.workdir = workdir
        self.val_split = val_split
        self.val_data = val_data
        self.counter = counter
        self.best_r1 = best_r1
        self.writer = tf.summary.create_file_writer(os.path.join(workdir, TENSORBOARD_DIR, "validation"))

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        started = time.time()
        embeddings = embed.embed_split(self.model, self.val_data)
        metrics = embed.score(embeddings, chunk_size=self.config.eval.chunk_size)
        logs["val_loss"] = embed.batched_loss(
            embeddings, self.config.train.batch_size, self.model.loss_gamma, self.model.same_place_radius_m
        )
        for key in ("r@1", "r@5", "r@10", "r@1%"):
            logs[f"val_{key}"] = metrics[key]
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        logs["skipped_pairs"] = self.counter.skipped
        logging.info(
            "epoch %d: val r@1 %.2f r@5 %.2f r@10 %.2f r@1%% %.2f, val loss %.4f, skipped %d (%.1fs)",
            epoch + 1, metrics["r@1"], metrics["r@5"], metrics["r@10"], metrics["r@1%"],
            logs["val_loss"], self.counter.skipped, time.time() - started,
        )  # fmt: skip
        self._log_images(embeddings, epoch + 1)
        if metrics["r@1"] > self.best_r1:
            self.best_r1 = metrics["r@1"]
            checkpoints.save_model_atomic(self.model, os.path.join(self.workdir, checkpoints.BEST_MODEL))
            checkpoints.write_json_atomic(
                {"epoch": epoch + 1, **{k: metrics[k] for k in ("r@1", "r@5", "r@10", "r@1%")}},
                os.path.join(self.workdir, checkpoints.BEST_STATE),
            )
        checkpoints.save_checkpoint(
            self.model, self.workdir, epoch + 1, self.best_r1, keep=self.config.train.keep_checkpoints
        )

    def _log_images(self, embeddings, step):
        count = min(self.config.eval.num_figure_queries, len(embeddings.ground))
        top = recall.top_k_indices(embeddings.ground[:count], embeddings.aerial, k=min(5, len(embeddings.aerial)))
        grounds = [embed.display_image(p, 64) for p in self.val_split.ground_paths[:count]]
        retrievals = figures.retrieval_figure(
            grounds, embed.AerialTiles(self.val_split.aerial_paths, 64), top, true_index=np.arange(count), tile_size=64
        )
        with self.writer.as_default(step=step):
            tf.summary.image("top5_retrievals", retrievals[None])
            for name, image in feature_figures(self.model, self.val_data).items():
                tf.summary.image(name, image[None])
        self.writer.flush()


def feature_figures(model, dataset):
    """Figure 7 (ground map before/after transport beside the aerial one) and the plan.

    Returns:
        dict name -> RGB uint8 image, for the first pair of ``dataset``; empty for
        ``vgg_gp`` and ``salad`` (no transported feature maps).
    """
    if model.variant not in ("cvft", "vgg_conv"):
        return {}
    batch = next(iter(dataset.take(1)))
    ground = model.ground_feature_maps(batch["ground"][:1])
    aerial = model.aerial_feature_maps(batch["aerial"][:1])
    transported = ground.get("transported", ground["feature_map"])
    result = {
        "feature_alignment": figures.feature_alignment_figure(
            ground["feature_map"].numpy()[0], aerial["feature_map"].numpy()[0], transported.numpy()[0]
        )
    }
    if "plan" in ground:
        result["transport_plan"] = figures.transport_plan_figure(ground["plan"].numpy()[0])
    return result


def train(config, workdir):
    """Trains (or resumes) the model of ``config`` in ``workdir``; returns the model."""
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as handle:
        handle.write(config.to_json_best_effort(indent=2))
    keras.utils.set_random_seed(config.train.seed)
    if config.train.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")

    train_split = read_split(config.data, config.data.train_split)
    val_split = read_split(config.data, config.data.val_split)
    counter = DecodeCounter()
    train_data = make_train_dataset(
        train_split,
        config.train.batch_size,
        tuple(config.model.ground_size),
        tuple(config.model.aerial_size),
        seed=config.train.seed,
        deterministic=config.train.deterministic,
        orientation_noise_deg=config.data.orientation_noise_deg,
        max_bad_fraction=config.data.max_bad_fraction,
        counter=counter,
    )
    val_data = eval_dataset(config, val_split)

    state = checkpoints.latest_state(workdir)
    if state is None:
        model, initial_epoch, best_r1 = new_model(config), 0, -1.0
        logging.info("Training %s from %s in %s", config.model.variant, config.train.init or "random init", workdir)
    else:
        model = checkpoints.load_model(state["path"], config.model)
        initial_epoch, best_r1 = state["epoch"], state["best_r@1"]
        logging.info("Resuming from %s: epoch %d, step %d", state["path"], state["epoch"], state["step"])
    if initial_epoch >= config.train.epochs:
        logging.info("Already trained for %d epochs (config.train.epochs=%d).", initial_epoch, config.train.epochs)
        return model

    callbacks = [
        EpochValidation(config, workdir, val_split, val_data, counter, best_r1),
        keras.callbacks.TensorBoard(os.path.join(workdir, TENSORBOARD_DIR), update_freq="epoch"),
    ]
    steps_per_epoch = config.train.steps_per_epoch or len(train_split) // config.train.batch_size
    with dataset_errors():
        model.fit(
            train_data.repeat(),
            epochs=config.train.epochs,
            initial_epoch=initial_epoch,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            shuffle=False,
            verbose=1 if os.isatty(1) else 2,
        )
    with open(os.path.join(workdir, checkpoints.BEST_STATE)) as handle:
        logging.info("Best validation: %s", json.load(handle))
    return model
