"""State-size budgets: a step whose new state is too big fails like any step.

Steps are not preempted: a step runs to its end on the event loop. What a
budget bounds is what a stage keeps: after each step the new state is
measured, and one over the budget makes that step fail (``StateTooLarge``),
so the stage keeps the state it had before the item and the requester gets
a :class:`~arrowloop.errors.StepError`. A machine that doubles its state
per item therefore stops growing at the budget instead of taking the
process down; the memory a single step allocates is at most what it builds
from a state within the budget.

The size of a value counts one per scalar, one per character of a string or
byte of a bytes value, and the sizes of the elements of tuples, lists,
sets, dicts (keys and values) and records (their fields). Measuring stops
as soon as the budget is exceeded, so a check costs at most the budget.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

__all__ = ["StateTooLarge", "state_size", "with_budget"]


class StateTooLarge(Exception):
    """A step produced a state larger than its stage's budget."""


def state_size(value: Any, budget: int) -> int:
    """The size of ``value`` (see the module docstring), or ``budget + 1``
    as soon as it is known to exceed ``budget``."""
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        t = type(v)
        if t is str or t is bytes:
            total += len(v) or 1
        elif t is tuple or t is list or t is frozenset or t is set:
            total += 1
            stack.extend(v)
        elif t is dict:
            total += 1
            stack.extend(v.keys())
            stack.extend(v.values())
        elif attrs.has(t):
            total += 1
            stack.extend(getattr(v, f.name) for f in attrs.fields(t))
        else:
            total += 1
        if total > budget:
            return budget + 1
    return total


def with_budget(
    step: Callable[[Any, Any], tuple[Any, Any]], budget: int
) -> Callable[[Any, Any], tuple[Any, Any]]:
    """``step``, failing with :class:`StateTooLarge` when its new state
    exceeds ``budget``."""

    def bounded(item: Any, state: Any) -> tuple[Any, Any]:
        new, out = step(item, state)
        if state_size(new, budget) > budget:
            raise StateTooLarge(
                f"the new state exceeds the stage's budget of {budget} (max_state_size); "
                "the state from before this item is kept"
            )
        return new, out

    return bounded
