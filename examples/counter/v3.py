"""Counter v3, an upgrade file (re-exported from :mod:`arrowloop.examples.counter.v3`).

Besides the version, it re-exports the message classes the module held when
the version was defined here, for code that imports them from it.
"""

from __future__ import annotations

from arrowloop.examples.counter import (
    Ack,
    Count,
    IncrCount,
    InputV3,
    Output,
    ReadCount,
    ResetCount,
    ToggleCount,
)
from arrowloop.examples.counter.v3 import inverse, machine, migrate

__all__ = [
    "machine",
    "migrate",
    "inverse",
    "Ack",
    "Count",
    "IncrCount",
    "InputV3",
    "Output",
    "ReadCount",
    "ResetCount",
    "ToggleCount",
]
