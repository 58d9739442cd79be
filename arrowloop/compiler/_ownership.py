"""Ownership: when generated code may update a list or a dict in place.

The arrow language has value semantics: ``map_put`` and ``append`` return
new containers. Copying a 10^5-key dict per item is not acceptable, so the
code generator updates a container in place when no one can tell the
difference: when the container is *owned* (not shared with anything outside
the step: not the caller's input, not a constant, not the state of a caller
who keeps it) and *unique* at that point (no value still to be used refers
to it). Everything else is copied, the first time it is updated.

The generator describes each value it holds by an :data:`Info`, a shape that
follows the value's type down to its lists and dicts:

- :class:`Leaf`: a list or dict. ``locs`` names the objects it may be (two
  values with a loc in common may be the same object), ``owned`` says it is
  not shared outside the step, ``old`` that it belongs to the state the step
  was given (its in-place writes are logged, so a failing step can be undone),
  and ``elem`` describes its elements.
- :class:`Struct`: a tuple or record, one info per component.
- :class:`Blob`: a summary of everything mutable inside a value whose shape
  is not followed (variants), or of a value the generator knows nothing about.
- ``None``: a value with no list or dict inside (nothing to update).

Liveness is tracked by the generator (see ``_Gen.live`` in _codegen): a
multiset of the locs of every value that is still to be used, pushed when a
``fanout`` or ``split`` holds siblings' results or will give its input to a
later sibling, and when an ``if`` will give its input to a branch. An update
is in place only when the container's locs are not live.

The step of a stage runs in *owned* mode: its state is owned (the stage never
lets anyone else hold it: :meth:`Machine.owned_step` documents the contract),
its writes to old containers are logged, and a state that ends the step
shared with its output or with itself is copied before it is returned.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final

import attrs

from arrowloop.arrows import (
    Compose,
    Const,
    Fanout,
    GetField,
    Id,
    MakeRecord,
    Proj,
    SetField,
    Split,
)
from arrowloop.check import Typed
from arrowloop.typesys import (
    ListT,
    MapT,
    OptionT,
    RecordT,
    SetT,
    Tagged,
    TupleT,
    Type,
    VariantT,
    case_repr,
    index_of,
    record_class,
)

__all__ = [
    "Leaf",
    "Struct",
    "Blob",
    "Info",
    "TOP",
    "mutable",
    "fresh",
    "merge",
    "locs_of",
    "component",
    "elements",
    "summary",
    "deep_owned",
    "any_old",
    "places",
    "self_aliased",
    "copier",
    "undo",
    "Demand",
    "NOTHING",
    "needs",
    "used_locs",
    "demand_item",
    "demand_union",
    "demand_key",
    "container",
    "disjoint",
    "UNKNOWN",
    "MISSING",
    "APPEND",
    "POP",
    "SET_ADD",
    "SET_DISCARD",
    "REMOVED_AT",
    "INSERTED_AT",
    "pop_at",
    "del_at",
    "remove_at",
    "insert_at",
]

#: A loc that stands for "anything": a value the generator knows nothing
#: about. Live, it forbids every in-place update.
TOP: Final = -1


@attrs.frozen
class Leaf:
    """A list, dict or set (see the module docstring); a set's ``elem`` is
    ``None``, its items being immutable."""

    locs: frozenset[int]
    owned: bool
    old: bool
    elem: Info


@attrs.frozen
class Struct:
    """A tuple or record: one info per component."""

    items: tuple[Info, ...]


@attrs.frozen
class Blob:
    """Everything mutable inside a value, summarised."""

    locs: frozenset[int]
    owned: bool
    old: bool


Info = Leaf | Struct | Blob | None

#: The info of a value nothing is known of.
UNKNOWN: Final = Blob(frozenset({TOP}), owned=False, old=False)


@functools.lru_cache(maxsize=4096)
def mutable(t: Type) -> bool:
    """Whether values of ``t`` may hold a list, a dict or a set."""
    if isinstance(t, ListT | MapT | SetT):
        return True
    if isinstance(t, TupleT):
        return any(mutable(x) for x in t.items)
    if isinstance(t, RecordT):
        return any(mutable(x) for _, x in t.fields)
    if isinstance(t, OptionT):
        return mutable(t.item)
    if isinstance(t, VariantT):
        return any(p is not None and mutable(p) for _, p in t.cases)
    return False


def fresh(t: Type, owned: bool, old: bool, new_loc: Callable[[], int]) -> Info:
    """The info of a value of type ``t`` whose containers are all distinct
    objects, shared with nothing else in the step."""
    if not mutable(t):
        return None
    if isinstance(t, ListT):
        return Leaf(frozenset({new_loc()}), owned, old, fresh(t.item, owned, old, new_loc))
    if isinstance(t, MapT):
        return Leaf(frozenset({new_loc()}), owned, old, fresh(t.value, owned, old, new_loc))
    if isinstance(t, SetT):
        return Leaf(frozenset({new_loc()}), owned, old, None)  # items are immutable
    if isinstance(t, TupleT):
        return Struct(tuple(fresh(x, owned, old, new_loc) for x in t.items))
    if isinstance(t, RecordT):
        return Struct(tuple(fresh(x, owned, old, new_loc) for _, x in t.fields))
    if isinstance(t, OptionT):
        return fresh(t.item, owned, old, new_loc)
    return Blob(frozenset({new_loc()}), owned, old)


def places(info: Info) -> Iterator[Leaf | Blob]:
    """Each list or dict described inside a value (a blob counting as one)."""
    stack = [info]
    while stack:
        i = stack.pop()
        if i is None:
            continue
        if isinstance(i, Struct):
            stack.extend(i.items)
            continue
        yield i
        if isinstance(i, Leaf):
            stack.append(i.elem)


def locs_of(info: Info) -> frozenset[int]:
    """Every loc of every container inside a value."""
    out: set[int] = set()
    for i in places(info):
        out |= i.locs
    return frozenset(out)


def summary(info: Info) -> Info:
    """``info`` as a :class:`Blob` (``None`` stays ``None``)."""
    if info is None or isinstance(info, Blob):
        return info
    return Blob(locs_of(info), deep_owned(info), any_old(info))


def any_old(info: Info) -> bool:
    """Whether some container inside a value belongs to the step's state."""
    return any(i.old for i in places(info))


