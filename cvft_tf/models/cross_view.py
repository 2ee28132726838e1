"""The two-branch cross-view model of CVFT (Fig. 3) and the baselines of its Table 1.

Variants (the original's ``network_type``):

* ``cvft``: VGG16 -> 3x3/2 reduction conv (512 -> 64) per branch; the ground map is resized
  to the output map size with TF1 bilinear resize; cost regression + Sinkhorn give a plan
  that transports the ground map (Sec. 4.2); both maps are flattened row-major and
  L2-normalised (8x8x64 = 4096-d at the original sizes).
* ``vgg_conv`` ("our network wo/ CVFT"): the same without cost regression and transport.
* ``vgg_gp`` ("VGG global pooling"): global max pooling of conv5_3 -> 512-d, L2-normalised.
* ``salad``: each branch is DINOv2 + SALAD optimal-transport aggregation (SALAD, CVPR 2024;
  ``cvft_tf.models.dinov2.build_salad_branch``), trained with the same triplet loss.

The branches are not shared. Each branch is a functional Keras model usable on its own
(``model.ground_encoder``, ``model.aerial_encoder``) so a gallery is embedded once;
``model.ground_feature_maps`` exposes the intermediate maps (before/after transport, the
plan) for the paper's Figure 7.
"""

import keras
import tensorflow as tf

from cvft_tf import losses
from cvft_tf.data.cvact import SAME_PLACE_RADIUS_M
from cvft_tf.data.preprocess import AERIAL_SIZE, GROUND_SIZE
from cvft_tf.evaluation.recall import recall_at_1
from cvft_tf.feature_cache import AERIAL_FEATURES, GROUND_FEATURES
from cvft_tf.layers.resize import ResizeBilinearTF1
from cvft_tf.layers.sinkhorn import CVFT_COST_SCALE, CVFT_NUM_ITERATIONS, Sinkhorn
from cvft_tf.layers.transport import CostRegression, FeatureTransport
from cvft_tf.models import frozen_stem
from cvft_tf.models.optimizer_step import minimize
from cvft_tf.models.vgg16 import DROPOUT_RATE, FROZEN_BLOCKS, vgg16_trunk

VARIANTS = ("cvft", "vgg_conv", "vgg_gp", "salad")
VGG_VARIANTS = ("cvft", "vgg_conv", "vgg_gp")
REDUCED_CHANNELS = 64
"""Output channels of the reduction convs ``grd_conv`` / ``sat_conv`` (512 -> 64)."""

@keras.saving.register_keras_serializable(package="cvft_tf")
class L2Normalize(keras.layers.Layer):
    """``tf.nn.l2_normalize`` over the last axis, in float32: ``[B, D] -> [B, D]``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        return tf.nn.l2_normalize(tf.cast(inputs, tf.float32), axis=-1)


def _reduction_conv(channels, name, dtype):
    """The original's ``grd_conv`` / ``sat_conv``: 3x3, stride 2, SAME, ReLU, Xavier init."""
    return keras.layers.Conv2D(
        channels,
        3,
        strides=2,
        padding="same",
        activation="relu",
        kernel_initializer="glorot_uniform",
        bias_initializer="glorot_uniform",
        name=name,
        dtype=dtype,
    )


