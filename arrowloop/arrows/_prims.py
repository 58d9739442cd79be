"""The registry of named primitives.

A program refers to primitives by name only; the registry maps the name to
one or more typed signatures (overloads, picked by the checker from the
input type), each with a Python function and optionally an operator template
that the code generator inlines (``({0} + {1})``). Templates are written by
this project, never received: they only ever receive generated variable
names. Users add pure functions with :func:`primitive`.
"""

from __future__ import annotations

import inspect
import operator
import re
import typing
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Final

import attrs

from arrowloop.errors import TypeDefinitionError
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    ListT,
    MapT,
    OptionT,
    SetT,
    TupleT,
    TVar,
    Type,
    TypeLike,
    from_annotation,
    identity_blind,
    index_of,
    sorted_keys,
    values_equal,
)

__all__ = ["Signature", "Primitive", "Registry", "PRIMITIVES", "primitive", "MAX_PRIMITIVES"]

MAX_PRIMITIVES: Final = 10_000


_PRIM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]{0,63}\Z")


def _check_prim_name(name: str) -> None:
    # Primitive names are looked up, never pasted into code, so keywords such
    # as ``and``/``not`` are fine; dots allow namespaces (``mylib.clamp``).
    if not isinstance(name, str) or not _PRIM_NAME.match(name):
        raise TypeDefinitionError(
            f"expected a primitive name of letters, digits, '_' and '.', found {name!r:.80}",
            expected="primitive name",
            found=repr(name)[:80],
        )


@attrs.frozen
class Signature:
    """One overload: ``input -> output`` (may mention type variables).

    ``fn`` takes the components of a tuple input as positional arguments,
    or the whole input as one argument otherwise. ``template``, if given, is
    a format string over the same arguments that the compiler inlines, for
    the input types ``inline`` accepts (all when it is ``None``); ``fn`` is
    called for the others.

    ``update`` and ``result`` tell the compiler what it may assume, for
    updating lists and dicts in place (compiler/_ownership.py); only the
    built-in primitives set them. ``update`` (``"put"``, ``"remove"``,
    ``"append"``, ``"set"``, ``"pop"``, ``"pop_at"``, ``"del_at"``, ``"remove_item"``,
    ``"entry_append"``, ``"entry_append_or"``, ``"entry_add"``, ``"entry_add_or"``,
    ``"insert"``, ``"take"``, ``"take_or"``, and for
    sets ``"add"``, ``"discard"``, ``"discard_or_raise"``) marks a
    primitive returning its first argument with one change (the compiler
    then makes the change itself). ``result`` says what
    the output may share with the input: ``"fresh"`` (a new container whose
    elements may be the inputs' elements), ``"element"`` (an element of the
    first argument, or None), ``"same"`` (the first argument itself),
    ``"either"`` (the first or the second argument). ``None`` means nothing
    is known, and the output is treated as shared.
    """

    input: Type
    output: Type
    fn: Callable[..., Any] = attrs.field(eq=False)
    template: str | None = None
    inline: Callable[[Type], bool] | None = attrs.field(default=None, eq=False)
    update: str | None = None
    result: str | None = None

    def inlines(self, input: Type) -> bool:
        """Whether the compiler may paste ``template`` for this (resolved) input type."""
        return self.template is not None and (self.inline is None or self.inline(input))

    @property
    def arity(self) -> int:
        """How many positional arguments ``fn`` takes."""
        return len(self.input.items) if isinstance(self.input, TupleT) else 1


@attrs.frozen
class Primitive:
    """A named primitive and its overloads (tried in order)."""

    name: str
    signatures: tuple[Signature, ...]
    doc: str = ""


