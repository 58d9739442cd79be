"""Widening: the program that takes a value of a type to one of a supertype.

A value of ``a`` is a value of ``b`` whenever ``is_subtype(a, b)`` (same
runtime representation), but the checker types a program from the type it
is given: a ``case`` over ``b``'s tags refuses a variant with fewer, an
``is_none`` refuses an ``int``. ``widening(a, b)`` is an arrow ``a -> b``
that the checker types as exactly ``b`` and that computes the identity, so a
program written for ``b`` can be composed after one that produces ``a``
(``Machine >> Machine``) and still be checked against its declared input.
"""

from __future__ import annotations

from arrowloop.arrows import (
    Arrow,
    case,
    const,
    id_,
    if_,
    inject,
    map_,
    prim,
    split,
)
from arrowloop.errors import CheckError
from arrowloop.typesys import ListT, OptionT, TupleT, Type, VariantT

__all__ = ["widening"]


def widening(a: Type, b: Type, path: str = "value") -> Arrow:
    """An arrow ``a -> b`` computing the identity, for ``is_subtype(a, b)``.

    Raises:
        CheckError: ``a`` is not a subtype of ``b``, or a map's values would
            have to change type (maps are not rebuilt, so declare the same
            value type on both sides).
    """
    if a == b:
        return id_
    match a, b:
        case VariantT(cases=ac), VariantT(cases=bc) if a.name == b.name:
            wide = dict(bc)
            if all(tag in wide for tag, _ in ac):
                return case(
                    {
                        tag: widening(p, wide[tag], f"{path}.{tag}") >> inject(b, tag)
                        for tag, p in ac
                    }
                )
        case TupleT(items=ai), TupleT(items=bi) if len(ai) == len(bi):
            return split(
                *(
                    widening(x, y, f"{path}[{i}]")
                    for i, (x, y) in enumerate(zip(ai, bi, strict=True))
                )
            )
        case ListT(item=ai), ListT(item=bi):
            return map_(widening(ai, bi, f"{path}[]"))
        case OptionT(item=ai), OptionT(item=bi):
            inner = widening(ai, bi, path)
            return if_(prim("is_none"), const(None, b), prim("unwrap") >> inner >> prim("some"))
        case _, OptionT(item=bi):
            return widening(a, bi, path) >> prim("some")
    raise CheckError(
        f"expected a type whose values are values of {b!r} (the same or narrower, "
        f"maps and sets with the same key, value and item types), found {a!r}",
        path=path,
        expected=repr(b),
        found=repr(a),
    )
