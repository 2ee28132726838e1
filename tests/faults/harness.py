"""Running the installed console scripts as a user would, and what every outcome must satisfy.

Each fault case runs a command (``cvft-train``, ``cvft-eval``, ...) from the virtual
environment's ``bin/`` in a subprocess and checks its exit status and stderr with
:func:`assert_exit`: the status the case expects, the message naming the file and the
problem, and never an abort, a hang or a Python traceback.
"""

import hashlib
import os
import subprocess
import sys

import pytest

from tests.data.fixtures import write_cvusa_train_val

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RAW_GROUND = (32, 176)
"""Raw panorama size of the tiny worlds (the smoke configs resize it to 32x176)."""
LOG_FILE = "log.txt"
"""``cvft_tf.cli.console.LOG_FILE``, named here so that the harness imports nothing of ``cvft_tf.cli``."""
CRASH_SIGNS = ("Traceback (most recent call last)", "terminate called", "Fatal Python error", "Aborted")
SMOKE = "configs/cvusa.py:smoke"


def command_path(name):
    """The installed console script ``name`` next to this interpreter (``pip install -e .``)."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.path.exists(path):
        pytest.fail(f"{name} is not installed next to {sys.executable}: run pip install -e '.[test]'")
    return path


def run(name, *args, timeout=300, env=None):
    """Runs console script ``name`` with ``args`` from the repository root; returns the result.

    A command that outlives ``timeout`` seconds fails the test (a hang is a defect).
    """
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **(env or {}))
    try:
        return subprocess.run(
            [command_path(name), *map(str, args)], cwd=REPO, env=environment,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail(f"{name} {' '.join(map(str, args))} hung for more than {timeout} s")


def assert_exit(result, status, *message_parts):
    """The command ended with ``status``, no crash signs, and stderr holds every part."""
    tail = result.stderr[-4000:]
    assert result.returncode == status, f"exit {result.returncode}, expected {status}:\n{tail}"
    for sign in CRASH_SIGNS:
        assert sign not in result.stderr, f"{sign!r} in stderr:\n{tail}"
    for part in message_parts:
        assert str(part) in result.stderr, f"{part!r} not in stderr:\n{tail}"


def data_overrides(root):
    """Config overrides for a tiny world written by :func:`write_world`."""
    return [f"--config.data.root={root}", f"--config.data.raw_ground_size={RAW_GROUND}"]


def write_world(root, num_train=8, num_val=6):
    """A tiny CVUSA-layout world (JPEG) at ``root``; returns ``root``."""
    return write_cvusa_train_val(str(root), RAW_GROUND, num_train=num_train, num_val=num_val)


def truncate(path, size=300):
    """Keeps the first ``size`` bytes of ``path`` (a download cut short)."""
    with open(path, "r+b") as handle:
        handle.truncate(size)


def digests(directory):
    """SHA-256 of every file under ``directory``, by relative path: to show nothing changed.

    ``log.txt`` is left out: it is the log every command on a workdir appends to, not an output.
    """
    result = {}
    for parent, _, names in os.walk(directory):
        for name in names:
            if name == LOG_FILE:
                continue
            path = os.path.join(parent, name)
            with open(path, "rb") as handle:
                result[os.path.relpath(path, directory)] = hashlib.sha256(handle.read()).hexdigest()
    return result
