"""The two branches of a trained model as functions of pixels, and the model's fingerprint.

``Encoders.ground`` / ``Encoders.aerial`` take uint8 BGR images already at the model's size
(``[N, Hg, Wg, 3]`` / ``[N, Ha, Wa, 3]``, what ``preprocess.resize_image`` gives) and return
float32 ``[N, D]`` unit-norm descriptors. They come from a training workdir (its best model,
as ``cvft-eval`` loads it) or from a SavedModel of ``cvft-export`` (its ``ground_resized`` /
``aerial_resized`` signatures, which take the same BGR pixels as float32).

A model whose matcher compares maps (``dsm``, ``models.matchers.HeadingCorrelation``) gives
its maps flattened row-major (``[N, h * w * c]``, what the index stores), and its
``Encoders`` carry the matcher and the two map shapes: such a model is searched by the
matcher, which also estimates each query's heading (``localize``). It is loaded from its
workdir only (a SavedModel does not say how its maps are compared).

The fingerprint (:func:`fingerprint`) identifies the weights and sizes: the SHA-256 of the
sorted SHA-256 digests of every variable's shape, dtype and bytes, and of the two input
sizes. It does not depend on variable names or order, so a workdir's model and its export
have the same fingerprint (the export's dropout random-generator states are left out).
"""

import dataclasses
import hashlib
import json
import os
from typing import Callable

import numpy as np
import tensorflow as tf

from cvft_tf.localization.errors import LocalizationError


SEED_STATE = "seed_generator_state"
"""Name part of the dropout layers' random-generator states, which a SavedModel tracks and a
Keras model's weights do not: not weights, and left out of the fingerprint."""


@dataclasses.dataclass
class Encoders:
    """A model's two branches (module docstring).

    Attributes:
        ground, aerial: uint8 BGR ``[N, H, W, 3]`` at ``ground_size`` / ``aerial_size`` ->
            float32 ``[N, dimension]``.
        ground_size, aerial_size: ``(height, width)`` the model takes.
        dimension: descriptor size D.
        fingerprint: hex digest of the weights and sizes.
        source: how to load the model again, JSON-ready: ``{"workdir": ...}`` or
            ``{"saved_model": ...}`` (absolute paths; :func:`from_source`).
        matcher: the model's map matcher, or None for a model of descriptor vectors.
        ground_map_shape, aerial_map_shape: ``(h, w, c)`` of a map matcher's maps, or None.
    """

    ground: Callable
    aerial: Callable
    ground_size: tuple
    aerial_size: tuple
    dimension: int
    fingerprint: str
    source: dict
    matcher: object = None
    ground_map_shape: tuple | None = None
    aerial_map_shape: tuple | None = None

    def ground_maps(self, flat):
        """float32 ``[N, h, w, c]`` of flattened ground maps ``[N, h * w * c]``."""
        return np.asarray(flat, np.float32).reshape(-1, *self.ground_map_shape)

    def aerial_maps(self, flat):
        """float32 ``[N, h, w', c]`` of flattened aerial maps."""
        return np.asarray(flat, np.float32).reshape(-1, *self.aerial_map_shape)


def fingerprint(arrays, ground_size, aerial_size):
    """Hex SHA-256 of a model's variables (numpy arrays, any order) and its two input sizes."""
    digests = sorted(
        hashlib.sha256(f"{a.shape}{a.dtype}".encode() + np.ascontiguousarray(a).tobytes()).hexdigest()
        for a in map(np.asarray, arrays)
    )
    sizes = json.dumps([list(ground_size), list(aerial_size)])
    return hashlib.sha256("".join(digests).encode() + sizes.encode()).hexdigest()


def _as_float(images):
    return tf.cast(tf.convert_to_tensor(images), tf.float32)


