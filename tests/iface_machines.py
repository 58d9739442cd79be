"""Machines shared by the soak and interface-change property tests.

Soak machines (combinators), for pipelines of up to four stages with
``int`` items and ``(tag, x, n)`` outputs:

* ``head(k)``: version ``k`` of the first stage. It counts the items it has
  seen: ``x -> (k, x, n)``. Odd items are ordinary; an even item is poison:
  its step divides by ``x % 2`` and raises ZeroDivisionError. Even versions
  keep the count as ``int``, odd ones as ``(n, k)`` (``tests.machines``'s
  ``state_type`` and ``migration`` apply).
* ``relay(i, k)``: version ``k`` of stage ``i >= 1``. It counts the items it
  has seen and passes ``(tag, x, n)`` on with ``k * 100**i`` added to the
  tag, so the tag spells the version of every stage (``versions_of``).

Interface-change machines (the Python subset, so defined in this module):

* ``summing`` (version A): ``int`` items, ``int`` state (the running sum),
  ``int`` outputs (the new sum);
* ``latest`` (version B): ``str`` items, ``str`` state (the latest item),
  ``str`` outputs (the item before it);
* ``a_to_b`` (``str(total)``) and ``b_to_a`` (``len(last)``): the migrations.

The interface-change tests' sequential models: ``Versions`` describes a
family of versions of one stage (machines, changes, and a model of each
step and migration); ``COUNTER`` is the counter of ``examples/counter``
(v1, v2, v3) and ``INT_STR`` the pair above; ``replay`` finds the model
states that explain what a driver saw.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import attrs

from arrowloop import Machine, arrow, const, fanout, fst, id_, loop, prim, proj, snd, statemachine
from arrowloop.arrows import Arrow
from arrowloop.errors import ValidationError
from arrowloop.machine import AnyMachine
from arrowloop.typesys import Type, validate
from examples.counter import Ack, Count, IncrCount, ReadCount, ResetCount, v1, v2, v3
from tests.machines import OUT, state_type

__all__ = [
    "head",
    "relay",
    "count_of",
    "versions_of",
    "summing",
    "latest",
    "a_to_b",
    "b_to_a",
    "fits",
    "Versions",
    "COUNTER",
    "INT_STR",
    "replay",
]

_odd: Arrow = fanout(id_, const(2)) >> prim("mod")
# ``(x % 2) // (x % 2)``: 1 for odd items, ZeroDivisionError for even ones.
_one: Arrow = fst >> _odd >> fanout(id_, id_) >> prim("floordiv")
_plus1: Arrow = fanout(id_, const(1)) >> prim("add")


def _count(k: int) -> Arrow:
    return snd if k % 2 == 0 else snd >> fst


def _state(k: int, new_count: Arrow) -> Arrow:
    return new_count if k % 2 == 0 else fanout(new_count, const(k))


def _init(k: int) -> Any:
    return 0 if k % 2 == 0 else (0, k)


def count_of(state: Any) -> int:
    """The count a soak stage's state holds (``n`` or ``(n, k)``)."""
    return state if isinstance(state, int) else int(state[0])


@functools.cache
def head(k: int) -> Machine:
    """Version ``k`` of the first soak stage (see the module docstring)."""
    new_count = fanout(_count(k), _one) >> prim("add")
    body = fanout(_state(k, new_count), fanout(const(k), fst, new_count))
    return Machine.build(loop(body, _init(k), state_type(k)), int, OUT)


@functools.cache
def relay(i: int, k: int) -> Machine:
    """Version ``k`` of soak stage ``i >= 1`` (see the module docstring)."""
    new_count = _count(k) >> _plus1
    tag = fst >> proj(0, 3)
    out = fanout(
        fanout(tag, const(k * 100**i)) >> prim("add"), fst >> proj(1, 3), fst >> proj(2, 3)
    )
    body = fanout(_state(k, new_count), out)
    return Machine.build(loop(body, _init(k), state_type(k)), OUT, OUT)


