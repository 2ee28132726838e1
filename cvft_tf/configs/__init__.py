"""The built-in configs, shipped with the package and named like keras-hub's presets.

Each module here exposes ``get_config(arg=None)``. A command's ``--config`` takes either a path
(``--config=configs/synthetic.py:smoke``, which in a checkout is this folder) or a name
(``--config=synthetic:smoke``), which :func:`resolve` turns into the packaged file.
"""

import os

from absl import flags
from ml_collections import config_flags

FOLDER = os.path.dirname(os.path.abspath(__file__))
NAMES = tuple(sorted(name[:-3] for name in os.listdir(FOLDER) if name.endswith(".py") and not name.startswith("_")))
"""The names ``--config`` accepts: ``cvact``, ``cvusa``, ``gsv_cities``, ``place_synthetic``, ``synthetic``."""

HELP = f"Config: a built-in name ({', '.join(NAMES)}) or a file (path/to/config.py), then an optional :arg (e.g. synthetic:smoke)."


def resolve(value):
    """The ``path[:arg]`` that ``config_flags`` loads for ``value`` (a name or a path, with an optional ``:arg``).

    Raises:
        ValueError: neither an existing file nor a built-in name (the message lists the names).
    """
    source, colon, arg = value.partition(":")
    if source.endswith(".py") or os.sep in source or os.path.exists(source):
        return value
    if source not in NAMES:
        raise ValueError(f"unknown config {source!r}: give a file or one of the built-in names {', '.join(NAMES)}")
    return os.path.join(FOLDER, f"{source}.py") + colon + arg


class _NamedConfigParser:
    """``config_flags``' parser of a config flag, given the value after :func:`resolve`."""

    def __init__(self, parser):
        self._parser = parser

    def parse(self, path):
        return self._parser.parse(resolve(path))

    def __getattr__(self, name):
        return getattr(self._parser, name)


def define_config_flag(name="config"):
    """``config_flags.DEFINE_config_file(name, lock_config=True)`` that also takes a built-in name; returns its holder."""
    holder = config_flags.DEFINE_config_file(name, None, HELP, lock_config=True)
    flags.FLAGS[name].parser = _NamedConfigParser(flags.FLAGS[name].parser)
    return holder
