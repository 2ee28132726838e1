"""What the commands show on the terminal: no start-up noise, no log prefixes; imports nothing heavy.

TensorFlow's C++ start-up lines (``All log messages before absl::InitializeLog()``, ``oneDNN custom
operations are on``, ``Could not find cuda drivers``, the ``E0000 ... failed call to cuInit`` line
of a machine without a GPU) are written straight to file descriptor 2 before
``TF_CPP_MIN_LOG_LEVEL`` takes effect. :func:`quiet_tensorflow_start` therefore wraps the first
``import tensorflow``: it reads what TensorFlow writes on stderr while it loads and probes for
GPUs, drops those lines, passes anything else on, and says "No GPU found" in one plain line.

Users who ask for the logs keep them: their own ``TF_CPP_MIN_LOG_LEVEL`` below 2, or absl's
``-v`` / ``--verbosity`` on the command line, turn all of this off.
"""

import importlib.abc
import importlib.util
import logging
import multiprocessing
import os
import re
import sys
import tempfile

from absl import logging as absl_logging

START_UP_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\)"
    r"|[IWE]\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard|cuda_platform|cuda_executor|cuda_diagnostics"
    r"|cuda_dnn|cuda_fft|cuda_blas|dso_loader)\.cc:\d+\]"
    r"|To enable the following instructions: .* rebuild TensorFlow)"
)
"""A line TensorFlow writes on stderr while it loads and looks for a GPU."""

NO_GPU_LINE = "No GPU found: running on the CPU."
LOG_FILE = "log.txt"
"""The detailed log of a command, with absl's prefixes, in its ``--workdir``."""


def wants_logs(argv, environ):
    """True when the user asked for TensorFlow's logs: ``-v``/``--verbosity``, or ``TF_CPP_MIN_LOG_LEVEL`` < 2."""
    asked = any(re.match(r"^(-v|--verbosity|-verbosity)(=|$|\d)", arg) for arg in argv[1:])
    level = environ.get("TF_CPP_MIN_LOG_LEVEL", "2")
    return asked or (level.isdigit() and int(level) < 2)


def kept_lines(text):
    """The lines of ``text`` that are not :data:`START_UP_NOISE`."""
    return [line for line in text.splitlines(keepends=True) if not START_UP_NOISE.match(line)]


class _CapturedStderr:
    """File descriptor 2 redirected to a temporary file for the duration of a ``with`` block."""

    def __enter__(self):
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc_info):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()


class _QuietLoader(importlib.abc.Loader):
    """Runs TensorFlow's own loader, and its GPU probe, with stderr captured and filtered."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        with _CapturedStderr() as captured:
            self._loader.exec_module(module)
            gpus = module.config.list_physical_devices("GPU")
        sys.stderr.writelines(kept_lines(captured.text))
        if not gpus and multiprocessing.parent_process() is None:  # once, not in each worker process
            print(NO_GPU_LINE, file=sys.stderr)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Gives the first ``import tensorflow`` a :class:`_QuietLoader`, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow_start(argv=None, environ=None):
    """Keeps TensorFlow's start-up logs off the terminal unless the user asked for them.

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` where the user has not set it and, when TensorFlow is not
    imported yet, filters its start-up lines (see the module docstring). Call before
    ``import tensorflow``.
    """
    argv = sys.argv if argv is None else argv
    environ = os.environ if environ is None else environ
    if wants_logs(argv, environ):
        return
    environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and not any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietFinder())


class _ConsoleFormatter(logging.Formatter):
    """``message`` for info, ``warning: message`` / ``error: message`` above it."""

    def format(self, record):
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            message = f"{record.levelname.lower()}: {message}"
        return message


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The folder of ``cvft_tf``: info lines logged from files under it are the commands' own."""


def _own_info_only(record):
    """Keeps warnings and errors, and the info lines of ``cvft_tf`` itself (libraries' info
    lines, such as TensorFlow's while it writes a SavedModel, go only to the log file)."""
    return record.levelno >= logging.WARNING or os.path.abspath(record.pathname).startswith(_PACKAGE_DIR + os.sep)


class _WorkdirLogFile(logging.FileHandler):
    """absl-prefixed lines appended to ``<workdir>/log.txt`` once the command has made the workdir."""

    def __init__(self, workdir):
        super().__init__(os.path.join(workdir, LOG_FILE), delay=True)
        self.setFormatter(absl_logging.PythonFormatter())
        self._workdir = workdir

    def emit(self, record):
        if self.stream is not None or os.path.isdir(self._workdir):
            super().emit(record)


def plain_console_logs(workdir=None, verbose=False):
    """absl's log lines on the terminal without prefixes, and libraries' info lines (a
    SavedModel's assets, fingerprint, renamed inputs) left out, unless ``verbose``; full lines
    in the workdir's log.

    Call after absl has parsed the flags (inside ``main``).
    """
    if not verbose:
        handler = absl_logging.get_absl_handler()
        handler.setFormatter(_ConsoleFormatter())
        handler.addFilter(_own_info_only)
        logging.getLogger("tensorflow").setLevel(logging.WARNING)  # its own handler's "INFO:tensorflow:" lines
    if workdir:
        absl_logging.get_absl_logger().addHandler(_WorkdirLogFile(workdir))