class Registry:
    """A bounded table of primitives by name.

    ``families`` maps a name prefix to a function resolving the names of
    that form (``format:>5``) to a primitive made on demand, for primitives
    with a constant parameter that is part of the name (``_strprims.py``).
    """

    families: ClassVar[dict[str, Callable[[str], Primitive | None]]] = {}

    def __init__(self) -> None:
        self._prims: dict[str, Primitive] = {}

    def register(
        self,
        name: str,
        input: TypeLike,
        output: TypeLike,
        fn: Callable[..., Any],
        *,
        template: str | None = None,
        inline: Callable[[Type], bool] | None = None,
        doc: str = "",
        update: str | None = None,
        result: str | None = None,
    ) -> Primitive:
        """Add an overload of ``name``; returns the updated primitive.

        Raises:
            TypeDefinitionError: bad name or types.
            ValueError: an overload with the same input type exists, or the
                registry is full.
        """
        _check_prim_name(name)
        sig = Signature(
            from_annotation(input),
            from_annotation(output),
            fn,
            template,
            inline,
            update,
            result,
        )
        old = self._prims.get(name)
        if old is None and len(self._prims) >= MAX_PRIMITIVES:
            raise ValueError(f"the primitive registry is full ({MAX_PRIMITIVES} names)")
        if old is not None and any(s.input == sig.input for s in old.signatures):
            raise ValueError(f"primitive {name!r} already has an overload for {sig.input!r}")
        prim = Primitive(
            name, (*(old.signatures if old else ()), sig), doc or (old.doc if old else "")
        )
        self._prims[name] = prim
        return prim

    def get(self, name: str) -> Primitive | None:
        """The primitive called ``name``, or ``None``."""
        found = self._prims.get(name)
        if found is None and ":" in name:
            family = self.families.get(name[: name.index(":") + 1])
            found = None if family is None else family(name)
        return found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[Primitive]:
        return iter(list(self._prims.values()))

    def __len__(self) -> int:
        return len(self._prims)


#: The process-wide registry that programs are checked and compiled against.
PRIMITIVES: Final = Registry()

_A = TVar(0)
_B = TVar(2)
#: The key type of map primitives and the item type of set primitives.
_K = TVar(1)


def _pair(a: Type, b: Type) -> TupleT:
    return TupleT((a, b))


def _unwrap(value: Any) -> Any:
    if value is None:
        raise ValueError("unwrap of None: expected a value, found None")
    return value


def _list_set(xs: list[Any], i: int, v: Any) -> list[Any]:
    out = list(xs)
    out[i] = v
    return out


def _map_take(d: dict[str, Any], k: str) -> tuple[dict[str, Any], Any]:
    # The entry is lent, not removed: putting it back (map_put) then keeps
    # the key where it was in the dict's order, as Python's d[k].append(x).
    return d, d[k]


def _map_take_or(d: dict[str, Any], k: str, default: Any) -> tuple[dict[str, Any], Any]:
    return d, d.get(k, default)


def _set_remove(s: set[Any], x: Any) -> set[Any]:
    if x not in s:
        raise KeyError(x)
    return s - {x}


def _last(xs: list[Any]) -> Any:
    if not xs:
        raise IndexError("pop from empty list")
    return xs[-1]


def _drop_last(xs: list[Any]) -> list[Any]:
    if not xs:
        raise IndexError("pop from empty list")
    return xs[:-1]


def _pop_item(xs: list[Any], i: int) -> Any:
    # The item xs.pop(i) returns, with its errors (read before the change).
    if not xs:
        raise IndexError("pop from empty list")
    if not -len(xs) <= i < len(xs):
        raise IndexError("pop index out of range")
    return xs[i]


def _list_pop_at(xs: list[Any], i: int) -> list[Any]:
    out = list(xs)
    out.pop(i)
    return out


def _map_append(d: dict[Any, Any], k: Any, x: Any) -> dict[Any, Any]:
    return {**d, k: [*d[k], x]}


def _map_append_or(d: dict[Any, Any], k: Any, default: list[Any], x: Any) -> dict[Any, Any]:
    return {**d, k: [*d.get(k, default), x]}


def _map_add(d: dict[Any, Any], k: Any, x: Any) -> dict[Any, Any]:
    return {**d, k: d[k] | {x}}


def _map_add_or(d: dict[Any, Any], k: Any, default: set[Any], x: Any) -> dict[Any, Any]:
    return {**d, k: d.get(k, default) | {x}}


def _list_del_at(xs: list[Any], i: int) -> list[Any]:
    out = list(xs)
    del out[i]
    return out


def _list_remove(xs: list[Any], x: Any) -> list[Any]:
    j = index_of(xs, x)
    if j < 0:
        raise ValueError("list.remove(x): x not in list")
    return [*xs[:j], *xs[j + 1 :]]


