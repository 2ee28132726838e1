"""``cvft-export --config NAME|FILE.py --workdir DIR --out SAVEDMODEL``: SavedModel export.

Signatures ``ground``, ``aerial`` (uint8 RGB, any size) and ``ground_resized``,
``aerial_resized`` (float32 BGR pixels at model size); see ``cvft_tf.export``. An earlier SavedModel
at ``--out`` is replaced; a file or a directory of other files there is refused.
"""

import os

from absl import app, flags, logging
from cvft_tf.configs import define_config_flag

from cvft_tf.cli.common import load_trained_model, reports_user_errors
from cvft_tf.config_schema import check_model_section
from cvft_tf.cli.exits import run_command
from cvft_tf.export import RAW_GROUND, SIGNATURES, export_saved_model
from cvft_tf.output_dirs import OutputDirectoryError, make_output_directory
from cvft_tf.write_failures import reported_write_failures

_CONFIG = define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Training workdir holding best.keras or checkpoints/.")
_WEIGHTS = flags.DEFINE_string("weights", None, "Weights file instead of the workdir's model.")
_OUT = flags.DEFINE_string("out", None, "Output SavedModel directory.")
flags.mark_flags_as_required(["config", "workdir", "out"])


def check_export_path(path):
    """Checks that ``path`` can become the SavedModel and creates its parent directory.

    The export replaces what is at ``path``: an earlier SavedModel may be there, but not a
    file or a directory of anything else, which would be lost.

    Raises:
        OutputDirectoryError: naming ``path`` and what is in the way.
    """
    if os.path.exists(path) and not os.path.isdir(path):
        raise OutputDirectoryError(
            f"--out {path} is a file, not a SavedModel directory; remove it or choose another --out"
        )
    if os.path.isdir(path) and os.listdir(path) and not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise OutputDirectoryError(
            f"--out {path} is a directory that holds no saved_model.pb; the export would replace its files: "
            "choose an empty or new --out"
        )
    make_output_directory(os.path.dirname(os.path.abspath(path)), "folder of --out")


@reports_user_errors
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    check_model_section(_CONFIG.value)
    check_export_path(_OUT.value)
    model = load_trained_model(_CONFIG.value, _WORKDIR.value, _WEIGHTS.value)
    with reported_write_failures(_OUT.value):
        path = export_saved_model(model, _OUT.value, raw_ground=RAW_GROUND[_CONFIG.value.data.name])
    logging.info("SavedModel with signatures %s written to %s", ", ".join(SIGNATURES), path)
    print(f"SavedModel: {path} (signatures: {', '.join(SIGNATURES)})")


def run():
    run_command(main)


if __name__ == "__main__":
    run()
