"""How values of records and variants are represented at run time.

A record value is an instance of a frozen class bound to the record type: the
user's attrs class when the type came from an annotation, otherwise a class
synthesised here (records received over the wire). A variant value is
represented according to its case:

* a case whose payload is a record named like the tag (the usual
  ``ReadCount | IncrCount`` union of attrs classes) is the record instance
  itself, so users see their own objects;
* a unit case of a variant bound to a Python ``Enum`` is the enum member;
* a *plain* case, whose tag is the name of its payload's Python class
  (``int``, ``float``, ``str``, ``bool``, ``list``, ``dict`` or ``set``, as
  in the union ``Hello | str``), is the payload itself, told apart from the
  other cases by its exact class, as Python's ``isinstance`` would;
* any other case is a :class:`Tagged` pair ``(tag, value)``.

Bindings are per process, keyed by the structural type, first binding wins,
and the table is bounded. A record type is its structure (name and fields),
not the module that defines a class for it: a second user class with the
same name and fields (``Get`` in two modules) is accepted as an *alias*, one
more class whose instances are values of the type; values the language
builds are instances of the first class (docs/arrows.md, section 1.3).
A user's class is bound for good; a synthesised class is held weakly, so
it stays bound exactly as long as something uses it (compiled code, a
machine, a value) and a change that was refused leaves nothing behind once
it is collected. When the table is full, it is first
reclaimed (:func:`reclaim_bindings`: caches of compiled code are dropped and
garbage collected) before a new type is refused. The tables are shared by
every thread (changes are checked in a worker thread) and guarded by a lock;
looking a binding up takes no lock.
"""

from __future__ import annotations

import enum
import gc
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final

import attrs

from arrowloop.errors import TypeDefinitionError
from arrowloop.typesys._types import (
    BoolT,
    FloatT,
    IntT,
    ListT,
    MapT,
    RecordT,
    SetT,
    StrT,
    Type,
    UnitT,
    VariantT,
)

__all__ = [
    "Tagged",
    "CaseRepr",
    "bind_record",
    "bind_enum",
    "bindings_epoch",
    "record_class",
    "record_classes",
    "user_classes",
    "record_type_of_class",
    "bound_record_type",
    "enum_class",
    "case_repr",
    "PLAIN_CASES",
    "plain_tag",
    "tag_and_payload",
    "MAX_BINDINGS",
    "bindings_count",
    "reclaim_bindings",
    "on_reclaim",
]

MAX_BINDINGS: Final = 10_000


#: The tags of plain cases: the Python class whose instances are the case's
#: values, and the kind of type its payload must be. Tuples are left out: a
#: ``distribute`` pairs a payload with a value, and the pair of a ``tuple``
#: case would look like another ``tuple`` case.
PLAIN_CASES: Final[dict[str, tuple[type, type[Type]]]] = {
    "int": (int, IntT),
    "float": (float, FloatT),
    "str": (str, StrT),
    "bool": (bool, BoolT),
    "list": (list, ListT),
    "dict": (dict, MapT),
    "set": (set, SetT),
}
_PLAIN_TAGS: Final[dict[type, str]] = {cls: tag for tag, (cls, _) in PLAIN_CASES.items()}


def plain_tag(t: Type) -> str | None:
    """The tag ``t`` has as a plain case of a variant (``str`` for ``str``,
    ``list`` for any list type), or ``None`` when it cannot be one."""
    for tag, (_, kind) in PLAIN_CASES.items():
        if isinstance(t, kind):
            return tag
    return None


@attrs.frozen(slots=True)
class Tagged:
    """A variant value whose case is not represented by a class of its own."""

    tag: str
    value: Any


# User classes, bound for good.
_record_classes: dict[RecordT, type] = {}
_class_records: dict[type, RecordT] = {}
# Further user classes of a bound record type, in the order they came.
_aliases: dict[RecordT, tuple[type, ...]] = {}
# Every user class of a record type, as one set per type that grows with its
# aliases: compiled code tests membership in it, so code compiled before an
# alias was bound (a machine built when its module was imported) accepts
# the alias's instances too.
_class_sets: dict[RecordT, set[type]] = {}
# Synthesised classes, held weakly (each also names its type, see _SYNTH).
_synthesised: dict[RecordT, weakref.ref[type]] = {}
_enum_classes: dict[VariantT, type[enum.Enum]] = {}
_enum_variants: dict[type[enum.Enum], VariantT] = {}
_epoch = [0]
_lock = threading.RLock()
_reclaimers: list[Callable[[], None]] = []
#: The class attribute naming a synthesised class's record type: its
#: instances are recognised even after a user's class replaced it.
_SYNTH: Final = "_arrowloop_record"


