"""The built-in synthetic cross-view world (``cvft-make-synthetic``), small images for a CPU.

The world is written in the CVUSA layout with 64x352 panoramas and 128x128 aerial tiles,
resized (INTER_AREA) to 48x264 and 96x96 for the model: 3x3x64 maps, 576-d descriptors,
a 9x9 transport plan, about 5 s a step of 16 pairs on 2 CPU cores. VGG16 starts from
random (He-normal) weights since nothing is downloaded; blocks 1-3 stay frozen as in the
original. From a random start a few CPU epochs leave recall close to chance: the job shows
the pipeline end to end. For real numbers start from ImageNet
(``--config.train.init=imagenet`` with the weights file placed locally) and train longer.

    cvft-make-synthetic --out runs/world --num_train 400 --num_val 100 \\
        --aerial_size 128 --ground_height 64 --ground_width 352
    cvft-train --config configs/synthetic.py --config.data.root=runs/world --workdir runs/synthetic
"""

from cvft_tf.cli import config_base


def get_config(arg=None):
    """``arg``: a variant (``cvft``, ``vgg_conv``, ``vgg_gp``) and/or ``smoke``."""
    config = config_base.base_config()
    config.data.name = "cvusa"
    config.data.raw_ground_size = (64, 352)
    config.model.ground_size = (48, 264)
    config.model.aerial_size = (96, 96)
    config.model.dropout_rate = 0.0
    config.train.init = ""
    config.train.epochs = 3
    config.train.batch_size = 16
    config.train.learning_rate = 1e-4
    config.eval.batch_size = 32
    return config_base.apply_arg(config, arg)