def deep_owned(info: Info) -> bool:
    """Whether no container inside a value is shared outside the step."""
    return all(i.owned for i in places(info))


def self_aliased(info: Info) -> bool:
    """Whether two places inside a value may hold the same container."""
    seen: set[int] = set()
    for i in places(info):
        if i.locs & seen:
            return True
        seen |= i.locs
    return False


def merge(a: Info, b: Info) -> Info:
    """What is known of a value that is either ``a`` or ``b``."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, Struct) and isinstance(b, Struct) and len(a.items) == len(b.items):
        return Struct(tuple(merge(x, y) for x, y in zip(a.items, b.items, strict=True)))
    if isinstance(a, Leaf) and isinstance(b, Leaf):
        return Leaf(a.locs | b.locs, a.owned and b.owned, a.old or b.old, merge(a.elem, b.elem))
    sa, sb = summary(a), summary(b)
    assert isinstance(sa, Blob)
    assert isinstance(sb, Blob)
    return Blob(sa.locs | sb.locs, sa.owned and sb.owned, sa.old or sb.old)


def component(info: Info, i: int) -> Info:
    """The info of component ``i`` of a tuple or record."""
    if info is None:
        return None
    if isinstance(info, Struct):
        return info.items[i] if i < len(info.items) else UNKNOWN
    if isinstance(info, Blob):
        return info
    return UNKNOWN


def elements(info: Info) -> Info:
    """The info of the elements of a list or dict."""
    if info is None:
        return None
    if isinstance(info, Leaf):
        return info.elem
    if isinstance(info, Blob):
        return info
    return UNKNOWN


def container(info: Info) -> Leaf:
    """``info`` seen as a list or dict (a blob stands for any)."""
    if isinstance(info, Leaf):
        return info
    if isinstance(info, Blob):
        return Leaf(info.locs, info.owned, info.old, info)
    return Leaf(frozenset({TOP}), False, False, UNKNOWN)


# -- copies ------------------------------------------------------------------


def _identity(x: Any) -> Any:
    return x


@functools.lru_cache(maxsize=1024)
def copier(t: Type) -> Callable[[Any], Any]:
    """A function copying every list and dict inside a value of ``t`` (the
    rest is immutable, so it is shared)."""
    if not mutable(t):
        return _identity
    if isinstance(t, ListT):
        if not mutable(t.item):
            return list
        each = copier(t.item)
        return lambda xs: [each(x) for x in xs]
    if isinstance(t, SetT):
        return set  # items are hashable, hence immutable
    if isinstance(t, MapT):
        if not mutable(t.value):
            return dict
        each_v = copier(t.value)
        return lambda d: {k: each_v(v) for k, v in d.items()}
    if isinstance(t, OptionT):
        inner = copier(t.item)
        return lambda x: None if x is None else inner(x)
    if isinstance(t, TupleT):
        parts = tuple(copier(x) for x in t.items)
        return lambda xs: tuple(p(x) for p, x in zip(parts, xs, strict=True))
    if isinstance(t, RecordT):
        return _record_copier(t)
    assert isinstance(t, VariantT)
    return _variant_copier(t)


def _record_copier(t: RecordT) -> Callable[[Any], Any]:
    cls = record_class(t)
    fields = [(operator.attrgetter(name), copier(ft)) for name, ft in t.fields]

    def copy(r: Any) -> Any:
        return cls(*[c(g(r)) for g, c in fields])

    return copy


def _variant_copier(t: VariantT) -> Callable[[Any], Any]:
    by_class: dict[type, Callable[[Any], Any]] = {}
    by_tag: dict[str, Callable[[Any], Any]] = {}
    for tag, payload in t.cases:
        rep = case_repr(t, tag)
        if payload is None or not mutable(payload):
            continue
        if rep.how in ("record", "plain"):
            assert rep.cls is not None
            by_class[rep.cls] = copier(payload)
        elif rep.how == "tagged":
            by_tag[tag] = copier(payload)

    def copy(v: Any) -> Any:
        c = by_class.get(type(v))
        if c is not None:
            return c(v)
        if type(v) is Tagged:
            p = by_tag.get(v.tag)
            if p is not None:
                return Tagged(v.tag, p(v.value))
        return v

    return copy


# -- the undo log --------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


#: In the undo log: the key was absent before the write.
MISSING: Final = _Missing()
#: In the undo log, in the key's place: an ``append`` (undone by ``pop``).
APPEND: Final = _Missing()
#: In the undo log, in the key's place: a ``pop`` of the last item (undone
#: by appending the old value back).
POP: Final = _Missing()
#: In the undo log, in the key's place: ``old`` was added to a set (it was
#: not there before), undone by discarding it.
SET_ADD: Final = _Missing()
#: In the undo log, in the key's place: ``old`` was taken out of a set,
#: undone by adding it back.
SET_DISCARD: Final = _Missing()


#: In the undo log, in the key's place: ``old`` is ``(index, item)``, an
#: item taken out of a list at that index (``xs.pop(i)``, ``xs.remove(x)``),
#: undone by inserting it back there.
REMOVED_AT: Final = _Missing()
#: In the undo log, in the key's place: ``old`` is the index at which an
#: item was inserted (``xs.insert(i, x)``), undone by deleting it.
INSERTED_AT: Final = _Missing()


def pop_at(xs: list[Any], i: int) -> tuple[int, Any]:
    """``xs.pop(i)`` in place; returns the index it had (from the start) and
    the item, for the undo log. Raises as Python's ``pop`` does."""
    n = len(xs)
    item = xs.pop(i)
    return (i + n if i < 0 else i), item


