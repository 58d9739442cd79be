"""The type terms of arrowloop: unit, scalars, tuples, lists, maps, sets,
options, records and variants (plus type variables, used only by the checker).

Types are frozen values compared structurally. Names that appear in types
(record names, field names, variant tags) are restricted to plain ASCII
identifiers so that they can never smuggle anything into generated code or
into error messages.

Types are immutable and may share sub-terms: the checker builds ``(t, t)``
from one ``t``, so a type written in a few bytes can stand for a tree of
millions of nodes. Everything here is linear in the number of *distinct*
nodes, never in the size of the tree they stand for: equality compares each
pair of nodes once, ``size`` (the tree size, counted when a type is made)
lets callers refuse a type too big to work with, and ``repr`` renders at
most :data:`REPR_LIMIT` characters, eliding the rest with ``...``.
"""

from __future__ import annotations

import keyword
import math
import operator
import re
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Final

import attrs

from arrowloop.errors import TypeDefinitionError

__all__ = [
    "type_children",
    "Type",
    "UnitT",
    "BoolT",
    "IntT",
    "FloatT",
    "StrT",
    "TupleT",
    "ListT",
    "MapT",
    "SetT",
    "OptionT",
    "RecordT",
    "VariantT",
    "TVar",
    "UNIT",
    "BOOL",
    "INT",
    "FLOAT",
    "STR",
    "either",
    "check_name",
    "MAX_NAME_LENGTH",
    "REPR_LIMIT",
    "render_type",
    "type_size",
    "has_vars",
    "is_key_type",
]

MAX_NAME_LENGTH = 64
#: Most characters ``repr`` of a type renders (error messages stay small).
REPR_LIMIT: Final = 1000
#: Deepest nesting ``repr`` of a type renders.
_REPR_DEPTH: Final = 24
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def check_name(name: object, what: str) -> str:
    """Return ``name`` if it is a valid identifier for a record, field or tag.

    Raises:
        TypeDefinitionError: when it is not an ASCII identifier of at most
            64 characters, is a Python keyword, or starts with ``__``.
    """
    if (
        not isinstance(name, str)
        or not _NAME.match(name)
        or len(name) > MAX_NAME_LENGTH
        or keyword.iskeyword(name)
        or name.startswith("__")
    ):
        raise TypeDefinitionError(
            f"expected a {what} that is an ASCII identifier of at most "
            f"{MAX_NAME_LENGTH} characters (not a keyword, not starting with '__'), "
            f"found {name!r:.80}",
            expected=f"{what} identifier",
            found=repr(name)[:80],
        )
    return name


class Type:
    """Base class of every type term. ``kind`` is the wire tag."""

    __slots__ = ()
    kind: ClassVar[str]
    # Set when the type is made, from the children (see type_size, has_vars).
    _size: int
    _vars: bool


@attrs.frozen(cache_hash=True, repr=False)
class UnitT(Type):
    """The type with one value, ``None`` (annotation ``None``)."""

    kind: ClassVar[str] = "unit"

    _size = 1
    _vars = False

    def __repr__(self) -> str:
        return "unit"


@attrs.frozen(cache_hash=True, repr=False)
class BoolT(Type):
    """Booleans."""

    kind: ClassVar[str] = "bool"

    _size = 1
    _vars = False

    def __repr__(self) -> str:
        return "bool"


@attrs.frozen(cache_hash=True, repr=False)
class IntT(Type):
    """Arbitrary-precision integers (``bool`` is not an ``int`` here)."""

    kind: ClassVar[str] = "int"

    _size = 1
    _vars = False

    def __repr__(self) -> str:
        return "int"


@attrs.frozen(cache_hash=True, repr=False)
class FloatT(Type):
    """IEEE double precision floats."""

    kind: ClassVar[str] = "float"

    _size = 1
    _vars = False

    def __repr__(self) -> str:
        return "float"


@attrs.frozen(cache_hash=True, repr=False)
class StrT(Type):
    """Unicode strings."""

    kind: ClassVar[str] = "str"

    _size = 1
    _vars = False

    def __repr__(self) -> str:
        return "str"


UNIT = UnitT()
BOOL = BoolT()
INT = IntT()
FLOAT = FloatT()
STR = StrT()


@attrs.frozen(cache_hash=True, repr=False)
class TupleT(Type):
    """Fixed-length heterogeneous tuples; the runtime value is a Python tuple."""

    kind: ClassVar[str] = "tuple"
    items: tuple[Type, ...]

    _size: int = attrs.field(init=False, eq=False, repr=False)
    _vars: bool = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _measure(self, self.items)

    def __repr__(self) -> str:
        return render_type(self)


