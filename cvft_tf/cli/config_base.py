"""Defaults shared by ``configs/*.py``: the original's training and evaluation settings.

Each config file calls :func:`base_config`, sets its dataset fields and applies its
``arg`` with :func:`apply_arg`. Sections map onto code without translation:
``build_model(**config.model)``, the data loaders read ``config.data``, the trainer
``config.train``, evaluation ``config.eval``.
"""

import ml_collections

from cvft_tf.data.preprocess import AERIAL_SIZE, GROUND_SIZE
from cvft_tf.models.cross_view import VARIANTS


def base_config():
    """The original's settings: CVFT variant, Adam 1e-5, batch 32, VGG16 ImageNet start."""
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.variant = "cvft"
    config.model.ground_size = GROUND_SIZE
    config.model.aerial_size = AERIAL_SIZE
    config.model.map_size = ml_collections.FieldReference(None, field_type=tuple)
    config.model.reduced_channels = 64
    config.model.dropout_rate = 0.2
    config.model.frozen_blocks = 3
    config.model.sinkhorn_iterations = 20
    config.model.cost_scale = 100.0
    config.model.transport_scale_by_positions = False
    config.model.cost_dense_l2 = 0.0
    config.model.loss_gamma = 10.0
    config.model.hard_negatives = 0

    config.data = ml_collections.ConfigDict()
    config.data.name = "cvusa"
    config.data.root = ""
    config.data.train_split = "train"
    config.data.val_split = "val"
    config.data.raw_ground_size = (224, 1232)
    config.data.max_bad_fraction = 0.01
    config.data.orientation_noise_deg = 0.0

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 100
    config.train.batch_size = 32
    config.train.learning_rate = 1e-5
    config.train.beta_1 = 0.9
    config.train.beta_2 = 0.999
    config.train.seed = 0
    config.train.deterministic = False
    config.train.jit_compile = False
    config.train.mixed_precision = False
    config.train.init = "imagenet"
    config.train.steps_per_epoch = 0
    config.train.keep_checkpoints = 3

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 32
    config.eval.split = "val"
    config.eval.orientation_noise_deg = 0.0
    config.eval.orientation_seed = 0
    config.eval.geo_radius_m = 25.0
    config.eval.chunk_size = 1024
    config.eval.num_figure_queries = 5
    return config


def apply_arg(config, arg):
    """Applies a config-file argument: a variant name, ``smoke``, or both (``vgg_gp,smoke``)."""
    for part in filter(None, (arg or "").split(",")):
        if part in VARIANTS:
            config.model.variant = part
        elif part == "smoke":
            config.model.ground_size = (32, 176)
            config.model.aerial_size = (64, 64)
            config.train.epochs = 2
            config.train.batch_size = 4
            config.eval.batch_size = 8
            config.train.init = ""
        else:
            raise ValueError(f"Unknown config argument {part!r}; expected one of {VARIANTS} or 'smoke'.")
    return config
