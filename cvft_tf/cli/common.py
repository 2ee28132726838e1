"""What the commands share: user-facing errors, and loading the trained model of a workdir."""

import functools
import os

from absl import logging

from cvft_tf import checkpoints
from cvft_tf.config_schema import ConfigError
from cvft_tf.cli.exits import exit_with_user_error
from cvft_tf.data.pipeline import DatasetError
from cvft_tf.evaluation.compare import EvaluationFolderError
from cvft_tf.interop.imagenet import WeightsFileError, WeightsMismatchError, initialize_weights
from cvft_tf.interop.tf1_checkpoint import CheckpointMismatchError, CheckpointReadError
from cvft_tf.localization.errors import LocalizationError
from cvft_tf.models.cross_view import build_model
from cvft_tf.output_dirs import OutputDirectoryError

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
    FileNotFoundError,
)
"""Errors caused by the user's input: reported as a message and exit status 2, no traceback."""


def reports_user_errors(main):
    """Wraps an absl ``main`` so :data:`USER_ERRORS` print ``error: <message>`` and exit 2."""

    @functools.wraps(main)
    def wrapped(argv):
        try:
            return main(argv)
        except USER_ERRORS as error:
            exit_with_user_error(error)

    return wrapped


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
