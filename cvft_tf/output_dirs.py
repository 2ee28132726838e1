"""Output directories (workdirs, export and figure folders), created and checked writable up
front, and output files, written whole or not at all and durably (:func:`atomic_path`,
:func:`write_json_atomic`)."""

import contextlib
import json
import os
import secrets

PARTIAL_PREFIX = ".partial-"
"""Prefix of a file being written; one left behind by a killed process is never read."""
PROBE_NAME = f"{PARTIAL_PREFIX}write-probe"


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside ``path`` to write to (``.partial-<pid>-<random>-<name>``:
    same directory, same suffix, its own per process); on success the file is flushed to disk,
    renamed to ``path`` and the rename flushed too (:func:`sync_directory`); on an error it is
    removed.

    A process killed while writing leaves ``path`` as it was (at most a ``.partial-`` file),
    and a machine that loses power after the rename keeps the new file whole.
    """
    directory, name = os.path.split(os.fspath(path))
    partial = os.path.join(directory, f"{PARTIAL_PREFIX}{os.getpid()}-{secrets.token_hex(4)}-{name}")
    try:
        yield partial
        sync_file(partial)
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise
    sync_directory(directory or ".")


def sync_file(path):
    """Flushes the file ``path`` to disk (``fsync``)."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def sync_directory(path):
    """Flushes directory ``path``'s entries (a rename into it) to disk, where the system allows."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_json_atomic(data, path, sort_keys=False):
    """Writes ``data`` as JSON (indented by 2) to ``path`` whole or not at all (:func:`atomic_path`)."""
    with atomic_path(path) as partial, open(partial, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=sort_keys)


class OutputDirectoryError(OSError):
    """An output directory cannot be created or written."""


def make_output_directory(path, what="output directory"):
    """Creates ``path`` if needed and checks that a file can be written in it; returns ``path``.

    Checked by writing and removing a file, which holds for any user (``os.access`` does
    not tell root about a read-only mount).

    Raises:
        OutputDirectoryError: ``path`` cannot be created (a file is in the way, no
            permission) or written; the message names ``what``, the path and the reason.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputDirectoryError(f"cannot write to the {what} {path}: it is a file, not a directory")
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, PROBE_NAME)
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as error:
        raise OutputDirectoryError(f"cannot write to the {what} {path}: {error.strerror or error}") from None
    return path
