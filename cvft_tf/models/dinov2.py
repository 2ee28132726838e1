"""DINOv2 backbone (keras-hub) and the DINOv2-SALAD branch (SALAD, CVPR 2024, Sec. 3.1 / 4).

SALAD's backbone is DINOv2 ViT-B/14 with only its last 4 transformer blocks fine-tuned. The
authors' ``salad/models/backbones/dinov2.py`` does::

    x = model.prepare_tokens_with_masks(x)   # patch embedding, class token, positions
    with torch.no_grad(): x = blocks[:-N](x)   # frozen
    x = x.detach(); x = blocks[-N:](x)         # trained
    x = model.norm(x)                          # final LayerNorm (trained)
    t = x[:, 0]; f = x[:, 1:].reshape(B, H // 14, W // 14, C)

keras-hub's ``DINOV2Backbone`` (0.32) is a functional model of three layers: ``embeddings``
(``DINOV2Embedding``: the 14x14 patch projection, class token, optional register tokens and
position embeddings, interpolated bicubically once, when built, from the trained 518x518 grid
to the model's image size), ``encoder`` (``DINOV2Encoder``; its blocks are
``encoder.layers[i]``, named ``layers_{i}``) and ``layernorm``. Its output is the normalised
token sequence ``[B, 1 + R + h*w, C]``: class token first, then the R register tokens, then
the patch tokens row-major over ``(h, w) = (H/14, W/14)``. It only accepts square images, so
:func:`dinov2_features` re-creates the embedding for any ``(H, W)`` (both multiples of 14;
e.g. the 112x616 ground panoramas give 8x44 patches) and shares the encoder and final norm.

Preprocessing: DINOv2 expects RGB in [0, 1] normalised with the ImageNet mean and std
(:data:`IMAGENET_MEAN_RGB`, :data:`IMAGENET_STD_RGB`; SALAD's ``T.Normalize``), while the CVFT
pipeline feeds BGR pixels in [0, 255] (uint8). :class:`CVFTToDINOv2Input` converts the
latter into the former inside a branch, so one data pipeline feeds both kinds of branch.

Position embeddings at other sizes: keras-hub interpolates them with TensorFlow's bicubic
(a = -0.5) to ``(H/14, W/14)``; the authors' torch hub DINOv2 uses torch's bicubic
(a = -0.75) with a 0.1 offset in the scale factor. ``backbone_kwargs["position_interpolation"]``
chooses (:data:`POSITION_INTERPOLATIONS`): ``"keras_hub"`` (the default) or ``"torch"``
(:mod:`cvft_tf.models.dinov2_positions`, what weights converted from the authors' checkpoints
use, so descriptors match theirs at any size). Sizes equal to the trained grid (518) are not
interpolated at all.
"""

import json
import os

import keras
import numpy as np
import tensorflow as tf

PATCH_SIZE = 14
"""Side of DINOv2's square patches, in pixels."""

DINOV2_BASE = dict(
    patch_size=PATCH_SIZE,
    num_layers=12,
    hidden_dim=768,
    num_heads=12,
    intermediate_dim=3072,
    layer_scale_init_value=1.0,
    position_embedding_shape=(518, 518, 3),
)
"""Architecture of DINOv2 ViT-B/14 (keras-hub ``dinov2_base``), SALAD's main backbone."""

SALAD_TRAINABLE_BLOCKS = 4
"""Number of last transformer blocks SALAD fine-tunes."""

SALAD_TRAIN_SIZE = (224, 224)
"""Training image size of SALAD (GSV-Cities)."""

SALAD_TEST_SIZE = (322, 322)
"""Evaluation image size of SALAD."""

IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
"""Per-channel mean of RGB pixels in [0, 1] removed before DINOv2."""

IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
"""Per-channel standard deviation RGB pixels in [0, 1] are divided by before DINOv2."""

POSITION_INTERPOLATIONS = ("keras_hub", "torch")
"""How position embeddings are resized to other image sizes: keras-hub's TF bicubic, or
exactly as the authors' PyTorch DINOv2 (``models.dinov2_positions``). Given as the
``position_interpolation`` key of ``backbone_kwargs`` (not a ``DINOV2Backbone`` argument)."""

