"""Checkpoints of a training run: atomic, resumable at any saved step, with the optimizer state.

A checkpoint is a ``.keras`` file (architecture, weights and optimizer variables, so the
step count and Adam moments come back) with the run's state inside it (``CHECKPOINT_STATE``:
epoch, step in the epoch, batches read, decode counter, dropout RNG and running epoch
metrics, see ``cvft_tf.run_state``), written under a temporary name and renamed into place;
``state.json``, a copy of the newest checkpoint's state, is written the same way after it.
A run stopped at any point (Ctrl-C, SIGTERM, kill, even in the middle of a write) leaves
its last complete checkpoint loadable; a checkpoint that cannot be read (a truncated file)
is passed over for the one before it (:func:`load_latest`).

Layout of ``<workdir>``::

    checkpoints/epoch-0003.keras   after each epoch (the last ``keep`` are kept)
    checkpoints/step-00000457.keras  the step backup inside an epoch (the latest only)
    checkpoints/state.json         the state of the newest checkpoint
    best.keras, best.json          the model with the best validation recall

``best.keras`` carries its own record (epoch and validation metrics, ``BEST_RECORD`` inside
the archive), written into the file before the rename that publishes it: the model and its
record change together or not at all, whenever a run is killed. ``best.json`` is a copy of
the record for people and scripts, written after it; a resumed run reads the record from
``best.keras``. Which model is better is :func:`is_better`.
"""

import json
import os
import re
import zipfile

import keras
from absl import logging

from cvft_tf.models.cross_view import MODEL_PARTS, CrossViewModel
from cvft_tf import output_dirs
from cvft_tf.output_dirs import PARTIAL_PREFIX, atomic_path
from cvft_tf.write_failures import reported_write_failures

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"
BEST_MODEL = "best.keras"
BEST_STATE = "best.json"
BEST_RECORD = "cvft_best_record.json"
"""Name of the record inside ``best.keras``."""
CHECKPOINT_STATE = "cvft_state.json"
"""Name of the run state inside a checkpoint."""

