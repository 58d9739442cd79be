"""Translating calls: records, builtins, methods, primitives and inlined functions.

Part of the Python front end. What a call may name is fixed when the
function is decorated:

* a record class (``Count(n)``, ``Count(n=n)``, defaults of the class used);
* ``attrs.evolve(r, field=value)`` (a record with fields replaced);
* ``len``, ``abs``, ``min``/``max`` of two values, ``sum`` of ints, and the
  conversions ``str``, ``int``, ``float`` between numbers and strings;
* string methods (``upper``, ``lower``, ``strip``, ``startswith``,
  ``endswith``, ``replace``, ``split``, ``join``) and ``dict.get``;
* a function registered with :func:`arrowloop.primitive`;
* another ``@arrow`` or ``@statemachine`` function, whose program is
  inlined.

Arguments are evaluated in source order, as in Python.
"""

from __future__ import annotations

import ast
import builtins
import enum
from collections.abc import Sequence
from typing import Any

import attrs

from arrowloop.arrows import Arrow, Const, Fold, GetField, MakeRecord, Proj, SetField
from arrowloop.check import has_type_vars
from arrowloop.errors import ValidationError
from arrowloop.frontend._env import CHANGING_METHODS, Env, Val, tuple_of
from arrowloop.frontend._exprs import Exprs
from arrowloop.frontend._objects import PyFunction, PyMachine
from arrowloop.frontend._source import MISSING
from arrowloop.frontend._typing import show
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    ListT,
    MapT,
    RecordT,
    SetT,
    TupleT,
    Type,
    validate,
)

__all__ = ["Calls"]

_EVOLVE: tuple[Any, ...] = (attrs.evolve,)
try:  # the older ``attr`` namespace exports the same function
    import attr

    _EVOLVE = (attrs.evolve, attr.evolve)
except ImportError:  # pragma: no cover
    pass

_STR_METHODS: dict[str, tuple[int, str]] = {
    "upper": (0, "upper"),
    "lower": (0, "lower"),
    "strip": (0, "strip"),
    "startswith": (1, "startswith"),
    "endswith": (1, "endswith"),
    "replace": (2, "replace"),
    "split": (1, "split"),
    "join": (1, "join"),
}
_LIST_MUTATORS = frozenset(
    {"append", "extend", "insert", "pop", "remove", "sort", "reverse", "clear"}
)

_SUPPORTED_CALLS = (
    "record classes, attrs.evolve, @arrow and @statemachine functions, module-level "
    "functions with annotations, primitives registered with @arrowloop.primitive, len, abs, "
    "min, max, sum, any, all, sorted, round, divmod, pow, ord, chr, repr, hex, bin, oct, str, "
    "int, float, list, tuple and dict, range, enumerate, zip and reversed (iterated), "
    "next(iter(x)), the functions of math, Python's methods of str, get and copy of dict, "
    "copy, count and index of list (docs/python-subset.md lists them)"
)