def _list_insert(xs: list[Any], i: int, x: Any) -> list[Any]:
    out = list(xs)
    out.insert(i, x)
    return out


def _list_del_slice(xs: list[Any], a: int | None, b: int | None, c: int | None) -> list[Any]:
    out = list(xs)
    del out[a:b:c]
    return out


def _list_set_slice(
    xs: list[Any], a: int | None, b: int | None, c: int | None, ys: list[Any]
) -> list[Any]:
    out = list(xs)
    out[a:b:c] = ys
    return out


def _int_of_float(x: float) -> int:
    return int(x)


def _sum_floats(xs: list[float]) -> float:
    """The sum of ``xs`` as a left fold from ``0.0``: ``((0.0 + x0) + x1) + ...``.

    Pinned so that a machine computes the same on every Python it may run
    on: Python 3.12 made the builtin ``sum`` of floats compensated
    (``sum([0.1] * 10)`` is ``1.0`` there, ``0.9999999999999999`` on 3.11).
    A left fold is what Python 3.11's ``sum`` and a ``for`` loop with a float
    accumulator compute, costs one addition per item, and never raises
    (``math.fsum`` raises on ``inf + -inf`` and on intermediate overflow).
    """
    total = 0.0
    for x in xs:
        total += x
    return total


def _range(start: int, stop: int, step: int) -> list[int]:
    # range() raises ValueError on a step of 0, as the Python loop would.
    return list(range(start, stop, step))


def _min_of(xs: list[Any]) -> Any:
    return min(xs)  # ValueError on an empty list, as Python's min


def _max_of(xs: list[Any]) -> Any:
    return max(xs)


def _first(pair: tuple[Any, Any]) -> Any:
    return pair[0]


def _min_by(pairs: list[tuple[Any, Any]]) -> Any:
    # The first item with the smallest key, as min(xs, key=f).
    return min(pairs, key=_first)[1]


def _max_by(pairs: list[tuple[Any, Any]]) -> Any:
    return max(pairs, key=_first)[1]


def _sort_by(pairs: list[tuple[Any, Any]], reverse: bool) -> list[Any]:
    # Keys only are compared (stable), as sorted(xs, key=f, reverse=r).
    return [x for _, x in sorted(pairs, key=_first, reverse=reverse)]


def _sort(xs: list[Any], reverse: bool) -> list[Any]:
    return sorted(xs, reverse=reverse)


def _round_to(x: float, n: int) -> float:
    return float(round(x, n))


def _round_int_to(x: int, n: int) -> int:
    return round(x, n)


def _values_differ(x: Any, y: Any) -> bool:
    return not values_equal(x, y)


def _identity_blind_pair(input: Type) -> bool:
    return isinstance(input, TupleT) and identity_blind(input.items[0])


def _float_min(x: float, y: float) -> float:
    return float(min(x, y))


def _float_max(x: float, y: float) -> float:
    return float(max(x, y))