def del_at(xs: list[Any], i: int) -> tuple[int, Any]:
    """``del xs[i]`` in place; returns the index it had (from the start) and
    the item, for the undo log. Raises as Python's ``del`` does."""
    n = len(xs)
    j = i + n if i < 0 else i
    if not 0 <= j < n:
        raise IndexError("list assignment index out of range")
    return j, xs.pop(j)


def remove_at(xs: list[Any], x: Any) -> tuple[int, Any]:
    """``xs.remove(x)`` in place (equality as ``list_has``: IEEE on floats);
    returns the index and the item removed, for the undo log."""
    j = index_of(xs, x)
    if j < 0:
        raise ValueError("list.remove(x): x not in list")
    return j, xs.pop(j)


def insert_at(xs: list[Any], i: int, x: Any) -> int:
    """``xs.insert(i, x)`` in place; returns the index ``x`` got (Python
    clamps ``i`` to the list), for the undo log."""
    n = len(xs)
    j = max(0, i + n) if i < 0 else min(i, n)
    xs.insert(j, x)
    return j


def undo(log: list[tuple[Any, Any, Any]], mark: int) -> None:
    """Undo the writes logged from ``mark`` on, newest first, and forget them.

    An entry is ``(container, key, old)``: ``old`` was the value at ``key``
    (:data:`MISSING` if there was none), or ``key`` is :data:`APPEND`, or
    :data:`POP` (``old`` was the last item), or :data:`SET_ADD` /
    :data:`SET_DISCARD` (``old`` is the item added to / taken out of a set),
    or :data:`REMOVED_AT` / :data:`INSERTED_AT` (a list item taken out or
    put in at an index).
    """
    for c, k, old in reversed(log[mark:]):
        if k is APPEND:
            c.pop()
        elif k is POP:
            c.append(old)
        elif k is SET_ADD:
            c.discard(old)
        elif k is SET_DISCARD:
            c.add(old)
        elif k is REMOVED_AT:
            c.insert(old[0], old[1])
        elif k is INSERTED_AT:
            del c[old]
        elif old is MISSING:
            c.pop(k, None)
        else:
            c[k] = old
    del log[mark:]