@attrs.frozen(cache_hash=True, repr=False)
class ListT(Type):
    """Homogeneous lists; the runtime value is a Python list (value semantics:
    compiled code changes one in place only where no one can tell)."""

    kind: ClassVar[str] = "list"
    item: Type

    _size: int = attrs.field(init=False, eq=False, repr=False)
    _vars: bool = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _measure(self, (self.item,))

    def __repr__(self) -> str:
        return render_type(self)


def is_key_type(t: Type) -> bool:
    """Whether values of ``t`` may be dict keys and set items.

    Their Python values must hash and compare by value, the same in every
    process: bool, int, str, unit, tuples and options of key types, and
    variants whose cases are all unit (enums). Floats are left out (NaN is
    not equal to itself), and so are records, whose alias classes compare
    unequal under Python's ``==`` (see ``_repr.py``). Type variables are
    accepted: they stand for the key types of polymorphic primitives.
    """
    match t:
        case BoolT() | IntT() | StrT() | UnitT() | TVar():
            return True
        case TupleT(items=items):
            return all(is_key_type(x) for x in items)
        case OptionT(item=item):
            return is_key_type(item)
        case VariantT(cases=cases):
            return all(isinstance(p, UnitT) for _, p in cases)
    return False


def _check_key(t: Type, what: str) -> None:
    if not is_key_type(t):
        raise TypeDefinitionError(
            f"expected a hashable {what} type (bool, int, str, a tuple or option of "
            f"those, or an enum), found {t!r}",
            expected=f"hashable {what} type",
            found=repr(t),
        )


@attrs.frozen(cache_hash=True, repr=False)
class MapT(Type):
    """Maps from ``key`` (``str`` unless said otherwise) to ``value``; the
    runtime value is a Python dict (value semantics, as for lists).

    ``key`` comes second so that ``MapT(v)`` stays the ``str``-keyed map of
    old, and its wire form omits a ``str`` key (versions unchanged).
    """

    kind: ClassVar[str] = "map"
    value: Type
    key: Type = STR

    _size: int = attrs.field(init=False, eq=False, repr=False)
    _vars: bool = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _check_key(self.key, "map key")
        # A str key is not counted: sizes (and the limits on them) of the
        # maps of old stay as they were.
        _measure(self, (self.value,) if self.key == STR else (self.value, self.key))

    def __repr__(self) -> str:
        return render_type(self)


@attrs.frozen(cache_hash=True, repr=False)
class SetT(Type):
    """Sets of a hashable ``item`` type; the runtime value is a Python
    ``set`` (value semantics: compiled code changes one in place only where
    no one can tell)."""

    kind: ClassVar[str] = "set"
    item: Type

    _size: int = attrs.field(init=False, eq=False, repr=False)
    _vars: bool = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        _check_key(self.item, "set item")
        _measure(self, (self.item,))

    def __repr__(self) -> str:
        return render_type(self)


@attrs.frozen(cache_hash=True, repr=False)
class OptionT(Type):
    """An optional value: ``None`` or a value of ``item``.

    ``item`` may not itself be an option or unit: ``None`` would be ambiguous.
    Use a variant for those.
    """

    kind: ClassVar[str] = "option"
    item: Type

    _size: int = attrs.field(init=False, eq=False, repr=False)
    _vars: bool = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if isinstance(self.item, OptionT | UnitT):
            raise TypeDefinitionError(
                f"expected an option of a non-optional, non-unit type, found "
                f"option of {self.item!r} (None would be ambiguous; use a variant)",
                expected="non-optional item type",
                found=repr(self.item),
            )
        _measure(self, (self.item,))

    def __repr__(self) -> str:
        return render_type(self)


@attrs.frozen(cache_hash=True, repr=False)
class RecordT(Type):
    """A record: a name and named, ordered fields.

    The runtime value is an instance of a frozen class bound to the record
    (the user's attrs class, or one synthesised for records received over the
    wire); see :mod:`arrowloop.typesys._repr`.
    """

    kind: ClassVar[str] = "record"
    name: str
    fields: tuple[tuple[str, Type], ...]

    _size: int = attrs.field(init=False, eq=False, repr=False)
    _vars: bool = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        check_name(self.name, "record name")
        seen: set[str] = set()
        for field, _ in self.fields:
            check_name(field, "field name")
            if field in seen:
                raise TypeDefinitionError(
                    f"record {self.name} has the field {field!r} twice",
                    expected="unique field names",
                    found=field,
                )
            seen.add(field)
        _measure(self, tuple(t for _, t in self.fields))

    def field_type(self, name: str) -> Type | None:
        """The type of field ``name``, or ``None`` if there is no such field."""
        for field, t in self.fields:
            if field == name:
                return t
        return None

    def field_index(self, name: str) -> int:
        """The position of field ``name`` (``-1`` when absent)."""
        for i, (field, _) in enumerate(self.fields):
            if field == name:
                return i
        return -1

    def __repr__(self) -> str:
        return render_type(self)


