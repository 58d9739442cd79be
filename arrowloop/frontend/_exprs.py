"""Translating Python expressions into arrows from the environment tuple.

Part of the Python front end. Every expression becomes a :class:`Val`: an
arrow from the environment tuple to its value, and its type, worked out
here so that type errors point at the Python source. This module has the
dispatch over expression forms, names and constants, list and dict
displays, field reads and indexing; operators are in
:mod:`arrowloop.frontend._operators` and calls in
:mod:`arrowloop.frontend._calls`.
"""

from __future__ import annotations

import ast
import enum
from typing import Any

from arrowloop.arrows import Const, GetField, Prim, Proj, type_of_value
from arrowloop.errors import TypeDefinitionError, ValidationError
from arrowloop.frontend._env import Env, Val, tuple_of
from arrowloop.frontend._operators import Operators
from arrowloop.frontend._shapes import BALANCE_FROM, balanced
from arrowloop.frontend._source import MISSING
from arrowloop.frontend._typing import show
from arrowloop.typesys import (
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
    VariantT,
    from_annotation,
    is_key_type,
    validate,
)

__all__ = ["Exprs"]

_REFUSED_EXPRS: dict[type[ast.expr], str] = {
    ast.JoinedStr: "f-strings are not supported; build the string with + and str(...)",
    ast.Lambda: "lambda is not supported; write a module-level @arrow function and call it",
    ast.SetComp: "set comprehensions are not supported; use a dict comprehension {k: True for ...}",
    ast.GeneratorExp: "a generator expression is only supported as the argument of sum, any, "
    "all, min, max, sorted, list or str.join; use a list comprehension [... for ...]",
    ast.Await: "await is not supported: the function must be pure",
    ast.Yield: "yield is not supported: the function must return (state, output)",
    ast.YieldFrom: "yield is not supported: the function must return (state, output)",
    ast.NamedExpr: "the walrus operator := is not supported; assign in a statement",
    ast.Starred: "*unpacking is only supported inside a list display ([*xs, x])",
}


