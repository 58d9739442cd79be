"""Fixed-bucket histograms, cheap enough for a stage's loop.

A stage records one observation per batch (never per item), so a histogram
is a list of counts and a bisect; a snapshot is an immutable value that
exporters (Prometheus, the dashboard) turn into their own form.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Final

import attrs

__all__ = [
    "Histogram",
    "HistogramSnapshot",
    "STEP_SECONDS",
    "BATCH_SIZES",
    "PAUSE_SECONDS",
    "LATENCY_SECONDS",
]

#: Buckets of a step's duration, in seconds (a compiled step takes ~0.1-10 µs).
STEP_SECONDS: Final = (1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 1e-4, 1e-3, 1e-2)
#: Buckets of how many items a stage stepped per wake-up.
BATCH_SIZES: Final = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0)
#: Buckets of the pause an upgrade causes a stage, in seconds.
PAUSE_SECONDS: Final = (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 0.1, 0.5, 1.0)
#: Buckets of a request's time in the server, in seconds.
LATENCY_SECONDS: Final = (1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 2.5e-2, 0.1, 0.5, 1.0, 5.0)


@attrs.frozen
class HistogramSnapshot:
    """Observations per bucket at one moment.

    Attributes:
        bounds: the buckets' upper bounds, increasing (an observation ``v``
            falls in the first bucket with ``v <= bound``).
        counts: observations per bucket, one more than ``bounds`` (the last
            counts those above every bound); not cumulative.
        sum: the sum of all observations.
        count: how many observations.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int

    def cumulative(self) -> list[tuple[float, int]]:
        """``(upper bound, observations <= it)`` per bucket, ending with ``inf``."""
        out: list[tuple[float, int]] = []
        total = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


class Histogram:
    """Counts observations into fixed buckets (see :class:`HistogramSnapshot`)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError(f"expected increasing bucket bounds, found {bounds}")
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def snapshot(self) -> HistogramSnapshot:
        """The counts now, as a value."""
        return HistogramSnapshot(self.bounds, tuple(self.counts), self.sum, self.count)
