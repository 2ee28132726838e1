"""Defaults shared by the configs of ``cvft_tf/configs``: the original's training and evaluation settings.

Each config file calls :func:`base_config`, sets its dataset fields and applies its
``arg`` with :func:`apply_arg`. Sections map onto code without translation:
``build_model(**config.model.to_dict())``, whose ``backbone``, ``aggregator`` and ``matcher``
sections hold the settings of the model's parts (``models.presets``; a section holds the
settings of every part of that role the variants use, each part taking its own), the data
loaders read ``config.data``, the trainer ``config.train``, evaluation ``config.eval``.
"""

import math

import ml_collections

from cvft_tf.data import READERS, cvact, cvusa, pipeline, preprocess
from cvft_tf.data.field_of_view import FULL_CIRCLE_DEG, FieldOfView, panorama_size
from cvft_tf.distribute import STRATEGIES
from cvft_tf.data.preprocess import AERIAL_SIZE, GROUND_SIZE
from cvft_tf.evaluation.recall import BACKENDS as RANK_BACKENDS
from cvft_tf.evaluation.recall import DEFAULT_CHUNK_SIZE
from cvft_tf.models.cross_view import MODEL_PARTS, VARIANTS
from cvft_tf.models.presets import PRESETS

MIXED_PRECISION_POLICIES = {"": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
"""``config.train.mixed_precision`` -> the Keras dtype policy of the run (empty: float32). Under
either mixed policy the backbone computes in half precision and the cost regression, Sinkhorn
and transport in float32."""

DATASETS = tuple(READERS)
"""Values of ``config.data.name``."""


class ConfigError(ValueError):
    """A config value that the commands cannot use (a size that is not two positive integers, ...)."""


def base_config():
    """The original's settings: CVFT variant, Adam 1e-5 (epsilon 1e-8, TF1's), batch 32, VGG16
    ImageNet start.

    ``data.aerial_footprint_m``: the side of the ground, in metres, that one aerial tile of the
    dataset covers (and so the model's aerial input); ``cvft-index`` slides a window of this
    size over a geo-referenced map. CVUSA 170 m, CVACT 144 m, the synthetic world 170 m.

    ``train.keep_checkpoints``: the newest epoch checkpoints kept (0: every one; the best
    model is kept apart). ``train.batch_size``, ``epochs`` and ``learning_rate`` (finite, above
    0) are checked at start-up with the other counts (:func:`check_train_numbers`).

    ``data.max_image_pixels``: a split's image whose header gives more pixels is bad, not
    decoded (``preprocess.MAX_IMAGE_PIXELS``); ``data.allow_paths_outside_root``: let split
    files name images outside ``data.root`` (absolute paths, ``../``).

    ``train.backup_every_steps``: a step backup every that many steps inside an epoch (0:
    none), so a preempted run loses at most that many steps (``training_checkpoints``).

    ``data.ground_fov_deg`` / ``data.unknown_heading``: queries are crops of the panoramas
    (``data.field_of_view``): ``model.ground_size`` is the crop's size, and a polar aerial
    branch (``model.aerial_polar``, the ``dsm`` variant) needs ``model.polar_size`` to be the
    size of the panorama the crops are cut from.

    ``train.feature_cache``: train on the frozen blocks' features computed once
    (``cvft_tf.feature_cache``; the same maths), when they fit in ``feature_cache_max_gb``
    and nothing changes the images between epochs; otherwise on the images. With
    ``feature_cache_dir`` the features are also kept on disk for runs that share them.

    ``train.steps_per_execution``: train steps run in one call of the compiled function
    (Keras' ``compile(steps_per_execution=...)``); it must divide the steps of an epoch.

    ``distribute``: the ``tf.distribute`` strategy (``cvft_tf.distribute``): ``strategy``,
    ``logical_cpus`` (split the CPU into that many devices, 0: none) and ``tpu`` (the TPU
    of the ``tpu`` strategy, empty: the local one). ``train.batch_size`` is the global
    batch, split among the replicas; the loss scores every pair against the whole of it.
    """
    config = ml_collections.ConfigDict()

    config.model = ml_collections.ConfigDict()
    config.model.variant = "cvft"
    config.model.ground_size = GROUND_SIZE
    config.model.aerial_size = AERIAL_SIZE
    config.model.map_size = ml_collections.FieldReference(None, field_type=tuple)
    config.model.aerial_polar = ml_collections.FieldReference(None, field_type=bool)
    config.model.polar_size = ml_collections.FieldReference(None, field_type=tuple)
    preset = PRESETS["cvft"]
    for role in MODEL_PARTS:
        config.model[role] = ml_collections.ConfigDict(getattr(preset, role)().get_config())

    config.data = ml_collections.ConfigDict()
    config.data.name = "cvusa"
    config.data.root = ""
    config.data.train_split = "train"
    config.data.val_split = "val"
    config.data.raw_ground_size = cvusa.RAW_GROUND_SIZE
    config.data.max_bad_fraction = 0.01
    config.data.orientation_noise_deg = 0.0
    config.data.ground_fov_deg = FULL_CIRCLE_DEG
    config.data.unknown_heading = False
    config.data.decoder = "opencv"
    config.data.aerial_footprint_m = cvusa.AERIAL_FOOTPRINT_M
    config.data.max_image_pixels = preprocess.MAX_IMAGE_PIXELS
    config.data.allow_paths_outside_root = False

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 100
    config.train.batch_size = 32
    config.train.learning_rate = 1e-5
    config.train.beta_1 = 0.9
    config.train.beta_2 = 0.999
    config.train.adam_epsilon = 1e-8
    config.train.seed = 0
    config.train.deterministic = False
    config.train.jit_compile = False
    config.train.mixed_precision = ""
    config.train.steps_per_execution = 1
    config.train.init = "imagenet"
    config.train.steps_per_epoch = 0
    config.train.keep_checkpoints = 3
    config.train.backup_every_steps = 200
    config.train.feature_cache = True
    config.train.feature_cache_max_gb = 4.0
    config.train.feature_cache_dir = ""

    config.distribute = ml_collections.ConfigDict()
    config.distribute.strategy = "default"
    config.distribute.logical_cpus = 0
    config.distribute.tpu = ""

    config.eval = ml_collections.ConfigDict()
    config.eval.batch_size = 32
    config.eval.split = "val"
    config.eval.orientation_noise_deg = 0.0
    config.eval.orientation_seed = 0
    config.eval.geo_radius_m = cvact.SAME_PLACE_RADIUS_M
    config.eval.chunk_size = DEFAULT_CHUNK_SIZE
    config.eval.backend = "numpy"
    config.eval.num_figure_queries = 5
    return config


def apply_arg(config, arg):
    """Applies a config-file argument: a variant name, ``fov<N>`` and/or ``smoke`` (``dsm,fov90``).

    ``salad`` adds the SALAD fields to ``config.model`` (DINOv2 ViT-B/14 architecture,
    ``backbone_preset`` / ``backbone_weights`` for local pretrained weights, the SALAD
    head's arguments); ``dsm`` adds its map's channels and makes the panorama width a
    multiple of 64 (``add_dsm_fields``); ``fov<N>`` makes the queries N-degree crops of
    unknown heading (:func:`set_field_of_view`); ``smoke`` shrinks images, batches, epochs
    (and the DINOv2 backbone).
    """
    parts = [part for part in (arg or "").split(",") if part]
    for part in parts:
        if part not in (*VARIANTS, "smoke") and not _is_fov_arg(part):
            expected = f"one of {VARIANTS}, 'fov<degrees>' or 'smoke'"
            raise ValueError(f"Unknown config argument {part!r}; expected {expected}.")
    for part in parts:
        if part in VARIANTS:
            config.model.variant = part
        if part == "salad":
            add_salad_fields(config)
    if "smoke" in parts:
        config.model.ground_size = (32, 176)
        config.model.aerial_size = (64, 64)
        config.train.epochs = 2
        config.train.batch_size = 4
        config.eval.batch_size = 8
        config.train.init = ""
        if config.model.variant == "salad":
            config.model.ground_size = (28, 154)
            config.model.aerial_size = (56, 56)
            config.model.backbone.backbone_kwargs = ml_collections.ConfigDict(SMOKE_BACKBONE)
            config.model.aggregator.salad_kwargs = ml_collections.ConfigDict(SMOKE_SALAD)
    if "dsm" in parts:
        add_dsm_fields(config)
    for part in parts:
        if _is_fov_arg(part):
            set_field_of_view(config, float(part[3:]))
    return config


def check_model_section(config):
    """Checks the sizes of ``config.model``, which ml_collections types only as tuples, and
    that a polar aerial branch sees the panorama the queries are cut from.

    Raises:
        ConfigError: naming the field, what it must be and what it is.
    """
    check_size(config, "model.ground_size")
    check_size(config, "model.aerial_size")
    check_size(config, "model.map_size", optional=True)
    check_size(config, "model.polar_size", optional=True)
    polar = config.model.aerial_polar
    if polar is None:
        polar = PRESETS[config.model.variant].aerial_polar if config.model.variant in PRESETS else False
    fov = config.data.get("ground_fov_deg", FULL_CIRCLE_DEG) if "data" in config else FULL_CIRCLE_DEG
    if polar and float(fov) != FULL_CIRCLE_DEG:
        panorama = panorama_size(config.model.ground_size, fov)
        if tuple(config.model.polar_size or config.model.ground_size) != panorama:
            raise ConfigError(
                f"config.model.polar_size must be the panorama the {fov:g}-degree queries of size "
                f"{tuple(config.model.ground_size)} are cut from, {panorama}; got {config.model.polar_size}"
            )


def check_train_section(config):
    """Checks the fields of ``config.train`` that ml_collections cannot type.

    Raises:
        ConfigError: ``mixed_precision`` is not one of :data:`MIXED_PRECISION_POLICIES`,
            ``steps_per_execution`` is below 1, or ``jit_compile`` is asked of a strategy
            that places replicas on several devices of one program (``mirrored``,
            ``multi_worker``): Keras would compile the strategy's whole cross-device step
            with XLA, which cannot reach the other devices' variables.
    """
    check_train_numbers(config)
    value = config.train.mixed_precision
    if value not in MIXED_PRECISION_POLICIES:
        choices = tuple(MIXED_PRECISION_POLICIES)
        raise ConfigError(f"config.train.mixed_precision must be one of {choices}, got {value!r}")
    if config.train.steps_per_execution < 1:
        raise ConfigError(
            f"config.train.steps_per_execution must be a positive integer, got {config.train.steps_per_execution}"
        )
    if config.train.jit_compile and config.distribute.strategy in ("mirrored", "multi_worker"):
        raise ConfigError(
            f"config.train.jit_compile cannot be used with config.distribute.strategy="
            f"{config.distribute.strategy!r}: XLA compiles one device's step (use 'default'; 'tpu' always compiles)"
        )


TRAIN_INTEGER_MINIMA = {
    "batch_size": 1,
    "epochs": 1,
    "steps_per_epoch": 0,
    "keep_checkpoints": 0,
    "backup_every_steps": 0,
}
"""Least value of each integer field of ``config.train`` (where the section has it). 0 means:
``steps_per_epoch`` the split's pairs // batch, ``keep_checkpoints`` keep every epoch
checkpoint, ``backup_every_steps`` no step backups."""

_TRAIN_ZERO_MEANS = {
    "steps_per_epoch": " (0: the split's pairs // batch)",
    "keep_checkpoints": " (0: keep every epoch checkpoint)",
    "backup_every_steps": " (0: no step backups)",
}


def check_train_numbers(config):
    """Checks the counts and the learning rate of ``config.train``.

    Raises:
        ConfigError: naming the field and its allowed range: a count below
            :data:`TRAIN_INTEGER_MINIMA`, or a learning rate that is not a finite number above 0.
    """
    for field, least in TRAIN_INTEGER_MINIMA.items():
        if field in config.train and config.train[field] < least:
            zero = _TRAIN_ZERO_MEANS.get(field, "")
            raise ConfigError(f"config.train.{field} must be an integer >= {least}{zero}; got {config.train[field]}")
    rate = config.train.learning_rate
    if not (math.isfinite(rate) and rate > 0):
        raise ConfigError(f"config.train.learning_rate must be a finite number above 0; got {rate}")


def check_distribute_section(config):
    """Checks ``config.distribute``.

    Raises:
        ConfigError: an unknown strategy, or a negative ``logical_cpus``.
    """
    if config.distribute.strategy not in STRATEGIES:
        raise ConfigError(
            f"config.distribute.strategy must be one of {STRATEGIES}, got {config.distribute.strategy!r}"
        )
    if config.distribute.logical_cpus < 0:
        raise ConfigError(
            f"config.distribute.logical_cpus must be 0 (no split) or a positive integer, "
            f"got {config.distribute.logical_cpus}"
        )


def check_dataset_sections(config):
    """Checks ``config.data`` and ``config.eval`` for reading and evaluating a split.

    Raises:
        ConfigError: an unknown dataset or CVACT split, no dataset root, a raw panorama size
            that is not two positive integers, a batch or chunk size below 1, an unknown rank
            backend or image decoder.
    """
    if config.data.name not in DATASETS:
        raise ConfigError(f"config.data.name must be one of {DATASETS}, got {config.data.name!r}")
    if not config.data.root:
        raise ConfigError("config.data.root is empty: pass --config.data.root=/path/to/dataset")
    check_size(config, "data.raw_ground_size", optional=True)
    if config.data.name == "cvact" and config.eval.split not in cvact.SPLIT_FIELDS:
        splits = sorted(cvact.SPLIT_FIELDS)
        raise ConfigError(f"config.eval.split must be one of {splits} for CVACT, got {config.eval.split!r}")
    try:
        field_of_view = FieldOfView(config.data.ground_fov_deg, config.data.unknown_heading)
    except ValueError as error:
        raise ConfigError(f"config.data.ground_fov_deg: {error}") from None
    for noise in ("data.orientation_noise_deg", "eval.orientation_noise_deg"):
        section, name = noise.split(".")
        if config[section][name] and not field_of_view.is_full_north_aligned:
            raise ConfigError(
                f"config.{noise} and config.data.ground_fov_deg / unknown_heading do not combine: "
                "a query of unknown heading is already turned at random"
            )
    if not 0.0 <= config.data.max_bad_fraction <= 1.0:
        raise ConfigError(f"config.data.max_bad_fraction must be between 0 and 1; got {config.data.max_bad_fraction}")
    if config.data.max_image_pixels < 1:
        raise ConfigError(f"config.data.max_image_pixels must be a positive integer; got {config.data.max_image_pixels}")
    if config.data.decoder not in pipeline.DECODERS:
        raise ConfigError(f"config.data.decoder must be one of {pipeline.DECODERS}, got {config.data.decoder!r}")
    if config.eval.backend not in RANK_BACKENDS:
        raise ConfigError(f"config.eval.backend must be one of {RANK_BACKENDS}, got {config.eval.backend!r}")
    for field in ("batch_size", "chunk_size"):
        if config.eval[field] < 1:
            raise ConfigError(f"config.eval.{field} must be a positive integer, got {config.eval[field]}")


def check_size(config, field, optional=False):
    """Raises ConfigError unless ``config.<field>`` (e.g. ``"model.ground_size"``) is two
    positive integers, or None when ``optional``."""
    section, name = field.split(".")
    value = config[section][name]
    if value is None and optional:
        return
    is_pair = isinstance(value, (tuple, list)) and len(value) == 2
    if not is_pair or not all(isinstance(side, int) and not isinstance(side, bool) and side > 0 for side in value):
        raise ConfigError(f"config.{field} must be (height, width), two positive integers; got {value!r}")


SMOKE_BACKBONE = dict(
    patch_size=14, num_layers=2, hidden_dim=32, num_heads=2, intermediate_dim=64, position_embedding_shape=(56, 56, 3)
)
"""A tiny random DINOv2 for smoke runs of the ``salad`` variant."""

SMOKE_SALAD = dict(num_clusters=4, cluster_dim=8, token_dim=8, hidden_dim=16, dropout=0.3)
"""A tiny SALAD head for smoke runs."""


def _is_fov_arg(part):
    try:
        return part.startswith("fov") and 0.0 < float(part[3:]) <= FULL_CIRCLE_DEG
    except ValueError:
        return False


DSM_COLUMN_PIXELS = 16
"""Pixels per column of the width-aligned maps (the VGG16 trunk's stride)."""


def set_field_of_view(config, fov_deg):
    """Queries of ``fov_deg`` degrees and unknown heading, cut from panoramas of the current
    ``model.ground_size`` ``(h, W)``: ``model.ground_size`` becomes ``(h, w)``, ``w`` the
    nearest whole number of columns (of the trunk's stride for ``dsm``, whose maps must stay
    width-aligned), ``model.polar_size`` ``(h, W)`` and ``data.ground_fov_deg`` the angle the
    crop really covers, ``360 w / W``."""
    height, width = config.model.ground_size
    step = DSM_COLUMN_PIXELS if config.model.variant == "dsm" else 1
    crop_width = max(step, step * round(width * fov_deg / FULL_CIRCLE_DEG / step))
    config.model.polar_size = (height, width)
    config.model.ground_size = (height, crop_width)
    config.data.ground_fov_deg = FULL_CIRCLE_DEG * crop_width / width
    config.data.unknown_heading = True


def add_dsm_fields(config):
    """The ``dsm`` variant's fields: its map's channels; the panorama width made a multiple of
    64 pixels (4 map columns), so that 360/180/90-degree crops stay width-aligned."""
    from cvft_tf.models.aggregators.azimuth_map import AZIMUTH_MAP_CHANNELS

    config.model.aggregator.map_channels = AZIMUTH_MAP_CHANNELS
    height, width = config.model.ground_size
    config.model.ground_size = (height, max(64, 64 * (width // 64)))


def salad_head_config():
    """SALAD's head sizes and dropout, the layer's defaults, as a config section."""
    from cvft_tf.layers.salad import SALAD

    head = SALAD()
    return ml_collections.ConfigDict(
        dict(
            num_clusters=head.num_clusters,
            cluster_dim=head.cluster_dim,
            token_dim=head.token_dim,
            hidden_dim=head.hidden_dim,
            dropout=head.dropout,
        )
    )


def add_salad_fields(config):
    """The ``salad`` variant's model fields: DINOv2-B/14 + the paper's SALAD head."""
    from cvft_tf.models.dinov2 import DINOV2_BASE

    backbone = PRESETS["salad"].backbone(backbone_kwargs=dict(DINOV2_BASE)).get_config()
    config.model.backbone.update(backbone, backbone_preset="", backbone_weights="")
    config.model.aggregator.salad_kwargs = salad_head_config()
    config.train.init = ""
