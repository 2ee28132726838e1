"""What the commands share: user-facing errors, and loading the trained model of a workdir."""

import functools
import os

from absl import app, flags, logging

from cvft_tf import checkpoints
from cvft_tf.config_schema import ConfigError, check_distribute_section
from cvft_tf.distribute import STRATEGIES, StrategyError, make_strategy
from cvft_tf.cli.exits import exit_with_user_error
from cvft_tf.data.pipeline import DatasetError
from cvft_tf.evaluation.compare import EvaluationFolderError
from cvft_tf.interop.salad_torch import SaladConversionError, SaladWeightsError
from cvft_tf.interop.imagenet import WeightsFileError, WeightsMismatchError, initialize_weights
from cvft_tf.interop.tf1_checkpoint import CheckpointMismatchError, CheckpointReadError
from cvft_tf.localization.errors import LocalizationError
from cvft_tf.models.cross_view import build_model
from cvft_tf.output_dirs import OutputDirectoryError
from cvft_tf.write_failures import WriteFailure

USER_ERRORS = (
    DatasetError,
    ConfigError,
    checkpoints.CheckpointError,
    CheckpointMismatchError,
    CheckpointReadError,
    WeightsMismatchError,
    WeightsFileError,
    EvaluationFolderError,
    OutputDirectoryError,
    LocalizationError,
    SaladWeightsError,
    SaladConversionError,
    FileNotFoundError,
    StrategyError,
    WriteFailure,
)
"""Errors caused by the user's input: reported as a message and exit status 2, no traceback."""


def size_flag(values, name):
    """``(H, W)`` from the list flag ``--name`` (``None`` when not given).

    Raises:
        app.UsageError: not two positive integers.
    """
    if values is None:
        return None
    try:
        size = tuple(int(value) for value in values)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 1:
        raise app.UsageError(f"--{name} takes two positive integers H,W; got {','.join(values)!r}.")
    return size


def reports_user_errors(main):
    """Wraps an absl ``main`` so :data:`USER_ERRORS` print ``error: <message>`` and exit 2."""

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except USER_ERRORS as error:
            exit_with_user_error(error)

    return wrapped


def define_strategy_flags():
    """``--strategy`` and ``--logical_cpus``, which override ``config.distribute``; returns the flag holders."""
    strategy = flags.DEFINE_enum(
        "strategy", None, list(STRATEGIES), "tf.distribute strategy; sets config.distribute.strategy."
    )
    logical_cpus = flags.DEFINE_integer(
        "logical_cpus", None, "Split the CPU into N logical devices; sets config.distribute.logical_cpus."
    )
    return strategy, logical_cpus


def apply_strategy_flags(config, strategy_flag, logical_cpus_flag):
    """Applies ``--strategy`` / ``--logical_cpus`` to ``config.distribute`` and checks that section.

    Raises:
        ConfigError: an unknown strategy or a negative count.
    """
    if strategy_flag.value is not None:
        config.distribute.strategy = strategy_flag.value
    if logical_cpus_flag.value is not None:
        config.distribute.logical_cpus = logical_cpus_flag.value
    check_distribute_section(config)


def configured_strategy(config):
    """The strategy of ``config.distribute``, made before anything else initialises TensorFlow's devices.

    Raises:
        StrategyError: it cannot be made here.
    """
    strategy = make_strategy(config.distribute.strategy, config.distribute.logical_cpus, config.distribute.tpu)
    logging.info("Strategy %s: %d replica(s) in sync", config.distribute.strategy, strategy.num_replicas_in_sync)
    return strategy


def load_trained_model(config, workdir, weights=None):
    """The model to evaluate or export.

    Args:
        config: the run's config (``config.model`` builds the model for ``weights``).
        workdir: a training workdir; its ``best.keras``, else its latest checkpoint.
        weights: optional file that overrides the workdir: ``.weights.h5`` (e.g. from
            ``cvft-convert``), ``.keras``, or a TF1 checkpoint prefix.

    Raises:
        checkpoints.CheckpointError: nothing to load, an unreadable ``best.keras``, or a
            model that does not match ``config.model``.
        WeightsFileError, WeightsMismatchError, ...: ``weights`` cannot be read or do not fit
            (see :func:`~cvft_tf.interop.imagenet.initialize_weights`).
    """
    if weights:
        model = build_model(**config.model.to_dict())
        initialize_weights(model, weights)
        logging.info("Loaded weights from %s", weights)
        return model
    best = os.path.join(workdir, checkpoints.BEST_MODEL)
    if os.path.exists(best):
        logging.info("Loading the best model %s", best)
        return checkpoints.load_model(best, config.model)
    state = checkpoints.latest_state(workdir) if os.path.isdir(workdir) else None
    if state is None:
        raise checkpoints.CheckpointError(
            f"No trained model in {workdir} (no {checkpoints.BEST_MODEL}, no checkpoints/): "
            "train first with cvft-train, or pass --weights FILE."
        )
    logging.info("Loading the latest checkpoint %s", state["path"])
    return checkpoints.load_model(state["path"], config.model)
