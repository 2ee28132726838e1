"""``cvft-train --config NAME|FILE.py --workdir DIR``: train, validate each epoch, resume.

Any config field can be overridden: ``--config.train.epochs=3``,
``--config.data.root=/data/CVUSA``; a misspelt field is an error. With
``--config.train.deterministic`` the data order is fixed and TensorFlow's ops run
deterministically (``tf.config.experimental.enable_op_determinism``, for the whole process).

``--strategy=default|mirrored|multi_worker|tpu`` (``config.distribute.strategy``) trains
under that ``tf.distribute`` strategy, ``--logical_cpus=N`` splits the CPU into N devices
first (``cvft_tf.distribute``); ``config.train.batch_size`` is then the global batch.
"""

import tensorflow as tf
from absl import app, flags
from cvft_tf.configs import define_config_flag

from cvft_tf import training
from cvft_tf.cli.common import apply_strategy_flags, configured_strategy, define_strategy_flags, reports_user_errors
from cvft_tf.config_schema import check_dataset_sections, check_model_section, check_train_section
from cvft_tf.cli.exits import run_command
from cvft_tf.write_failures import reported_write_failures

_CONFIG = define_config_flag()
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, TensorBoard, config.json.")
_STRATEGY, _LOGICAL_CPUS = define_strategy_flags()
flags.mark_flags_as_required(["config", "workdir"])


@reports_user_errors
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    check_model_section(_CONFIG.value)
    check_dataset_sections(_CONFIG.value)
    apply_strategy_flags(_CONFIG.value, _STRATEGY, _LOGICAL_CPUS)
    check_train_section(_CONFIG.value)
    strategy = configured_strategy(_CONFIG.value)
    if _CONFIG.value.train.deterministic:
        tf.config.experimental.enable_op_determinism()
    with reported_write_failures(_WORKDIR.value):
        training.train(_CONFIG.value, _WORKDIR.value, strategy)


def run():
    run_command(main)


if __name__ == "__main__":
    run()
