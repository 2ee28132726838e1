"""``cvft-train-place --config NAME|FILE.py --workdir DIR``: train DINOv2 + SALAD on GSV-Cities-style places.

The place-recognition counterpart of ``cvft-train`` (``cvft_tf.place_training``): the same
workdir (checkpoints, resume at any saved step, TensorBoard, ``history.csv``,
``config.json``), the best model by held-out R@1 as ``DIR/best.keras``, which
``cvft-eval-place --weights DIR/best.keras`` evaluates. Any config field can be overridden
(``--config.train.epochs=2``, ``--config.data.root=/data/gsv_cities``); a misspelt field is
an error.

    cvft-train-place --config configs/place_synthetic.py --config.data.root=runs/places --workdir runs/place
    cvft-train-place --config configs/gsv_cities.py --config.data.root=/data/gsv_cities --workdir runs/salad
"""

from absl import app, flags
from cvft_tf.configs import define_config_flag

from cvft_tf.cli.common import reports_user_errors
from cvft_tf.cli.exits import run_command
from cvft_tf.place_config import check_place_config
from cvft_tf.place_training import train_place

_CONFIG = define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, TensorBoard, config.json, best.keras.")
flags.mark_flags_as_required(["config", "workdir"])


@reports_user_errors
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    check_place_config(_CONFIG.value)
    train_place(_CONFIG.value, _WORKDIR.value)


def run():
    """Console entry point ``cvft-train-place``."""
    run_command(main)


if __name__ == "__main__":
    run()
