"""Output directories (workdirs, export and figure folders), created and checked writable up
front, and output files, written whole or not at all (:func:`atomic_path`)."""

import contextlib
import os

PARTIAL_PREFIX = ".partial-"
"""Prefix of a file being written; one left behind by a killed process is never read."""
PROBE_NAME = f"{PARTIAL_PREFIX}write-probe"


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside ``path`` (``.partial-<name>``, same directory, same suffix)
    to write to; on success it is renamed to ``path``, on an error removed.

    A process killed while writing leaves ``path`` as it was (at most a ``.partial-`` file).
    """
    directory, name = os.path.split(os.fspath(path))
    partial = os.path.join(directory, f"{PARTIAL_PREFIX}{name}")
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise


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
