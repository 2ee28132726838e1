"""DINOv2 + SALAD on GSV-Cities with SALAD's paper settings (``main.py`` of serizba/salad).

224x224 images, batches of 60 places x 4 images, DINOv2 ViT-B/14 (last 4 blocks trained)
with SALAD's 64 x 128 clusters and 256-d token (8448-d descriptors), multi-similarity loss
and miner (epsilon 0.1), AdamW 6e-5 with weight decay 9.5e-9, the learning rate falling
linearly to 0.2x over 4,000 steps, 4 epochs, float16 mixed precision
(``cvft_tf.place_config``).

The training cities are the authors' ``TRAIN_CITIES`` (``dataloaders/GSVCitiesDataloader.py``)
but Paris (``PRS``), held out for the per-epoch validation that picks ``best.keras``: SALAD
picks its checkpoint by R@1 on Pittsburgh-30k val instead, which this trainer does not read
(evaluate the saved models with ``cvft-eval-place``). To train on all 23 cities, pass them in
``--config.data.cities`` and another held-out set in ``--config.data.val_cities``.
DINOv2 starts from local pretrained weights: ``--config.model.preset=DIR`` (a keras-hub
preset directory) or ``--config.model.backbone_weights=FILE.weights.h5``; nothing is
downloaded.

    cvft-train-place --config configs/gsv_cities.py --config.data.root=/data/gsv_cities \\
        --config.model.preset=/models/dinov2_base --workdir runs/salad
"""

from cvft_tf import place_config

SALAD_TRAIN_CITIES = (
    "Bangkok", "BuenosAires", "LosAngeles", "MexicoCity", "OSL", "Rome", "Barcelona", "Chicago",
    "Madrid", "Miami", "Phoenix", "TRT", "Boston", "Lisbon", "Medellin", "Minneapolis", "PRG",
    "WashingtonDC", "Brussels", "London", "Melbourne", "Osaka", "PRS",
)  # fmt: skip
"""``TRAIN_CITIES`` of serizba/salad's ``dataloaders/GSVCitiesDataloader.py``, in its order."""

HELD_OUT_CITIES = ("PRS",)


def get_config(arg=None):
    """``arg``: none."""
    if arg:
        raise ValueError(f"configs/gsv_cities.py takes no argument, got {arg!r}")
    config = place_config.place_base_config()
    config.data.cities = tuple(city for city in SALAD_TRAIN_CITIES if city not in HELD_OUT_CITIES)
    config.data.val_cities = HELD_OUT_CITIES
    config.data.max_val_places = 1000
    return config
