"""``cvft-export --config configs/X.py --workdir DIR --out SAVEDMODEL``: SavedModel export.

Signatures ``ground``, ``aerial`` (uint8 RGB, any size) and ``ground_preprocessed``,
``aerial_preprocessed`` (float32 at model size); see ``cvft_tf.export``.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from cvft_tf.cli.common import load_trained_model, reports_user_errors
from cvft_tf.cli.exits import run_command
from cvft_tf.export import SIGNATURES, export_saved_model

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file (configs/*.py[:arg]).", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir holding best.keras or checkpoints/.")
_WEIGHTS = flags.DEFINE_string("weights", None, "Weights file instead of the workdir's model.")
_OUT = flags.DEFINE_string("out", None, "Output SavedModel directory.")
flags.mark_flags_as_required(["config", "workdir", "out"])


@reports_user_errors
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    model = load_trained_model(_CONFIG.value, _WORKDIR.value, _WEIGHTS.value)
    path = export_saved_model(model, _OUT.value)
    logging.info("SavedModel with signatures %s written to %s", ", ".join(SIGNATURES), path)
    print(f"SavedModel: {path} (signatures: {', '.join(SIGNATURES)})")


def run():
    run_command(main)


if __name__ == "__main__":
    run()
