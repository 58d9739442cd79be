"""Counter v3, in the Python subset: v2 plus ToggleCount.

An upgrade file: ``python -m arrowloop upgrade arrowloop/examples/counter/v3.py``
sends ``machine`` with ``migrate`` (``n -> (n, False)``) and ``inverse``
(``(n, down) -> n``, for rollback). The state becomes ``(count, down)``:
``down`` says whether IncrCount counts down.
"""

from __future__ import annotations

from arrowloop import arrow, statemachine
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

__all__ = ["machine", "migrate", "inverse"]


@statemachine(init=(0, False))
def machine(msg: InputV3, state: tuple[int, bool]) -> tuple[tuple[int, bool], Output]:
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
def migrate(count: int) -> tuple[int, bool]:
    """v2 -> v3: start counting up."""
    return count, False


@arrow
def inverse(state: tuple[int, bool]) -> int:
    """v3 -> v2 (for rollback): forget the direction."""
    count, _ = state
    return count
