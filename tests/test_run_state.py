"""The run state a checkpoint carries: dropout RNG and running epoch metrics come back exactly."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cvft_tf import run_state
from cvft_tf.data.pipeline import DecodeCounter
from cvft_tf.models.cross_view import CrossViewModel
from tests.tiny_models import TINY as SIZES

TINY = dict(SIZES, dropout_rate=0.5)


def test_dropout_rng_and_epoch_metrics_are_restored():
    model = CrossViewModel("cvft", **TINY)
    model.compile(optimizer=keras.optimizers.Adam())
    batch = {"ground": tf.random.normal((2, 32, 128, 3)), "aerial": tf.random.normal((2, 64, 64, 3))}
    model.descriptors(batch, training=True)
    model.loss_tracker.update_state(0.75)
    model.recall_tracker.update_state(0.5)
    state = run_state.capture_run_state(
        model, epoch=1, step_in_epoch=3, batches=7, best_r1=None, counter=DecodeCounter({"bad_pairs": [2]})
    )
    assert state["decode"]["bad_pairs"] == [2] and len(state["rng"]) == len(run_state.seed_states(model)) > 0
    expected = model.descriptors(batch, training=True)["ground"].numpy()

    restored = CrossViewModel("cvft", **TINY)
    restored.compile(optimizer=keras.optimizers.Adam())
    restored.set_weights(model.get_weights())
    restored.descriptors(batch, training=True)  # a different RNG position
    run_state.restore_rng(restored, state)
    np.testing.assert_array_equal(restored.descriptors(batch, training=True)["ground"].numpy(), expected)
    run_state.restore_epoch_metrics(restored, state)
    assert float(restored.loss_tracker.result()) == 0.75 and float(restored.recall_tracker.result()) == 0.5


def test_a_state_with_other_seed_generators_is_refused():
    model = CrossViewModel("cvft", **TINY)
    with pytest.raises(ValueError, match="the checkpoint has 1 seed-generator states, the model"):
        run_state.restore_rng(model, {"rng": [[1, 2]]})


def test_epoch_end_states_have_no_running_metrics():
    model = CrossViewModel("vgg_gp", **TINY)
    model.compile(optimizer=keras.optimizers.Adam())
    state = run_state.capture_run_state(
        model, epoch=2, step_in_epoch=0, batches=8, best_r1=5.0, counter=DecodeCounter()
    )
    assert state["metrics"] == {} and state["best_r@1"] == 5.0
