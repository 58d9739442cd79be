"""Deriving arrowloop types from ordinary Python annotations.

``int``, ``float``, ``str``, ``bool``, ``None``; ``tuple[A, B]``;
``list[A]``; ``dict[K, A]`` and ``set[K]`` for hashable ``K``; ``A | None``
(an option); frozen attrs classes (records); unions of frozen attrs classes
(variants whose tags are the class names); ``enum.Enum`` subclasses
(variants of unit cases, tagged by member
name). A :class:`~arrowloop.typesys.Type` passes through unchanged.
"""

from __future__ import annotations

import enum
import types
import typing
from typing import Any

import attrs

from arrowloop.errors import TypeDefinitionError
from arrowloop.typesys._repr import bind_enum, bind_record, plain_tag, record_type_of_class
from arrowloop.typesys._types import (
    BOOL,
    FLOAT,
    INT,
    STR,
    UNIT,
    ListT,
    MapT,
    OptionT,
    RecordT,
    SetT,
    TupleT,
    Type,
    UnitT,
    VariantT,
    is_key_type,
)

__all__ = ["from_annotation", "TypeLike"]

#: Anything :func:`from_annotation` accepts: a Type or a Python annotation.
TypeLike = Type | type | types.UnionType | Any

_SCALARS: dict[Any, Type] = {
    int: INT,
    float: FLOAT,
    str: STR,
    bool: BOOL,
    None: UNIT,
    type(None): UNIT,
}


_KEYS = (
    "dict keys and set items must be hashable by value: bool, int, str, "
    "a tuple or option of those, or an Enum (not float, not a record)"
)


def _bad(annotation: object, path: str, hint: str) -> TypeDefinitionError:
    found = _show(annotation)
    return TypeDefinitionError(
        f"cannot use the annotation {found} as an arrowloop type: {hint}",
        path=path,
        expected="int, float, str, bool, None, tuple[...], list[T], dict[K, T], set[K], "
        "T | None, a frozen attrs class, a union of them, or an Enum",
        found=found,
    )


def _show(annotation: object) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation)[:80]


def from_annotation(annotation: TypeLike, path: str = "annotation") -> Type:
    """Turn a Python annotation (or a :class:`Type`) into an arrowloop type.

    Records and enums are bound to their classes as a side effect, so values
    built by compiled programs are instances of the user's own classes.

    Raises:
        TypeDefinitionError: naming the part of the annotation that has no
            arrowloop counterpart, with what is supported instead.
    """
    return _convert(annotation, path, ())


def _convert(a: Any, path: str, active: tuple[type, ...]) -> Type:
    if isinstance(a, Type):
        return a
    if a in _SCALARS:
        return _SCALARS[a]
    origin = typing.get_origin(a)
    args = typing.get_args(a)
    if origin is tuple:
        # Python 3.11 gives ``tuple[()]`` no args at all, like a bare ``typing.Tuple``.
        if a is typing.Tuple or (len(args) == 2 and args[1] is Ellipsis):  # noqa: UP006
            raise _bad(a, path, "tuples need fixed item types; use list[T] for sequences")
        if not args or args == ((),):
            return TupleT(())
        return TupleT(tuple(_convert(x, f"{path}[{i}]", active) for i, x in enumerate(args)))
    if origin is list:
        if len(args) != 1:
            raise _bad(a, path, "write list[T]")
        return ListT(_convert(args[0], f"{path}[0]", active))
    if origin is dict:
        if len(args) != 2:
            raise _bad(a, path, "write dict[K, T]")
        key = _convert(args[0], f"{path}[0]", active)
        if not is_key_type(key):
            raise _bad(a, path, _KEYS)
        return MapT(_convert(args[1], f"{path}[1]", active), key)
    if origin is set:
        if len(args) != 1:
            raise _bad(a, path, "write set[K]")
        item = _convert(args[0], f"{path}[0]", active)
        if not is_key_type(item):
            raise _bad(a, path, _KEYS)
        return SetT(item)
    if origin is frozenset or a is frozenset:
        # One set type, whose values are Python sets: a frozenset value
        # would be a second representation of it for every reader to know.
        raise _bad(a, path, "write set[K] (sets have value semantics already)")
    if origin is typing.Union or isinstance(a, types.UnionType):
        return _union(a, args, path, active)
    if isinstance(a, type) and issubclass(a, enum.Enum):
        return _enum(a, path)
    if isinstance(a, type) and attrs.has(a):
        return _record(a, path, active)
    if isinstance(a, str):
        raise _bad(a, path, "string (forward) annotations must be resolved first")
    raise _bad(a, path, "not a supported type")


def _union(a: Any, args: tuple[Any, ...], path: str, active: tuple[type, ...]) -> Type:
    rest = [x for x in args if x is not None and x is not type(None)]
    if len(rest) < len(args):
        inner = rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]  # noqa: UP007
        item = _convert(inner, path, active)
        if isinstance(item, OptionT | UnitT):
            raise _bad(a, path, "None would be ambiguous here")
        return OptionT(item)
    cases: list[tuple[str, Type]] = []
    for i, x in enumerate(rest):
        if not (isinstance(x, type) and attrs.has(x)):
            # A plain case (``Hello | str``): its values are the payloads
            # themselves, told apart by their Python class (see _repr.py).
            pt = _convert(x, f"{path}|{i}", active)
            tag = plain_tag(pt)
            if tag is None or any(t == tag for t, _ in cases):
                raise _bad(
                    x,
                    f"{path}|{i}",
                    "a union's members are frozen attrs classes and at most one each of int, "
                    "float, str, bool, list[...], dict[...] and set[...] (told apart by their "
                    "class, as isinstance does); wrap the others (a tuple, an enum, a second "
                    "list type) in a record",
                )
            cases.append((tag, pt))
            continue
        rt = _record(x, f"{path}|{i}", active)
        assert isinstance(rt, RecordT)
        if (rt.name, rt) not in cases:  # a.Get | b.Get, one type: one case
            cases.append((rt.name, rt))
    try:
        return VariantT("", tuple(cases))
    except TypeDefinitionError as exc:
        raise _bad(a, path, exc.message) from None


def _enum(cls: type[enum.Enum], path: str) -> Type:
    try:
        t = VariantT(cls.__name__, tuple((m.name, UNIT) for m in cls))
    except TypeDefinitionError as exc:
        raise _bad(cls, path, exc.message) from None
    bind_enum(cls, t)
    return t


def _record(cls: type, path: str, active: tuple[type, ...]) -> Type:
    known = record_type_of_class(cls)
    if known is not None:
        return known
    if cls in active:
        raise _bad(cls, path, "recursive records are not supported")
    if getattr(cls.__setattr__, "__name__", "") != "_frozen_setattrs":
        raise _bad(cls, path, "record classes must be frozen (use @attrs.frozen)")
    try:
        attrs.resolve_types(cls)
    except NameError as exc:
        raise _bad(cls, path, f"its field annotations do not resolve ({exc})") from None
    fields = []
    for f in attrs.fields(cls):
        if not f.init or f.kw_only:
            # Values are built positionally (from JSON, by compiled code).
            raise _bad(
                cls, f"{path}.{f.name}", "every field must be a positional __init__ parameter"
            )
        fields.append((f.name, _convert(f.type, f"{path}.{f.name}", (*active, cls))))
    try:
        t = RecordT(cls.__name__, tuple(fields))
    except TypeDefinitionError as exc:
        raise _bad(cls, path, exc.message) from None
    bind_record(cls, t)
    # The bound type object (the first class's, when cls is an alias).
    return record_type_of_class(cls) or t
