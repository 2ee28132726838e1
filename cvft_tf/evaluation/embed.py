"""Embedding an evaluation split once: both encoders over every pair, in file order.

Used by the trainer's per-epoch validation and by ``cvft-eval``; ``scoring`` turns the
result into metrics.
"""

import dataclasses
import weakref

import numpy as np
import tensorflow as tf

from cvft_tf.data.pipeline import dataset_errors


_ENCODERS = weakref.WeakKeyDictionary()


def _encoder(model):
    """The model's traced encoding function, made once per model (not once per epoch)."""
    if model not in _ENCODERS:
        _ENCODERS[model] = tf.function(
            lambda ground, aerial: model({"ground": ground, "aerial": aerial}, training=False), reduce_retracing=True
        )
    return _ENCODERS[model]


@dataclasses.dataclass
class Embeddings:
    """Descriptors of a split in file order: ground/aerial ``[N, D]`` (or maps ``[N, h, w, c]``
    of a map aggregator), utm ``[N, 2]`` or None, and the queries' true headings ``[N]``
    (degrees; None for whole north-aligned panoramas)."""

    ground: np.ndarray
    aerial: np.ndarray
    utm: np.ndarray | None = None
    heading: np.ndarray | None = None


def embed_split(model, dataset):
    """Runs both encoders over an evaluation dataset (every pair once, in order).

    Args:
        model: a ``CrossViewModel``.
        dataset: batches with ``ground``, ``aerial`` and optionally ``utm`` and ``heading_deg``.

    Returns:
        :class:`Embeddings`.
    """

    encode = _encoder(model)
    grounds, aerials, utms, headings = [], [], [], []
    with dataset_errors():
        for batch in dataset:
            out = encode(batch["ground"], batch["aerial"])
            grounds.append(out["ground"].numpy())
            aerials.append(out["aerial"].numpy())
            if "utm" in batch:
                utms.append(batch["utm"].numpy())
            if "heading_deg" in batch:
                headings.append(batch["heading_deg"].numpy())
    if not grounds:
        raise ValueError("The evaluation split is empty.")
    return Embeddings(
        np.concatenate(grounds),
        np.concatenate(aerials),
        np.concatenate(utms) if utms else None,
        np.concatenate(headings) if headings else None,
    )
