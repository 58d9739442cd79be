"""Small machines for runtime tests, built with the combinators.

``tagged(k)`` is version ``k`` of a counting stage: input ``int``, output
``(k, x, count)`` where ``count`` is how many items the stage has seen. Even
versions keep the count as ``int``, odd ones as ``(count, k)``, so every
upgrade between them needs a state migration.
"""

from __future__ import annotations

from typing import Any

from arrowloop import Function, Machine, const, fanout, fst, id_, loop, prim, snd
from arrowloop.arrows import Arrow
from arrowloop.typesys import INT, TupleT, Type

OUT = TupleT((INT, INT, INT))

_plus1: Arrow = fanout(id_, const(1)) >> prim("add")


def state_type(k: int) -> Type:
    """The state type of version ``k``."""
    return INT if k % 2 == 0 else TupleT((INT, INT))


def tagged(k: int) -> Machine:
    """Version ``k`` of the counting stage (see the module docstring)."""
    count: Arrow = snd if k % 2 == 0 else snd >> fst
    new_count = count >> _plus1
    new_state = new_count if k % 2 == 0 else fanout(new_count, const(k))
    init: Any = 0 if k % 2 == 0 else (0, k)
    body = fanout(new_state, fanout(const(k), fst, new_count))
    return Machine.build(loop(body, init, state_type(k)), int, OUT)


def migration(src: int, dst: int) -> Function:
    """The state migration from version ``src`` to version ``dst``."""
    a, b = state_type(src), state_type(dst)
    if a == b:
        return Function.build(id_, a, b)
    if a == INT:
        return Function.build(fanout(id_, const(dst)), a, b)
    return Function.build(fst, a, b)


def wide(k: int) -> Machine:
    """Stage A of a two-stage pipeline whose middle type changes with ``k``.

    Even ``k``: ``int -> (k, x)``; odd ``k``: ``int -> (k, x, k)``.
    """
    out: Arrow = fanout(const(k), id_) if k % 2 == 0 else fanout(const(k), id_, const(k))
    body = fanout(snd, fst >> out)
    mid = TupleT((INT, INT)) if k % 2 == 0 else TupleT((INT, INT, INT))
    return Machine.build(loop(body, 0, int), int, mid)


def reader(k: int) -> Machine:
    """Stage B matching ``wide(k)``: outputs ``(a_version, x, k)``."""
    mid = TupleT((INT, INT)) if k % 2 == 0 else TupleT((INT, INT, INT))
    arity = len(mid.items)
    from arrowloop.arrows import proj

    out = fanout(proj(0, arity), proj(1, arity), const(k))
    body = fanout(snd, fst >> out)
    return Machine.build(loop(body, 0, int), mid, OUT)
