"""The two-branch cross-view model of CVFT (Fig. 3), its Table 1 baselines and SALAD.

Each branch is ``backbone`` then ``aggregator`` (``models.backbones``,
``models.aggregators``); the ``matcher`` scores a batch into the loss (``models.matchers``).
The variant names of the original's ``network_type`` are presets of parts
(``models.presets.PRESETS``):

* ``cvft``: VGG16 -> 3x3/2 reduction conv (512 -> 64) per branch; the ground map is resized
  to the output map size with TF1 bilinear resize; cost regression + Sinkhorn give a plan
  that transports the ground map (Sec. 4.2); both maps are flattened row-major and
  L2-normalised (8x8x64 = 4096-d at the original sizes).
* ``vgg_conv`` ("our network wo/ CVFT"): the same without cost regression and transport.
* ``vgg_gp`` ("VGG global pooling"): global max pooling of conv5_3 -> 512-d, L2-normalised.
* ``salad``: each branch is DINOv2 + SALAD optimal-transport aggregation (SALAD, CVPR 2024),
  trained with the same triplet loss.
* ``dsm``: the aerial tile is turned into a polar image (``layers.polar``), both branches
  keep width-aligned VGG16 maps, and the matcher correlates them at every azimuth, which
  also estimates where a query looks (DSM, CVPR 2020): for limited field-of-view queries
  of unknown heading (``data.field_of_view``).

The branches are not shared. Each branch is a functional Keras model usable on its own
(``model.ground_encoder``, ``model.aerial_encoder``) so a gallery is embedded once;
``model.ground_feature_maps`` exposes the intermediate maps (before/after transport, the
plan) for the paper's Figure 7.
"""

import keras

from cvft_tf.data.preprocess import AERIAL_SIZE, GROUND_SIZE
from cvft_tf.models.batch_recall import recall_at_1
from cvft_tf.feature_cache import AERIAL_FEATURES, GROUND_FEATURES
from cvft_tf.layers.polar import PolarTransform
from cvft_tf.models import frozen_stem, replicas
from cvft_tf.models.backbones import VGG16Backbone
from cvft_tf.models.optimizer_step import minimize
from cvft_tf.models.parts import Part, fields_of
from cvft_tf.models.presets import PRESETS

VARIANTS = tuple(PRESETS)
"""Variant names (``models.presets.PRESETS``)."""

VGG_VARIANTS = tuple(name for name, preset in PRESETS.items() if preset.backbone is VGG16Backbone)
"""Variants on the VGG16 trunk (the original's; TF1 checkpoints, frozen stems)."""

MODEL_PARTS = ("backbone", "aggregator", "matcher")
"""The roles of a model's parts, in build order; ``config.model`` has a section for each."""


def build_branch(branch, image_size, backbone, aggregator, map_size=None, polar_size=None):
    """One branch as a functional model with a dict of named outputs.

    Args:
        branch: ``"ground"`` or ``"aerial"``.
        image_size: ``(height, width)`` of the input images (BGR pixels in [0, 255]).
        backbone: a backbone part (``models.backbones``).
        aggregator: an aggregator part (``models.aggregators``).
        map_size: ``(h, w)`` the aggregator brings the feature map to, or None for the
            branch's own (see ``models.aggregators``).
        polar_size: ``(H, W)``: the backbone sees the polar transform of the images
            (``layers.polar.PolarTransform``) of this size; None: the images.

    Returns:
        ``keras.Model`` named ``f"{branch}_branch"`` mapping ``[B, H, W, 3]`` to the
        aggregator's dict: ``"descriptor"`` ``[B, D]`` and, by aggregator, ``"feature_map"``
        ``[B, h, w, c]``, ``"cost"`` / ``"plan"``, ``"transported"``, ...
    """
    if branch not in ("ground", "aerial"):
        raise ValueError(f"Unknown branch {branch!r}; expected 'ground' or 'aerial'.")
    images = keras.Input(shape=(*image_size, 3), name=f"{branch}_images")
    transform = PolarTransform(polar_size, name=f"{branch}_polar") if polar_size is not None else None
    outputs = aggregator(backbone(images, branch, transform), branch, map_size)
    return keras.Model(images, outputs, name=f"{branch}_branch")


