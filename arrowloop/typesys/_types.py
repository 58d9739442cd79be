"""The type terms of arrowloop: unit, scalars, tuples, lists, maps, options,
records and variants (plus type variables, used only by the checker).

Types are frozen values compared structurally. Names that appear in types
(record names, field names, variant tags) are restricted to plain ASCII
identifiers so that they can never smuggle anything into generated code or
into error messages.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable
from typing import ClassVar

import attrs

from arrowloop.errors import TypeDefinitionError

__all__ = [
    "Type",
    "UnitT",
    "BoolT",
    "IntT",
    "FloatT",
    "StrT",
    "TupleT",
    "ListT",
    "MapT",
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
]

MAX_NAME_LENGTH = 64
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


@attrs.frozen(cache_hash=True, repr=False)
class UnitT(Type):
    """The type with one value, ``None`` (annotation ``None``)."""

    kind: ClassVar[str] = "unit"

    def __repr__(self) -> str:
        return "unit"


@attrs.frozen(cache_hash=True, repr=False)
class BoolT(Type):
    """Booleans."""

    kind: ClassVar[str] = "bool"

    def __repr__(self) -> str:
        return "bool"


@attrs.frozen(cache_hash=True, repr=False)
class IntT(Type):
    """Arbitrary-precision integers (``bool`` is not an ``int`` here)."""

    kind: ClassVar[str] = "int"

    def __repr__(self) -> str:
        return "int"


@attrs.frozen(cache_hash=True, repr=False)
class FloatT(Type):
    """IEEE double precision floats."""

    kind: ClassVar[str] = "float"

    def __repr__(self) -> str:
        return "float"


@attrs.frozen(cache_hash=True, repr=False)
class StrT(Type):
    """Unicode strings."""

    kind: ClassVar[str] = "str"

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

    def __repr__(self) -> str:
        if len(self.items) == 1:
            return f"({self.items[0]!r},)"
        return "(" + ", ".join(repr(t) for t in self.items) + ")"


@attrs.frozen(cache_hash=True, repr=False)
class ListT(Type):
    """Homogeneous lists; the runtime value is a Python list, never mutated."""

    kind: ClassVar[str] = "list"
    item: Type

    def __repr__(self) -> str:
        return f"list[{self.item!r}]"


@attrs.frozen(cache_hash=True, repr=False)
class MapT(Type):
    """String-keyed maps; the runtime value is a Python dict, never mutated."""

    kind: ClassVar[str] = "map"
    value: Type

    def __repr__(self) -> str:
        return f"dict[str, {self.value!r}]"


@attrs.frozen(cache_hash=True, repr=False)
class OptionT(Type):
    """An optional value: ``None`` or a value of ``item``.

    ``item`` may not itself be an option or unit: ``None`` would be ambiguous.
    Use a variant for those.
    """

    kind: ClassVar[str] = "option"
    item: Type

    def __attrs_post_init__(self) -> None:
        if isinstance(self.item, OptionT | UnitT):
            raise TypeDefinitionError(
                f"expected an option of a non-optional, non-unit type, found "
                f"option of {self.item!r} (None would be ambiguous; use a variant)",
                expected="non-optional item type",
                found=repr(self.item),
            )

    def __repr__(self) -> str:
        return f"{self.item!r} | None"


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
        inner = ", ".join(f"{f}: {t!r}" for f, t in self.fields)
        return f"{self.name}{{{inner}}}"


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
        inner = " | ".join(
            repr(p) if isinstance(p, RecordT) and p.name == tag else f"{tag}({p!r})"
            for tag, p in self.cases
        )
        return f"{self.name}<{inner}>" if self.name else f"<{inner}>"


@attrs.frozen(cache_hash=True, repr=False)
class TVar(Type):
    """A type variable; exists only inside the checker and primitive signatures."""

    kind: ClassVar[str] = "var"
    id: int

    def __repr__(self) -> str:
        return f"?{self.id}"


def either(left: Type, right: Type) -> VariantT:
    """The sum type ``Either left right``: tags ``left`` and ``right``."""
    return VariantT("Either", (("left", left), ("right", right)))
