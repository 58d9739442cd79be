"""More primitives of the standard library: strings, slices, membership,
``format`` with a constant spec, and ``raise``.

Part of layer 2 (arrows), beside :mod:`arrowloop.arrows._prims`, which holds
the registry; this module installs into the process-wide registry when the
package is imported. Every primitive calls Python's own operation, so its
results and its exceptions are Python's.

``format:<spec>`` is a *family*: the registry resolves any name of that form
whose spec Python accepts for at least one of ``int``, ``float``, ``str``,
``bool`` to a primitive applying ``format(value, spec)``. The spec is part of
the name, so it is a constant of the program by construction, travels in the
wire form (``{"kind": "prim", "name": "format:>5"}``) and is part of the
version; a document naming a spec Python refuses is refused at decoding.
"""

from __future__ import annotations

import functools
from typing import Any, Final, NoReturn

from arrowloop.arrows._prims import PRIMITIVES, Primitive, Registry, Signature
from arrowloop.errors import RaisedError
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    ListT,
    OptionT,
    TupleT,
    TVar,
    Type,
    identity_blind,
    values_equal,
)

__all__ = ["FORMAT_PREFIX", "MAX_FORMAT_SPEC", "format_primitive", "raised_class"]

#: The prefix of the names of the ``format`` family.
FORMAT_PREFIX: Final = "format:"
#: The longest spec a ``format:`` name may carry (Python's are a few characters).
MAX_FORMAT_SPEC: Final = 40

_A = TVar(0)
_B = TVar(1)
_OPT_INT = OptionT(INT)
# A sample of each formattable type: a spec Python refuses for one value of
# a type it refuses for all of them (it is checked before the value is read).
_SAMPLES: tuple[tuple[Type, Any], ...] = ((INT, 0), (FLOAT, 0.0), (STR, ""), (BOOL, False))


def _slice(xs: Any, a: int | None, b: int | None, c: int | None) -> Any:
    return xs[a:b:c]


def _list_has(x: Any, xs: list[Any]) -> bool:
    # IEEE equality inside structures, like eq (docs/arrows.md, 5.3).
    return any(values_equal(y, x) for y in xs)


def _inline_has(t: Type) -> bool:
    # ``in`` tries identity before ==, so a NaN object is in a list holding
    # it: Python's operator only where no float can be compared.
    item = t.items[0] if isinstance(t, TupleT) else t
    return identity_blind(item) and item not in (FLOAT, OptionT(FLOAT))


@functools.lru_cache(maxsize=256)
def raised_class(name: str) -> type[RaisedError]:
    """The subclass of :class:`RaisedError` named ``name`` (one per name)."""
    return type(name, (RaisedError,), {"__module__": "arrowloop.raised"})


def _raise(name: str, message: str) -> NoReturn:
    raise raised_class(name)(name, message)


def _formatter(spec: str) -> Any:
    def fmt(x: Any) -> str:
        return format(x, spec)

    return fmt


@functools.lru_cache(maxsize=512)
def format_primitive(name: str) -> Primitive | None:
    """The primitive called ``name`` of the ``format:`` family, or ``None``."""
    if not name.startswith(FORMAT_PREFIX):
        return None
    spec = name[len(FORMAT_PREFIX) :]
    if len(spec) > MAX_FORMAT_SPEC or not spec.isprintable():
        return None
    fn = _formatter(spec)
    sigs = []
    for t, sample in _SAMPLES:
        try:
            format(sample, spec)
        except (ValueError, TypeError):
            continue
        sigs.append(Signature(t, STR, fn))
    if not sigs:
        return None
    return Primitive(name, tuple(sigs), f"format(x, {spec!r})")


def install_strings(r: Registry) -> None:
    """Register the string, slice, membership and ``raise`` primitives in ``r``."""
    reg = r.register
    reg("item", TupleT((STR, INT)), STR, lambda s, i: s[i], template="{0}[{1}]")
    opts = (_OPT_INT, _OPT_INT, _OPT_INT)
    reg("slice", TupleT((STR, *opts)), STR, _slice, doc="s[a:b:c] (None for a missing bound)")
    reg("slice", TupleT((ListT(_A), *opts)), ListT(_A), _slice, result="fresh")
    reg("find", TupleT((STR, STR)), INT, str.find, doc="s.find(sub): the index, or -1")
    reg("count", TupleT((STR, STR)), INT, str.count, doc="s.count(sub)")
    reg("isdigit", STR, BOOL, str.isdigit)
    reg("isalpha", STR, BOOL, str.isalpha)
    reg("isspace", STR, BOOL, str.isspace)
    reg("title", STR, STR, str.title)
    reg("lstrip", STR, STR, str.lstrip)
    reg("rstrip", STR, STR, str.rstrip)
    reg("split_ws", STR, ListT(STR), str.split, result="fresh", doc="s.split(): on whitespace")
    reg(
        "list_has",
        TupleT((_A, ListT(_A))),
        BOOL,
        _list_has,
        template="({0} in {1})",
        inline=_inline_has,
        doc="x in xs (IEEE on floats, inside structures too)",
    )
    for t in (INT, FLOAT, STR, BOOL):
        reg("repr", t, STR, repr, doc="repr(x), for !r in f-strings")
    reg(
        "raise",
        TupleT((STR, STR)),
        _B,
        _raise,
        doc="raises the error named by the first argument with the message (any output type)",
    )


Registry.families[FORMAT_PREFIX] = format_primitive
install_strings(PRIMITIVES)
