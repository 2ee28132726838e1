"""SIGINT/SIGTERM inside StopSignals: recorded while training defers them, else a stop at once."""

import os
import signal

import pytest

from cvft_tf.stop_signals import StoppedBySignal, StopSignals


def test_a_signal_outside_the_training_loop_stops_at_once_with_128_plus_its_number():
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(StoppedBySignal) as stop, StopSignals():
        os.kill(os.getpid(), signal.SIGTERM)
    assert stop.value.status == 143 and str(stop.value).startswith("SIGTERM: stopped at once")
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_signal_while_training_is_recorded_and_a_second_one_stops_at_once():
    with StopSignals() as stop:
        stop.deferring = True
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested == signal.SIGINT
        with pytest.raises(StoppedBySignal) as second:
            os.kill(os.getpid(), signal.SIGTERM)
    assert second.value.status == 143
