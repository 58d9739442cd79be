"""The counter of DESIGN.md written in plain, annotated Python.

The same three versions and migrations as :mod:`examples.counter` (which
builds them from combinators, and whose message classes these reuse), but
written as ordinary functions: ``@statemachine`` and ``@arrow`` compile
them to the arrow language at import time. Each name here is still
callable as the Python function (``counter_v1(ReadCount(), 0)``); the
compiled forms are ``counter_v1.machine`` and ``migrate_v2_v3.function``.
"""

from __future__ import annotations

from arrowloop import arrow, statemachine
from examples.counter import (
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
)

__all__ = [
    "counter_v1",
    "counter_v2",
    "counter_v3",
    "migrate_v1_v2",
    "migrate_v2_v3",
    "migrate_v3_v2",
]


@statemachine(init=0)
def counter_v1(msg: InputV1, count: int) -> tuple[int, Output]:
    """Read returns the count; Incr adds one and acknowledges."""
    match msg:
        case ReadCount():
            return count, Count(count)
        case IncrCount():
            return count + 1, Ack()


@statemachine(init=0)
def counter_v2(msg: InputV2, count: int) -> tuple[int, Output]:
    """v1 plus ResetCount, which sets the count to zero."""
    match msg:
        case ReadCount():
            return count, Count(count)
        case IncrCount():
            return count + 1, Ack()
        case ResetCount():
            return 0, Ack()


@statemachine(init=(0, False))
def counter_v3(msg: InputV3, state: tuple[int, bool]) -> tuple[tuple[int, bool], Output]:
    """v2 plus ToggleCount, which flips the direction IncrCount counts in."""
    count, down = state
    match msg:
        case ReadCount():
            return (count, down), Count(count)
        case IncrCount():
            return (count - 1 if down else count + 1, down), Ack()
        case ResetCount():
            return (0, down), Ack()
        case ToggleCount():
            return (count, not down), Ack()


@arrow
def migrate_v1_v2(count: int) -> int:
    """v1 -> v2: the state type is unchanged."""
    return count


@arrow
def migrate_v2_v3(count: int) -> tuple[int, bool]:
    """v2 -> v3: start counting up."""
    return count, False


@arrow
def migrate_v3_v2(state: tuple[int, bool]) -> int:
    """v3 -> v2 (the inverse, for rollback): forget the direction."""
    count, _ = state
    return count
