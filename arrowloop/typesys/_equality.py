"""Equality of runtime values: IEEE on floats, wherever they sit.

Python's ``==`` on a float is IEEE (a NaN equals nothing, ``0.0 == -0.0``),
but a container compares its items by identity first, so ``(x,) == (x,)``
holds for a NaN ``x`` while ``(x,) == (float("nan"),)`` does not. Object
identity is not part of a value: the wire does not carry it, the compile
cache shares equal constants, and a state read back from a store is a new
object. So the language defines ``eq`` as IEEE equality at every depth
(``values_equal``), and the code generator inlines Python's ``==`` only for
types where the two cannot differ (``identity_blind``). Part of layer 1.
"""

from __future__ import annotations

from typing import Any

import attrs

from arrowloop.typesys._repr import record_type_of_class
from arrowloop.typesys._types import (
    FLOAT,
    FloatT,
    ListT,
    MapT,
    OptionT,
    RecordT,
    TupleT,
    TVar,
    Type,
    VariantT,
)

__all__ = ["values_equal", "identity_blind", "index_of"]


def values_equal(a: Any, b: Any) -> bool:
    """``a == b`` as Python computes it, except that items of containers
    are compared by value only: a NaN is unequal to itself at any depth."""
    t = type(a)
    if t is float:
        return bool(a == b)
    if t is not type(b):
        ra = record_type_of_class(t)
        if ra is not None and ra == record_type_of_class(type(b)):
            # Two classes of one record type (same name and fields, two
            # modules): one type, so equal by fields.
            return all(values_equal(getattr(a, f), getattr(b, f)) for f, _ in ra.fields)
        return bool(a == b)
    if t is tuple or t is list:
        return len(a) == len(b) and all(values_equal(x, y) for x, y in zip(a, b, strict=True))
    if t is dict:
        return a.keys() == b.keys() and all(values_equal(v, b[k]) for k, v in a.items())
    if attrs.has(t) and "__eq__" in t.__dict__:
        # attrs' generated __eq__ compares the tuples of the fields it
        # compares (same class only): the same, field by field.
        return all(
            values_equal(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(t) if f.eq
        )
    return bool(a == b)


def index_of(xs: list[Any], x: Any) -> int:
    """The index of the first item of ``xs`` equal to ``x`` by
    :func:`values_equal` (as ``x in xs`` compiles), or -1."""
    for i, y in enumerate(xs):
        if values_equal(y, x):
            return i
    return -1


def identity_blind(t: Type) -> bool:
    """Whether Python's ``==`` on two values of ``t`` is :func:`values_equal`.

    It is unless a float sits inside a container (an item, field, payload
    or value), where identity would decide a NaN, or a record type has
    several classes (whose instances Python's ``==`` tells apart); a type
    variable might stand for such a type. A float, or an optional float, is
    compared directly, by IEEE rules.
    """
    if t == FLOAT or t == OptionT(FLOAT):
        return True
    return not _by_identity(t, {})


def _by_identity(t: Type, seen: dict[int, bool]) -> bool:
    # Types may share sub-terms (a tuple of a tuple of ... n times is a
    # tree of 2^n nodes): visit each distinct node once.
    known = seen.get(id(t))
    if known is not None:
        return known
    seen[id(t)] = False
    match t:
        case FloatT() | TVar():
            found = True
        case TupleT(items=items):
            found = any(_by_identity(x, seen) for x in items)
        case ListT(item=x) | OptionT(item=x) | MapT(value=x):
            found = _by_identity(x, seen)
        case RecordT():
            # Another module's class of the type may be bound after the code
            # is compiled, and Python's == tells the two classes apart.
            found = True
        case VariantT(cases=cases):
            found = any(_by_identity(x, seen) for _, x in cases)
        case _:
            found = False
    seen[id(t)] = found
    return found
