"""Variant presets: each name of the original's ``network_type`` (and SALAD) as a set of parts.

``PRESETS[name]`` gives the part classes; ``CrossViewModel(variant=name, ...)`` builds them
with their defaults and the settings it is given. Adding a variant is one line here (and,
for a new aggregator, its module in ``models.aggregators``).
"""

import dataclasses

from cvft_tf.models.aggregators.azimuth_map import AzimuthMap
from cvft_tf.models.aggregators.flat_map import FlatMap
from cvft_tf.models.aggregators.global_max_pool import GlobalMaxPool
from cvft_tf.models.aggregators.salad import SALADAggregator
from cvft_tf.models.aggregators.transport import Transport
from cvft_tf.models.backbones import DINOv2Backbone, VGG16Backbone
from cvft_tf.models.matchers import HeadingCorrelation, SoftMarginTriplet


@dataclasses.dataclass(frozen=True)
class Preset:
    """The part classes of a variant, and whether its aerial branch sees polar images."""

    backbone: type
    aggregator: type
    matcher: type = SoftMarginTriplet
    aerial_polar: bool = False


PRESETS = {
    "cvft": Preset(VGG16Backbone, Transport),
    "vgg_conv": Preset(VGG16Backbone, FlatMap),
    "vgg_gp": Preset(VGG16Backbone, GlobalMaxPool),
    "salad": Preset(DINOv2Backbone, SALADAggregator),
    "dsm": Preset(VGG16Backbone, AzimuthMap, HeadingCorrelation, aerial_polar=True),
}
"""Variant name -> its parts: ``cvft`` (Fig. 3), the Table 1 baselines ``vgg_conv`` ("our
network wo/ CVFT") and ``vgg_gp`` ("VGG global pooling"), ``salad`` (DINOv2 + SALAD) and
``dsm`` (polar aerial images, width-aligned maps matched at every azimuth, heading
estimate; DSM, CVPR 2020)."""
