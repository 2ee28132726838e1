"""How a command ends: on a user error, a signal or Ctrl-C; imports nothing heavy.

Every console command runs through :func:`run_command`, which gives these exit statuses:

- 0: done;
- 2: a user error (a bad flag or config value, a missing or unreadable file, a bad image in
  evaluation, ...): ``error: <message>`` on stderr, no traceback;
- 128 + N: stopped by signal N (``stop_signals.StoppedBySignal``; 130 for Ctrl-C / SIGINT, 143 for
  SIGTERM), with ``stopped: <message>`` on stderr saying what was saved.

Anything else (a traceback, status 1) is a bug of the project, not of the input.
"""

import functools
import os
import signal
import sys

from absl import app, flags, logging

from cvft_tf.cli.console import plain_console_logs, wants_logs
from cvft_tf.stop_signals import StoppedBySignal

USER_ERROR_STATUS = 2
"""Exit status of a command stopped by a user error."""


def exit_with_user_error(error):
    """Prints ``error: <message>`` on stderr and raises ``SystemExit(2)``."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(USER_ERROR_STATUS)


def parse_flags(argv):
    """absl's flag parsing, where a bad flag value or config is a user error (status 2).

    A flag of the wrong type, a misspelt config field, a config file that is missing or
    whose ``get_config`` rejects its argument end with one ``error:`` line (absl alone
    gives status 1 and, for config files, a traceback or a failure much later).
    """
    try:
        argv = flags.FLAGS(argv)
        for name in flags.FLAGS:
            getattr(flags.FLAGS[name].value, "keys", None)  # a config file that failed to load raises here
        return argv
    except (flags.Error, ValueError, OSError, AttributeError, KeyError) as error:
        print(f"error: {flag_error_message(error)}", file=sys.stderr)
        sys.exit(USER_ERROR_STATUS)


def flag_error_message(error):
    """The user's part of a flag-parsing error: no traceback, no nested exception reprs."""
    while isinstance(error, (AttributeError, KeyError)) and error.args and isinstance(error.args[0], BaseException):
        error = error.args[0]
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    if isinstance(error, (AttributeError, KeyError)):
        return f"unknown config field {text}".replace("\n", " ")
    head, traceback_marker, rest = text.partition("Traceback (most recent call last):")
    if traceback_marker:
        lines = [line for line in rest.splitlines() if line.strip()]
        return f"{head.strip()} {lines[-1].strip()}"
    return text


def _reporting_usage_errors(main):
    @functools.wraps(main)
    def wrapped(argv):
        workdir = flags.FLAGS["workdir"].value if "workdir" in flags.FLAGS else None
        plain_console_logs(workdir, verbose=wants_logs(sys.argv, os.environ))
        try:
            return main(argv)
        except app.UsageError as error:
            exit_with_user_error(error)

    return wrapped


def _end_now(status, line=None):
    """Writes ``line`` on stderr, flushes the streams and the log, and ends with ``status``.

    ``os._exit``, not the interpreter's shutdown: when the command stops in the middle of a
    tf.data pipeline, its threads are still running, and a normal shutdown then aborts
    ("terminate called without an active exception", status 134) or hangs. Every file the
    commands write is written atomically and complete before they can stop, so nothing is lost.
    """
    if line:
        print(line, file=sys.stderr)
    logging.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def _show_usage_in_help(main):
    """Makes ``--help`` print the command's docstring (and the config names), as ``python script.py --help`` does.

    absl prints the docstring of ``__main__``, which for a console script is the stub pip wrote.
    """
    script = sys.modules["__main__"]
    if not script.__doc__:
        config_help = flags.FLAGS["config"].help if "config" in flags.FLAGS else ""
        script.__doc__ = "\n".join(filter(None, [sys.modules[main.__module__].__doc__, config_help]))


def run_command(main):
    """Console entry point: ``app.run(main)`` with the exit statuses of this module."""
    _show_usage_in_help(main)
    try:
        app.run(_reporting_usage_errors(main), flags_parser=parse_flags)
    except SystemExit as exit_request:
        if exit_request.code != USER_ERROR_STATUS:
            raise
        _end_now(USER_ERROR_STATUS)
    except StoppedBySignal as stop:
        _end_now(stop.status, f"stopped: {stop}")
    except KeyboardInterrupt:
        _end_now(128 + signal.SIGINT, "stopped: interrupted (Ctrl-C); nothing was saved after the last checkpoint.")
