"""CVUSA and CVACT on tf.data with the original CVFT preprocessing.

``cvusa.read_split`` / ``cvact.read_split`` check a split up front and return a
``pipeline.Split``; ``pipeline.make_train_dataset`` / ``make_eval_dataset`` turn it into
batches (see ``pipeline`` for the batch contract). ``read_split`` reads a split of a dataset
named in :data:`READERS`; ``load_dataset`` reads it and builds its batches.
"""

import importlib

_LAZY_ATTRIBUTES = {
    "DatasetError": "cvft_tf.data.pipeline",
    "DecodeCounter": "cvft_tf.data.pipeline",
    "Split": "cvft_tf.data.pipeline",
    "dataset_errors": "cvft_tf.data.pipeline",
    "make_eval_dataset": "cvft_tf.data.pipeline",
    "make_train_dataset": "cvft_tf.data.pipeline",
    "cvact": "cvft_tf.data.cvact",
    "cvusa": "cvft_tf.data.cvusa",
}
"""Names this package exports, imported on first use so that importing the package (for
:data:`READERS`) does not import TensorFlow."""

READERS = {"cvusa": ("cvft_tf.data.cvusa", ("raw_ground_size",)), "cvact": ("cvft_tf.data.cvact", ("mat_path",))}
"""Dataset name -> (module with its ``read_split``, the keyword arguments that function takes
besides ``root`` and ``split``). The one place that dispatches on a dataset's name."""


def __getattr__(name):
    """Imports an exported name (``_LAZY_ATTRIBUTES``) on first use."""
    if name not in _LAZY_ATTRIBUTES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_LAZY_ATTRIBUTES[name])
    return module if module.__name__.endswith("." + name) else getattr(module, name)


def read_split(name, root, split, **kwargs):
    """Reads and checks one split of dataset ``name`` (a key of :data:`READERS`).

    Args:
      name: ``"cvusa"`` or ``"cvact"``.
      root: the dataset root.
      split: ``"train"`` / ``"val"`` (CVUSA also a CSV path; CVACT also ``"test"``).
      **kwargs: that reader's arguments (:data:`READERS`): ``raw_ground_size`` (CVUSA),
        ``mat_path`` (CVACT).

    Returns:
      ``pipeline.Split``.
    """
    if name not in READERS:
        raise ValueError(f"name must be one of {sorted(READERS)}, got {name!r}")
    module, arguments = READERS[name]
    unknown = sorted(set(kwargs) - set(arguments))
    if unknown:
        raise TypeError(f"read_split of {name!r} takes {list(arguments)}, not {unknown}")
    return importlib.import_module(module).read_split(root, split, **kwargs)


def load_dataset(name, root, split, batch_size, *, training=None, **kwargs):
    """Reads and checks a split, then builds its training or evaluation dataset.

    Args:
      name: ``"cvusa"`` or ``"cvact"``.
      root: the dataset root.
      split: ``"train"`` / ``"val"`` (CVUSA also a CSV path; CVACT also ``"test"``).
      batch_size: pairs per batch.
      training: training pipeline (shuffled, bad pairs skipped) or evaluation (every pair
        once, in order); default: ``split == "train"``.
      **kwargs: the reader's arguments (:func:`read_split`) go to it; the rest to
        ``make_train_dataset`` / ``make_eval_dataset`` (``ground_size``, ``aerial_size``,
        ``seed``, ``orientation_noise_deg``, ``decoder``, ...).

    Returns:
      ``tf.data.Dataset`` of batch dicts (``pipeline`` module docstring).
    """
    if name not in READERS:
        raise ValueError(f"name must be one of {sorted(READERS)}, got {name!r}")
    read_kwargs = {key: kwargs.pop(key) for key in READERS[name][1] if key in kwargs}
    pairs = read_split(name, root, split, **read_kwargs)
    if training is None:
        training = split == "train"
    pipeline = importlib.import_module("cvft_tf.data.pipeline")
    make = pipeline.make_train_dataset if training else pipeline.make_eval_dataset
    return make(pairs, batch_size, **kwargs)


__all__ = [
    "DatasetError",
    "DecodeCounter",
    "Split",
    "cvact",
    "cvusa",
    "dataset_errors",
    "load_dataset",
    "read_split",
    "make_eval_dataset",
    "make_train_dataset",
]
