"""Counter v2, in the Python subset: v1 plus ResetCount.

An upgrade file: ``python -m arrowloop upgrade arrowloop/examples/counter/v2.py``
sends ``machine`` with ``migrate`` (and ``inverse``, for rollback). The
state type is unchanged, so both migrations are the identity.
"""

from __future__ import annotations

from arrowloop import arrow, statemachine
from arrowloop.examples.counter import Ack, Count, IncrCount, InputV2, Output, ReadCount, ResetCount

__all__ = ["machine", "migrate", "inverse"]


@statemachine(init=0)
def machine(msg: InputV2, count: int) -> tuple[int, Output]:
    """v1 plus ResetCount, which sets the count to zero."""
    match msg:
        case ReadCount():
            return count, Count(count)
        case IncrCount():
            return count + 1, Ack()
        case ResetCount():
            return 0, Ack()


@arrow
def migrate(count: int) -> int:
    """v1 -> v2: the state type is unchanged."""
    return count


@arrow
def inverse(count: int) -> int:
    """v2 -> v1: the state type is unchanged."""
    return count