def build_branch(
    branch,
    image_size,
    variant="cvft",
    map_size=None,
    reduced_channels=REDUCED_CHANNELS,
    dropout_rate=DROPOUT_RATE,
    frozen_blocks=FROZEN_BLOCKS,
    sinkhorn_iterations=CVFT_NUM_ITERATIONS,
    cost_scale=CVFT_COST_SCALE,
    transport_scale_by_positions=False,
    cost_dense_l2=0.0,
    dtype=None,
):
    """Builds one branch as a functional model with a dict of named outputs.

    Args:
        branch: ``"ground"`` or ``"aerial"``; only the ground branch of ``cvft`` transports.
        image_size: ``(height, width)`` of the input images.
        variant: one of :data:`VARIANTS`.
        map_size: ``(h, w)`` of the output feature map for ``cvft``/``vgg_conv``; ``None``
            keeps the branch's natural size (aerial: ``image / 32``). The ground map is
            always resized to it (TF1 bilinear), the aerial map only if sizes differ.
        Other args: see :class:`CrossViewModel`.

    Returns:
        ``keras.Model`` mapping ``[B, H, W, 3]`` to a dict with ``"descriptor"`` ``[B, D]``
        and, for the map variants, ``"feature_map"`` ``[B, h, w, c]`` (after resizing,
        before transport); ``cvft`` ground adds ``"cost"``/``"plan"`` ``[B, h*w, h*w]``
        and ``"transported"`` ``[B, h, w, c]``.
    """
    if variant not in VGG_VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; expected one of {VGG_VARIANTS}.")
    if branch not in ("ground", "aerial"):
        raise ValueError(f"Unknown branch {branch!r}; expected 'ground' or 'aerial'.")
    images = keras.Input(shape=(*image_size, 3), name=f"{branch}_images")
    trunk = keras.Model(
        images,
        vgg16_trunk(images, frozen_blocks=frozen_blocks, dropout_rate=dropout_rate, dtype=dtype),
        name="vgg16",
    )
    features = trunk(images)
    outputs = {}
    if variant == "vgg_gp":
        pooled = keras.layers.GlobalMaxPooling2D(name="global_max_pool", dtype=dtype)(features)
        outputs["descriptor"] = L2Normalize(name="descriptor")(pooled)
        return keras.Model(images, outputs, name=f"{branch}_branch")

    reduced = _reduction_conv(reduced_channels, f"{branch}_reduction", dtype)(features)
    target = tuple(map_size) if map_size is not None else tuple(reduced.shape[1:3])
    if branch == "ground" or tuple(reduced.shape[1:3]) != target:
        reduced = ResizeBilinearTF1(*target, name=f"{branch}_resize", dtype=dtype)(reduced)
    outputs["feature_map"] = reduced
    final_map = reduced
    if variant == "cvft" and branch == "ground":
        cost = CostRegression(dense_l2=cost_dense_l2, name="cost_regression", dtype=dtype)(reduced)
        plan = Sinkhorn(num_iterations=sinkhorn_iterations, cost_scale=cost_scale, name="sinkhorn")(cost)
        final_map = FeatureTransport(scale_by_positions=transport_scale_by_positions, name="transport", dtype=dtype)(
            reduced, plan
        )
        outputs.update(cost=cost, plan=plan, transported=final_map)
    flat = keras.layers.Flatten(name="flatten", dtype=dtype)(final_map)
    outputs["descriptor"] = L2Normalize(name="descriptor")(flat)
    return keras.Model(images, outputs, name=f"{branch}_branch")


