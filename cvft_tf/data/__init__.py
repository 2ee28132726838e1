"""CVUSA and CVACT on tf.data with the original CVFT preprocessing.

``cvusa.read_split`` / ``cvact.read_split`` check a split up front and return a
``pipeline.Split``; ``pipeline.make_train_dataset`` / ``make_eval_dataset`` turn it into
batches (see ``pipeline`` for the batch contract); ``load_dataset`` does both.
"""

from cvft_tf.data import cvact, cvusa
from cvft_tf.data.pipeline import (
    DatasetError,
    DecodeCounter,
    Split,
    dataset_errors,
    make_eval_dataset,
    make_train_dataset,
)

_READERS = {"cvusa": cvusa.read_split, "cvact": cvact.read_split}
_READ_ARGUMENTS = {"cvusa": ("raw_ground_size",), "cvact": ("mat_path",)}


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
    if name not in _READERS:
        raise ValueError(f"name must be one of {sorted(_READERS)}, got {name!r}")
    read_kwargs = {key: kwargs.pop(key) for key in _READ_ARGUMENTS[name] if key in kwargs}
    pairs = _READERS[name](root, split, **read_kwargs)
    if training is None:
        training = split == "train"
    make = make_train_dataset if training else make_eval_dataset
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
