"""Counter v1, in the Python subset: Read returns the count, Incr adds one.

The first version the counter service runs (see ``service.py``).
"""

from __future__ import annotations

from arrowloop import statemachine
from arrowloop.examples.counter import Ack, Count, IncrCount, InputV1, Output, ReadCount

__all__ = ["machine"]


@statemachine(init=0)
def machine(msg: InputV1, count: int) -> tuple[int, Output]:
    """Read returns the count; Incr adds one and acknowledges."""
    match msg:
        case ReadCount():
            return count, Count(count)
        case IncrCount():
            return count + 1, Ack()
