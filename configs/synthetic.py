"""The built-in synthetic cross-view world (``cvft-make-synthetic``), small images for a CPU.

The world is written in the CVUSA layout with 64x352 panoramas and 128x128 aerial tiles,
fed to the model at that size (aerial map 4x4x64 -> 1024-d descriptors). VGG16 starts
from random weights (nothing is downloaded); blocks 1-3 stay frozen as in the original
(random filters still carry the image), and the learning rate is higher than its 1e-5.

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
    config.model.ground_size = (64, 352)
    config.model.aerial_size = (128, 128)
    config.model.dropout_rate = 0.0
    config.train.init = ""
    config.train.epochs = 4
    config.train.batch_size = 16
    config.train.learning_rate = 1e-4
    config.eval.batch_size = 32
    return config_base.apply_arg(config, arg)
