"""CVACT: training on trainSet, validation on CVACT_val, geo-localization on CVACT_test.

Training masks same-place negatives (< 25 m) in the loss. Evaluate CVACT_test with
``--config.eval.split=test`` (adds the within-25 m recall).

    cvft-train --config configs/cvact.py --config.data.root=/data/CVACT --workdir runs/cvact
"""

from cvft_tf import config_schema
from cvft_tf.data import cvact


def get_config(arg=None):
    """``arg``: a variant (``cvft``, ``vgg_conv``, ``vgg_gp``) and/or ``smoke``."""
    config = config_schema.base_config()
    config.data.name = "cvact"
    config.data.aerial_footprint_m = cvact.AERIAL_FOOTPRINT_M
    return config_schema.apply_arg(config, arg)