def from_model(model, source):
    """:class:`Encoders` of a built ``CrossViewModel`` (``source``: how it was loaded)."""
    ground = tf.function(lambda images: model.ground_encoder(images, training=False), autograph=False)
    aerial = tf.function(lambda images: model.aerial_encoder(images, training=False), autograph=False)
    variables = {id(v): v for v in model.ground_encoder.weights + model.aerial_encoder.weights}.values()
    ground_shape = tuple(model.ground_encoder.output.shape[1:])
    aerial_shape = tuple(model.aerial_encoder.output.shape[1:])
    maps = dict(matcher=model.matcher, ground_map_shape=ground_shape, aerial_map_shape=aerial_shape)
    return Encoders(
        ground=lambda images: ground(_as_float(images)).numpy().reshape(len(images), -1),
        aerial=lambda images: aerial(_as_float(images)).numpy().reshape(len(images), -1),
        ground_size=tuple(model.ground_size),
        aerial_size=tuple(model.aerial_size),
        dimension=int(np.prod(aerial_shape)),
        fingerprint=fingerprint([v.numpy() for v in variables], model.ground_size, model.aerial_size),
        source=source,
        **(maps if model.matcher.compares_maps else {}),
    )


def from_workdir(config, workdir):
    """:class:`Encoders` of the best model (else the latest checkpoint) of a training workdir,
    checked against ``config.model`` as ``cvft-eval`` does.

    Raises:
        checkpoints.CheckpointError: no model, an unreadable one, or one that does not match
            ``config.model``.
    """
    from cvft_tf.cli.common import load_trained_model

    return from_model(load_trained_model(config, workdir), {"workdir": os.path.abspath(workdir)})


def from_source(source):
    """:class:`Encoders` loaded again from a ``source`` record (``Encoders.source``), no config needed.

    Raises:
        checkpoints.CheckpointError, LocalizationError: the model is no longer there or readable.
    """
    from cvft_tf import checkpoints

    if "saved_model" in source:
        return from_saved_model(source["saved_model"])
    workdir = source["workdir"]
    path = os.path.join(workdir, checkpoints.BEST_MODEL)
    if not os.path.exists(path):
        state = checkpoints.latest_state(workdir) if os.path.isdir(workdir) else None
        if state is None:
            raise checkpoints.CheckpointError(f"the index's model {workdir} holds no trained model any more")
        path = state["path"]
    return from_model(checkpoints.load_model(path), {"workdir": workdir})


def from_saved_model(path):
    """:class:`Encoders` of a SavedModel written by ``cvft-export``.

    Raises:
        LocalizationError: no SavedModel at ``path``, or one without the ``*_resized``
            signatures (exported by an older cvft-export).
    """
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise LocalizationError(f"--saved_model {path} holds no saved_model.pb")
    loaded = tf.saved_model.load(path)
    missing = [name for name in ("ground_resized", "aerial_resized") if name not in loaded.signatures]
    if missing:
        raise LocalizationError(
            f"the SavedModel {path} has no signature {', '.join(missing)} (it has {sorted(loaded.signatures)}); "
            "export it again with cvft-export"
        )
    ground, aerial = loaded.signatures["ground_resized"], loaded.signatures["aerial_resized"]
    ground_size = tuple(ground.structured_input_signature[1]["images"].shape[1:3])
    aerial_size = tuple(aerial.structured_input_signature[1]["images"].shape[1:3])
    if len(aerial.structured_outputs["descriptor"].shape) != 2:
        raise LocalizationError(
            f"the SavedModel {path} gives feature maps, which its matcher compares (dsm): "
            "index and localize with its training workdir (--workdir) instead"
        )
    dimension = int(aerial.structured_outputs["descriptor"].shape[-1])
    return Encoders(
        ground=lambda images: ground(images=_as_float(images))["descriptor"].numpy(),
        aerial=lambda images: aerial(images=_as_float(images))["descriptor"].numpy(),
        ground_size=ground_size,
        aerial_size=aerial_size,
        dimension=dimension,
        fingerprint=fingerprint(
            [v.numpy() for v in loaded.variables if SEED_STATE not in v.name], ground_size, aerial_size
        ),
        source={"saved_model": os.path.abspath(path)},
    )