def disjoint(a: Iterable[int], live: Any) -> bool:
    """Whether no loc of ``a`` is in ``live`` (a multiset), and nothing
    unknown is live."""
    if live.get(TOP):
        return False
    return not any(live.get(x) for x in a)


# -- what is used of a value later ---------------------------------------------

#: How deep :func:`needs` follows routing nodes before assuming the worst.
_MAX_ROUTE_DEPTH: Final = 32

#: Which parts of a value are used: ``None`` for all of it, else a dict from
#: component index (of a tuple or record) to what is used of that component
#: (an empty dict: nothing).
Demand = dict[int, "Demand"] | None

NOTHING: Final[Demand] = {}


def demand_union(a: Demand, b: Demand) -> Demand:
    """What is used when ``a`` and ``b`` are."""
    if a is None or b is None:
        return None
    out = dict(a)
    for k, v in b.items():
        out[k] = demand_union(out[k], v) if k in out else v
    return out


def demand_item(d: Demand, i: int) -> Demand:
    """What is used of component ``i``."""
    return None if d is None else d.get(i, NOTHING)


def _field_index(t: Typed, name: str) -> int | None:
    rt = t.input
    if isinstance(rt, TupleT) and rt.items:
        rt = rt.items[0]  # SetField: (record, value)
    if isinstance(rt, RecordT):
        for i, (f, _) in enumerate(rt.fields):
            if f == name:
                return i
    return None


def demand_key(d: Demand) -> Any:
    """A hashable form of ``d``."""
    if d is None:
        return None
    return tuple(sorted((k, demand_key(v)) for k, v in d.items()))


def needs(
    t: Typed,
    d: Demand,
    depth: int = 0,
    memo: dict[tuple[int, Any], tuple[Typed, Demand]] | None = None,
) -> Demand:
    """What running ``t`` uses of its input, when ``d`` is what is used of
    its output. Nodes that only move values around (ids, projections, field
    reads, tuples of them) use only what is used of what they move; any
    other node reads all of its input, whether its output is used or not
    (it may raise)."""
    # Programs share sub-programs (a fanout of one node n levels deep has
    # 2^n paths to it): remember what each node needs for each demand.
    if memo is None:
        memo = {}
    key = (id(t), demand_key(d))
    known = memo.get(key)
    if known is not None:
        return known[1]
    out = _needs(t, d, depth, memo)
    memo[key] = (t, out)
    return out


def _needs(
    t: Typed, d: Demand, depth: int, memo: dict[tuple[int, Any], tuple[Typed, Demand]]
) -> Demand:
    node = t.node
    if depth > _MAX_ROUTE_DEPTH:
        return None
    if isinstance(node, Const):
        return NOTHING
    if isinstance(node, Id):
        return d
    if isinstance(node, Proj):
        return {node.index: d}
    if isinstance(node, GetField):
        i = _field_index(t, node.field)
        return None if i is None else {i: d}
    if isinstance(node, Fanout):
        out: Demand = NOTHING
        for j, k in enumerate(t.children):
            out = demand_union(out, needs(k, demand_item(d, j), depth + 1, memo))
            if out is None:
                return None
        return out
    if isinstance(node, Split):
        return {j: needs(k, demand_item(d, j), depth + 1, memo) for j, k in enumerate(t.children)}
    if isinstance(node, Compose):
        for k in reversed(t.children):
            d = needs(k, d, depth + 1, memo)
        return d
    if isinstance(node, SetField):
        # (record, value) -> record: the value becomes the field, the other
        # fields stay; the old field is not used.
        rt = t.output
        if isinstance(rt, RecordT):
            i = _field_index(t, node.field)
            if i is not None:
                kept = {j: demand_item(d, j) for j in range(len(rt.fields)) if j != i}
                return {0: kept, 1: demand_item(d, i)}
        return None
    if isinstance(node, MakeRecord):
        n = len(node.record.fields) if isinstance(node.record, RecordT) else -1
        if n == 0:
            return NOTHING
        if n == 1:
            return demand_item(d, 0)
        if n > 1:
            return {j: demand_item(d, j) for j in range(n)}
        return None
    return None


def used_locs(info: Info, d: Demand) -> frozenset[int]:
    """The locs of the parts of a value that ``d`` says are used."""
    if info is None:
        return frozenset()
    if d is None or not isinstance(info, Struct):
        return locs_of(info) if d is None or d else frozenset()
    out: frozenset[int] = frozenset()
    for i, sub in d.items():
        out |= used_locs(component(info, i), sub)
    return out
