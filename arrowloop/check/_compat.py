"""Compatibility of types for upgrades: when may values of one type flow where
another is expected?

``is_subtype(a, b)`` holds when every value of ``a`` is a value of ``b``
with the same runtime representation: equal types; a variant whose cases
are a subset of another's (same name, same payloads, recursively, each case
represented alike: docs/arrows.md, 1.3); tuples,
lists, maps and options componentwise; and ``T`` within ``T | None``.
Records must be equal (their classes are their identity).

It is what lets an upgrade widen a stage's input (clients of the old version
keep working) or narrow its output without touching its neighbours.
"""

from __future__ import annotations

from arrowloop.typesys import (
    ListT,
    MapT,
    OptionT,
    RecordT,
    SetT,
    TupleT,
    Type,
    VariantT,
    plain_tag,
)

__all__ = ["is_subtype"]


def is_subtype(a: Type, b: Type) -> bool:
    """Whether every value of ``a`` is also a value of ``b``."""
    return _sub(a, b, {})


def _sub(a: Type, b: Type, memo: dict[tuple[int, int], bool]) -> bool:
    # Types share sub-terms; each pair of nodes is decided once (a pair being
    # decided counts as a subtype: types are finite, so it cannot recur).
    if a is b or a == b:
        return True
    key = (id(a), id(b))
    known = memo.get(key)
    if known is not None:
        return known
    memo[key] = True
    result = False
    match a, b:
        case VariantT(name=an, cases=ac), VariantT(name=bn, cases=bc):
            if an == bn:
                wider = dict(bc)
                result = all(
                    (other := wider.get(tag)) is not None
                    and _sub(payload, other, memo)
                    # ``int`` is a plain case, ``int | None`` under the tag
                    # ``int`` is not (nor a record of an option): the values
                    # of the two would be represented differently.
                    and _kind(a, tag) == _kind(b, tag)
                    for tag, payload in ac
                )
        case TupleT(items=ai), TupleT(items=bi):
            result = len(ai) == len(bi) and all(
                _sub(x, y, memo) for x, y in zip(ai, bi, strict=True)
            )
        case ListT(item=ai), ListT(item=bi):
            result = _sub(ai, bi, memo)
        case MapT(value=av, key=ak), MapT(value=bv, key=bk):
            # Covariant in the key too: every value of a is one of b.
            result = _sub(ak, bk, memo) and _sub(av, bv, memo)
        case SetT(item=ai), SetT(item=bi):
            result = _sub(ai, bi, memo)
        case OptionT(item=ai), OptionT(item=bi):
            result = _sub(ai, bi, memo)
        case _, OptionT(item=bi):
            result = _sub(a, bi, memo)
    memo[key] = result
    return result


def _kind(t: VariantT, tag: str) -> str:
    """Whether case ``tag`` of ``t`` is represented by a record or a plain
    value (``case_repr``'s ``how``), found without binding or synthesising a
    class; other cases count as one kind."""
    p = t.payload(tag)
    if isinstance(p, RecordT) and p.name == tag:
        return "record"
    if p is not None and plain_tag(p) == tag:
        return "plain"
    return "other"
