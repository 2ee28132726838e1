"""What the figures show, read from image files and from a model.

``display_image`` and ``AerialTiles`` read images for the retrieval figure (Figure 9);
``feature_figures`` runs a model on one pair for Figure 7 and the transport plan. The
drawing itself is in ``figures``.
"""

import os

import cv2

from cvft_tf.evaluation import figures


def display_image(path, height):
    """Reads an image file for a figure: RGB uint8, resized to ``height`` rows."""
    image = cv2.imread(os.fspath(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: cannot read image for the figure")
    width = max(1, round(image.shape[1] * height / image.shape[0]))
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)[..., ::-1]


class AerialTiles:
    """Lazy, indexable aerial gallery for the retrieval figure (reads files on demand)."""

    def __init__(self, paths, size=128):
        self.paths = paths
        self.size = size

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return display_image(self.paths[index], self.size)


def feature_figures(model, dataset):
    """Figure 7 (ground map before/after transport beside the aerial one) and the plan.

    Returns:
        dict name -> RGB uint8 image, for the first pair of ``dataset``; empty for
        ``vgg_gp`` and ``salad`` (no transported feature maps).
    """
    if model.variant not in ("cvft", "vgg_conv"):
        return {}
    batch = next(iter(dataset.take(1)))
    ground = model.ground_feature_maps(batch["ground"][:1])
    aerial = model.aerial_feature_maps(batch["aerial"][:1])
    transported = ground.get("transported", ground["feature_map"])
    result = {
        "feature_alignment": figures.feature_alignment_figure(
            ground["feature_map"].numpy()[0], aerial["feature_map"].numpy()[0], transported.numpy()[0]
        )
    }
    if "plan" in ground:
        result["transport_plan"] = figures.transport_plan_figure(ground["plan"].numpy()[0])
    return result
