"""The callback that checkpoints a training run: after each epoch, every N steps, and on a stop signal."""

import keras
from absl import logging

from cvft_tf import checkpoints, run_state
from cvft_tf.stop_signals import StoppedBySignal


class TrainingCheckpoints(keras.callbacks.Callback):
    """Keeps the run's position and writes its checkpoints (``checkpoints.save_checkpoint``).

    - after each epoch: ``epoch-NNNN.keras``;
    - every ``backup_every_steps`` steps inside an epoch (0: never): a step backup, so a
      preempted run loses at most that many steps (with ``steps_per_execution`` > 1, at the
      end of the call that reaches a multiple of ``backup_every_steps``);
    - on a stop request of ``stop`` (``StopSignals``, SIGINT/SIGTERM): a step backup at the
      end of the current step, then :class:`StoppedBySignal`. A request during the epoch's
      last step or its validation is acted on once the epoch's checkpoint is written; after
      the last epoch it is moot, and the run ends normally.

    Put it after the callbacks that validate and log an epoch, so that an epoch's checkpoint
    is written after them.

    Args:
        workdir: the run directory.
        steps_per_epoch: steps in one epoch.
        epochs: the epoch count of the run (``config.train.epochs``).
        backup_every_steps: steps between step backups; 0 for none.
        keep: epoch checkpoints to keep.
        counter: the training stream's ``DecodeCounter`` (saved with the state).
        best_r1: callable giving the best validation r@1 so far (None before the first).
        stop: the run's ``StopSignals``.
        resume_state: the run state the run resumed from, or None for a fresh run.
    """

    def __init__(
        self, workdir, *, steps_per_epoch, epochs, backup_every_steps, keep, counter, best_r1, stop, resume_state=None
    ):
        super().__init__()
        self.workdir = workdir
        self.steps_per_epoch = steps_per_epoch
        self.epochs = epochs
        self.backup_every_steps = backup_every_steps
        self.keep = keep
        self.counter = counter
        self.best_r1 = best_r1
        self.stop = stop
        state = resume_state or {}
        self.epoch = state.get("epoch", 0)
        self.step_in_epoch = state.get("step_in_epoch", 0)
        self.batches = state.get("batches", 0)
        self._metrics_to_restore = state if self.step_in_epoch else None
        self._fit_epoch_start = (self.step_in_epoch, self.batches)

    def on_epoch_begin(self, epoch, logs=None):
        self._fit_epoch_start = (self.step_in_epoch, self.batches)
        if self._metrics_to_restore is not None:
            run_state.restore_epoch_metrics(self.model, self._metrics_to_restore)
            self._metrics_to_restore = None

    def on_train_batch_end(self, batch, logs=None):
        """``batch``: the index of the last step done in this ``fit`` epoch (Keras calls this
        once per ``steps_per_execution`` steps)."""
        previous = self.step_in_epoch
        start_step, start_batches = self._fit_epoch_start
        self.step_in_epoch, self.batches = start_step + batch + 1, start_batches + batch + 1
        if self.step_in_epoch >= self.steps_per_epoch:
            return
        if self.stop.requested is not None:
            state = self._save()
            raise StoppedBySignal(self.stop.requested, self._resume_message(state))
        every = self.backup_every_steps
        if every and self.step_in_epoch // every > previous // every:
            self._save()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch, self.step_in_epoch = epoch + 1, 0
        state = self._save()
        if self.stop.requested is not None and self.epoch < self.epochs:
            raise StoppedBySignal(self.stop.requested, self._resume_message(state))

    def _save(self):
        state = run_state.capture_run_state(
            self.model,
            epoch=self.epoch,
            step_in_epoch=self.step_in_epoch,
            batches=self.batches,
            best_r1=self.best_r1(),
            counter=self.counter,
        )
        state = checkpoints.save_checkpoint(self.model, self.workdir, state, keep=self.keep)
        logging.info("Saved %s (epoch %d, step %d)", state["checkpoint"], self.epoch, self.step_in_epoch)
        return state

    def _resume_message(self, state):
        where = f"step {self.step_in_epoch} of epoch {self.epoch + 1}" if self.step_in_epoch else f"epoch {self.epoch}"
        return (
            f"training stopped after {where} ({self.batches} steps in all); the state is saved in "
            f"{self.workdir}/{checkpoints.CHECKPOINT_DIR}/{state['checkpoint']}: run the same command to resume."
        )
