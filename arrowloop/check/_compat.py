"""Compatibility of types for upgrades: when may values of one type flow where
another is expected?

``is_subtype(a, b)`` holds when every value of ``a`` is a value of ``b``
with the same runtime representation: equal types; a variant whose cases
are a subset of another's (same name, same payloads, recursively); tuples,
lists, maps and options componentwise; and ``T`` within ``T | None``.
Records must be equal (their classes are their identity).

It is what lets an upgrade widen a stage's input (clients of the old version
keep working) or narrow its output without touching its neighbours.
"""

from __future__ import annotations

from arrowloop.typesys import ListT, MapT, OptionT, TupleT, Type, VariantT

__all__ = ["is_subtype"]


def is_subtype(a: Type, b: Type) -> bool:
    """Whether every value of ``a`` is also a value of ``b``."""
    if a == b:
        return True
    match a, b:
        case VariantT(name=an, cases=ac), VariantT(name=bn, cases=bc):
            if an != bn:
                return False
            wider = dict(bc)
            for tag, payload in ac:
                other = wider.get(tag)
                if other is None or not is_subtype(payload, other):
                    return False
            return True
        case TupleT(items=ai), TupleT(items=bi):
            return len(ai) == len(bi) and all(is_subtype(x, y) for x, y in zip(ai, bi, strict=True))
        case ListT(item=ai), ListT(item=bi):
            return is_subtype(ai, bi)
        case MapT(value=av), MapT(value=bv):
            return is_subtype(av, bv)
        case OptionT(item=ai), OptionT(item=bi):
            return is_subtype(ai, bi)
        case _, OptionT(item=bi):
            return is_subtype(a, bi)
    return False
