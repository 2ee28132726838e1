"""Per-epoch checkpoints of a training run: atomic, resumable, with the optimizer state.

A checkpoint is a ``.keras`` file (architecture, weights and optimizer variables, so the
step count and Adam moments come back) written under a temporary name and renamed into
place; ``state.json`` (epoch, step, best r@1, file name) is written the same way after it.
A run stopped at any point (Ctrl-C, kill) leaves the last complete checkpoint loadable.

Layout of ``<workdir>``::

    checkpoints/epoch-0003.keras   one per epoch (the last ``keep`` are kept)
    checkpoints/state.json         the latest complete checkpoint
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

from cvft_tf.models.cross_view import CrossViewModel

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.json"
BEST_MODEL = "best.keras"
BEST_STATE = "best.json"
BEST_RECORD = "cvft_best_record.json"
"""Name of the record inside ``best.keras``."""
BEST_ORDER = (("r@1", 1), ("r@5", 1), ("r@10", 1), ("val_loss", -1))
"""How two validations compare: by r@1, a tie by r@5, then r@10, then the lower loss."""
_NAME = re.compile(r"^epoch-(\d+)\.keras$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable or does not match the requested model."""


def write_json_atomic(data, path):
    """Writes ``data`` as JSON to ``path`` via a temporary file and a rename."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)


def save_model_atomic(model, path, extra_files=None):
    """``model.save(path)`` through a temporary ``.keras`` name and a rename.

    ``extra_files`` (dict name -> text) are added to the archive before the rename.
    """
    directory, name = os.path.split(os.fspath(path))
    tmp = os.path.join(directory, f".partial-{name}")
    model.save(tmp)
    if extra_files:
        with zipfile.ZipFile(tmp, "a") as archive:
            for extra_name, text in extra_files.items():
                archive.writestr(extra_name, text)
    os.replace(tmp, path)


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


def save_checkpoint(model, workdir, epoch, best_r1, keep=3):
    """Saves the state after ``epoch`` completed epochs and prunes older checkpoints."""
    directory = os.path.join(workdir, CHECKPOINT_DIR)
    os.makedirs(directory, exist_ok=True)
    name = f"epoch-{epoch:04d}.keras"
    save_model_atomic(model, os.path.join(directory, name))
    state = {"epoch": epoch, "step": int(model.optimizer.iterations), "best_r@1": best_r1, "checkpoint": name}
    write_json_atomic(state, os.path.join(directory, STATE_FILE))
    for old in sorted(_epochs(directory))[:-keep] if keep else []:
        os.remove(os.path.join(directory, f"epoch-{old:04d}.keras"))
    return state


def _epochs(directory):
    return [int(m.group(1)) for m in map(_NAME.match, os.listdir(directory)) if m]


def latest_state(workdir):
    """The state of the latest complete checkpoint in ``workdir``, or None if there is none."""
    directory = os.path.join(workdir, CHECKPOINT_DIR)
    path = os.path.join(directory, STATE_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        state = json.load(handle)
    state["path"] = os.path.join(directory, state["checkpoint"])
    if not os.path.exists(state["path"]):
        raise CheckpointError(f"{path} names {state['checkpoint']}, which is missing from {directory}")
    return state


def load_model(path, expected_model_config=None):
    """Loads a ``.keras`` checkpoint (compiled, with optimizer state) and checks its config.

    Args:
        path: the ``.keras`` file.
        expected_model_config: dict of ``CrossViewModel`` arguments the checkpoint must have
            (e.g. ``config.model``); a difference is a :class:`CheckpointError` naming it.
    """
    if not os.path.exists(path):
        raise CheckpointError(f"Checkpoint {path} does not exist.")
    try:
        model = keras.saving.load_model(path)
    except Exception as error:  # noqa: BLE001 - re-raised with the file name
        raise CheckpointError(f"Cannot load checkpoint {path}: {error}") from error
    if not isinstance(model, CrossViewModel):
        raise CheckpointError(f"{path} holds a {type(model).__name__}, not a CrossViewModel.")
    if expected_model_config is not None:
        check_model_config(model, expected_model_config, path)
    return model


def _plain(value):
    """``value`` as JSON would give it back (tuples become lists), for comparison."""
    return json.loads(json.dumps(value, default=str))


def check_model_config(model, expected, source):
    """Raises :class:`CheckpointError` listing every field where ``model`` differs from ``expected``."""
    actual = _plain(model.get_config())
    expected = _plain(expected.to_dict() if hasattr(expected, "to_dict") else dict(expected))
    differences = []
    for key, want in expected.items():
        if key not in actual:
            continue
        have = actual[key]
        if have != want:
            differences.append(f"{key}: checkpoint has {have!r}, config asks for {want!r}")
    if differences:
        raise CheckpointError(f"{source} does not match the config:\n  " + "\n  ".join(differences))