INPUT_FORMATS = ("cvft", "imagenet")
"""Input images of a branch: ``cvft`` = BGR pixels in [0, 255], uint8 or float (the CVFT
pipeline), ``imagenet`` = RGB in [0, 1] minus ``IMAGENET_MEAN_RGB`` over ``IMAGENET_STD_RGB``."""

_ARCHITECTURE_KEYS = (
    "patch_size",
    "num_layers",
    "hidden_dim",
    "num_heads",
    "intermediate_dim",
    "layer_scale_init_value",
    "num_register_tokens",
    "use_mask_token",
    "use_swiglu_ffn",
    "dropout_rate",
    "drop_path_rate",
    "position_embedding_shape",
    "antialias_in_interpolation",
)


@keras.saving.register_keras_serializable(package="cvft_tf")
class CVFTToDINOv2Input(keras.layers.Layer):
    """CVFT input (BGR pixels in [0, 255]) -> DINOv2 input (RGB, ImageNet-normalised).

    ``rgb = x[..., ::-1] / 255``, then ``(rgb - IMAGENET_MEAN_RGB) / IMAGENET_STD_RGB``.
    ``[B, H, W, 3]`` uint8 or float -> ``[B, H, W, 3]`` float32.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        rgb = tf.reverse(tf.cast(inputs, tf.float32), axis=[-1]) / 255.0
        return (rgb - tf.constant(IMAGENET_MEAN_RGB, tf.float32)) / tf.constant(IMAGENET_STD_RGB, tf.float32)


@keras.saving.register_keras_serializable(package="cvft_tf")
class ResizeImages(keras.layers.Layer):
    """Bilinear resize (half-pixel centres) of ``[B, H, W, C]`` images to ``(height, width)``.

    Used instead of ``keras.layers.Resizing``, whose call defaults to ``training=True`` (an
    augmentation layer) and switches the following layers' dropout on in inference calls.
    """

    def __init__(self, height, width, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.height = int(height)
        self.width = int(width)

    def call(self, images):
        return tf.image.resize(tf.cast(images, tf.float32), (self.height, self.width), method="bilinear")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(height=self.height, width=self.width)
        return config


@keras.saving.register_keras_serializable(package="cvft_tf")
class DINOv2Tokens(keras.layers.Layer):
    """Splits DINOv2's tokens into the local features and the class token.

    Args:
        grid_size: ``(h, w)`` patches per column and row.
        num_register_tokens: R, register tokens between the class token and the patches.

    Call: ``[B, 1 + R + h*w, C]`` -> ``([B, h, w, C] patch tokens, [B, C] class token)``.
    """

    def __init__(self, grid_size, num_register_tokens=0, **kwargs):
        super().__init__(**kwargs)
        self.grid_size = tuple(int(s) for s in grid_size)
        self.num_register_tokens = int(num_register_tokens)

    def call(self, tokens):
        height, width = self.grid_size
        patches = tokens[:, 1 + self.num_register_tokens :]
        local_features = tf.reshape(patches, [-1, height, width, tokens.shape[-1]])
        return local_features, tokens[:, 0]

    def compute_output_shape(self, tokens_shape):
        return (tokens_shape[0], *self.grid_size, tokens_shape[-1]), (tokens_shape[0], tokens_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(grid_size=list(self.grid_size), num_register_tokens=self.num_register_tokens)
        return config


def patch_multiple(image_size, patch_size=PATCH_SIZE):
    """``(H, W)`` rounded to the nearest multiples of ``patch_size`` (at least one patch)."""
    return tuple(max(1, int(round(side / patch_size))) * patch_size for side in image_size)


def backbone_kwargs_from_preset(preset):
    """The architecture keyword arguments stored in a local keras-hub preset's ``config.json``."""
    _check_exists(preset, "DINOv2 preset directory", directory=True)
    with open(os.path.join(preset, "config.json")) as file:
        config = json.load(file)["config"]
    return {key: config[key] for key in _ARCHITECTURE_KEYS if key in config}