class Calls(Exprs):
    """Call translation, on top of :class:`Exprs`."""

    def call(self, node: ast.Call, env: Env, expected: Type | None) -> Val:
        """Translate the call ``node``."""
        f = node.func
        for a in node.args:
            if isinstance(a, ast.Starred):
                self.fail(a, "*args in calls are not supported; pass the arguments one by one")
        for k in node.keywords:
            if k.arg is None:
                self.fail(k.value, "**kwargs in calls are not supported; name each argument")
        if isinstance(f, ast.Name) and f.id == self.src.tree.name and f.id not in self.locals:
            self.fail(f, "recursion is not supported; use a for loop (a fold)", found=f.id)
        obj = self.src.static(f, self.locals)
        if obj is MISSING:
            if isinstance(f, ast.Attribute):
                return self.method(node, f, env)
            if isinstance(f, ast.Name):
                if f.id in self.locals:
                    self.fail(f, f"{f.id} is a local value, not a function", found=f.id)
                self.fail(f, f"the name {f.id} is not defined", found=f.id)
            self.fail(f, f"only named functions can be called; supported are {_SUPPORTED_CALLS}")
        if (
            isinstance(f, ast.Name)
            and self.src.lookup(f.id)[0] == "closure"
            and not (isinstance(obj, type | PyMachine | PyFunction) or self.prim_of(obj))
        ):
            self.fail(
                f,
                f"closures over free variables are not supported: {f.id} is a variable of "
                "an enclosing function",
                found=f.id,
            )
        if obj is set:
            return self.set_call(node, env, expected)
        return self.call_object(node, obj, env)

    def set_call(self, node: ast.Call, env: Env, expected: Type | None) -> Val:
        """``set()`` (of the expected type) and ``set(xs)`` of a list or a set."""
        if not node.args and not node.keywords:
            if not isinstance(expected, SetT):
                self.fail(
                    node,
                    "cannot tell the item type of set(); annotate the variable "
                    "(s: set[int] = set())",
                    "set[T]",
                    "set()",
                )
            return Val(Const(expected, set()), expected)
        (v,) = self.positional(node, env, "set", 1)
        if isinstance(v.type, SetT):
            return v  # a copy: values never share
        if not isinstance(v.type, ListT):
            self.mismatch(node, "a list or a set for set(x)", v.type)
        return self.prim("set_of_list", [v], node, "set()")

    def call_object(self, node: ast.Call, obj: Any, env: Env) -> Val:
        """A call of the statically known object ``obj``."""
        fname = ast.unparse(node.func)
        if isinstance(obj, PyFunction):
            names = obj.params
            ins = obj.input.items if len(names) > 1 and isinstance(obj.input, TupleT) else None
            types = list(ins) if ins is not None else [obj.input]
            args = self.arguments(node, env, fname, list(zip(names, types, strict=True)))
            return Val(args >> obj.function.arrow, obj.output)
        if isinstance(obj, PyMachine):
            types = [obj.input, obj.state]
            args = self.arguments(node, env, fname, list(zip(obj.params, types, strict=True)))
            return Val(args >> obj.machine.loop.body, TupleT((obj.state, obj.output)))
        if any(obj is e for e in _EVOLVE):
            return self.evolve(node, env)
        if isinstance(obj, type):
            if obj is bool:
                (v,) = self.positional(node, env, "bool", 1)
                return Val(self.truthy(v, node), BOOL)
            if obj in (int, float, str):
                return self.conversion(node, obj, env)
            if obj in (list, dict):
                return self.builtin(node, obj.__name__, env)
            if issubclass(obj, enum.Enum):
                self.fail(node, f"calling the enum {obj.__name__} is not supported; write a member")
            if attrs.has(obj):
                return self.construct(node, obj, env)
            self.fail(
                node,
                f"calling the class {obj.__name__} is not supported; "
                f"supported are {_SUPPORTED_CALLS}",
            )
        builtin = _builtin_name(obj)
        if builtin is not None:
            return self.builtin(node, builtin, env)
        name = self.prim_of(obj)
        if name is not None:
            return self.user_prim(node, name, env)
        self.fail(
            node.func,
            f"{fname} cannot be called here (unknown calls may have side effects); supported "
            f"are {_SUPPORTED_CALLS}",
            found=fname,
        )

    def prim_of(self, obj: Any) -> str | None:
        """The registry name of a function registered as a primitive."""
        for p in self.registry:
            for sig in p.signatures:
                if sig.fn is obj:
                    return p.name
        return None

    def positional(self, node: ast.Call, env: Env, what: str, n: int) -> list[Val]:
        """Exactly ``n`` positional arguments, no keywords."""
        if node.keywords or len(node.args) != n:
            self.fail(
                node,
                f"{what} takes {n} positional argument{'s' if n != 1 else ''} here, found "
                f"{len(node.args)}{' and keywords' if node.keywords else ''}",
                str(n),
                str(len(node.args)),
            )
        return [self.expr(a, env) for a in node.args]

    def arguments(
        self,
        node: ast.Call,
        env: Env,
        what: str,
        params: Sequence[tuple[str, Type]],
        defaults: Sequence[Val | None] = (),
    ) -> Arrow:
        """The arguments in parameter order, evaluated in source order.

        One parameter gives its value, several a tuple. Missing parameters
        take ``defaults`` (``None`` where there is none).
        """
        names = [p for p, _ in params]
        given: list[tuple[int, ast.expr]] = []
        if len(node.args) > len(params):
            self.fail(node, f"{what} takes {len(params)} arguments, found {len(node.args)}")
        given.extend(enumerate(node.args))
        for k in node.keywords:
            if k.arg not in names:
                self.fail(k, f"{what} has no parameter {k.arg!r} (it has: {', '.join(names)})")
            given.append((names.index(k.arg), k.value))
        seen = [i for i, _ in given]
        if len(set(seen)) != len(seen):
            self.fail(node, f"{what} got an argument twice")
        vals = [self.expr(e, env, params[i][1]) for i, e in given]
        slots: list[Arrow | None] = [None] * len(params)
        in_order = seen == list(range(len(params)))
        m = len(vals)
        for pos, i in enumerate(seen):
            slots[i] = vals[pos].arrow if in_order else Proj(pos, m)
        for i, s in enumerate(slots):
            if s is None:
                d = defaults[i] if i < len(defaults) else None
                if d is None:
                    self.fail(node, f"{what} is missing the argument {names[i]!r}")
                slots[i] = d.arrow
        parts = [s for s in slots if s is not None]
        if in_order:
            return parts[0] if len(parts) == 1 else tuple_of(parts)
        first = tuple_of([v.arrow for v in vals])
        return first >> (parts[0] if len(parts) == 1 else tuple_of(parts))

    def construct(self, node: ast.Call, cls: type, env: Env) -> Val:
        """``Count(n)`` or ``Count(n=n)``: a new record."""
        rt = self.type_of_class(node, cls)
        if not isinstance(rt, RecordT):  # pragma: no cover - attrs classes are records
            self.fail(node, f"{cls.__name__} is not a record class")
        fields = attrs.fields(cls)
        order = [f for f in fields if not f.kw_only] + [f for f in fields if f.kw_only]
        positional = sum(not f.kw_only for f in fields)
        if len(node.args) > positional:
            self.fail(node, f"{cls.__name__} takes {positional} positional fields, found more")
        aliases = [f.alias or f.name for f in order]
        params = [(aliases[i], dict(rt.fields)[f.name]) for i, f in enumerate(order)]
        defaults = [self.default(node, f, t) for f, (_, t) in zip(order, params, strict=True)]
        arrow = self.arguments(node, env, cls.__name__, params, defaults) if fields else None
        if arrow is not None and order != list(fields):
            index = [order.index(f) for f in fields]
            arrow = arrow >> tuple_of([Proj(i, len(order)) for i in index])
        made = MakeRecord(rt) if arrow is None else arrow >> MakeRecord(rt)
        return Val(made, rt)

    def default(self, node: ast.AST, field: attrs.Attribute[Any], t: Type) -> Val | None:
        """The default of a record field as a constant, if it has a plain one."""
        d = field.default
        if d is attrs.NOTHING:
            return None
        if isinstance(d, attrs.Factory):  # type: ignore[arg-type]
            self.fail(
                node,
                f"the field {field.name} has a factory default, which the front end cannot use; "
                "pass the field explicitly",
            )
        try:
            validate(t, d, field.name, wire=True)
        except ValidationError as exc:
            self.fail(node, f"the default of the field {field.name} is not usable: {exc}")
        return Val(Const(t, d), t)

    def evolve(self, node: ast.Call, env: Env) -> Val:
        """``attrs.evolve(r, f=v, ...)``: a copy of the record with fields replaced."""
        if len(node.args) != 1:
            self.fail(node, "evolve takes the record as its one positional argument")
        rec = self.expr(node.args[0], env)
        rt = rec.type
        if not isinstance(rt, RecordT):
            self.mismatch(node.args[0], "a record to evolve", rt)
        changes: list[tuple[str, Val]] = []
        for k in node.keywords:
            assert k.arg is not None
            ft = rt.field_type(k.arg)
            if ft is None:
                self.fail(k, f"the record {rt.name} has no field {k.arg!r}")
            changes.append((k.arg, self.expr(k.value, env, ft)))
        if not changes:
            return rec
        if len(changes) == 1:
            field, v = changes[0]
            return Val(tuple_of([rec.arrow, v.arrow]) >> SetField(field), rt)
        # All fields at once, so the class's __init__ (and validators) runs once.
        n = 1 + len(changes)
        names = [f for f, _ in changes]
        parts = [
            Proj(1 + names.index(f), n) if f in names else Proj(0, n) >> GetField(f)
            for f, _ in rt.fields
        ]
        tmp = tuple_of([rec.arrow, *(v.arrow for _, v in changes)])
        return Val(tmp >> tuple_of(parts) >> MakeRecord(rt), rt)

    def conversion(self, node: ast.Call, cls: type, env: Env) -> Val:
        """``str(n)``, ``int(x)``, ``float(n)`` between numbers and strings."""
        (v,) = self.positional(node, env, cls.__name__, 1)
        table: dict[tuple[type, Type], str | None] = {
            (str, INT): "str_of_int",
            (str, FLOAT): "str_of_float",
            (str, STR): None,
            (int, FLOAT): "int_of_float",
            (int, INT): None,
            (float, INT): "float_of_int",
            (float, FLOAT): None,
        }
        key = (cls, v.type)
        if key not in table:
            self.fail(
                node,
                f"{cls.__name__}(...) of {show(v.type)} is not supported; supported are "
                "str of int/float, int of float, float of int",
                found=show(v.type),
            )
        prim = table[key]
        return v if prim is None else self.prim(prim, [v], node, f"{cls.__name__}()")

    def builtin(self, node: ast.Call, name: str, env: Env) -> Val:
        """``len``, ``abs``, ``min``, ``max``, ``sum``, ``list``, ``dict``."""
        if name in ("list", "dict"):
            # A copy: values never share, so it is the value itself (the
            # compiler copies before a change where the original is still used).
            (v,) = self.positional(node, env, name, 1)
            want = ListT if name == "list" else MapT
            if not isinstance(v.type, want):
                self.mismatch(
                    node, f"a {name} to copy ({name}(x) of another type is not supported)", v.type
                )
            return v
        if name in ("min", "max"):
            a, b = self.positional(node, env, name, 2)
            if a.type != b.type or a.type not in (INT, FLOAT, STR):
                self.fail(
                    node,
                    f"{name} takes two values of one type (int, float or str) here, found "
                    f"{show(a.type)} and {show(b.type)}",
                    "two ints, floats or strs",
                    f"{show(a.type)}, {show(b.type)}",
                )
            return self.prim(name, [a, b], node, name)
        if name == "sum" and len(node.args) == 2:
            return self.sum_from(node, env)
        (v,) = self.positional(node, env, name, 1)
        if name == "sum" and v.type != ListT(INT):
            self.fail(
                node,
                f"sum takes a list[int] here, found {show(v.type)} (sum of an empty list of "
                "floats is the int 0 in Python); write sum(xs, 0.0)",
                "list[int]",
                show(v.type),
            )
        return self.prim(name, [v], node, name)

    def sum_from(self, node: ast.Call, env: Env) -> Val:
        """``sum(xs, start)``: a left fold of ``+`` from ``start``.

        Python 3.11 computes exactly this; 3.12 compensates float sums, so
        the plain function may differ there in the last bits (python-subset.md).
        """
        xs, start = self.positional(node, env, "sum", 2)
        return self.fold_sum(node, xs, start)

    def fold_sum(self, node: ast.Call, xs: Val, start: Val) -> Val:
        """The left fold of ``+`` over ``xs`` from ``start`` (checked types)."""
        if start.type not in (INT, FLOAT) or xs.type != ListT(start.type):
            self.fail(
                node,
                f"sum(xs, start) takes a list and a start of its item type (int or float), "
                f"found {show(xs.type)} and {show(start.type)}",
                "list[T], T",
                f"{show(xs.type)}, {show(start.type)}",
            )
        add = self.prim(
            "add", [Val(Proj(0, 2), start.type), Val(Proj(1, 2), start.type)], node, "sum"
        )
        return Val(tuple_of([start.arrow, xs.arrow]) >> Fold(add.arrow), start.type)

    def user_prim(self, node: ast.Call, name: str, env: Env) -> Val:
        """A function registered with :func:`arrowloop.primitive`."""
        p = self.registry.get(name)
        assert p is not None
        sig = p.signatures[0]
        what = ast.unparse(node.func)
        vals = self.positional(node, env, what, sig.arity)
        if len(p.signatures) == 1 and not has_type_vars(sig.input):
            # One monomorphic signature: convert the arguments to it (a
            # record passed where the primitive takes a variant).
            ins = sig.input.items if isinstance(sig.input, TupleT) else (sig.input,)
            vals = [
                self.coerce(v, t, a, f"an argument of {what} of type")
                for v, t, a in zip(vals, ins, node.args, strict=True)
            ]
        return self.prim(name, vals, node, what)

    def method(self, node: ast.Call, f: ast.Attribute, env: Env) -> Val:
        """``s.upper()``, ``d.get(k)`` and the other supported methods."""
        recv = self.expr(f.value, env)
        t, m = recv.type, f.attr
        if t == STR and m in _STR_METHODS:
            n, prim = _STR_METHODS[m]
            if m == "split" and not node.args:
                self.fail(
                    node,
                    "s.split() without a separator is not supported; pass it (s.split(' '))",
                )
            args = self.positional(node, env, f"str.{m}", n)
            return self.prim(prim, [recv, *args], node, f"str.{m}")
        if isinstance(t, ListT | MapT) and m == "copy":
            self.positional(node, env, f"{show(t)}.copy", 0)
            return recv  # values never share (see builtin: list, dict)
        if isinstance(t, MapT) and m == "get":
            if node.keywords or len(node.args) not in (1, 2):
                self.fail(node, "d.get takes a key and optionally a default")
            key = self.expr(node.args[0], env, t.key)
            got = self.prim("map_get", [recv, key], node, "dict.get")
            if len(node.args) == 1:
                return got
            default = self.expr(node.args[1], env, t.value)
            return self.prim("unwrap_or", [got, default], node, "dict.get")
        if isinstance(t, ListT | MapT | SetT) and m in CHANGING_METHODS:
            recv_text = ast.unparse(f.value)
            self.fail(
                node,
                f"{recv_text}.{m}(...) changes {recv_text}: write it as a statement of its own "
                f"(the ones supported: xs.append(x), xs.extend(ys), xs.pop(), xs.pop(i), "
                f"xs.remove(x), xs.insert(i, x), xs.clear(), d.pop(k), d.setdefault(k, v), "
                f"d.clear(); xs.pop(), d.pop(k) and d.setdefault(k, v) also inside an "
                f"expression that Python always evaluates, not in a branch of and/or/if-else "
                f"or a comprehension)",
                "a statement",
                f"{show(t)}.{m}",
            )
        if isinstance(t, ListT) and m in _LIST_MUTATORS:
            self.fail(
                node,
                f"list.{m} changes the list in place and is not supported; build a new list "
                "(xs + [x], [*xs, x])",
                "a new list",
                f"list.{m}",
            )
        self.fail(
            node,
            f"the method {m} of {show(t)} is not supported; supported are {_SUPPORTED_CALLS}",
            found=f"{show(t)}.{m}",
        )


def _builtin_name(obj: Any) -> str | None:
    for name in ("len", "abs", "min", "max", "sum"):
        if obj is getattr(builtins, name):
            return name
    return None