def versions_of(tag: int, stages: int) -> tuple[int, ...]:
    """The version of each stage spelled by an output's tag."""
    return tuple((tag // 100**i) % 100 for i in range(stages))


@statemachine(init=0)
def summing(x: int, total: int) -> tuple[int, int]:
    """Version A: add the item to the running sum and output the new sum."""
    return total + x, total + x


@statemachine(init="")
def latest(s: str, last: str) -> tuple[str, str]:
    """Version B: keep the latest item and output the one before it."""
    return s, last


@arrow
def a_to_b(total: int) -> str:
    """A -> B: the sum as text."""
    return str(total)


@arrow
def b_to_a(last: str) -> int:
    """B -> A: the length of the latest item."""
    return len(last)


def fits(t: Type, value: Any) -> bool:
    """Whether ``value`` has the type ``t``."""
    try:
        validate(t, value, "value")
    except ValidationError:
        return False
    return True


@attrs.frozen
class Versions:
    """A family of versions of one stage, and its sequential model."""

    machines: dict[Any, AnyMachine]
    up: Callable[[Any], Any]  # the version an upgrade goes to (None: none)
    narrow: Callable[[Any], Any]  # a version only change_interface reaches (None: none)
    migrations: dict[tuple[Any, Any], Any]
    step: Callable[[Any, Any, Any], tuple[Any, Any]]  # (version, item, state)
    migrate: Callable[[Any, Any, Any], Any]  # (from, to, state)
    init: Any
    first: Any
    load_item: Any  # what concurrent producers send
    filler: Callable[[Any], Any]  # an item version v accepts
    interface: bool  # whether upgrades need change_interface=True
    key: Callable[[Any, Any], Any] = lambda v, s: s  # (version, real state) -> model state

    def accepts(self, v: Any, item: Any) -> bool:
        """Whether version ``v`` accepts ``item``."""
        return fits(self.machines[v].input, item)


def _counter_step(v: int, item: Any, s: tuple[int, bool]) -> tuple[Any, Any]:
    n, down = s
    if isinstance(item, ReadCount):
        return s, Count(n)
    if isinstance(item, IncrCount):
        return (n - 1 if v == 3 and down else n + 1, down), Ack()
    if isinstance(item, ResetCount):
        return (0, down), Ack()
    return (n, not down), Ack()


COUNTER = Versions(
    machines={1: v1.machine.machine, 2: v2.machine.machine, 3: v3.machine.machine},
    up=lambda v: v + 1 if v < 3 else None,
    narrow=lambda v: v - 1 if v > 1 else None,
    migrations={(1, 2): v2.migrate, (2, 1): v2.inverse, (2, 3): v3.migrate, (3, 2): v3.inverse},
    step=_counter_step,
    migrate=lambda a, b, s: (s[0], s[1] and a == b == 3),
    init=(0, False),
    first=1,
    load_item=ReadCount(),
    filler=lambda v: ReadCount(),
    interface=False,
    key=lambda v, s: s if v == 3 else (s, False),
)

INT_STR = Versions(
    machines={"A": summing.machine, "B": latest.machine},
    up=lambda v: "B" if v == "A" else "A",
    narrow=lambda v: "B" if v == "A" else "A",
    migrations={("A", "B"): a_to_b, ("B", "A"): b_to_a},
    step=lambda v, x, s: (s + x, s + x) if v == "A" else (x, s),
    migrate=lambda a, b, s: s if a == b else (str(s) if b == "B" else len(s)),
    init=0,
    first="A",
    load_item=0,  # changes nothing in A; does not fit B
    filler=lambda v: 0 if v == "A" else "a",
    interface=True,
)


def _around(vs: Versions, states: set[Any], a: Any, b: Any, racers: list[Any]) -> set[Any]:
    """The states after a change from ``a`` to ``b`` with ``racers`` around it, each
    stepped before it (by ``a``) or after it (by ``b``) in some order."""
    for item, (outcome, _) in racers:
        if outcome == "refused":
            assert not (vs.accepts(a, item) and vs.accepts(b, item)), f"{item!r} refused"
    admitted = [(item, out) for item, (outcome, out) in racers if outcome == "ok"]
    Node = tuple[frozenset[int], bool, Any]  # racers stepped, whether migrated, state
    frontier: set[Node] = {(frozenset(), False, s) for s in states}
    reached = set(frontier)
    ends: set[Any] = set()
    while frontier:
        new: set[Node] = set()
        for done, after, s in frontier:
            if after and len(done) == len(admitted):
                ends.add(s)
            moves: list[Node] = [] if after else [(done, True, vs.migrate(a, b, s))]
            for i, (item, out) in enumerate(admitted):
                s2 = None if i in done else _step(vs, b if after else a, s, item, out)
                if s2 is not None:
                    moves.append((done | {i}, after, s2))
            new.update(m for m in moves if m not in reached)
        reached |= new
        frontier = new
    return ends


def _step(vs: Versions, v: Any, s: Any, item: Any, out: Any) -> Any:
    """The state after ``v`` steps ``item`` from ``s``, or None if ``v`` does not accept
    it or would not have output ``out`` (of its output type)."""
    if not vs.accepts(v, item):
        return None
    s2, expected = vs.step(v, item, s)
    return s2 if out == expected and fits(vs.machines[v].output, out) else None


def replay(vs: Versions, trace: list[list[Any]]) -> set[Any]:
    """The model states that explain ``trace``; fails if there are none."""
    states = {vs.init}
    v = vs.first
    for entry in trace:
        if entry[0] == "item":
            stepped = (_step(vs, v, s, entry[1], entry[2]) for s in states)
            states = {s for s in stepped if s is not None}
        else:
            _, a, v, racers = entry
            states = _around(vs, states, a, v, racers)
        assert states, f"no sequential model explains {entry}"
    return states
