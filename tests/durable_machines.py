"""Three versions of one stage whose input, output and state types change,
with typed migrations both ways, for the durable model test
(tests/test_durable_model.py) and a Python model of each.

- v0: ``int -> int``, state ``int`` (the running sum; the output is it).
- v1: ``int -> (int, int)``, state ``(sum, count)``; the output is the state.
- v2: ``(int, int) -> int``, state ``(sum, count)``; an item ``(x, w)``
  adds ``x * w``; the output is the sum.

Migrations: v0 -> v1 ``s -> (s, 0)`` (inverse ``(s, c) -> s``); v1 -> v2
keeps the state. The input adapter v1 -> v2 is ``x -> (x, 1)``.
"""

from __future__ import annotations

from typing import Any

from arrowloop import arrow, statemachine


@statemachine(init=0)
def v0(x: int, s: int) -> tuple[int, int]:
    """The running sum."""
    return s + x, s + x


@statemachine(init=(0, 0))
def v1(x: int, st: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """The running sum and count."""
    s, c = st
    return (s + x, c + 1), (s + x, c + 1)


@statemachine(init=(0, 0))
def v2(item: tuple[int, int], st: tuple[int, int]) -> tuple[tuple[int, int], int]:
    """Weighted items: ``(x, w)`` adds ``x * w``."""
    x, w = item
    s, c = st
    return (s + x * w, c + 1), s + x * w


@arrow
def up01(s: int) -> tuple[int, int]:
    """v0 -> v1."""
    return s, 0


@arrow
def down10(st: tuple[int, int]) -> int:
    """v1 -> v0."""
    s, _ = st
    return s


@arrow
def same(st: tuple[int, int]) -> tuple[int, int]:
    """v1 <-> v2: the state carries over."""
    return st


@arrow
def weigh(x: int) -> tuple[int, int]:
    """Clients of v1 send plain ints to v2."""
    return x, 1


MACHINES = (v0, v1, v2)
#: (migrate, inverse, input adapter) of the change from version k to k + 1.
CHANGES = ((up01, down10, None), (same, same, weigh))


def model_step(k: int, item: Any, state: Any) -> tuple[Any, Any]:
    """Version ``k``'s step, in plain Python."""
    if k == 0:
        return state + item, state + item
    s, c = state
    if k == 1:
        return (s + item, c + 1), (s + item, c + 1)
    x, w = item
    return (s + x * w, c + 1), s + x * w


def model_migrate(k: int, state: Any) -> Any:
    """The state after the change from version ``k`` to ``k + 1``."""
    return (state, 0) if k == 0 else state


def model_inverse(k: int, state: Any) -> Any:
    """The state after rolling back from version ``k + 1`` to ``k``."""
    return state[0] if k == 0 else state


def item_for(k: int, x: int) -> Any:
    """An item of version ``k``'s input type made from ``x``."""
    return (x, 2) if k == 2 else x
