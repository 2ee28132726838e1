"""CVUSA (19zl splits: 35,532 training and 8,884 validation pairs) at the original's settings.

    cvft-train --config configs/cvusa.py --config.data.root=/data/CVUSA --workdir runs/cvusa
    cvft-train --config configs/cvusa.py:vgg_conv ...    # the "wo/ CVFT" baseline
"""

from cvft_tf import config_schema


def get_config(arg=None):
    """``arg``: a variant (``cvft``, ``vgg_conv``, ``vgg_gp``) and/or ``smoke``."""
    config = config_schema.base_config()
    config.data.name = "cvusa"
    config.data.raw_ground_size = (224, 1232)
    return config_schema.apply_arg(config, arg)
