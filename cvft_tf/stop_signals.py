"""Ctrl-C (SIGINT) and SIGTERM during training: stop at a point where the state can be saved.

Inside ``with StopSignals() as stop:`` the first SIGINT or SIGTERM is handled as follows:

- while ``stop.deferring`` is True (the training loop sets it around ``model.fit``), it is
  only recorded (``stop.requested``); the loop saves its state at the end of the current
  step (or after the epoch's validation) and raises :class:`StoppedBySignal`;
- otherwise (reading the splits, building the feature cache) there is nothing new to save,
  and the handler raises :class:`StoppedBySignal` at once.

A second signal while the first is pending raises at once wherever the program is.
Outside the ``with`` block the previous handlers are back. Handlers can only be installed
from the main thread; elsewhere ``StopSignals`` does nothing.
"""

import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StoppedBySignal(Exception):
    """A command stopped on a signal; the message says what was saved and how to go on.

    Attributes:
        signal_number: the signal, e.g. ``signal.SIGTERM``.
        status: the exit status it gives, 128 + ``signal_number``.
    """

    def __init__(self, signal_number, message):
        super().__init__(f"{signal.Signals(signal_number).name}: {message}")
        self.signal_number = int(signal_number)
        self.status = 128 + self.signal_number


class StopSignals:
    """Context manager turning SIGINT/SIGTERM into a stop request or :class:`StoppedBySignal`.

    Attributes:
        deferring: whether a first signal is only recorded (set by the training loop).
        requested: the pending signal number, or None.
    """

    def __init__(self):
        self.deferring = False
        self.requested = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle) for number in STOP_SIGNALS}
        return self

    def __exit__(self, *exc_info):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous = {}
        return False

    def _handle(self, number, frame):
        if self.deferring and self.requested is None:
            self.requested = number
            return
        raise StoppedBySignal(number, "stopped at once; the workdir's last checkpoint is the state to resume from.")
