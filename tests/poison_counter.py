"""Counter v2 with a bug: ResetCount divides by zero (for the step-error tests).

A real module file because the front end reads a function's source.
"""

from __future__ import annotations

from arrowloop import statemachine
from examples.counter import Ack, Count, IncrCount, InputV2, Output, ReadCount, ResetCount

__all__ = ["machine"]


@statemachine(init=0)
def machine(msg: InputV2, count: int) -> tuple[int, Output]:
    """v2 whose ResetCount fails (a division by zero) instead of resetting."""
    match msg:
        case ReadCount():
            return count, Count(count)
        case IncrCount():
            return count + 1, Ack()
        case ResetCount():
            return count // 0, Ack()
