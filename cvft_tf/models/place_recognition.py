"""Single-view visual place recognition with DINOv2 + SALAD (Izquierdo & Civera, CVPR 2024).

One branch (:func:`~cvft_tf.models.salad_branch.build_salad_branch`) maps an image to a unit
descriptor of size ``g + l*m``. Training follows GSV-Cities / SALAD: batches of P places with
K images each, ``{"images": [P*K, H, W, 3], "labels": [P*K]}`` (integer place ids), and the
multi-similarity loss on the pairs mined with margin 0.1
(:func:`cvft_tf.losses.multi_similarity_loss`). Images are RGB ImageNet-normalised unless
``input_format="cvft"``.
"""

import keras

from cvft_tf import losses
from cvft_tf.models.batch_recall import in_batch_place_recall_at_1
from cvft_tf.models.dinov2 import SALAD_TRAIN_SIZE, SALAD_TRAINABLE_BLOCKS, backbone_kwargs_from_preset
from cvft_tf.models.optimizer_step import minimize
from cvft_tf.models.salad_branch import build_salad_branch


@keras.saving.register_keras_serializable(package="cvft_tf")
class PlaceRecognitionModel(keras.Model):
    """DINOv2 + SALAD place-recognition model with the multi-similarity training step.

    Call with images ``[B, H, W, 3]``; returns unit descriptors ``[B, g + l*m]``.
    ``train_step`` / ``test_step`` read ``{"images", "labels"}`` batches. Metrics: ``loss`` and
    in-batch ``recall@1`` (the nearest other image of each image shows the same place).

    Args:
        image_size: ``(H, W)`` of the input images (SALAD trains at 224x224).
        backbone_kwargs: ``DINOV2Backbone`` architecture (default ViT-B/14).
        salad_kwargs: keyword arguments of :class:`~cvft_tf.layers.salad.SALAD`.
        trainable_blocks: last DINOv2 blocks fine-tuned (4).
        input_format: ``"imagenet"`` (RGB, ImageNet mean/std) or ``"cvft"`` (BGR pixels in [0, 255]).
        preset: local keras-hub preset directory with pretrained DINOv2 weights; its
            architecture is copied into ``backbone_kwargs`` so the saved config never needs it.
        backbone_weights: ``.weights.h5`` of the backbone (instead of ``preset``).
        loss_alpha, loss_beta, loss_base: multi-similarity loss parameters (1, 50, 0).
        miner_margin: epsilon of the multi-similarity miner (0.1; ``None``: no mining).
    """

    def __init__(
        self,
        image_size=SALAD_TRAIN_SIZE,
        backbone_kwargs=None,
        salad_kwargs=None,
        trainable_blocks=SALAD_TRAINABLE_BLOCKS,
        input_format="imagenet",
        preset=None,
        backbone_weights=None,
        loss_alpha=losses.MULTI_SIMILARITY_ALPHA,
        loss_beta=losses.MULTI_SIMILARITY_BETA,
        loss_base=losses.MULTI_SIMILARITY_BASE,
        miner_margin=losses.MULTI_SIMILARITY_MINER_MARGIN,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.image_size = tuple(int(s) for s in image_size)
        overrides = backbone_kwargs
        if preset is not None:
            backbone_kwargs = {**backbone_kwargs_from_preset(preset), **(overrides or {})}
        self.backbone_kwargs = dict(backbone_kwargs) if backbone_kwargs is not None else None
        self.salad_kwargs = dict(salad_kwargs or {})
        self.trainable_blocks = int(trainable_blocks)
        self.input_format = input_format
        self.loss_alpha = float(loss_alpha)
        self.loss_beta = float(loss_beta)
        self.loss_base = float(loss_base)
        self.miner_margin = None if miner_margin is None else float(miner_margin)

        self.branch = build_salad_branch(
            "place",
            self.image_size,
            backbone_kwargs=overrides if preset is not None else self.backbone_kwargs,
            salad_kwargs=self.salad_kwargs,
            trainable_blocks=self.trainable_blocks,
            preset=preset,
            backbone_weights=backbone_weights,
            input_format=input_format,
        )
        self.encoder = keras.Model(self.branch.input, self.branch.output["descriptor"], name="encoder")
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.recall_tracker = keras.metrics.Mean(name="recall@1")
        self.built = True

    @property
    def metrics(self):
        return [self.loss_tracker, self.recall_tracker]

    @property
    def descriptor_size(self):
        """Length ``g + l*m`` of the descriptors."""
        return int(self.encoder.output.shape[-1])

    def call(self, images, training=False):
        return self.encoder(images, training=training)

    def batch_loss(self, descriptors, labels):
        """Multi-similarity loss of one batch of descriptors and place ids."""
        return losses.multi_similarity_loss(
            descriptors,
            labels,
            alpha=self.loss_alpha,
            beta=self.loss_beta,
            base=self.loss_base,
            miner_margin=self.miner_margin,
        )

    def train_step(self, batch):
        batch = keras.utils.unpack_x_y_sample_weight(batch)[0]

        def batch_loss():
            descriptors = self(batch["images"], training=True)
            return self.batch_loss(descriptors, batch["labels"]), descriptors

        loss, descriptors = minimize(self, batch_loss)
        return self._update_metrics(loss, descriptors, batch["labels"])

    def test_step(self, batch):
        batch = keras.utils.unpack_x_y_sample_weight(batch)[0]
        descriptors = self(batch["images"], training=False)
        return self._update_metrics(self.batch_loss(descriptors, batch["labels"]), descriptors, batch["labels"])

    def _update_metrics(self, loss, descriptors, labels):
        self.loss_tracker.update_state(loss)
        self.recall_tracker.update_state(in_batch_place_recall_at_1(descriptors, labels))
        return {metric.name: metric.result() for metric in self.metrics}

    def settings(self):
        """The constructor's arguments by name, as ``config.model`` gives them
        (``checkpoints.check_model_config`` compares the two)."""
        return self.get_config()

    def get_config(self):
        config = super().get_config()
        config.update(
            image_size=list(self.image_size),
            backbone_kwargs=self.backbone_kwargs,
            salad_kwargs=self.salad_kwargs,
            trainable_blocks=self.trainable_blocks,
            input_format=self.input_format,
            loss_alpha=self.loss_alpha,
            loss_beta=self.loss_beta,
            loss_base=self.loss_base,
            miner_margin=self.miner_margin,
        )
        return config