def _install_builtins(r: Registry) -> None:
    reg = r.register
    nums = ((INT, INT, INT), (FLOAT, FLOAT, FLOAT), (INT, FLOAT, FLOAT), (FLOAT, INT, FLOAT))
    for a, b, out in nums:
        reg("add", _pair(a, b), out, lambda x, y: x + y, template="({0} + {1})", doc="a + b")
        reg("sub", _pair(a, b), out, lambda x, y: x - y, template="({0} - {1})", doc="a - b")
        reg("mul", _pair(a, b), out, lambda x, y: x * y, template="({0} * {1})", doc="a * b")
        reg(
            "floordiv", _pair(a, b), out, lambda x, y: x // y, template="({0} // {1})", doc="a // b"
        )
        reg("mod", _pair(a, b), out, lambda x, y: x % y, template="({0} % {1})", doc="a % b")
        reg("div", _pair(a, b), FLOAT, lambda x, y: x / y, template="({0} / {1})", doc="a / b")
        # min(1, 2.0) is the int 1: mixed overloads convert to their float output.
        lo, hi = (min, max) if a == b else (_float_min, _float_max)
        reg("min", _pair(a, b), out, lo, doc="the smaller of a and b")
        reg("max", _pair(a, b), out, hi, doc="the larger of a and b")
    reg("add", _pair(STR, STR), STR, lambda x, y: x + y, template="({0} + {1})")
    reg(
        "add",
        _pair(ListT(_A), ListT(_A)),
        ListT(_A),
        lambda x, y: x + y,
        template="({0} + {1})",
        result="fresh",
    )
    reg("min", _pair(STR, STR), STR, min)
    reg("max", _pair(STR, STR), STR, max)
    for t in (INT, FLOAT):
        reg("neg", t, t, lambda x: -x, template="(-{0})", doc="-a")
        reg("abs", t, t, abs, doc="|a|")
    for name, op in (("lt", "<"), ("le", "<="), ("gt", ">"), ("ge", ">=")):
        template = "({0} " + op + " {1})"
        pairs: tuple[tuple[Type, Type], ...] = (
            (INT, INT),
            (FLOAT, FLOAT),
            (STR, STR),
            (INT, FLOAT),
            (FLOAT, INT),
        )
        for x, y in pairs:
            reg(name, _pair(x, y), BOOL, _compare(op), template=template, doc=f"a {op} b")
    # Python's == decides a NaN inside a container by identity, which no
    # value carries (see typesys/_equality.py): IEEE equality at any depth,
    # and the plain operator only where it computes the same.
    for name, fn, op in (("eq", values_equal, "=="), ("ne", _values_differ, "!=")):
        reg(
            name,
            _pair(_A, _A),
            BOOL,
            fn,
            template="({0} " + op + " {1})",
            inline=_identity_blind_pair,
            doc=f"a {op} b (IEEE on floats, inside structures too)",
        )
    reg("and", _pair(BOOL, BOOL), BOOL, lambda x, y: x and y, template="({0} and {1})")
    reg("or", _pair(BOOL, BOOL), BOOL, lambda x, y: x or y, template="({0} or {1})")
    reg("not", BOOL, BOOL, lambda x: not x, template="(not {0})")
    reg("len", STR, INT, len, doc="length of a string, list or map")
    reg("len", ListT(_A), INT, len)
    reg("len", MapT(_A, _K), INT, len)
    reg("upper", STR, STR, str.upper)
    reg("lower", STR, STR, str.lower)
    reg("strip", STR, STR, str.strip)
    reg("startswith", _pair(STR, STR), BOOL, str.startswith)
    reg("endswith", _pair(STR, STR), BOOL, str.endswith)
    reg("contains", _pair(STR, STR), BOOL, lambda s, sub: sub in s, template="({1} in {0})")
    reg("replace", TupleT((STR, STR, STR)), STR, str.replace)
    reg("split", _pair(STR, STR), ListT(STR), str.split, result="fresh")
    reg("join", _pair(STR, ListT(STR)), STR, str.join)
    reg("str_of_int", INT, STR, str)
    reg("str_of_float", FLOAT, STR, repr)
    reg("float_of_int", INT, FLOAT, float)
    reg("int_of_float", FLOAT, INT, _int_of_float, doc="truncates toward zero")
    reg(
        "append",
        _pair(ListT(_A), _A),
        ListT(_A),
        lambda xs, x: [*xs, x],
        template="[*{0}, {1}]",
        update="append",
    )
    reg(
        "item",
        _pair(ListT(_A), INT),
        _A,
        lambda xs, i: xs[i],
        template="{0}[{1}]",
        result="element",
    )
    reg(
        "list_set",
        TupleT((ListT(_A), INT, _A)),
        ListT(_A),
        _list_set,
        update="set",
        doc="xs with item i replaced (Python's xs[i] = v: negative i counts from the end)",
    )
    reg(
        "last",
        ListT(_A),
        _A,
        _last,
        result="element",
        doc="the last item (raises on an empty list, as xs.pop() does)",
    )
    reg(
        "drop_last",
        ListT(_A),
        ListT(_A),
        _drop_last,
        update="pop",
        doc="xs without its last item (raises on an empty list, as xs.pop() does)",
    )
    reg(
        "pop_item",
        _pair(ListT(_A), INT),
        _A,
        _pop_item,
        result="element",
        doc="the item xs.pop(i) returns (raises IndexError as it does)",
    )
    reg(
        "list_pop_at",
        _pair(ListT(_A), INT),
        ListT(_A),
        _list_pop_at,
        update="pop_at",
        doc="xs without item i (Python's xs.pop(i): negative i counts from the end; IndexError)",
    )
    reg(
        "list_del_at",
        _pair(ListT(_A), INT),
        ListT(_A),
        _list_del_at,
        update="del_at",
        doc="xs without item i (Python's del xs[i]: negative i counts from the end; IndexError)",
    )
    reg(
        "list_remove",
        _pair(ListT(_A), _A),
        ListT(_A),
        _list_remove,
        update="remove_item",
        doc="xs without its first item equal to x (Python's xs.remove(x), IEEE on floats as "
        "list_has; ValueError when there is none)",
    )
    reg(
        "list_insert",
        TupleT((ListT(_A), INT, _A)),
        ListT(_A),
        _list_insert,
        update="insert",
        doc="xs with x inserted before index i (Python's xs.insert(i, x): i clamped to the list)",
    )
    bounds = (OptionT(INT), OptionT(INT), OptionT(INT))
    reg(
        "list_del_slice",
        TupleT((ListT(_A), *bounds)),
        ListT(_A),
        _list_del_slice,
        result="fresh",
        doc="xs without the items of xs[a:b:c] (Python's del xs[a:b:c]; None for a missing bound)",
    )
    reg(
        "list_set_slice",
        TupleT((ListT(_A), *bounds, ListT(_A))),
        ListT(_A),
        _list_set_slice,
        result="fresh",
        doc="xs with xs[a:b:c] replaced by ys (Python's xs[a:b:c] = ys; ValueError for an "
        "extended slice of another length)",
    )
    reg(
        "reverse",
        ListT(_A),
        ListT(_A),
        lambda xs: xs[::-1],
        template="{0}[::-1]",
        result="fresh",
    )
    reg("sum", ListT(INT), INT, sum)
    reg("sum", ListT(FLOAT), FLOAT, _sum_floats, doc="a left fold from 0.0 (not compensated)")
    reg("map_get", _pair(MapT(_A, _K), _K), OptionT(_A), lambda d, k: d.get(k), result="element")
    reg(
        "map_put",
        TupleT((MapT(_A, _K), _K, _A)),
        MapT(_A, _K),
        lambda d, k, v: {**d, k: v},
        update="put",
    )
    reg(
        "map_append",
        TupleT((MapT(ListT(_A), _K), _K, _A)),
        MapT(ListT(_A), _K),
        _map_append,
        update="entry_append",
        doc="d with x appended to the list d[k], which keeps its place (Python's "
        "d[k].append(x); KeyError when k is absent)",
    )
    reg(
        "map_append_or",
        TupleT((MapT(ListT(_A), _K), _K, ListT(_A), _A)),
        MapT(ListT(_A), _K),
        _map_append_or,
        update="entry_append_or",
        doc="d with x appended to d[k], or k put in with the default and x (Python's "
        "d.setdefault(k, default).append(x))",
    )
    item = TVar(3)  # the items of a set held in a dict (a key type too)
    reg(
        "map_add",
        TupleT((MapT(SetT(item), _K), _K, item)),
        MapT(SetT(item), _K),
        _map_add,
        update="entry_add",
        doc="d with x added to the set d[k], which keeps its place (Python's d[k].add(x); "
        "KeyError when k is absent)",
    )
    reg(
        "map_add_or",
        TupleT((MapT(SetT(item), _K), _K, SetT(item), item)),
        MapT(SetT(item), _K),
        _map_add_or,
        update="entry_add_or",
        doc="d with x added to d[k], or k put in with the default and x (Python's "
        "d.setdefault(k, default).add(x))",
    )
    reg(
        "map_remove",
        _pair(MapT(_A, _K), _K),
        MapT(_A, _K),
        lambda d, k: {x: v for x, v in d.items() if x != k},
        update="remove",
    )
    reg(
        "map_update",
        _pair(MapT(_A, _K), MapT(_A, _K)),
        MapT(_A, _K),
        lambda d, e: {**d, **e},
        template="{{**{0}, **{1}}}",
        doc="a new dict: d's entries updated with e's ({**d, **e})",
    )
    reg("map_has", _pair(MapT(_A, _K), _K), BOOL, lambda d, k: k in d, template="({1} in {0})")
    reg(
        "map_at",
        _pair(MapT(_A, _K), _K),
        _A,
        lambda d, k: d[k],
        template="{0}[{1}]",
        result="element",
        doc="d[k] (raises KeyError when k is absent)",
    )
    reg(
        "map_take",
        _pair(MapT(_A, _K), _K),
        _pair(MapT(_A, _K), _A),
        _map_take,
        update="take",
        doc="(d, d[k]), the entry lent out to be put back (raises KeyError when k is absent)",
    )
    reg(
        "map_take_or",
        TupleT((MapT(_A, _K), _K, _A)),
        _pair(MapT(_A, _K), _A),
        _map_take_or,
        update="take_or",
        doc="(d, d[k] or the default when k is absent), the entry lent out to be put back",
    )
    reg(
        "map_keys",
        MapT(_A, _K),
        ListT(_K),
        sorted_keys,
        result="fresh",
        doc="the keys in canonical order (sorted; enum members by name, None first)",
    )
    reg("len", SetT(_K), INT, len)
    reg("set_has", _pair(SetT(_K), _K), BOOL, lambda s, x: x in s, template="({1} in {0})")
    reg(
        "set_add",
        _pair(SetT(_K), _K),
        SetT(_K),
        lambda s, x: s | {x},
        update="add",
        doc="s with x added (Python's s.add(x))",
    )
    reg(
        "set_discard",
        _pair(SetT(_K), _K),
        SetT(_K),
        lambda s, x: s - {x},
        update="discard",
        doc="s without x (Python's s.discard(x))",
    )
    reg(
        "set_remove",
        _pair(SetT(_K), _K),
        SetT(_K),
        _set_remove,
        update="discard_or_raise",
        doc="s without x; raises KeyError when x is absent (Python's s.remove(x))",
    )
    reg(
        "set_union",
        _pair(SetT(_K), SetT(_K)),
        SetT(_K),
        operator.or_,
        template="({0} | {1})",
        result="fresh",
    )
    reg(
        "set_inter",
        _pair(SetT(_K), SetT(_K)),
        SetT(_K),
        operator.and_,
        template="({0} & {1})",
        result="fresh",
    )
    reg(
        "set_diff",
        _pair(SetT(_K), SetT(_K)),
        SetT(_K),
        operator.sub,
        template="({0} - {1})",
        result="fresh",
    )
    reg("set_of_list", ListT(_K), SetT(_K), set, result="fresh", doc="the set of a list's items")
    reg(
        "list_of_set",
        SetT(_K),
        ListT(_K),
        sorted_keys,
        result="fresh",
        doc="the items in canonical order (as map_keys)",
    )
    reg("some", _A, OptionT(_A), lambda x: x, template="{0}", result="same")
    reg("is_some", OptionT(_A), BOOL, lambda x: x is not None, template="({0} is not None)")
    reg("is_none", OptionT(_A), BOOL, lambda x: x is None, template="({0} is None)")
    reg(
        "unwrap_or",
        _pair(OptionT(_A), _A),
        _A,
        lambda o, d: d if o is None else o,
        result="either",
    )
    reg("unwrap", OptionT(_A), _A, _unwrap, doc="the value; raises on None", result="same")

    _install_iteration(reg)


