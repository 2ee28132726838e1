"""CVUSA and CVACT on tf.data with the original CVFT preprocessing.

``cvusa.read_split`` / ``cvact.read_split`` check a split up front and return a
``pipeline.Split``; ``pipeline.make_train_dataset`` / ``make_eval_dataset`` turn it into
batches (see ``pipeline`` for the batch contract); ``load_dataset`` does both.
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
"""Names this package exports, imported on first use so that ``cvft_tf.data.synthetic`` (and
its spawned writer processes) does not import TensorFlow."""

_READ_ARGUMENTS = {"cvusa": ("raw_ground_size",), "cvact": ("mat_path",)}


def __getattr__(name):
    """Imports an exported name (``_LAZY_ATTRIBUTES``) on first use."""
    if name not in _LAZY_ATTRIBUTES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_LAZY_ATTRIBUTES[name])
    return module if module.__name__.endswith("." + name) else getattr(module, name)


def load_dataset(name, root, split, batch_size, *, training=None, **kwargs):
    """Reads and checks a split, then builds its training or evaluation dataset.

    Args:
      name: ``"cvusa"`` or ``"cvact"``.
      root: the dataset root.
      split: ``"train"`` / ``"val"`` (CVUSA also a CSV path; CVACT also ``"test"``).
      batch_size: pairs per batch.
      training: training pipeline (shuffled, bad pairs skipped) or evaluation (every pair
        once, in order); default: ``split == "train"``.
      **kwargs: ``raw_ground_size`` (CVUSA) or ``mat_path`` (CVACT) go to ``read_split``;
        the rest to ``make_train_dataset`` / ``make_eval_dataset`` (``ground_size``,
        ``aerial_size``, ``seed``, ``orientation_noise_deg``, ...).

    Returns:
      ``tf.data.Dataset`` of batch dicts (``pipeline`` module docstring).
    """
    if name not in _READ_ARGUMENTS:
        raise ValueError(f"name must be one of {sorted(_READ_ARGUMENTS)}, got {name!r}")
    read_kwargs = {key: kwargs.pop(key) for key in _READ_ARGUMENTS[name] if key in kwargs}
    pairs = importlib.import_module(_LAZY_ATTRIBUTES[name]).read_split(root, split, **read_kwargs)
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
    "make_eval_dataset",
    "make_train_dataset",
]
