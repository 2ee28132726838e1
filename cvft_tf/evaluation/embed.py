"""Embedding an evaluation split once: both encoders over every pair, in file order.

Used by the trainer's per-epoch validation and by ``cvft-eval``; ``scoring`` turns the
result into metrics.
"""

import dataclasses
import weakref

import numpy as np
import tensorflow as tf

from cvft_tf.data.pipeline import dataset_errors
from cvft_tf.progress import Progress


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


def embed_split(model, dataset, strategy=None, total=None):
    """Runs both encoders over an evaluation dataset (every pair once, in order).

    Args:
        model: a ``CrossViewModel``.
        dataset: batches with ``ground``, ``aerial``, ``index`` (each pair's place in the
            split) and optionally ``utm`` and ``heading_deg``.
        strategy: a ``tf.distribute.Strategy`` of several replicas to split each batch
            among (:func:`embed_split_distributed`); None: one device.
        total: the number of pairs, for the progress bar's ETA (None: unknown).

    Returns:
        :class:`Embeddings`.
    """
    if strategy is not None and strategy.num_replicas_in_sync > 1:
        return embed_split_distributed(model, dataset, strategy, total)

    encode = _encoder(model)
    grounds, aerials, utms, headings = [], [], [], []
    progress = Progress(total)
    with dataset_errors():
        for batch in dataset:
            out = encode(batch["ground"], batch["aerial"])
            progress.add(len(out["ground"]))
            grounds.append(out["ground"].numpy())
            aerials.append(out["aerial"].numpy())
            if "utm" in batch:
                utms.append(batch["utm"].numpy())
            if "heading_deg" in batch:
                headings.append(batch["heading_deg"].numpy())
    progress.finish()
    if not grounds:
        raise ValueError("The evaluation split is empty.")
    return Embeddings(
        np.concatenate(grounds),
        np.concatenate(aerials),
        np.concatenate(utms) if utms else None,
        np.concatenate(headings) if headings else None,
    )


def embed_split_distributed(model, dataset, strategy, total=None):
    """:func:`embed_split` with each batch split among ``strategy``'s replicas.

    Every replica encodes its slice, and the slices of all replicas (and workers) are
    gathered; the pairs are put back in split order by their ``index``, whatever order the
    strategy handed the slices out in. A batch whose size is not a multiple of the replicas
    (the last one) is padded with blank pairs of ``index`` -1, dropped after the gather: a
    replica left with no pair would fail in the convolutions.
    """

    @tf.function
    def encode(batch):
        out = model({"ground": batch["ground"], "aerial": batch["aerial"]}, training=False)
        kept = {key: batch[key] for key in ("index", "utm", "heading_deg") if key in batch}
        return {**out, **kept}

    parts = {}
    progress = Progress(total)
    padded = dataset.map(lambda batch: pad_to_multiple(batch, strategy.num_replicas_in_sync))
    with dataset_errors():
        for batch in strategy.experimental_distribute_dataset(padded):
            for key, value in strategy.run(encode, args=(batch,)).items():
                parts.setdefault(key, []).append(strategy.gather(value, axis=0).numpy())
            progress.add(int(np.sum(parts["index"][-1] >= 0)))
    progress.finish()
    if not parts:
        raise ValueError("The evaluation split is empty.")
    gathered = {key: np.concatenate(values) for key, values in parts.items()}
    kept = np.flatnonzero(gathered["index"] >= 0)
    order = kept[np.argsort(gathered["index"][kept], kind="stable")]
    utm = gathered["utm"][order] if "utm" in gathered else None
    heading = gathered["heading_deg"][order] if "heading_deg" in gathered else None
    return Embeddings(gathered["ground"][order], gathered["aerial"][order], utm, heading)


def pad_to_multiple(batch, multiple):
    """``batch`` (a dict of ``[b, ...]`` with ``index`` ``[b]``) with blank rows added up to a
    multiple of ``multiple``: zeros, and ``index`` -1."""
    rows = tf.shape(batch["index"])[0]
    missing = (multiple - rows % multiple) % multiple

    def padded(value):
        blank = tf.zeros(tf.concat([[missing], tf.shape(value)[1:]], axis=0), value.dtype)
        return tf.concat([value, blank], axis=0)

    result = {key: padded(value) for key, value in batch.items()}
    result["index"] = tf.concat([batch["index"], -tf.ones([missing], batch["index"].dtype)], axis=0)
    return result