@keras.saving.register_keras_serializable(package="cvft_tf")
class CrossViewModel(keras.Model):
    """Two-branch cross-view retrieval model with the original's loss and training step.

    Call with ``{"ground": [B, Hg, Wg, 3], "aerial": [B, Ha, Wa, 3]}``, BGR pixels in
    [0, 255], uint8 (as the input pipelines yield them) or float; the VGG trunk subtracts the
    original's mean as its first layer (``layers.pixels.CenterPixels``);
    returns ``{"ground": [B, D], "aerial": [B, D]}`` unit-norm descriptors.

    ``train_step`` / ``test_step`` read batches of that dict form, or batches of the frozen
    stems' features ``{"ground_features", "aerial_features"}`` (``cvft_tf.feature_cache``),
    which go through the heads of :meth:`frozen_stem` only; when a batch carries
    ``"distance_sq"`` ``[B, B]`` (CVACT) the loss masks negatives closer than
    ``same_place_radius_m``. Metrics: ``loss`` and in-batch ``recall@1`` (ground queries).

    Args:
        variant: ``"cvft"``, ``"vgg_conv"`` or ``"vgg_gp"``.
        ground_size: ``(H, W)`` of ground panoramas (original 112x616).
        aerial_size: ``(H, W)`` of aerial tiles (original 256x256).
        map_size: ``(h, w)`` output map (None: aerial natural size, 8x8 at 256x256);
            Table 4 of the paper varies it (4096/2048/1536/512-d).
        reduced_channels: channels after the reduction convs (64).
        dropout_rate: dropout after conv4_x/conv5_x (0.2 = 1 - keep_prob 0.8).
        frozen_blocks: VGG blocks frozen from the input side (3).
        sinkhorn_iterations: unrolled Sinkhorn iterations (20).
        cost_scale: lambda of ``exp(-lambda C)`` (100).
        transport_scale_by_positions: apply the paper's ``n_a`` factor of Eq. (5) (the
            original code does not).
        cost_dense_l2: L2 on the cost regression's dense weights (the original declares
            0.01 but never adds it: 0 reproduces it).
        loss_gamma: gamma of the soft-margin triplet loss (10).
        hard_negatives: batch-hard variant, keep this many hardest terms per anchor (0: off).
        same_place_radius_m: CVACT mask radius in metres (25).
        backbone_kwargs: ``salad``: DINOv2 architecture (default ViT-B/14).
        salad_kwargs: ``salad``: arguments of the ``SALAD`` layer (defaults of the paper).
        trainable_blocks: ``salad``: last DINOv2 blocks fine-tuned (4).
        backbone_preset: ``salad``: local keras-hub preset directory of DINOv2 weights; its
            architecture is stored in ``backbone_kwargs`` so a saved model reloads without it.
        backbone_weights: ``salad``: ``.weights.h5`` of the backbone (instead of a preset).
    """

    def __init__(
        self,
        variant="cvft",
        ground_size=GROUND_SIZE,
        aerial_size=AERIAL_SIZE,
        map_size=None,
        reduced_channels=REDUCED_CHANNELS,
        dropout_rate=DROPOUT_RATE,
        frozen_blocks=FROZEN_BLOCKS,
        sinkhorn_iterations=CVFT_NUM_ITERATIONS,
        cost_scale=CVFT_COST_SCALE,
        transport_scale_by_positions=False,
        cost_dense_l2=0.0,
        loss_gamma=losses.SOFT_MARGIN_GAMMA,
        hard_negatives=0,
        same_place_radius_m=SAME_PLACE_RADIUS_M,
        backbone_kwargs=None,
        salad_kwargs=None,
        trainable_blocks=4,
        backbone_preset=None,
        backbone_weights=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.variant = variant
        self.ground_size = tuple(ground_size)
        self.aerial_size = tuple(aerial_size)
        self.map_size = tuple(map_size) if map_size is not None else None
        self.reduced_channels = int(reduced_channels)
        self.dropout_rate = float(dropout_rate)
        self.frozen_blocks = int(frozen_blocks)
        self.sinkhorn_iterations = int(sinkhorn_iterations)
        self.cost_scale = float(cost_scale)
        self.transport_scale_by_positions = bool(transport_scale_by_positions)
        self.cost_dense_l2 = float(cost_dense_l2)
        self.loss_gamma = float(loss_gamma)
        self.hard_negatives = int(hard_negatives)
        self.same_place_radius_m = float(same_place_radius_m)
        self.backbone_kwargs = dict(backbone_kwargs) if backbone_kwargs else None
        self.salad_kwargs = dict(salad_kwargs) if salad_kwargs else None
        self.trainable_blocks = int(trainable_blocks)

        if variant == "salad":
            self._build_salad_branches(backbone_preset, backbone_weights)
        else:
            self._build_vgg_branches()
        self.aerial_encoder = _descriptor_model(self.aerial_branch, "aerial_encoder")
        self.ground_encoder = _descriptor_model(self.ground_branch, "ground_encoder")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.recall_tracker = keras.metrics.Mean(name="recall@1")
        self._frozen_stem = None
        self.built = True

    def _build_vgg_branches(self):
        branch_kwargs = dict(
            variant=self.variant,
            reduced_channels=self.reduced_channels,
            dropout_rate=self.dropout_rate,
            frozen_blocks=self.frozen_blocks,
            sinkhorn_iterations=self.sinkhorn_iterations,
            cost_scale=self.cost_scale,
            transport_scale_by_positions=self.transport_scale_by_positions,
            cost_dense_l2=self.cost_dense_l2,
        )
        aerial_map_size = self.map_size
        if self.variant != "vgg_gp" and aerial_map_size is None:
            aerial_map_size = _natural_map_size(self.aerial_size)
        self.aerial_branch = build_branch("aerial", self.aerial_size, map_size=aerial_map_size, **branch_kwargs)
        self.ground_branch = build_branch("ground", self.ground_size, map_size=aerial_map_size, **branch_kwargs)

    def _build_salad_branches(self, preset, weights):
        from cvft_tf.models.dinov2 import backbone_kwargs_from_preset, build_salad_branch

        if preset:
            self.backbone_kwargs = {**backbone_kwargs_from_preset(preset), **(self.backbone_kwargs or {})}
        branch_kwargs = dict(
            backbone_kwargs=self.backbone_kwargs,
            salad_kwargs=self.salad_kwargs,
            trainable_blocks=self.trainable_blocks,
            preset=preset or None,
            backbone_weights=weights or None,
            input_format="cvft",
        )
        self.aerial_branch = build_salad_branch("aerial", self.aerial_size, **branch_kwargs)
        self.ground_branch = build_salad_branch("ground", self.ground_size, **branch_kwargs)

    @property
    def metrics(self):
        return [self.loss_tracker, self.recall_tracker]

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
        """The triplet loss of one batch; masks same-place negatives when it has distances."""
        negative_mask = None
        if "distance_sq" in batch:
            negative_mask = losses.same_place_negative_mask(batch["distance_sq"], self.same_place_radius_m)
        return losses.weighted_soft_margin_triplet_loss(
            descriptors["aerial"],
            descriptors["ground"],
            gamma=self.loss_gamma,
            negative_mask=negative_mask,
            hard_negatives=self.hard_negatives,
        )

    def descriptors(self, batch, training=False):
        """``{"ground": [B, D], "aerial": [B, D]}`` of a batch of images or of stem features."""
        if GROUND_FEATURES not in batch:
            return self(batch, training=training)
        split = self.frozen_stem()
        return {
            "ground": split.ground.head(batch[GROUND_FEATURES], training=training)["descriptor"],
            "aerial": split.aerial.head(batch[AERIAL_FEATURES], training=training)["descriptor"],
        }

    def train_step(self, batch):
        def batch_loss():
            descriptors = self.descriptors(batch, training=True)
            return self.batch_loss(descriptors, batch), descriptors

        loss, descriptors = minimize(self, batch_loss)
        return self._update_metrics(loss, descriptors)

    def test_step(self, batch):
        descriptors = self.descriptors(batch, training=False)
        return self._update_metrics(self.batch_loss(descriptors, batch), descriptors)

    def _update_metrics(self, loss, descriptors):
        self.loss_tracker.update_state(loss)
        distances = losses.pairwise_distances(
            tf.cast(descriptors["aerial"], tf.float32), tf.cast(descriptors["ground"], tf.float32)
        )
        self.recall_tracker.update_state(recall_at_1(distances))
        return {metric.name: metric.result() for metric in self.metrics}

    def get_config(self):
        config = super().get_config()
        config.update(
            variant=self.variant,
            ground_size=list(self.ground_size),
            aerial_size=list(self.aerial_size),
            map_size=list(self.map_size) if self.map_size is not None else None,
            reduced_channels=self.reduced_channels,
            dropout_rate=self.dropout_rate,
            frozen_blocks=self.frozen_blocks,
            sinkhorn_iterations=self.sinkhorn_iterations,
            cost_scale=self.cost_scale,
            transport_scale_by_positions=self.transport_scale_by_positions,
            cost_dense_l2=self.cost_dense_l2,
            loss_gamma=self.loss_gamma,
            hard_negatives=self.hard_negatives,
            same_place_radius_m=self.same_place_radius_m,
            backbone_kwargs=self.backbone_kwargs,
            salad_kwargs=self.salad_kwargs,
            trainable_blocks=self.trainable_blocks,
        )
        return config


def _natural_map_size(aerial_size):
    """Aerial map size after VGG (/16, SAME pools) and the stride-2 reduction (/2)."""
    height, width = aerial_size
    for _ in range(5):
        height, width = -(-height // 2), -(-width // 2)
    return (height, width)


def _descriptor_model(branch_model, name):
    """A model sharing ``branch_model``'s layers that returns only ``[B, D]`` descriptors."""
    return keras.Model(branch_model.input, branch_model.output["descriptor"], name=name)


def build_model(variant="cvft", **kwargs):
    """Builds a :class:`CrossViewModel`; ``kwargs`` are its constructor arguments."""
    return CrossViewModel(variant=variant, **kwargs)
