"""Inputs shared by the fault tests of the commands that do not train.

A workdir holding a random model of the smoke config (what ``cvft-eval`` and ``cvft-export``
load without any training), folders built once for all pytest-xdist workers, copies of
folders to break one file in, and the check that a failing command left an earlier output
as it was.
"""

import contextlib
import fcntl
import os
import shutil

from cvft_tf.configs import cvusa
from cvft_tf import checkpoints
from cvft_tf.models.cross_view import build_model
from tests.faults.harness import digests


def save_tiny_model(workdir):
    """Saves a random CVFT model of ``configs/cvusa.py:smoke`` as ``workdir/best.keras``; returns ``workdir``."""
    os.makedirs(workdir, exist_ok=True)
    build_model(**cvusa.get_config("smoke").model).save(os.path.join(workdir, checkpoints.BEST_MODEL))
    return workdir


@contextlib.contextmanager
def built_once(tmp_path_factory, name):
    """A folder built once per test session and shared by its pytest-xdist workers (read only).

    Yields ``(folder, build)``: ``build`` is True for the one caller that must fill ``folder``;
    the others wait on a lock until it is filled, then get False. A build that raises is not
    marked complete, so the next caller builds it again.
    """
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    folder, complete = base / name, base / f"{name}.complete"
    with open(base / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        build = not complete.exists()
        if build:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
        yield folder, build
        complete.touch()


def copy_tree(source, destination):
    """A copy of directory ``source`` at ``destination``, to break files in; returns ``destination``."""
    shutil.copytree(source, destination)
    return destination


def overwrite_bytes(path, start, count):
    """Replaces ``count`` bytes of ``path`` from ``start`` on with bytes that are not image data."""
    with open(path, "r+b") as handle:
        handle.seek(start)
        handle.write(bytes((37 * index + 11) % 256 for index in range(count)))


def assert_unchanged(directory, before):
    """Every file of ``directory`` still has the digest it had in ``before`` (:func:`digests`), none added."""
    assert digests(directory) == before, f"the files under {directory} changed"
