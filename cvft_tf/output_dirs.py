"""Output directories (workdirs, export and figure folders), created and checked writable up
front, and output files and folders, written whole or not at all and durably
(:func:`atomic_path`, :func:`write_json_atomic`, :func:`directory_replaced_whole`)."""

import contextlib
import json
import os
import secrets
import shutil

PARTIAL_PREFIX = ".partial-"
"""Prefix of a file being written; one left behind by a killed process is never read."""
PROBE_NAME = f"{PARTIAL_PREFIX}write-probe"
WRITING_PREFIX = ".writing-"
"""Prefix of a folder being written (:func:`directory_replaced_whole`)."""
REPLACED_PREFIX = ".replaced-"
"""Prefix of the folder a new one replaces, until the new one is in place."""


def _own_name(prefix, name):
    """``<prefix><pid>-<random>-<name>``: a temporary name no other process uses."""
    return f"{prefix}{os.getpid()}-{secrets.token_hex(4)}-{name}"


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
    partial = os.path.join(directory, _own_name(PARTIAL_PREFIX, name))
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


@contextlib.contextmanager
def directory_replaced_whole(path):
    """Yields a new empty folder beside ``path`` to fill; on success every file in it is
    flushed to disk and it replaces ``path`` as a whole (:func:`replace_directory`); on an
    error it is removed, and ``path`` is as it was.

    A set of files written together (an export, an evaluation's outputs) is then never
    mixed with the files of an earlier run.
    """
    parent, name = os.path.split(os.path.abspath(os.fspath(path)))
    staging = os.path.join(parent, _own_name(WRITING_PREFIX, name))
    os.mkdir(staging)
    try:
        yield staging
        for folder, _, names in os.walk(staging):
            for file_name in names:
                sync_file(os.path.join(folder, file_name))
        replace_directory(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_directory(new, path):
    """Renames folder ``new`` to ``path``. An existing ``path`` is renamed aside first
    (``.replaced-...``) and removed only once ``new`` is in place; if putting ``new`` in place
    fails, it is renamed back. A process killed between the two renames leaves the old folder
    under its ``.replaced-`` name, never neither."""
    parent, name = os.path.split(os.path.abspath(os.fspath(path)))
    if not os.path.lexists(path):
        os.replace(new, path)
        sync_directory(parent)
        return
    aside = os.path.join(parent, _own_name(REPLACED_PREFIX, name))
    os.replace(path, aside)
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(aside, path)
        raise
    sync_directory(parent)
    shutil.rmtree(aside)


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