def bindings_count() -> int:
    """How many record and enum types have a class bound (dead synthesised
    classes not yet collected included)."""
    return len(_record_classes) + len(_synthesised) + len(_enum_classes)


def on_reclaim(hook: Callable[[], None]) -> None:
    """Call ``hook`` when the binding table is reclaimed: a cache above this
    layer that keeps classes alive (compiled code) lets go of them."""
    _reclaimers.append(hook)


def reclaim_bindings() -> int:
    """Drop the bindings of synthesised classes nothing uses any more.

    Runs the :func:`on_reclaim` hooks, then a garbage collection (classes
    live in reference cycles). Returns the number of bindings left.
    """
    with _lock:
        for hook in _reclaimers:
            hook()
        gc.collect()
        return bindings_count()


def _room() -> None:
    if bindings_count() < MAX_BINDINGS:
        return
    if reclaim_bindings() < MAX_BINDINGS:
        return
    raise TypeDefinitionError(
        f"expected at most {MAX_BINDINGS} distinct record/enum types in use in one process, "
        "found more (the class binding table is full)",
        expected=f"<= {MAX_BINDINGS} bindings",
        found="table full",
    )


def bindings_epoch() -> int:
    """A counter bumped whenever a binding changes which class represents a type.

    Compiled code bakes classes in, so caches of compiled code key on it.
    """
    return _epoch[0]


def _conflict(t: object, old: type, new: type) -> TypeDefinitionError:
    return TypeDefinitionError(
        f"the type {t!r} is already represented by {old.__module__}.{old.__qualname__}; "
        f"{new.__module__}.{new.__qualname__} has the same name and fields. Give one of "
        "them another name (two enum classes cannot share one arrowloop type)",
        expected="one class per enum type",
        found=f"{new.__module__}.{new.__qualname__}",
    )


def bind_record(cls: type, t: RecordT) -> None:
    """Bind the attrs class ``cls`` to the record type ``t``.

    A class synthesised for ``t`` earlier (for data received before the
    user's class was known) is replaced; its instances stay valid. When a
    user class is bound to ``t`` already, ``cls`` becomes an alias: its
    instances are values of ``t`` too (compiled code recognises both), and
    values built by programs stay instances of the first class.
    """
    if _class_records.get(cls) == t:
        return
    with _lock:
        old = _record_classes.get(t)
        if old is not None:
            # One type object for both classes: values meet it by identity.
            _class_records[cls] = _class_records.get(old, t)
            _aliases[t] = (*_aliases.get(t, ()), cls)
            _class_sets[t].add(cls)
            _epoch[0] += 1
            return
        _room()
        _class_records[cls] = t
        _record_classes[t] = cls
        _class_sets[t] = {cls}
        if _synthesised.pop(t, None) is not None:
            _epoch[0] += 1


def bind_enum(cls: type[enum.Enum], t: VariantT) -> None:
    """Bind the enum class ``cls`` to the variant type ``t`` (unit cases).

    Raises:
        TypeDefinitionError: another enum class is already bound to ``t``.
    """
    if _enum_variants.get(cls) == t:
        return
    with _lock:
        old = _enum_classes.get(t)
        if old is not None:
            raise _conflict(t, old, cls)
        _room()
        _enum_variants[cls] = t
        _enum_classes[t] = cls
        _epoch[0] += 1


def record_class(t: RecordT) -> type:
    """The class whose instances represent values of ``t`` (synthesised if unbound)."""
    cls = _record_classes.get(t)
    if cls is not None:
        return cls
    ref = _synthesised.get(t)
    cls = None if ref is None else ref()
    if cls is not None:
        return cls
    with _lock:
        return _synthesise(t)


def record_classes(t: RecordT) -> tuple[type, ...]:
    """Every user class of ``t``: :func:`record_class` first, then its aliases."""
    return (record_class(t), *_aliases.get(t, ()))