class Exprs(Operators):
    """Expression translation; the statement translator derives from it."""

    def call(self, node: ast.Call, env: Env, expected: Type | None) -> Val:
        """Translate a call (see :mod:`arrowloop.frontend._calls`)."""
        raise NotImplementedError

    def comprehension(
        self, node: ast.ListComp | ast.GeneratorExp | ast.DictComp, env: Env, expected: Type | None
    ) -> Val:
        """Translate a comprehension (see :mod:`arrowloop.frontend._builtins`)."""
        raise NotImplementedError

    # -- expressions ----------------------------------------------------------

    def expr(self, node: ast.expr, env: Env, expected: Type | None = None) -> Val:
        """Translate ``node``; when ``expected`` is given, convert the result to it."""
        v = self._expr(node, env, expected)
        if expected is not None and v.type != expected:
            v = self.coerce(v, expected, node)
        return v

    def _expr(self, node: ast.expr, env: Env, expected: Type | None) -> Val:
        match node:
            case ast.Constant(value=value):
                return self.constant(node, value, expected)
            case ast.Name(id=name):
                return self.name(node, name, env)
            case ast.Tuple(elts=elts):
                want = (
                    expected.items
                    if isinstance(expected, TupleT) and len(expected.items) == len(elts)
                    else (None,) * len(elts)
                )
                vals = [self.expr(e, env, w) for e, w in zip(elts, want, strict=True)]
                return Val(tuple_of([v.arrow for v in vals]), TupleT(tuple(v.type for v in vals)))
            case ast.List():
                return self.list_display(node, env, expected)
            case ast.Dict():
                return self.dict_display(node, env, expected)
            case ast.Set():
                return self.set_display(node, env, expected)
            case ast.BinOp(left=left, op=op, right=right):
                return self.binop(node, left, op, right, env)
            case ast.UnaryOp(op=op, operand=operand):
                return self.unary(node, op, operand, env)
            case ast.BoolOp(op=op, values=values):
                return self.boolop(op, values, env)
            case ast.Compare():
                return self.compare(node, env)
            case ast.IfExp(test=test, body=body, orelse=orelse):
                return self.if_expr(node, test, body, orelse, env, expected)
            case ast.Call():
                return self.call(node, env, expected)
            case ast.ListComp() | ast.DictComp():
                return self.comprehension(node, env, expected)
            case ast.Attribute():
                return self.attribute(node, env)
            case ast.Subscript():
                return self.subscript(node, env)
        reason = _REFUSED_EXPRS.get(type(node))
        if reason is None:
            reason = f"the expression {ast.unparse(node)[:40]!r} is not supported"
        self.fail(node, reason, found=type(node).__name__)

    def constant(self, node: ast.expr, value: Any, expected: Type | None) -> Val:
        """A literal."""
        if value is None:
            t = expected if isinstance(expected, OptionT) else UNIT
            return Val(Const(t, None), t)
        if type(value) in (bool, int, float, str):
            return self.literal(node, value)
        self.fail(
            node,
            f"{type(value).__name__} literals are not supported; use int, float, str, bool or None",
            found=type(value).__name__,
        )

    def name(self, node: ast.expr, name: str, env: Env) -> Val:
        """A local variable, or a constant named at module level."""
        if name in env.unbound:
            self.fail(node, env.unbound[name], found=name)
        if env.find(name) is not None:
            v = env.val(name)
            if name in env.narrowed and isinstance(v.type, OptionT):
                return Val(v.arrow >> Prim("unwrap"), v.type.item)
            return v
        if name in self.locals:
            self.fail(node, f"the local variable {name} is used before it is assigned", found=name)
        where, obj = self.src.lookup(name)
        if name == self.src.tree.name:
            self.fail(node, "recursion is not supported; use a for loop (a fold)", found=name)
        if where == "missing":
            self.fail(
                node,
                f"the name {name} is not defined (names are resolved when the function is "
                "decorated: define it above the function)",
                found=name,
            )
        return self.global_value(node, name, where, obj)

    def global_value(self, node: ast.expr, name: str, where: str, obj: Any) -> Val:
        """A value named outside the function: a constant, captured at decoration time."""
        if where == "closure" and not isinstance(obj, enum.Enum):
            self.fail(
                node,
                f"closures over free variables are not supported: {name} is a variable of an "
                "enclosing function; pass it as a parameter or make it a module-level constant",
                found=name,
            )
        if isinstance(obj, enum.Enum):
            vt = self.type_of_class(node, type(obj))
            return Val(Const(vt, obj), vt)
        if isinstance(obj, type):
            self.fail(
                node,
                f"{name} is a class, not a value; call it to build a record, or use it in a "
                "case pattern",
                found="class",
            )
        try:
            t = type_of_value(obj)
            validate(t, obj, name, wire=True)
        except (TypeDefinitionError, ValidationError):
            self.fail(
                node,
                f"{name} holds a {type(obj).__name__}, which cannot be used as a constant; "
                "module-level constants may be int, float, str, bool, None, enum members, "
                "frozen records and tuples of them",
                found=type(obj).__name__,
            )
        return Val(Const(t, obj), t)

    def type_of_class(self, node: ast.AST, cls: type) -> Type:
        """The arrowloop type of a record or enum class."""
        try:
            return from_annotation(cls, cls.__name__)
        except TypeDefinitionError as exc:
            raise self.src.error(node, str(exc), expected=exc.expected, found=exc.found) from None

    def list_display(self, node: ast.List, env: Env, expected: Type | None) -> Val:
        """``[a, b]`` and ``[*xs, x]``: new lists built with ``append`` and ``+``."""
        item: Type | None = expected.item if isinstance(expected, ListT) else None
        if item is None:
            for e in node.elts:
                if isinstance(e, ast.Starred):
                    item = self._list_type(e.value, self.expr(e.value, env).type).item
                else:
                    item = self.expr(e, env).type
                break
        if item is None:
            self.fail(
                node,
                "cannot tell the item type of []; annotate the variable (xs: list[int] = [])",
                "list[T]",
                "[]",
            )
        lt = ListT(item)
        if len(node.elts) >= BALANCE_FROM:
            return self.long_list(node, env, lt)
        acc: Val | None = None
        for e in node.elts:
            if isinstance(e, ast.Starred):
                part = self.expr(e.value, env, lt)
                acc = part if acc is None else self.prim("add", [acc, part], e, "+")
            else:
                x = self.expr(e, env, item)
                base = acc if acc is not None else Val(Const(lt, []), lt)
                acc = self.prim("append", [base, x], e, "a list display")
        return acc if acc is not None else Val(Const(lt, []), lt)

    def long_list(self, node: ast.List, env: Env, lt: ListT) -> Val:
        """A long list display as a balanced tree of ``+`` over its pieces
        (``[x]`` for an item, ``xs`` for ``*xs``), evaluated left to right."""
        empty = Val(Const(lt, []), lt)
        pieces = [
            self.expr(e.value, env, lt)
            if isinstance(e, ast.Starred)
            else self.prim("append", [empty, self.expr(e, env, lt.item)], e, "a list display")
            for e in node.elts
        ]
        return balanced(pieces, lambda a, b: self.prim("add", [a, b], node, "a list display"))

    def _list_type(self, node: ast.expr, t: Type) -> ListT:
        if not isinstance(t, ListT):
            self.mismatch(node, "a list", t)
        return t

    def dict_display(self, node: ast.Dict, env: Env, expected: Type | None) -> Val:
        """``{}``, ``{"k": v}`` and ``{**d, "k": v}``: new dicts built with ``map_put``."""
        vt: Type | None = expected.value if isinstance(expected, MapT) else None
        for k, v in zip(node.keys, node.values, strict=True):
            if vt is None:
                t = self.expr(v, env).type
                if k is None:
                    if not isinstance(t, MapT):
                        self.mismatch(v, "a dict", t)
                    t = t.value
                vt = t
        if vt is None:
            self.fail(
                node,
                "cannot tell the value type of {}; annotate the variable (d: dict[str, int] = {})",
                "dict[str, T]",
                "{}",
            )
        mt = MapT(vt, self.key_type(node, env, expected))
        if len(node.keys) >= BALANCE_FROM:
            return self.long_dict(node, env, mt)
        acc = Val(Const(mt, {}), mt)
        for i, (k, v) in enumerate(zip(node.keys, node.values, strict=True)):
            if k is None:
                d = self.expr(v, env, mt)
                acc = d if i == 0 else self.prim("map_update", [acc, d], v, "a dict display")
                continue
            key = self.expr(k, env, mt.key)
            acc = self.prim("map_put", [acc, key, self.expr(v, env, vt)], k, "a dict display")
        return acc

    def set_display(self, node: ast.Set, env: Env, expected: Type | None) -> Val:
        """``{a, b}``: a new set built with ``set_add`` (a balanced tree of
        ``set_union`` when long), items evaluated left to right."""
        for e in node.elts:
            if isinstance(e, ast.Starred):
                self.fail(e, "*unpacking is not supported in a set display; use set(xs) | s")
        if isinstance(expected, SetT):
            st = expected
        else:
            st = SetT(self.key_of(node.elts[0], self.expr(node.elts[0], env).type))
        empty = Val(Const(st, set()), st)
        if len(node.elts) >= BALANCE_FROM:
            pieces = [
                self.prim("set_add", [empty, self.expr(e, env, st.item)], e, "a set display")
                for e in node.elts
            ]
            return balanced(
                pieces, lambda a, b: self.prim("set_union", [a, b], node, "a set display")
            )
        acc = empty
        for e in node.elts:
            acc = self.prim("set_add", [acc, self.expr(e, env, st.item)], e, "a set display")
        return acc

    def key_of(self, node: ast.expr, t: Type) -> Type:
        """``t``, which must be hashable by value to be a set item or dict key."""
        if not is_key_type(t):
            self.fail(
                node,
                f"{show(t)} cannot be a set item or dict key (hashable by value only: bool, "
                "int, str, a tuple or option of those, or an Enum)",
                "a hashable type",
                show(t),
            )
        return t

    def key_type(self, node: ast.Dict, env: Env, expected: Type | None) -> Type:
        """The key type of a dict display: the expected one, else the first
        key's (or the first ``**d``'s), else ``str``."""
        if isinstance(expected, MapT):
            return expected.key
        for k, v in zip(node.keys, node.values, strict=True):
            if k is not None:
                return self.key_of(k, self.expr(k, env).type)
            t = self.expr(v, env).type
            if isinstance(t, MapT):
                return t.key
        return STR

    def long_dict(self, node: ast.Dict, env: Env, mt: MapT) -> Val:
        """A long dict display as a balanced tree of ``{**a, **b}`` over its
        pieces (``{k: v}`` for an entry, ``d`` for ``**d``): keys keep the
        place of their first occurrence and the value of their last, as in
        Python, and everything is evaluated left to right."""
        empty = Val(Const(mt, {}), mt)
        pieces = []
        for k, v in zip(node.keys, node.values, strict=True):
            if k is None:
                pieces.append(self.expr(v, env, mt))
                continue
            entry = [empty, self.expr(k, env, mt.key), self.expr(v, env, mt.value)]
            pieces.append(self.prim("map_put", entry, k, "a dict display"))
        return balanced(
            pieces, lambda a, b: self.prim("map_update", [a, b], node, "a dict display")
        )

    def attribute(self, node: ast.Attribute, env: Env) -> Val:
        """A record field (``msg.n``), or a constant named by a dotted name (``Color.RED``)."""
        obj = self.src.static(node, self.locals)
        if obj is not MISSING:
            return self.global_value(node, ast.unparse(node), "global", obj)
        base = self.expr(node.value, env)
        t = base.type
        if isinstance(t, RecordT):
            ft = t.field_type(node.attr)
            if ft is None:
                fields = ", ".join(f for f, _ in t.fields) or "none"
                self.fail(
                    node,
                    f"the record {t.name} has no field {node.attr!r} (its fields: {fields})",
                    f"a field of {t.name}",
                    node.attr,
                )
            return Val(base.arrow >> GetField(node.attr), ft)
        if isinstance(t, VariantT):
            self.fail(
                node,
                f"cannot read .{node.attr} of a value of the variant type {show(t)}; match on it "
                "first (match x: case Count(n=n): ...)",
                "a record",
                show(t),
            )
        self.mismatch(node, f"a record to read .{node.attr} from", t)

    def slice_bounds(self, sl: ast.Slice, env: Env) -> list[Val]:
        """The bounds of ``a:b:c`` as ``int | None`` values (``None`` when missing)."""
        opt = OptionT(INT)
        return [
            Val(Const(opt, None), opt) if b is None else self.expr(b, env, opt)
            for b in (sl.lower, sl.upper, sl.step)
        ]

    def subscript(self, node: ast.Subscript, env: Env) -> Val:
        """``t[0]`` on tuples (constant index) and ``xs[i]`` on lists."""
        if isinstance(node.slice, ast.Slice):
            self.fail(node, "slices are not supported", found="slice")
        base = self.expr(node.value, env)
        t = base.type
        if isinstance(t, TupleT):
            index = int_literal(node.slice)
            n = len(t.items)
            if index is None or not -n <= index < n:
                self.fail(
                    node.slice,
                    f"a tuple of {n} items is indexed with a constant from {-n} to {n - 1} here",
                    f"a constant index below {n}",
                    ast.unparse(node.slice),
                )
            index %= n
            return Val(base.arrow >> Proj(index, n), t.items[index])
        if isinstance(t, ListT):
            i = self.expr(node.slice, env, INT)
            return self.prim("item", [base, i], node, "indexing")
        if isinstance(t, MapT):
            # Python's KeyError when k is absent: the step fails, as it would.
            k = self.expr(node.slice, env, t.key)
            return self.prim("map_at", [base, k], node, "d[k]")
        self.mismatch(node, "a tuple or a list to index", t)


def int_literal(node: ast.expr) -> int | None:
    """The value of an int literal (``3``, ``-1``), or ``None``."""
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and type(node.operand.value) is int
    ):
        return -node.operand.value
    return None
