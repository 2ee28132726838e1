"""How a command ends on a user error; imports nothing heavy, so every command can use it."""

import os
import sys

from absl import app, logging

USER_ERROR_STATUS = 2
"""Exit status of a command stopped by a user error."""


def exit_with_user_error(error):
    """Prints ``error: <message>`` on stderr and raises ``SystemExit(2)``."""
    logging.error("%s", error)
    print(f"error: {error}", file=sys.stderr)
    sys.exit(USER_ERROR_STATUS)


def run_command(main):
    """Console entry point: ``app.run(main)``; a user error ends the process at once.

    On ``SystemExit(2)`` the process ends with ``os._exit`` after flushing the standard
    streams and the log, not through the interpreter's shutdown: when the error comes out of
    a tf.data pipeline, its threads are still running, and a normal shutdown then aborts
    ("terminate called without an active exception", status 134) or hangs. Every file the
    commands write is written atomically and complete before an error can be raised, so
    nothing is lost.
    """
    try:
        app.run(main)
    except SystemExit as exit_request:
        if exit_request.code != USER_ERROR_STATUS:
            raise
        logging.flush()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(USER_ERROR_STATUS)