def _install_iteration(reg: Callable[..., Primitive]) -> None:
    """Primitives of the front end's loops, builtins and comprehensions."""
    reg(
        "range",
        TupleT((INT, INT, INT)),
        ListT(INT),
        _range,
        result="fresh",
        doc="list(range(a, b, step)) (raises ValueError when step is 0)",
    )
    reg("chars", STR, ListT(STR), list, result="fresh", doc="the characters of s (list(s))")
    reg("keys", MapT(_A, _K), ListT(_K), list, result="fresh", doc="list(d): keys in d's order")
    reg(
        "values",
        MapT(_A, _K),
        ListT(_A),
        lambda d: list(d.values()),
        result="fresh",
        doc="list(d.values()), in d's order",
    )
    reg(
        "items",
        MapT(_A, _K),
        ListT(_pair(_K, _A)),
        lambda d: list(d.items()),
        result="fresh",
        doc="list(d.items()), in d's order",
    )
    reg(
        "enumerate",
        ListT(_A),
        ListT(_pair(INT, _A)),
        lambda xs: list(enumerate(xs)),
        result="fresh",
        doc="list(enumerate(xs))",
    )
    reg(
        "enumerate",
        _pair(ListT(_A), INT),
        ListT(_pair(INT, _A)),
        lambda xs, start: list(enumerate(xs, start)),
        result="fresh",
    )
    reg(
        "zip",
        TupleT((ListT(_A), ListT(_B), BOOL)),
        ListT(_pair(_A, _B)),
        lambda xs, ys, strict: list(zip(xs, ys, strict=strict)),
        result="fresh",
        doc="list(zip(xs, ys, strict=s)): as long as the shorter, or ValueError if strict",
    )
    reg("any", ListT(BOOL), BOOL, any, doc="whether some item is True")
    reg("all", ListT(BOOL), BOOL, all, doc="whether every item is True")
    reg(
        "list_min",
        ListT(_A),
        _A,
        _min_of,
        result="element",
        doc="min(xs), the first smallest (raises ValueError on an empty list)",
    )
    reg(
        "list_max",
        ListT(_A),
        _A,
        _max_of,
        result="element",
        doc="max(xs), the first largest (raises ValueError on an empty list)",
    )
    reg("min_by", ListT(_pair(_B, _A)), _A, _min_by, doc="the first x of the smallest key")
    reg("max_by", ListT(_pair(_B, _A)), _A, _max_by, doc="the first x of the largest key")
    reg(
        "sort",
        _pair(ListT(_A), BOOL),
        ListT(_A),
        _sort,
        result="fresh",
        doc="sorted(xs, reverse=r) (stable; raises TypeError on unorderable items)",
    )
    reg(
        "sort_by",
        _pair(ListT(_pair(_B, _A)), BOOL),
        ListT(_A),
        _sort_by,
        result="fresh",
        doc="the xs of (key, x) pairs, stably sorted by key (sorted(xs, key=f, reverse=r))",
    )
    reg("round", FLOAT, INT, round, doc="round(x): to the nearest int, ties to even")
    reg("round", INT, INT, round)
    reg("round", _pair(FLOAT, INT), FLOAT, _round_to, doc="round(x, n)")
    reg("round", _pair(INT, INT), INT, _round_int_to)
    for a, b, out in (
        (INT, INT, INT),
        (FLOAT, FLOAT, FLOAT),
        (INT, FLOAT, FLOAT),
        (FLOAT, INT, FLOAT),
    ):
        reg("divmod", _pair(a, b), _pair(out, out), divmod, doc="(a // b, a % b)")
    reg("ord", STR, INT, ord, doc="the code point of a one-character string")
    reg("chr", INT, STR, chr, doc="the one-character string of a code point")
    reg("int_of_str", STR, INT, int, doc="int(s) (raises ValueError when s is not an int)")
    reg("float_of_str", STR, FLOAT, float, doc="float(s) (raises ValueError when s is no float)")


