"""Defaults of the place-recognition configs (``configs/gsv_cities.py``, ``configs/place_synthetic.py``).

SALAD's training recipe, from ``main.py`` and ``vpr_model.py`` of serizba/salad: GSV-Cities
at 224x224, 60 places of 4 images per batch, DINOv2 ViT-B/14 with its last 4 blocks trained
and SALAD with 64 clusters of 128 dimensions and a 256-dimensional global token, the
multi-similarity loss with the multi-similarity miner (epsilon 0.1), AdamW with learning rate
6e-5 and weight decay 9.5e-9, the learning rate falling linearly to 0.2 of itself over 4,000
steps (``LinearLR(start_factor=1, end_factor=0.2, total_iters=4000)``, stepped every
optimizer step) and constant after, 4 epochs, float16 mixed precision (``precision='16-mixed'``).

Sections map onto code: ``PlaceRecognitionModel(**place_training.model_kwargs(config.model))``,
``gsv_cities.read_places`` / ``place_pipeline`` read ``config.data``, the trainer
``config.train``, validation ``config.eval``. ``config.distribute`` is that of ``cvft-train``;
place training runs on one device (``default``).
"""

import ml_collections

from cvft_tf.config_schema import ConfigError, check_size, check_train_section, salad_head_config
from cvft_tf.data import gsv_cities
from cvft_tf.losses import (
    MULTI_SIMILARITY_ALPHA,
    MULTI_SIMILARITY_BASE,
    MULTI_SIMILARITY_BETA,
    MULTI_SIMILARITY_MINER_MARGIN,
)
from cvft_tf.models.dinov2 import DINOV2_BASE, SALAD_TRAIN_SIZE, SALAD_TRAINABLE_BLOCKS

SALAD_PLACES_PER_BATCH = 60
"""P of SALAD's ``main.py`` (``batch_size=60`` places)."""


def place_base_config():
    """SALAD's settings (module docstring), with no dataset root or cities yet."""
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.image_size = SALAD_TRAIN_SIZE
    config.model.backbone_kwargs = ml_collections.ConfigDict(DINOV2_BASE)
    config.model.salad_kwargs = salad_head_config()
    config.model.trainable_blocks = SALAD_TRAINABLE_BLOCKS
    config.model.input_format = "imagenet"
    config.model.preset = ""
    config.model.backbone_weights = ""
    config.model.loss_alpha = MULTI_SIMILARITY_ALPHA
    config.model.loss_beta = MULTI_SIMILARITY_BETA
    config.model.loss_base = MULTI_SIMILARITY_BASE
    config.model.miner_margin = MULTI_SIMILARITY_MINER_MARGIN

    config.data = ml_collections.ConfigDict()
    config.data.root = ""
    config.data.cities = ()
    config.data.val_cities = ()
    config.data.min_images_per_place = gsv_cities.MIN_IMAGES_PER_PLACE
    config.data.places_per_batch = SALAD_PLACES_PER_BATCH
    config.data.images_per_place = gsv_cities.IMAGES_PER_PLACE
    config.data.shuffle_all = False
    config.data.max_val_places = 0

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 4
    config.train.learning_rate = 6e-5
    config.train.weight_decay = 9.5e-9
    config.train.beta_1 = 0.9
    config.train.beta_2 = 0.999
    config.train.adam_epsilon = 1e-8
    config.train.lr_end_factor = 0.2
    config.train.lr_decay_steps = 4000
    config.train.seed = 0
    config.train.jit_compile = False
    config.train.mixed_precision = "float16"
    config.train.steps_per_execution = 1
    config.train.steps_per_epoch = 0
    config.train.keep_checkpoints = 3
    config.train.backup_every_steps = 200

    config.distribute = ml_collections.ConfigDict()
    config.distribute.strategy = "default"

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 32
    return config


def check_place_config(config):
    """Checks a place-recognition config before anything is read or built.

    Raises:
        ConfigError: naming the field: no root or cities, a city both trained on and held
            out, K above the minimum images per place, sizes or counts that cannot be used,
            another strategy than ``default``, or a bad ``config.train`` field.
    """
    if not config.data.root:
        raise ConfigError("config.data.root is empty: pass --config.data.root=/path/to/gsv_cities")
    for field in ("cities", "val_cities"):
        if not config.data[field]:
            raise ConfigError(f"config.data.{field} is empty: name the GSV-Cities dataframes (cities) to read")
    shared = sorted(set(config.data.cities) & set(config.data.val_cities))
    if shared:
        raise ConfigError(f"config.data.val_cities must be held out of config.data.cities; both have {shared}")
    check_size(config, "model.image_size")
    if config.data.images_per_place < 2:
        raise ConfigError(f"config.data.images_per_place must be at least 2, got {config.data.images_per_place}")
    if config.data.images_per_place > config.data.min_images_per_place:
        raise ConfigError(
            f"config.data.images_per_place={config.data.images_per_place} must not exceed "
            f"config.data.min_images_per_place={config.data.min_images_per_place}"
        )
    for section, field in (("data", "places_per_batch"), ("eval", "batch_size"), ("train", "lr_decay_steps")):
        if config[section][field] < 1:
            raise ConfigError(f"config.{section}.{field} must be a positive integer, got {config[section][field]}")
    if config.distribute.strategy != "default":
        raise ConfigError(
            f"cvft-train-place runs on one device: config.distribute.strategy must be 'default', "
            f"got {config.distribute.strategy!r}"
        )
    check_train_section(config)
