"""Place recognition on the synthetic world's GSV-Cities-style places, with a tiny random DINOv2 for CPUs.

The data (``cvft_tf.synthetic.place_writer``): 1,000 training places in two cities and 100
held-out places in a third, 4 views each (128x128 crops of 90 degrees, different times,
headings within +-20 degrees, cameras within 2 m):

    cvft-make-synthetic --format=gsv_cities --out=runs/places --num_train=1000 --num_val=100
    cvft-train-place --config configs/place_synthetic.py --config.data.root=runs/places --workdir runs/place

The model is SALAD's recipe scaled down and trained from scratch: a 2-block DINOv2 of width 64
at 112x112 (8x8 patches), every block trained (the patch embedding stays frozen, as SALAD's),
a SALAD head of 8 clusters of 16 and a 16-d token (144-d descriptors), batches of 16 places
x 4 images (62 steps an epoch), AdamW 1e-3 falling linearly to 0.2x over the run's 15 epochs
(930 steps): about 5 minutes on 2 CPU cores (``docs/place_training.md``). ``smoke`` shrinks it
to seconds for tests.
"""

from cvft_tf import place_config
from cvft_tf.synthetic.place_writer import HELD_OUT_CITY, TRAIN_CITIES

TINY_BACKBONE = dict(
    patch_size=14, num_layers=2, hidden_dim=64, num_heads=4, intermediate_dim=128,
    position_embedding_shape=(112, 112, 3),
)  # fmt: skip
TINY_SALAD = dict(num_clusters=8, cluster_dim=16, token_dim=16, hidden_dim=32, dropout=0.0)

SMOKE_BACKBONE = dict(
    patch_size=14, num_layers=1, hidden_dim=16, num_heads=2, intermediate_dim=32, position_embedding_shape=(28, 28, 3)
)
SMOKE_SALAD = dict(num_clusters=2, cluster_dim=4, token_dim=4, hidden_dim=8, dropout=0.0)


def get_config(arg=None):
    """``arg``: ``smoke`` for a run of seconds (28x28 images, 2 places x 2 images per batch)."""
    if arg not in (None, "", "smoke"):
        raise ValueError(f"configs/place_synthetic.py takes 'smoke' or nothing, got {arg!r}")
    config = place_config.place_base_config()
    config.data.cities = TRAIN_CITIES
    config.data.val_cities = (HELD_OUT_CITY,)
    config.data.places_per_batch = 16
    config.model.image_size = (112, 112)
    config.model.backbone_kwargs = TINY_BACKBONE
    config.model.salad_kwargs = TINY_SALAD
    config.model.trainable_blocks = TINY_BACKBONE["num_layers"]
    config.train.epochs = 15
    config.train.learning_rate = 1e-3
    config.train.lr_decay_steps = 930
    config.train.backup_every_steps = 0
    config.train.mixed_precision = ""
    if arg == "smoke":
        config.model.image_size = (28, 28)
        config.model.backbone_kwargs = SMOKE_BACKBONE
        config.model.salad_kwargs = SMOKE_SALAD
        config.model.trainable_blocks = SMOKE_BACKBONE["num_layers"]
        config.data.places_per_batch = 2
        config.data.images_per_place = 2
        config.train.epochs = 2
        config.train.lr_decay_steps = 10
        config.eval.batch_size = 8
    return config
