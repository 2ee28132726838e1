"""CVUSA (19zl splits: 35,532 training and 8,884 validation pairs) at the original's settings.

    cvft-train --config configs/cvusa.py --config.data.root=/data/CVUSA --workdir runs/cvusa
    cvft-train --config configs/cvusa.py:vgg_conv ...    # the "wo/ CVFT" baseline
"""

from cvft_tf.cli import config_base


def get_config(arg=None):
    """``arg``: a variant (``cvft``, ``vgg_conv``, ``vgg_gp``) and/or ``smoke``."""
    config = config_base.base_config()
    config.data.name = "cvusa"
    config.data.raw_ground_size = (224, 1232)
    return config_base.apply_arg(config, arg)
