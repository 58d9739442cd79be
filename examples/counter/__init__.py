"""The counter example, kept importable as ``examples.counter``.

The counter ships inside the package, as :mod:`arrowloop.examples.counter`,
so that the demo runs wherever arrowloop is installed. This package and its
modules re-export it: the classes are the same objects (one record type has
one class per process), and ``examples/counter/v2.py`` still works as an
upgrade file.
"""

from __future__ import annotations

from arrowloop.examples.counter import (
    Ack,
    Count,
    IncrCount,
    InputV1,
    InputV2,
    InputV3,
    Output,
    ReadCount,
    ResetCount,
    ToggleCount,
    ack,
    count_reply,
    counter_v1,
    counter_v2,
    counter_v3,
    migrate_v1_v2,
    migrate_v2_v3,
    migrate_v3_v2,
    minus_one,
    plus_one,
)

__all__ = [
    "ReadCount",
    "IncrCount",
    "ResetCount",
    "ToggleCount",
    "Count",
    "Ack",
    "InputV1",
    "InputV2",
    "InputV3",
    "Output",
    "count_reply",
    "ack",
    "plus_one",
    "minus_one",
    "counter_v1",
    "counter_v2",
    "counter_v3",
    "migrate_v1_v2",
    "migrate_v2_v3",
    "migrate_v3_v2",
]