def import_keras_hub():
    """keras-hub, which only the DINOv2 models need (the ``salad`` extra).

    Raises:
        ImportError: it is not installed; the message says how to install it.
    """
    try:
        import keras_hub
    except ImportError:
        raise ImportError(
            "DINOv2 (the salad variant, PlaceRecognitionModel) needs keras-hub: pip install -e '.[salad]'"
        ) from None
    return keras_hub


def build_dinov2_backbone(backbone_kwargs=None, preset=None, weights=None):
    """A keras-hub ``DINOV2Backbone``, random or with the user's weights (never downloads).

    Args:
        backbone_kwargs: architecture keyword arguments of ``DINOV2Backbone`` (default
            :data:`DINOV2_BASE`); with ``preset`` they override the preset's config. A
            ``position_interpolation`` key is ignored here (see :func:`dinov2_features`).
        preset: a local keras-hub preset directory (``config.json`` + ``model.weights.h5``),
            e.g. written once, where Kaggle can be reached, by
            ``keras_hub.models.DINOV2Backbone.from_preset("dinov2_base").save_to_preset(dir)``.
        weights: a ``.weights.h5`` file saved by ``DINOV2Backbone.save_weights`` for the
            architecture ``backbone_kwargs``.

    Returns:
        ``keras_hub.models.DINOV2Backbone``.

    Raises:
        FileNotFoundError: ``preset`` or ``weights`` is given but missing.
        ValueError: both ``preset`` and ``weights`` are given.
    """
    if preset is not None and weights is not None:
        raise ValueError("give either a DINOv2 preset directory or a weights file, not both")
    keras_hub = import_keras_hub()
    kwargs = dict(backbone_kwargs or {})
    kwargs.pop("image_shape", None)
    kwargs.pop("position_interpolation", None)
    if preset is not None:
        _check_exists(preset, "DINOv2 preset directory", directory=True)
        # name=None: the saved config's name would prefix the layers' names (and weight paths).
        return keras_hub.models.DINOV2Backbone.from_preset(preset, **{**kwargs, "name": None})
    kwargs = kwargs or dict(DINOV2_BASE)
    kwargs.setdefault("position_embedding_shape", DINOV2_BASE["position_embedding_shape"])
    backbone = keras_hub.models.DINOV2Backbone(image_shape=tuple(kwargs["position_embedding_shape"]), **kwargs)
    if weights is not None:
        _check_exists(weights, "DINOv2 weights file")
        backbone.load_weights(weights)
    return backbone