BEST_ORDER = (("r@1", 1), ("r@5", 1), ("r@10", 1), ("val_loss", -1))
"""How two validations compare: by r@1, a tie by r@5, then r@10, then the lower loss."""
_EPOCH_NAME = re.compile(r"^epoch-(\d+)\.keras$")
_STEP_NAME = re.compile(r"^step-(\d+)\.keras$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not match the requested model."""


class UnreadableCheckpointError(CheckpointError):
    """A checkpoint file that cannot be read (truncated, not a ``.keras`` archive)."""


def write_json_atomic(data, path):
    """Writes ``data`` as JSON with sorted keys to ``path``, whole or not at all (``output_dirs``)."""
    output_dirs.write_json_atomic(data, path, sort_keys=True)


def save_model_atomic(model, path, extra_files=None):
    """``model.save(path)`` through a temporary ``.keras`` name and a rename.

    ``extra_files`` (dict name -> text) are added to the archive before the rename. A full
    disk raises ``write_failures.WriteFailure`` naming ``path``.
    """
    with reported_write_failures(path), atomic_path(path) as partial:
        model.save(partial)
        if extra_files:
            with zipfile.ZipFile(partial, "a") as archive:
                for extra_name, text in extra_files.items():
                    archive.writestr(extra_name, text)


def is_better(record, best):
    """Whether validation ``record`` beats ``best`` (None: nothing yet) by :data:`BEST_ORDER`.

    Both are dicts with the keys of ``BEST_ORDER``; an exact tie on all of them is not better.
    """
    if best is None:
        return True
    key = lambda r: tuple(sign * float(r[name]) for name, sign in BEST_ORDER)  # noqa: E731
    return key(record) > key(best)


def save_best_model(model, workdir, record):
    """Publishes ``model`` as ``best.keras`` with ``record`` inside it, then ``best.json``.

    The record is added to the archive under a temporary name; one rename publishes both.
    """
    record_text = json.dumps(record, sort_keys=True)
    save_model_atomic(model, os.path.join(workdir, BEST_MODEL), {BEST_RECORD: record_text})
    write_json_atomic(record, os.path.join(workdir, BEST_STATE))


def read_best_record(workdir):
    """The record inside ``<workdir>/best.keras``, or None when there is no best model yet.

    A ``best.keras`` written before records were kept inside it (cvft_tf 0.1) has none; its
    ``best.json`` is read instead, with an infinite validation loss where it has none.

    Raises:
        CheckpointError: ``best.keras`` exists but is not a complete archive, or has neither
            a record nor a ``best.json`` beside it.
    """
    path = os.path.join(workdir, BEST_MODEL)
    if not os.path.exists(path):
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            if BEST_RECORD in archive.namelist():
                return json.loads(archive.read(BEST_RECORD))
    except (zipfile.BadZipFile, ValueError) as error:
        raise CheckpointError(f"{path} is not a readable .keras archive ({error}); move it away to resume.") from None
    legacy = os.path.join(workdir, BEST_STATE)
    if not os.path.exists(legacy):
        raise CheckpointError(f"{path} has no best-model record and there is no {BEST_STATE}; move it away to resume.")
    with open(legacy) as handle:
        return {"val_loss": float("inf"), **json.load(handle)}


def checkpoint_name(state):
    """``epoch-NNNN.keras`` at the end of an epoch, else ``step-NNNNNNNN.keras`` (batches read)."""
    if state["step_in_epoch"] == 0:
        return f"epoch-{state['epoch']:04d}.keras"
    return f"step-{state['batches']:08d}.keras"


def save_checkpoint(model, workdir, state, keep=3):
    """Saves ``model`` with the run ``state`` inside it, then ``state.json``; prunes older files.

    Args:
        model: the compiled model (its optimizer variables are saved).
        workdir: the run directory.
        state: JSON-ready dict with at least ``epoch`` (completed epochs), ``step_in_epoch``
            and ``batches`` (see ``cvft_tf.run_state``).
        keep: epoch checkpoints to keep (0: all). Step backups older than this checkpoint
            are removed.

    Returns:
        the saved state, with ``checkpoint`` (the file name) and ``step`` (= ``batches``).
    """
    directory = os.path.join(workdir, CHECKPOINT_DIR)
    os.makedirs(directory, exist_ok=True)
    name = checkpoint_name(state)
    state = {**state, "checkpoint": name, "step": state["batches"]}
    save_model_atomic(model, os.path.join(directory, name), {CHECKPOINT_STATE: json.dumps(state, sort_keys=True)})
    write_json_atomic(state, os.path.join(directory, STATE_FILE))
    names = os.listdir(directory)
    old_backups = [n for n in names if _STEP_NAME.match(n) and n != name]
    epochs = sorted(int(m.group(1)) for m in map(_EPOCH_NAME.match, names) if m)
    old_epochs = [f"epoch-{e:04d}.keras" for e in epochs[:-keep]] if keep else []
    for old in old_backups + old_epochs:
        os.remove(os.path.join(directory, old))
    return state


def remove_partial_files(workdir):
    """Removes the temporary files of writes a killed run left unfinished (``.partial-*``, and
    ``*.json.tmp`` of cvft_tf 0.1); returns their paths."""
    removed = []
    for directory in (workdir, os.path.join(workdir, CHECKPOINT_DIR)):
        if os.path.isdir(directory):
            for name in os.listdir(directory):
                if name.startswith(PARTIAL_PREFIX) or name.endswith(".json.tmp"):
                    removed.append(os.path.join(directory, name))
                    os.remove(removed[-1])
    return removed


def read_checkpoint_state(path):
    """The run state inside checkpoint ``path``, or None for one written before states were
    kept inside (cvft_tf 0.1).

    Raises:
        UnreadableCheckpointError: ``path`` is not a complete ``.keras`` archive.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            if CHECKPOINT_STATE not in archive.namelist():
                return None
            return json.loads(archive.read(CHECKPOINT_STATE))
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise UnreadableCheckpointError(f"{path} is not a readable .keras archive ({error})") from None


def _legacy_state(directory):
    """``state.json`` of a run whose checkpoints have no state inside, in today's form; or None
    when there is none or it cannot be read (today's checkpoints do not need it)."""
    path = os.path.join(directory, STATE_FILE)
    try:
        with open(path) as handle:
            state = json.load(handle)
        return {"step_in_epoch": 0, "batches": state["step"], **state}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def checkpoint_candidates(workdir):
    """The checkpoints of ``workdir`` to resume from, newest first, and the unreadable ones.

    Returns:
        ``(states, problems)``: ``states`` are run-state dicts with ``path`` added, sorted by
        batches read (newest first; the epoch checkpoint first when a step backup holds the
        same state); ``problems`` are messages about files that cannot be read.
    """
    directory = os.path.join(workdir, CHECKPOINT_DIR)
    if not os.path.isdir(directory):
        return [], []
    states, problems = [], []
    legacy = _legacy_state(directory)
    for name in sorted(os.listdir(directory)):
        if not (_EPOCH_NAME.match(name) or _STEP_NAME.match(name)):
            continue
        path = os.path.join(directory, name)
        try:
            state = read_checkpoint_state(path)
        except UnreadableCheckpointError as error:
            problems.append(str(error))
            continue
        if state is None and legacy is not None and legacy.get("checkpoint") == name:
            state = legacy
        if state is not None:
            states.append({**state, "path": path})
    states.sort(key=lambda state: (state["batches"], state["step_in_epoch"] == 0), reverse=True)
    return states, problems


def latest_state(workdir):
    """The state (with ``path``) of the newest readable checkpoint in ``workdir``, or None."""
    states, _ = checkpoint_candidates(workdir)
    return states[0] if states else None


def load_latest(workdir, expected_model_config=None, model_class=CrossViewModel):
    """Loads the newest checkpoint of ``workdir`` that can be read; returns ``(model, state)``.

    ``expected_model_config`` and ``model_class``: see :func:`load_model`.

    A checkpoint that cannot be read (truncated, unreadable) is logged and passed over for
    the one before it; ``(None, None)`` when the workdir has no checkpoint at all.

    Raises:
        CheckpointError: checkpoints exist but none can be read (each problem listed), or
            the newest readable one does not match ``expected_model_config``.
    """
    states, problems = checkpoint_candidates(workdir)
    for problem in problems:
        logging.warning("Passing over an unreadable checkpoint: %s", problem)
    for state in states:
        try:
            return load_model(state["path"], expected_model_config, model_class), state
        except UnreadableCheckpointError as error:
            logging.warning("Passing over an unreadable checkpoint: %s", error)
            problems.append(str(error))
    if problems:
        listed = "\n  ".join(problems)
        raise CheckpointError(f"No checkpoint of {workdir} can be read:\n  {listed}\nMove them away to start afresh.")
    return None, None


def load_model(path, expected_model_config=None, model_class=CrossViewModel):
    """Loads a ``.keras`` checkpoint (compiled, with optimizer state) and checks its config.

    Args:
        path: the ``.keras`` file.
        expected_model_config: dict of the model's arguments the checkpoint must have
            (e.g. ``config.model``); a difference is a :class:`CheckpointError` naming it.
        model_class: the class the checkpoint must hold (with a ``settings()`` method giving
            its arguments by name): ``CrossViewModel`` or ``PlaceRecognitionModel``.
    """
    if not os.path.exists(path):
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    if not zipfile.is_zipfile(path):
        raise UnreadableCheckpointError(f"{path} is not a readable .keras archive (truncated or corrupt)")
    try:
        model = keras.saving.load_model(path, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - re-raised with the file name
        raise UnreadableCheckpointError(f"Cannot load checkpoint {path}: {error}") from error
    if not isinstance(model, model_class):
        raise CheckpointError(f"{path} holds a {type(model).__name__}, not a {model_class.__name__}.")
    if expected_model_config is not None:
        check_model_config(model, expected_model_config, path)
    return model


def _plain(value):
    """``value`` as JSON would give it back (tuples become lists), for comparison."""
    return json.loads(json.dumps(value, default=str))


def _settings_of(model_config):
    """``(label, name, value)`` of each setting of a ``config.model``: its own fields, and
    those of its part sections labelled ``"<section>.<name>"``."""
    for key, value in model_config.items():
        if key in MODEL_PARTS and isinstance(value, dict):
            yield from ((f"{key}.{name}", name, setting) for name, setting in value.items())
        else:
            yield key, key, value


def check_model_config(model, expected, source):
    """Raises :class:`CheckpointError` listing every field where ``model`` differs from ``expected``."""
    actual = _plain(model.settings())
    expected = _plain(expected.to_dict() if hasattr(expected, "to_dict") else dict(expected))
    differences = []
    for label, key, want in _settings_of(expected):
        if key not in actual:
            continue
        have = actual[key]
        if have != want:
            differences.append(f"{label}: checkpoint has {have!r}, config asks for {want!r}")
    if differences:
        raise CheckpointError(f"{source} does not match the config:\n  " + "\n  ".join(differences))