def _role_settings(role):
    """Every setting name of the parts of ``role`` over the presets."""
    return set().union(*(fields_of(getattr(preset, role)) for preset in PRESETS.values()))


def _part(role, given, part_class, settings):
    """The part of ``role``.

    ``given`` is used as is when it is a Part (or its saved form); otherwise ``part_class``
    is built from ``settings`` (the model's settings that are its fields) updated by
    ``given``, a dict of settings such as ``config.model.<role>``. A dict may hold settings
    of the other parts of that role (a config section serves every variant); a name no
    part of the role takes is an error.
    """
    if isinstance(given, Part):
        return given
    if isinstance(given, dict) and "class_name" in given:
        return keras.saving.deserialize_keras_object(given)
    given = dict(given or {})
    unknown = sorted(set(given) - _role_settings(role) - fields_of(part_class))
    if unknown:
        takes = sorted(fields_of(part_class))
        raise TypeError(f"{part_class.__name__} ({role}) has no setting {unknown}; it takes {takes}")
    own = {key: value for key, value in {**settings, **given}.items() if key in fields_of(part_class)}
    return part_class(**own)


@keras.saving.register_keras_serializable(package="cvft_tf")
class CrossViewModel(keras.Model):
    """Two-branch cross-view retrieval model with the original's loss and training step.

    Call with ``{"ground": [B, Hg, Wg, 3], "aerial": [B, Ha, Wa, 3]}``, BGR pixels in
    [0, 255], uint8 (as the input pipelines yield them) or float; the VGG trunk subtracts the
    original's mean as its first layer (``layers.pixels.CenterPixels``);
    returns ``{"ground": [B, D], "aerial": [B, D]}`` unit-norm descriptors.

    ``train_step`` / ``test_step`` read batches of that dict form, or batches of the frozen
    stems' features ``{"ground_features", "aerial_features"}`` (``cvft_tf.feature_cache``),
    which go through the heads of :meth:`frozen_stem` only; the matcher scores them (a batch
    with ``"distance_sq"`` ``[B, B]``, CVACT, masks same-place negatives). Under a
    ``tf.distribute`` strategy each replica scores its pairs against the whole global batch
    (``models.replicas``). Metrics: ``loss`` and in-batch ``recall@1`` (ground queries) of
    the global batch.

    Args:
        variant: a preset of parts (``models.presets.PRESETS``): ``"cvft"``, ``"vgg_conv"``,
            ``"vgg_gp"`` or ``"salad"``.
        ground_size: ``(H, W)`` of ground panoramas (original 112x616).
        aerial_size: ``(H, W)`` of aerial tiles (original 256x256).
        map_size: ``(h, w)`` output map of the map aggregators (None: the aerial map's own
            size, 8x8 at 256x256); Table 4 of the paper varies it (4096/2048/1536/512-d).
        aerial_polar: the aerial branch sees polar images (``layers.polar``); None: the
            preset's choice (``dsm`` does).
        polar_size: ``(H, W)`` of the polar images; None: ``ground_size`` (a whole panorama,
            as SAFA). With limited field-of-view queries it is the size of the panorama they
            are cut from (``data.field_of_view.panorama_size``).
        backbone, aggregator, matcher: a part to use instead of the preset's, or a dict of
            settings of the preset's part (the sections ``config.model.backbone`` ...; a
            setting of another part of the same role is ignored).
        **settings: settings of the parts by name, each given to the part that has it
            (``VGG16Backbone.frozen_blocks``, ``Transport.sinkhorn_iterations``,
            ``SoftMarginTriplet.loss_gamma``, ...); a setting of a part the variant does
            not use is ignored, as it is by the original's ``network_type``. The rest go to
            ``keras.Model``.
    """

    def __init__(
        self,
        variant="cvft",
        ground_size=GROUND_SIZE,
        aerial_size=AERIAL_SIZE,
        map_size=None,
        aerial_polar=None,
        polar_size=None,
        backbone=None,
        aggregator=None,
        matcher=None,
        **settings,
    ):
        if variant not in PRESETS:
            raise ValueError(f"Unknown variant {variant!r}; expected one of {VARIANTS}.")
        preset = PRESETS[variant]
        known = set().union(*(_role_settings(role) for role in MODEL_PARTS))
        part_settings = {key: settings.pop(key) for key in list(settings) if key in known}
        super().__init__(**settings)
        self.variant = variant
        self.ground_size = tuple(ground_size)
        self.aerial_size = tuple(aerial_size)
        self.map_size = tuple(map_size) if map_size is not None else None
        self.aerial_polar = aerial_polar
        self.polar_size = tuple(polar_size) if polar_size is not None else None
        self.backbone = _part("backbone", backbone, preset.backbone, part_settings)
        self.aggregator = _part("aggregator", aggregator, preset.aggregator, part_settings)
        self.matcher = _part("matcher", matcher, preset.matcher, part_settings)

        self.aerial_branch = build_branch(
            "aerial", self.aerial_size, self.backbone, self.aggregator, self.map_size, self.aerial_polar_size
        )
        aerial_map = self.aerial_branch.output.get("feature_map")
        ground_map_size = tuple(aerial_map.shape[1:3]) if aerial_map is not None else self.map_size
        self.ground_branch = build_branch("ground", self.ground_size, self.backbone, self.aggregator, ground_map_size)
        if self.matcher.compares_maps:
            self._check_width_alignment()
        self.aerial_encoder = _descriptor_model(self.aerial_branch, "aerial_encoder")
        self.ground_encoder = _descriptor_model(self.ground_branch, "ground_encoder")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.recall_tracker = keras.metrics.Mean(name="recall@1")
        self._frozen_stem = None
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.recall_tracker]

    @property
    def aerial_polar_size(self):
        """``(H, W)`` of the aerial branch's polar images, or None when it sees the tiles."""
        polar = PRESETS[self.variant].aerial_polar if self.aerial_polar is None else self.aerial_polar
        if not polar:
            return None
        return self.polar_size or self.ground_size

    def _check_width_alignment(self):
        """A map matcher needs maps whose columns cover the same pixels in both branches."""
        ground_map = tuple(self.ground_branch.output["descriptor"].shape[1:])
        aerial_map = tuple(self.aerial_branch.output["descriptor"].shape[1:])
        aerial_width = (self.aerial_polar_size or self.aerial_size)[1]
        if len(ground_map) != 3 or ground_map[1] * aerial_width != aerial_map[1] * self.ground_size[1]:
            raise ValueError(
                f"The {type(self.matcher).__name__} matcher compares width-aligned maps, but the ground map "
                f"{ground_map} of {self.ground_size} images and the aerial map {aerial_map} of "
                f"{self.aerial_polar_size or self.aerial_size} images differ in pixels per column; use a map "
                "aggregator (azimuth_map), aerial_polar, and image widths that are multiples of the trunk's stride (16)"
            )

    @property
    def descriptor_size(self):
        """Length D of the descriptors."""
        return int(self.aerial_encoder.output.shape[-1])

    def ground_feature_maps(self, ground_images, training=False):
        """All named outputs of the ground branch (maps, cost, plan, transported, descriptor)."""
        return self.ground_branch(ground_images, training=training)

    def aerial_feature_maps(self, aerial_images, training=False):
        """All named outputs of the aerial branch (feature_map, descriptor)."""
        return self.aerial_branch(aerial_images, training=training)

    def frozen_stem(self):
        """Both branches split at their frozen blocks (``frozen_stem.ModelSplit``), made once.

        The split shares this model's layers: training its heads trains the model.
        """
        if self._frozen_stem is None:
            self._frozen_stem = frozen_stem.split_model(self)
        return self._frozen_stem

    def call(self, inputs, training=False):
        return {
            "ground": self.ground_encoder(inputs["ground"], training=training),
            "aerial": self.aerial_encoder(inputs["aerial"], training=training),
        }

    def batch_loss(self, descriptors, batch):
        """The matcher's loss of one batch (the triplet loss; masks same-place negatives when
        the batch has distances)."""
        return self.matcher.loss(descriptors, batch)

    def descriptors(self, batch, training=False):
        """``{"ground": [B, D], "aerial": [B, D]}`` of a batch of images or of stem features
        (either branch may come as features: ``feature_cache.with_cached_aerial_features``)."""
        if GROUND_FEATURES not in batch and AERIAL_FEATURES not in batch:
            return self(batch, training=training)
        split = self.frozen_stem()
        if GROUND_FEATURES in batch:
            ground = split.ground.head(batch[GROUND_FEATURES], training=training)["descriptor"]
        else:
            ground = self.ground_encoder(batch["ground"], training=training)
        return {"ground": ground, "aerial": split.aerial.head(batch[AERIAL_FEATURES], training=training)["descriptor"]}

    def global_batch_loss(self, batch, training=False):
        """The loss of the whole global batch and its descriptors ``{"ground": [B, D], "aerial": [B, D]}``.

        Under a ``tf.distribute`` strategy each replica embeds its slice of the batch and
        scores the descriptors of every replica (``replicas.global_batch``); on one device
        this is :meth:`batch_loss` of :meth:`descriptors`.
        """
        descriptors, scored = replicas.global_batch(self.descriptors(batch, training=training), batch)
        return self.batch_loss(descriptors, scored), descriptors

    def train_step(self, batch):
        loss, descriptors = minimize(self, lambda: self.global_batch_loss(batch, training=True))
        return self._update_metrics(loss, descriptors)

    def test_step(self, batch):
        return self._update_metrics(*self.global_batch_loss(batch))

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        """Builds the optimizer in the strategy's scope; the model is built when it is made.

        Keras' own version first reduces a batch over the replicas, which
        ``MultiWorkerMirroredStrategy`` cannot do for a batch that is a dict
        (keras-team/keras#20329), and reads that batch from the training stream.
        """
        if self.optimizer is not None and not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    def _update_metrics(self, loss, descriptors):
        self.loss_tracker.update_state(loss)
        self.recall_tracker.update_state(recall_at_1(self.matcher.distances(descriptors)))
        return replicas.step_logs({metric.name: metric.result() for metric in self.metrics})

    def settings(self):
        """The model's settings by name, as a flat ``config.model`` gives them: ``variant``,
        the sizes, and every saved setting of its parts."""
        flat = {
            "variant": self.variant,
            "ground_size": list(self.ground_size),
            "aerial_size": list(self.aerial_size),
            "map_size": list(self.map_size) if self.map_size is not None else None,
            "aerial_polar": self.aerial_polar,
            "polar_size": list(self.polar_size) if self.polar_size is not None else None,
        }
        for role in MODEL_PARTS:
            flat.update(getattr(self, role).get_config())
        return flat

    def get_config(self):
        config = super().get_config()
        config.update(
            variant=self.variant,
            ground_size=list(self.ground_size),
            aerial_size=list(self.aerial_size),
            map_size=list(self.map_size) if self.map_size is not None else None,
            aerial_polar=self.aerial_polar,
            polar_size=list(self.polar_size) if self.polar_size is not None else None,
            **{role: keras.saving.serialize_keras_object(getattr(self, role)) for role in MODEL_PARTS},
        )
        return config


def _descriptor_model(branch_model, name):
    """A model sharing ``branch_model``'s layers that returns only ``[B, D]`` descriptors."""
    return keras.Model(branch_model.input, branch_model.output["descriptor"], name=name)


def build_model(variant="cvft", **kwargs):
    """Builds a :class:`CrossViewModel`; ``kwargs`` are its constructor arguments."""
    return CrossViewModel(variant=variant, **kwargs)