def user_classes(t: RecordT) -> set[type] | None:
    """The live set of ``t``'s user classes (aliases are added to it as they
    are bound), or ``None`` while no user class represents ``t``."""
    return _class_sets.get(t)


def _synthesise(t: RecordT) -> type:
    # Looked up again under the lock: another thread may have made it.
    cls = _record_classes.get(t)
    if cls is not None:
        return cls
    ref = _synthesised.get(t)
    cls = None if ref is None else ref()
    if cls is not None:
        return cls
    _room()
    # Explicit aliases: attrs would otherwise name the __init__ parameters
    # after the fields with leading underscores stripped, so fields such
    # as ``self``, ``_`` or both ``_a`` and ``a`` (all valid field names)
    # would break the generated __init__. Values are always built
    # positionally, so the parameter names are never seen.
    made = attrs.make_class(
        t.name,
        {name: attrs.field(alias=f"f{i}") for i, (name, _) in enumerate(t.fields)},
        frozen=True,
        slots=True,
    )
    made.__module__ = "arrowloop.typesys.synthesised"
    setattr(made, _SYNTH, t)

    def gone(ref: weakref.ref[type], t: RecordT = t) -> None:
        # Called when the class is collected; a newer class may hold the slot.
        if _synthesised.get(t) is ref:
            del _synthesised[t]

    _synthesised[t] = weakref.ref(made, gone)
    return made


def bound_record_type(t: RecordT) -> RecordT:
    """The record type object a class is bound with if it equals ``t``,
    else ``t``: a decoder returns it so that values checked against a
    received type meet their class's own type object (compared by identity
    at once, where an equal copy is compared node by node)."""
    cls = _record_classes.get(t)
    if cls is None:
        ref = _synthesised.get(t)
        cls = None if ref is None else ref()
    if cls is None:
        return t
    bound = record_type_of_class(cls)
    return t if bound is None else bound


def record_type_of_class(cls: type) -> RecordT | None:
    """The record type bound to ``cls``, if any."""
    rt = _class_records.get(cls)
    if rt is None:
        rt = cls.__dict__.get(_SYNTH)
    return rt


def enum_class(t: VariantT) -> type[enum.Enum] | None:
    """The enum class bound to the variant ``t``, if any."""
    return _enum_classes.get(t)


@attrs.frozen(slots=True)
class CaseRepr:
    """How one case of a variant is represented.

    ``how`` is ``"record"`` (the value is an instance of ``cls``, or of
    another of ``classes``, its aliases included), ``"enum"`` (the value is
    ``member``), ``"plain"`` (the value is the payload, an instance of
    ``cls``: ``int``, ``str``, ``list``, ...) or ``"tagged"`` (a
    :class:`Tagged`).
    """

    how: str
    tag: str
    cls: type | None = None
    member: enum.Enum | None = None
    classes: tuple[type, ...] = ()
    live: set[type] | None = attrs.field(default=None, eq=False)


def case_repr(t: VariantT, tag: str) -> CaseRepr:
    """The representation of case ``tag`` of variant ``t``."""
    payload: Type | None = t.payload(tag)
    if isinstance(payload, RecordT) and payload.name == tag:
        classes = record_classes(payload)
        live = user_classes(payload)
        return CaseRepr("record", tag, cls=classes[0], classes=classes, live=live)
    if isinstance(payload, UnitT):
        ecls = enum_class(t)
        if ecls is not None:
            return CaseRepr("enum", tag, member=ecls[tag])
    plain = PLAIN_CASES.get(tag)
    if plain is not None and isinstance(payload, plain[1]):
        return CaseRepr("plain", tag, cls=plain[0], classes=(plain[0],))
    return CaseRepr("tagged", tag)


def tag_and_payload(value: object) -> tuple[str, object]:
    """The tag and payload of a variant value (used by the interpreter).

    Raises:
        TypeError: when ``value`` is not a variant value.
    """
    if type(value) is Tagged:
        return value.tag, value.value
    if isinstance(value, enum.Enum):
        return value.name, None
    plain = _PLAIN_TAGS.get(type(value))
    if plain is not None:
        return plain, value
    rt = record_type_of_class(type(value))
    if rt is not None:
        return rt.name, value
    raise TypeError(f"expected a variant value, found {type(value).__name__}")
