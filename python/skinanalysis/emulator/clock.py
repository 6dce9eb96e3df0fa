"""The emulator's one clock: every time the emulator reads (task progress and
expiry, rate-limit windows, URL expiry, webhook and log timestamps, the HTTP
Date header) comes from here.

Real time is the default. In test mode (``--test-clock``, ``Emulator(
test_clock=True)`` or ``POST /_control/clock {"mode": "test"}``) the clock
stands still and moves only when ``advance`` is called (``POST
/_control/clock {"advance_ms": N}``), so a test makes a task finish or a URL
expire by advancing the clock instead of sleeping. Switching back to real
time continues from the clock's reading, so it never goes backwards.

The clock governs what the emulator models; the transport stays on real time:
fault delays, trickled bodies, webhook retry backoff and the client's own
poll intervals (the client reads its own monotonic clock).
"""

import threading
import time as _time


class Clock:
    """Two readings, both in seconds: ``monotonic()`` (task and rate-limit
    arithmetic) and ``time()`` (Unix time: URL expiry, timestamps). Both move
    together: advancing the clock by N seconds moves each by N."""

    def __init__(self, test=False, real_monotonic=_time.monotonic, real_time=_time.time):
        self._lock = threading.Lock()
        self._real_monotonic = real_monotonic
        self._real_time = real_time
        self._skew = 0.0         # added to the real readings (advances, pauses)
        self._frozen = None      # (monotonic, time) while in test mode, else None
        self._advanced = 0.0     # seconds advanced in total (for GET /_control/clock)
        if test:
            self.set_test(True)

    @property
    def test(self):
        return self._frozen is not None

    def _read(self):
        if self._frozen is not None:
            return self._frozen
        return self._real_monotonic() + self._skew, self._real_time() + self._skew

    def monotonic(self):
        with self._lock:
            return self._read()[0]

    def time(self):
        with self._lock:
            return self._read()[1]

    def set_test(self, on):
        """Stop (True) or restart (False) the clock at its current reading."""
        with self._lock:
            if on and self._frozen is None:
                self._frozen = self._read()
            elif not on and self._frozen is not None:
                # continue from the frozen reading: the skew absorbs the time
                # that passed in the real world meanwhile
                self._skew = self._frozen[0] - self._real_monotonic()
                self._frozen = None

    def advance(self, seconds):
        """Move the clock forward; works in both modes (in real mode it is a
        jump). Negative or non-finite amounts raise ValueError."""
        seconds = float(seconds)
        if not 0 <= seconds < float("inf"):
            raise ValueError("the clock only moves forward by a finite amount")
        with self._lock:
            self._advanced += seconds
            if self._frozen is not None:
                mono, wall = self._frozen
                self._frozen = (mono + seconds, wall + seconds)
            else:
                self._skew += seconds

    def snapshot(self):
        """JSON-friendly view (GET /_control/clock)."""
        with self._lock:
            mono, wall = self._read()
            return {"mode": "test" if self._frozen is not None else "real",
                    "monotonic_ms": round(mono * 1000, 3), "time_ms": round(wall * 1000, 3),
                    "advanced_ms": round(self._advanced * 1000, 3)}