def _compare(op: str) -> Callable[[Any, Any], bool]:
    return {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]


_install_builtins(PRIMITIVES)


F = typing.TypeVar("F", bound=Callable[..., Any])


def primitive(
    fn: F | None = None, *, name: str | None = None, registry: Registry | None = None
) -> Any:
    """Register a pure, annotated Python function as a primitive.

    Usable as ``@primitive`` or ``@primitive(name="clamp")``. A function of
    one parameter takes that type; of several, a tuple of them. The function
    must be pure and total on its types: the runtime calls it on every item.

    Raises:
        TypeDefinitionError: a parameter or the return is not annotated with
            a type arrowloop understands.
    """

    def register(f: F) -> F:
        hints = typing.get_type_hints(f)
        params = list(inspect.signature(f).parameters)
        if "return" not in hints or any(p not in hints for p in params) or not params:
            raise TypeError(
                f"primitive {f.__qualname__} needs annotated parameters (at least one) "
                "and an annotated return type"
            )
        ins = [from_annotation(hints[p], f"{f.__qualname__}.{p}") for p in params]
        input_t: Type = ins[0] if len(ins) == 1 else TupleT(tuple(ins))
        out = from_annotation(hints["return"], f"{f.__qualname__}.return")
        (registry or PRIMITIVES).register(name or f.__name__, input_t, out, f, doc=f.__doc__ or "")
        return f

    if fn is not None:
        return register(fn)
    return register
