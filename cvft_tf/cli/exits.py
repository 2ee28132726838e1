"""How a command ends on a user error; imports nothing heavy, so every command can use it."""

import os
import sys

from absl import logging

USER_ERROR_STATUS = 2
"""Exit status of a command stopped by a user error."""


def exit_with_user_error(error):
    """Prints ``error: <message>`` on stderr and ends the process with status 2, at once.

    The process ends with ``os._exit`` after flushing the standard streams and the log, not
    with ``sys.exit``: when the error comes out of a tf.data pipeline, its threads are still
    running, and a normal interpreter shutdown then aborts ("terminate called without an
    active exception", status 134) or hangs. Everything the commands write to files is
    written atomically and complete before an error can be raised, so nothing is lost.
    """
    logging.error("%s", error)
    print(f"error: {error}", file=sys.stderr)
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(USER_ERROR_STATUS)
