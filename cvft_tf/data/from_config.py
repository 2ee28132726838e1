"""The data a config asks for: a split named by ``config.data``, its evaluation pipeline.

Used by the trainer (its splits and per-epoch validation) and by ``cvft-eval``.
"""

import os

from cvft_tf import data
from cvft_tf.data.field_of_view import FieldOfView
from cvft_tf.data.pipeline import make_eval_dataset


def read_split(data_config, split):
    """Reads and checks one split named by a ``config.data`` section."""
    root = data_config.root
    if not root:
        raise ValueError("config.data.root is empty: pass --config.data.root=/path/to/dataset")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Dataset root {root} does not exist (config.data.root).")
    name = data_config.name
    if name not in data.READERS:
        raise ValueError(f"Unknown dataset {name!r} (config.data.name): expected one of {sorted(data.READERS)}.")
    arguments = {key: data_config[key] for key in data.READERS[name][1] if key in data_config}
    return data.read_split(name, root, split, **arguments)


def field_of_view(data_config):
    """The ``FieldOfView`` of the queries of a ``config.data`` section."""
    return FieldOfView(data_config.ground_fov_deg, data_config.unknown_heading)


def eval_dataset(config, split):
    """The evaluation pipeline of ``split`` at the model's input sizes."""
    return make_eval_dataset(
        split,
        config.eval.batch_size,
        tuple(config.model.ground_size),
        tuple(config.model.aerial_size),
        orientation_noise_deg=config.eval.orientation_noise_deg,
        field_of_view=field_of_view(config.data),
        seed=config.eval.orientation_seed,
        decoder=config.data.decoder,
    )
