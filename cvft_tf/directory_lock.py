"""One writer per output directory (a training workdir, an index): an advisory lock held for
the whole run.

The lock is ``fcntl.flock`` on ``DIR/.lock``, which also records the holder (its pid and
command line) for the message a second run gives. The kernel releases a flock when its
process ends, however it ends, so the lock of a killed run is free at once: there is no
stale lock to clear. The file itself stays (removing it would let two runs lock two
different files); a released lock's file is empty.
"""

import contextlib
import fcntl
import os
import sys

from cvft_tf.output_dirs import OutputDirectoryError, make_output_directory

LOCK_NAME = ".lock"


class DirectoryInUseError(OutputDirectoryError):
    """Another live process holds the directory's lock."""


@contextlib.contextmanager
def hold(directory, what):
    """Creates ``directory`` if needed and holds its lock while the ``with`` block runs.

    Args:
        directory: the output directory.
        what: its name in messages, e.g. ``"--workdir"``.

    Raises:
        DirectoryInUseError: another process holds the lock; the message names its pid and command.
        OutputDirectoryError: ``directory`` cannot be created or written.
    """
    make_output_directory(directory, what)
    path = os.path.join(directory, LOCK_NAME)
    handle = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(handle, 4096, 0).decode("utf-8", "replace").strip() or "a process starting up"
            raise DirectoryInUseError(
                f"the {what} {directory} is in use by another run ({holder}); wait for it to end, "
                f"or give another {what}"
            ) from None
        os.ftruncate(handle, 0)
        os.pwrite(handle, f"pid {os.getpid()}: {' '.join(sys.argv)}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(handle, 0)
    finally:
        os.close(handle)
