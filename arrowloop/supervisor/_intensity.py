"""Restart intensity: at most N events within T seconds (OTP's MaxR / MaxT).

A small sliding window over an injectable monotonic clock, so tests drive
time by hand instead of sleeping. Used for the supervisor's restart
intensity and for auto-rollback. Part of layer 9 (the supervisor).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

__all__ = ["Clock", "Window"]

#: A monotonic clock in seconds (``anyio.current_time`` by default).
Clock = Callable[[], float]


class Window:
    """Counts events in the last ``period`` seconds, remembering at most
    ``limit + 1`` of them (all it needs to tell whether ``limit`` is exceeded).
    """

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self._times: deque[float] = deque(maxlen=limit + 1)

    def add(self, now: float) -> bool:
        """Record an event at ``now``; True if more than ``limit`` events
        now fall within the window (OTP: the intensity is exceeded). As in
        OTP, an event exactly ``period`` seconds old still counts."""
        self._times.append(now)
        while self._times and now - self._times[0] > self.period:
            self._times.popleft()
        return len(self._times) > self.limit

    def clear(self) -> None:
        """Forget every event."""
        self._times.clear()

    def __len__(self) -> int:
        return len(self._times)
