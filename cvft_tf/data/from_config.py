"""The data a config asks for: a split named by ``config.data``, its evaluation pipeline.

Used by the trainer (its splits and per-epoch validation) and by ``cvft-eval``.
"""

import dataclasses
import os

from cvft_tf import data
from cvft_tf.data.field_of_view import FieldOfView
from cvft_tf.data.pipeline import make_eval_dataset, raise_problems


def read_split(data_config, split):
    """Reads and checks one split named by a ``config.data`` section.

    Its images are capped at ``config.data.max_image_pixels`` (``Split.max_pixels``), and
    must lie inside ``config.data.root`` unless ``config.data.allow_paths_outside_root``.

    Raises:
      DatasetError: the reader's problems, or every row naming a path outside the root.
    """
    root = data_config.root
    if not root:
        raise ValueError("config.data.root is empty: pass --config.data.root=/path/to/dataset")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Dataset root {root} does not exist (config.data.root).")
    name = data_config.name
    if name not in data.READERS:
        raise ValueError(f"Unknown dataset {name!r} (config.data.name): expected one of {sorted(data.READERS)}.")
    arguments = {key: data_config[key] for key in data.READERS[name][1] if key in data_config}
    pairs = data.read_split(name, root, split, **arguments)
    if not data_config.allow_paths_outside_root:
        check_inside_root(pairs, root)
    return dataclasses.replace(pairs, max_pixels=data_config.max_image_pixels)


def check_inside_root(split, root):
    """Raises a DatasetError naming each row of ``split`` whose image lies outside ``root``
    (an absolute path or ``../`` in a split file); symbolic links inside the root are allowed."""
    inside = os.path.join(os.path.normpath(os.path.abspath(root)), "")
    problems = [
        f"{source}: {path} is outside the dataset root {root} (set config.data.allow_paths_outside_root=True to allow it)"
        for source, *paths in zip(split.sources, split.ground_paths, split.aerial_paths)
        for path in paths
        if not os.path.normpath(os.path.abspath(path)).startswith(inside)
    ]
    raise_problems(split.name, problems)


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
