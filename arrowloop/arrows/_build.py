"""Friendly constructors for arrow programs.

These accept Python annotations wherever a type is wanted (``const(0)``,
``inject(Count | Ack, "Count")``, ``make(Count)``) and build the nodes of
:mod:`arrowloop.arrows._nodes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from arrowloop.arrows._nodes import (
    Arrow,
    Case,
    Compose,
    Const,
    Distribute,
    Fanout,
    Fold,
    GetField,
    Id,
    If,
    Inject,
    Loop,
    MakeRecord,
    MapList,
    Prim,
    Proj,
    SetField,
    Split,
    While,
)
from arrowloop.errors import TypeDefinitionError
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    UNIT,
    RecordT,
    Type,
    TypeLike,
    VariantT,
    from_annotation,
    record_type_of_class,
    validate,
)

__all__ = [
    "id_",
    "fst",
    "snd",
    "proj",
    "copy",
    "drop",
    "const",
    "first",
    "second",
    "split",
    "fanout",
    "compose",
    "inl",
    "inr",
    "inject",
    "case",
    "distribute",
    "if_",
    "make",
    "get",
    "set_",
    "prim",
    "map_",
    "fold",
    "while_",
    "loop",
    "type_of_value",
]

id_: Arrow = Id()
fst: Arrow = Proj(0, 2)
snd: Arrow = Proj(1, 2)
copy: Arrow = Fanout((id_, id_))
distribute: Arrow = Distribute()
#: ``a -> unit``: forget the input.
drop: Arrow = Const(UNIT, None)


def proj(index: int, arity: int) -> Arrow:
    """Item ``index`` of a tuple of ``arity`` items."""
    return Proj(index, arity)


def type_of_value(value: object) -> Type:
    """Guess the type of a simple Python value (for ``const`` and ``loop``).

    Raises:
        TypeDefinitionError: when the type cannot be read off the value
            (empty containers, ``None``, variants): pass the type explicitly.
    """
    if value is None:
        return UNIT
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, int):
        return INT
    if isinstance(value, float):
        return FLOAT
    if isinstance(value, str):
        return STR
    if isinstance(value, tuple):
        from arrowloop.typesys import TupleT

        return TupleT(tuple(type_of_value(v) for v in value))
    rt = record_type_of_class(type(value))
    if rt is not None:
        return rt
    try:
        t = from_annotation(type(value))
    except TypeDefinitionError:
        t = None
    if isinstance(t, RecordT):
        return t
    raise TypeDefinitionError(
        f"cannot tell the type of {value!r:.60} from the value; pass type=...",
        expected="an explicit type",
        found=type(value).__name__,
    )


def const(value: Any, type: TypeLike | None = None) -> Arrow:
    """``a -> T``: the constant ``value`` of type ``type`` (guessed if omitted).

    Raises:
        ValidationError: when ``value`` is not a value of ``type``, or one
            the wire cannot carry (an int outside the 64-bit range, a string
            with a lone surrogate).
    """
    t = type_of_value(value) if type is None else from_annotation(type)
    validate(t, value, "const", wire=True)
    return Const(t, value)


def first(f: Arrow) -> Arrow:
    """``(a, c) -> (b, c)`` running ``f`` on the first item."""
    return Split((f, id_))


def second(f: Arrow) -> Arrow:
    """``(c, a) -> (c, b)`` running ``f`` on the second item."""
    return Split((id_, f))


def split(*fs: Arrow) -> Arrow:
    """``(a1, ..., an) -> (b1, ..., bn)`` (``f * g`` for two)."""
    return Split(fs)


def fanout(*fs: Arrow) -> Arrow:
    """``a -> (b1, ..., bn)`` (``f & g`` for two)."""
    return Fanout(fs)


def compose(*fs: Arrow) -> Arrow:
    """``fs[0] >> fs[1] >> ...``."""
    steps: list[Arrow] = []
    for f in fs:
        steps.extend(f.steps if isinstance(f, Compose) else (f,))
    return Compose(tuple(steps))


inl: Arrow = Inject("left", None)
inr: Arrow = Inject("right", None)


def _variant(t: TypeLike) -> VariantT:
    vt = from_annotation(t)
    if not isinstance(vt, VariantT):
        raise TypeDefinitionError(
            f"expected a variant type, found {vt!r}", expected="variant", found=repr(vt)
        )
    return vt


def inject(variant: TypeLike, tag: str | type) -> Arrow:
    """``payload -> variant``: case ``tag`` (a tag or a record class) of ``variant``."""
    name = tag if isinstance(tag, str) else tag.__name__
    return Inject(name, _variant(variant))


def case(branches: Mapping[str | type, Arrow] | None = None, /, **named: Arrow) -> Arrow:
    """``variant -> b``: one branch per tag (keys may be record classes)."""
    items: dict[str, Arrow] = {}
    merged: dict[str | type, Arrow] = dict(branches or {})
    merged.update(named)
    for key, arrow in merged.items():
        items[key if isinstance(key, str) else key.__name__] = arrow
    return Case(tuple(items.items()))


def if_(cond: Arrow, then: Arrow, orelse: Arrow) -> Arrow:
    """``a -> b``: ``then`` when ``cond`` is true on the input, else ``orelse``."""
    return If(cond, then, orelse)


def make(record: TypeLike) -> Arrow:
    """Build a record (a class or a record type) from its fields."""
    rt = from_annotation(record)
    if not isinstance(rt, RecordT):
        raise TypeDefinitionError(
            f"expected a record type, found {rt!r}", expected="record", found=repr(rt)
        )
    return MakeRecord(rt)


def get(field: str) -> Arrow:
    """``record -> field``."""
    return GetField(field)


def set_(field: str) -> Arrow:
    """``(record, value) -> record`` with ``field`` replaced."""
    return SetField(field)


def prim(name: str) -> Arrow:
    """The registry primitive ``name``."""
    return Prim(name)


def map_(fn: Arrow) -> Arrow:
    """``list[a] -> list[b]``."""
    return MapList(fn)


def fold(fn: Arrow) -> Arrow:
    """``(b, list[a]) -> b`` with ``fn : (b, a) -> b``."""
    return Fold(fn)


def while_(cond: Arrow, body: Arrow) -> Arrow:
    """``a -> a``: ``body : a -> a`` while ``cond : a -> bool`` holds (at most
    ``MAX_ITERATIONS`` times, then the step fails)."""
    return While(cond, body)


def loop(body: Arrow, init: Any, state: TypeLike | None = None) -> Loop:
    """Close ``body : (input, state) -> (state, output)`` into a machine.

    Raises:
        ValidationError: when ``init`` is not a value of ``state``, or one
            the wire cannot carry (see :func:`const`).
    """
    t = type_of_value(init) if state is None else from_annotation(state)
    validate(t, init, "init", wire=True)
    return Loop(body, t, init)
