"""Output directories (workdirs, export and figure folders): created, and checked writable, up front."""

import os

PROBE_NAME = ".partial-write-probe"


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