def _sorted_cases(cases: Iterable[tuple[str, Type]]) -> tuple[tuple[str, Type], ...]:
    return tuple(sorted(cases, key=lambda c: c[0]))


@attrs.frozen(cache_hash=True, repr=False)
class VariantT(Type):
    """A tagged union. Cases are kept sorted by tag, so ``A | B == B | A``.

    ``name`` is empty for anonymous unions (``ReadCount | IncrCount``) and the
    class name for enums; two variants are equal only if names and cases are.
    """

    kind: ClassVar[str] = "variant"
    name: str
    cases: tuple[tuple[str, Type], ...] = attrs.field(converter=_sorted_cases)

    _size: int = attrs.field(init=False, eq=False, repr=False)
    _vars: bool = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.name:
            check_name(self.name, "variant name")
        if not self.cases:
            raise TypeDefinitionError(
                "expected a variant with at least one case, found none",
                expected="at least one case",
                found="0 cases",
            )
        prev = None
        for tag, _ in self.cases:
            check_name(tag, "variant tag")
            if tag == prev:
                raise TypeDefinitionError(
                    f"variant has the tag {tag!r} twice",
                    expected="unique tags",
                    found=tag,
                )
            prev = tag
        _measure(self, tuple(p for _, p in self.cases))

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags, sorted."""
        return tuple(tag for tag, _ in self.cases)

    def payload(self, tag: str) -> Type | None:
        """The payload type of case ``tag``, or ``None`` if there is no such case."""
        for t, p in self.cases:
            if t == tag:
                return p
        return None

    def __repr__(self) -> str:
        return render_type(self)


@attrs.frozen(cache_hash=True, repr=False)
class TVar(Type):
    """A type variable; exists only inside the checker and primitive signatures."""

    kind: ClassVar[str] = "var"
    id: int

    _size = 1
    _vars = True

    def __repr__(self) -> str:
        return f"?{self.id}"


def either(left: Type, right: Type) -> VariantT:
    """The sum type ``Either left right``: tags ``left`` and ``right``."""
    return VariantT("Either", (("left", left), ("right", right)))


# -- linear in distinct nodes ---------------------------------------------------


def _measure(t: Type, children: tuple[Type, ...]) -> None:
    # O(children) per node made, so asking a type its size or whether it
    # mentions a variable never walks it.
    object.__setattr__(t, "_size", 1 + sum(c._size for c in children))
    object.__setattr__(t, "_vars", any(c._vars for c in children))


def type_size(t: Type) -> int:
    """The number of nodes of ``t`` as a tree: a shared sub-term counts once
    per occurrence (``(t, t)`` is ``1 + 2 * type_size(t)``). Constant time."""
    return t._size


def has_vars(t: Type) -> bool:
    """Whether ``t`` mentions a type variable. Constant time."""
    return t._vars


def type_children(t: Type) -> tuple[Type, ...]:
    """The types ``t`` is made of (items, fields, payloads; a map's value
    then key), in a fixed order."""
    match t:
        case TupleT(items=items):
            return items
        case ListT(item=item) | OptionT(item=item) | SetT(item=item):
            return (item,)
        case MapT(value=v, key=k):
            return (v, k)
        case RecordT(fields=fields):
            return tuple(ft for _, ft in fields)
        case VariantT(cases=cases):
            return tuple(p for _, p in cases)
    return ()


def _labels(t: Type) -> object:
    """What two types of one class must share besides their children."""
    match t:
        case RecordT(name=name, fields=fields):
            return (name, tuple(f for f, _ in fields))
        case VariantT(name=name, cases=cases):
            return (name, tuple(c for c, _ in cases))
        case TVar(id=i):
            return i
        case TupleT(items=items):
            return len(items)
    return None


#: Types of at most this many nodes (as a tree) are compared field by
#: field, recursively: their tree is small whatever they share.
_SMALL: Final = 64


def _dag_eq(a: Type, b: Type) -> bool:
    """Structural equality comparing each pair of nodes at most once.

    The generated ``__eq__`` compares a shared sub-term once per occurrence:
    exponential on two equal types built apart (two branches that each
    double a tuple n times). Hashes are cached, so unequal types are almost
    always told apart by their hashes at once.
    """
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Type, Type]] = [(a, b)]
    while stack:
        x, y = stack.pop()
        if x is y:
            continue
        if type(x) is not type(y) or x._size != y._size or hash(x) != hash(y):
            return False
        key = (id(x), id(y))
        if key in seen:
            continue
        seen.add(key)
        if _labels(x) != _labels(y):
            return False
        stack.extend(zip(type_children(x), type_children(y), strict=True))
    return True


_Eq = Callable[[Any, Any], Any]


def _linear_eq(fields: Callable[[Any], Any]) -> tuple[_Eq, _Eq]:
    """``__eq__`` and ``__ne__`` comparing ``fields`` (an attrgetter: no
    Python call) for small types, and through :func:`_dag_eq` for big ones."""

    def eq(a: Type, b: object) -> Any:  # bool, or NotImplemented as __eq__ may
        if a is b:
            return True
        if type(b) is not type(a):
            return NotImplemented if not isinstance(b, Type) else False
        if a._size <= _SMALL:
            return fields(a) == fields(b)
        return _dag_eq(a, b)

    def ne(a: Type, b: object) -> Any:  # eq's negation, without a call more
        if a is b:
            return False
        if type(b) is not type(a):
            return NotImplemented if not isinstance(b, Type) else True
        if a._size <= _SMALL:
            return fields(a) != fields(b)
        return not _dag_eq(a, b)

    return eq, ne


# attrs generates __eq__ from the fields; the composite types replace it so
# that big types compare linearly (hashing stays attrs', which is linear:
# each node caches its hash).
for _cls, _fields in (
    (TupleT, operator.attrgetter("items")),
    (ListT, operator.attrgetter("item")),
    (MapT, operator.attrgetter("value", "key")),
    (SetT, operator.attrgetter("item")),
    (OptionT, operator.attrgetter("item")),
    (RecordT, operator.attrgetter("name", "fields")),
    (VariantT, operator.attrgetter("name", "cases")),
):
    _cls.__eq__, _cls.__ne__ = _linear_eq(_fields)  # type: ignore[method-assign]


def render_type(t: Type, limit: int | None = REPR_LIMIT) -> str:
    """``t`` as text, as ``repr`` shows it: at most about ``limit`` characters
    and :data:`_REPR_DEPTH` levels, the rest elided as ``...``; ``limit=None``
    renders it all (beware: a type with shared parts may be huge as text)."""
    out: list[str] = []
    room = [math.inf if limit is None else limit]
    max_depth = math.inf if limit is None else _REPR_DEPTH

    def put(s: str) -> None:
        out.append(s)
        room[0] -= len(s)

    def seq(items: Iterable[tuple[str, Type]], sep: str, depth: int) -> None:
        for i, (prefix, item) in enumerate(items):
            if i:
                put(sep)
            if room[0] <= 0:
                put("...")
                return
            put(prefix)
            go(item, depth)
            if prefix.endswith("("):
                put(")")

    def go(t: Type, depth: int) -> None:
        if room[0] <= 0 or depth > max_depth:
            put("...")
            return
        d = depth + 1
        match t:
            case TupleT(items=items):
                put("(")
                seq((("", x) for x in items), ", ", d)
                put(",)" if len(items) == 1 else ")")
            case ListT(item=item):
                put("list[")
                go(item, d)
                put("]")
            case MapT(value=v, key=k):
                put("dict[")
                go(k, d)
                put(", ")
                go(v, d)
                put("]")
            case SetT(item=item):
                put("set[")
                go(item, d)
                put("]")
            case OptionT(item=item):
                go(item, d)
                put(" | None")
            case RecordT(name=name, fields=fields):
                put(name + "{")
                seq(((f"{f}: ", ft) for f, ft in fields), ", ", d)
                put("}")
            case VariantT(name=name, cases=cases):
                put(name + "<")
                seq(
                    (
                        ("" if isinstance(p, RecordT) and p.name == tag else f"{tag}(", p)
                        for tag, p in cases
                    ),
                    " | ",
                    d,
                )
                put(">")
            case _:
                put(repr(t))

    go(t, 0)
    return "".join(out)
