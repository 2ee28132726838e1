"""Progress of the long steps (caching features, embedding a split, indexing a map, exporting).

On a terminal, a Keras progress bar with a rate (``pairs/s``) and an ETA. In a pipe or a log
file (Keras' bar redraws with ``\\r`` there too), one plain line every :data:`PIPE_INTERVAL_S`
seconds and a last one at the end.
"""

import sys
import time

import keras

PIPE_INTERVAL_S = 10.0
"""Seconds between two progress lines when stdout is not a terminal."""


class Progress:
    """Counts ``unit``\\ s done out of ``total`` (None: unknown) and shows them with their rate."""

    def __init__(self, total, unit="pair"):
        self.total, self.unit, self.done = total, unit, 0
        self._rate = f"{unit}s/s"
        self._start = self._last_line = time.perf_counter()
        self._printed = None  # the count of the last plain line
        terminal = sys.stdout.isatty()
        self._bar = keras.utils.Progbar(total, unit_name=unit, stateful_metrics=[self._rate]) if terminal else None

    def add(self, count):
        """Adds ``count`` units done; returns ``self``."""
        self.done += count
        now = time.perf_counter()
        if self._bar is not None:
            self._bar.update(self.done, values=[(self._rate, self._per_second(now))])
        elif now - self._last_line >= PIPE_INTERVAL_S:
            self._last_line, self._printed = now, self.done
            print(self.line(now), flush=True)
        return self

    def finish(self):
        """Ends the display: the bar's last state, or the last line."""
        if self._bar is None:
            if self._printed != self.done:
                print(self.line(time.perf_counter()), flush=True)
        elif self.total is None or self.done < self.total:
            self._bar.update(self.done, finalize=True)

    def line(self, now):
        """``480/1600 pairs, 42.1 pairs/s, ETA 27 s`` (no ETA when the total is unknown or reached)."""
        rate = self._per_second(now)
        text = f"{self.done}{'' if self.total is None else f'/{self.total}'} {self.unit}s, {rate:.1f} {self._rate}"
        if self.total is not None and self.done < self.total and rate > 0:
            text += f", ETA {(self.total - self.done) / rate:.0f} s"
        return text

    def _per_second(self, now):
        return self.done / max(now - self._start, 1e-9)