def dinov2_features(
    backbone, image_size, trainable_blocks=SALAD_TRAINABLE_BLOCKS, name="dinov2", position_interpolation="keras_hub"
):
    """DINOv2 local features and class token for images of size ``image_size``.

    The embedding is re-created for ``image_size`` (any ``H, W``, multiples of the patch size)
    with the backbone's weights (position embeddings re-interpolated from the trained grid
    as ``position_interpolation`` says, one of :data:`POSITION_INTERPOLATIONS`);
    the encoder and the final LayerNorm are the backbone's own layers. Load the backbone's
    weights before calling this.

    Args:
        backbone: ``keras_hub.models.DINOV2Backbone``.
        image_size: ``(H, W)``, multiples of the patch size.
        trainable_blocks: N, see :func:`set_trainable_blocks`.
        name: name of the returned model.

    Returns:
        functional ``keras.Model``: ``[B, H, W, 3]`` ImageNet-normalised RGB -> dict with
        ``"local_features"`` ``[B, H/14, W/14, C]`` and ``"token"`` ``[B, C]``.
    """
    height, width = (int(s) for s in image_size)
    patch = backbone.patch_size
    if height % patch or width % patch:
        raise ValueError(
            f"DINOv2 needs image sides that are multiples of {patch}, got {height}x{width}; "
            f"the nearest are {patch_multiple((height, width), patch)}."
        )
    if position_interpolation not in POSITION_INTERPOLATIONS:
        raise ValueError(
            f"Unknown position_interpolation {position_interpolation!r}; expected one of {POSITION_INTERPOLATIONS}."
        )
    source = backbone.embeddings
    embedding_class = type(source)
    if position_interpolation == "torch":
        from cvft_tf.models.dinov2_positions import DINOV2Embedding as embedding_class
    embeddings = embedding_class.from_config(
        {**source.get_config(), "image_shape": (height, width), "name": "embeddings"}
    )
    embeddings.build((None, height, width, 3))
    store = {}
    source.save_own_variables(store)
    embeddings.load_own_variables(store)  # skips and re-interpolates the interpolated positions
    embeddings.patch_embeddings.set_weights(source.patch_embeddings.get_weights())

    images = keras.Input((height, width, 3), name="images")
    tokens = embeddings(images)
    tokens, _ = backbone.encoder(tokens)
    tokens = backbone.layernorm(tokens)
    local_features, token = DINOv2Tokens(
        (height // patch, width // patch), backbone.num_register_tokens, name="split_tokens"
    )(tokens)
    model = keras.Model(images, {"local_features": local_features, "token": token}, name=name)
    set_trainable_blocks(model, trainable_blocks)
    return model


def set_trainable_blocks(features, trainable_blocks):
    """Freezes a :func:`dinov2_features` model except its last ``trainable_blocks`` blocks.

    As the authors' code: the embedding (patches, class token, positions) is always frozen,
    blocks ``[:-N]`` are frozen, blocks ``[-N:]`` and the final LayerNorm train (the norm
    only when N > 0). Per-block flags are not part of a saved config: models that rebuild
    their branches in ``__init__`` (``PlaceRecognitionModel``, ``CrossViewModel``) re-apply
    them on loading; call this again after loading a bare functional branch.

    Args:
        features: the model returned by :func:`dinov2_features`.
        trainable_blocks: N >= 0; N >= the number of blocks trains them all (as
            ``blocks[-N:]`` in PyTorch).
    """
    if trainable_blocks < 0:
        raise ValueError(f"trainable_blocks must be >= 0, got {trainable_blocks}")
    blocks = _backbone_layer(features, "encoder").layers
    _backbone_layer(features, "embeddings").trainable = False
    for index, block in enumerate(blocks):
        block.trainable = index >= len(blocks) - trainable_blocks
    _backbone_layer(features, "layernorm").trainable = trainable_blocks > 0


def _backbone_layer(features, name):
    """The layer ``name`` of a features model (keras-hub prefixes it with a named backbone's name)."""
    for layer in features.layers:
        if layer.name == name or layer.name.endswith(f"_{name}"):
            return layer
    raise ValueError(f"{features.name} has no DINOv2 {name!r} layer: not a dinov2_features model")


def preprocess_image(image_bgr, size):
    """A ``cv2.imread`` image as DINOv2 sees it in SALAD's evaluation (``T.Resize``, ``T.Normalize``).

    Args:
        image_bgr: uint8 ``[height, width, 3]`` BGR.
        size: ``(H, W)`` of the output.

    Returns:
        float32 ``[H, W, 3]`` RGB, ImageNet-normalised (bilinear resize with antialiasing,
        as torchvision's ``Resize`` of a PIL image).
    """
    rgb = image_bgr[..., ::-1].astype(np.float32) / 255.0
    if rgb.shape[:2] != tuple(size):
        rgb = tf.image.resize(rgb, size, method="bilinear", antialias=True).numpy()
    return (rgb - np.asarray(IMAGENET_MEAN_RGB, np.float32)) / np.asarray(IMAGENET_STD_RGB, np.float32)


def _check_exists(path, what, directory=False):
    exists = os.path.isdir(path) if directory else os.path.isfile(path)
    if not exists:
        raise FileNotFoundError(
            f"{what} {path!r} not found. Pretrained DINOv2 weights are not downloaded at run time: "
            "write a preset once where Kaggle can be reached, with "
            "keras_hub.models.DINOV2Backbone.from_preset('dinov2_base').save_to_preset(DIR), "
            "and pass DIR (or a .weights.h5 of the same architecture)."
        )
