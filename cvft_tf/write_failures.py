"""A write that fails for want of room or of a writable disk, reported as the user's problem.

A command that writes (``cvft-train``, ``cvft-export``, ``cvft-index``) runs its writes inside
:func:`reported_write_failures`: a full disk, a quota, a read-only or failing file system
becomes one :class:`WriteFailure` naming the path and the space left, instead of a traceback.
Every output is written under a temporary name and renamed (``output_dirs.atomic_path``), so
what was there before stays as it was.
"""

import contextlib
import errno
import os
import shutil

WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO)
"""OS errors that say a write cannot be done here: no space, over quota, file too large,
read-only file system, I/O error."""

_WRITE_TEXTS = tuple(os.strerror(number) for number in WRITE_ERRNOS)
"""Their messages, as libraries that do not raise ``OSError`` with an errno (h5py,
TensorFlow's file system) report them."""


class WriteFailure(Exception):
    """A write that failed for want of space or of a writable file system."""


def is_write_failure(error):
    """True when ``error`` is an OS error of :data:`WRITE_ERRNOS`, by number or by message."""
    if isinstance(error, OSError) and error.errno in WRITE_ERRNOS:
        return True
    text = str(error)
    return any(reason in text for reason in _WRITE_TEXTS)


def free_space(path):
    """Bytes free to an unprivileged user on the file system of ``path`` (its nearest existing
    folder), or None when none can be found."""
    folder = os.path.abspath(path)
    while not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
    return shutil.disk_usage(folder).free


def readable_size(size):
    """``size`` bytes as KiB below 1 MiB, else MiB, with one decimal: ``"36.0 KiB"``."""
    return f"{size / 2**10:.1f} KiB" if size < 2**20 else f"{size / 2**20:.1f} MiB"


def describe(error, destination):
    """The one-line message of a failed write under ``destination``."""
    path = getattr(error, "filename", None) or destination
    reason = next((text for text in _WRITE_TEXTS if text in str(error)), None)
    reason = reason or (os.strerror(error.errno) if getattr(error, "errno", None) else str(error))
    free = free_space(path)
    room = "unknown" if free is None else readable_size(free)
    return (
        f"cannot write {path}: {reason} ({room} free there); files written before are unchanged: "
        "free some space (or choose another location) and run the command again"
    )


@contextlib.contextmanager
def reported_write_failures(destination):
    """Turns a write failure (:func:`is_write_failure`) inside the block into a
    :class:`WriteFailure` naming the file (or ``destination``, the output the block writes)."""
    try:
        yield
    except WriteFailure:
        raise  # already names its file
    except Exception as error:
        if not is_write_failure(error):
            raise
        raise WriteFailure(describe(error, destination)) from None
