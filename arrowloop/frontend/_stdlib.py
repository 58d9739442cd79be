"""Translating more of Python's standard library: ``math``, ``**``, bitwise
operators on ints, repetition (``s * n``), ``next(iter(x))``, ``repr``,
``int(s, base)``, ``hex``/``bin``/``oct``, ``dict(pairs)``, ``in`` on tuples
and dict views, and unpacking a list (``a, b = xs``; ``.value``/``.name``
and ``is`` of enum members are in ``_inference.py`` and ``_operators.py``).
More methods of ``str`` and ``list`` are the next layer (:mod:`arrowloop.frontend._strmore`).

Part of the Python front end, a layer of the translator
(:class:`arrowloop.frontend._language.Language` puts the layers together).
Each construct is a primitive of ``arrowloop/arrows/_mathprims.py`` calling
Python's own operation, so results and exceptions are Python's, except where
that module's docstring says (bounded powers and repetitions, ``int ** -n``).
"""

from __future__ import annotations

import ast
import builtins
import math
from typing import Any

from arrowloop.arrows import Arrow, Const, Prim, Proj
from arrowloop.compiler import mutable
from arrowloop.errors import FrontendError
from arrowloop.frontend._env import Env, Val
from arrowloop.frontend._exprs import int_literal
from arrowloop.frontend._methods import Methods
from arrowloop.frontend._typing import show
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    ListT,
    MapT,
    TupleT,
    is_key_type,
)

__all__ = ["SCALARS", "Stdlib", "is_view"]

#: The functions of ``math`` with a primitive of their own (``math.<name>``).
_MATH = {
    getattr(math, name): f"math.{name}"
    for name in (
        "sqrt",
        "ceil",
        "floor",
        "trunc",
        "exp",
        "log",
        "log2",
        "log10",
        "isnan",
        "isinf",
        "isfinite",
    )
}
#: The types a value of which f-strings and ``repr`` format.
SCALARS = (INT, FLOAT, STR, BOOL)
_SCALAR_OF = {int: INT, float: FLOAT, str: STR, bool: BOOL}
_BITWISE: dict[type[ast.operator], tuple[str, str]] = {
    ast.BitAnd: ("bit_and", "&"),
    ast.BitOr: ("bit_or", "|"),
    ast.BitXor: ("bit_xor", "^"),
    ast.LShift: ("lshift", "<<"),
    ast.RShift: ("rshift", ">>"),
}


class Stdlib(Methods):
    """``math``, powers, repetition and more methods of str and list."""

    def call_object(self, node: ast.Call, obj: Any, env: Env) -> Val:
        """``math.sqrt(x)`` and the other ``math`` functions, ``pow(a, b)``,
        ``next(iter(x))``, ``repr(x)`` and ``str(xs)`` of a list; else as before."""
        name = _MATH.get(obj) if _hashable(obj) else None
        if name is not None:
            (v,) = self.positional(node, env, name, 1)
            return self.prim(name, [v], node, name)
        if obj is builtins.pow:
            a, b = self.positional(node, env, "pow", 2)
            return self.power(node, a, b, node.args[1])
        if obj is builtins.next:
            return self.next_(node, env)
        if obj in (builtins.hex, builtins.bin, builtins.oct):
            (v,) = self.positional(node, env, obj.__name__, 1)
            return self.prim(obj.__name__, [v], node, f"{obj.__name__}()")
        if obj is int and len(node.args) == 2 and not node.keywords:
            s, base = self.positional(node, env, "int", 2)
            return self.prim("int_of_str_base", [s, base], node, "int(s, base)")
        if obj is dict and len(node.args) == 1 and not node.keywords:
            return self.dict_of(node, env)
        if obj is builtins.repr or (obj is str and len(node.args) == 1 and not node.keywords):
            (v,) = self.positional(node, env, obj.__name__, 1)
            t = v.type
            scalar_list = isinstance(t, ListT) and t.item in SCALARS
            if scalar_list or (t in SCALARS and obj is builtins.repr):
                return self.prim("repr", [v], node, f"{obj.__name__}()")
            if obj is builtins.repr:
                self.mismatch(node, "an int, float, str or bool, or a list of them, for repr", t)
        return super().call_object(node, obj, env)

    def dict_of(self, node: ast.Call, env: Env) -> Val:
        """``dict(d)`` (a copy, as before) or ``dict(pairs)`` of an iterable of
        ``(key, value)`` pairs (``zip(ks, vs)``, ``enumerate(xs)``, a list)."""
        arg = node.args[0]
        try:
            v: Val | None = self.expr(arg, env)
        except FrontendError:
            v = None  # zip(...), a generator: only iterated
        if v is not None and isinstance(v.type, MapT):
            return super().call_object(node, dict, env)
        pairs = self.iterable(arg, env, "dict(...)")
        t = pairs.type
        if not (
            isinstance(t, ListT)
            and isinstance(t.item, TupleT)
            and len(t.item.items) == 2
            and is_key_type(t.item.items[0])
        ):
            self.mismatch(node, "a dict, or (key, value) pairs with keys of a key type", t)
        return self.prim("map_of_items", [pairs], node, "dict(...)")

    def next_(self, node: ast.Call, env: Env) -> Val:
        """``next(iter(x))``, ``next(iter(x), default)``: the first item of a
        list or str, the first key of a dict (``StopIteration`` when empty)."""
        arg = node.args[0] if node.args else None
        if (
            node.keywords
            or len(node.args) not in (1, 2)
            or not isinstance(arg, ast.Call)
            or self.src.static(arg.func, self.locals) is not builtins.iter
            or len(arg.args) != 1
            or arg.keywords
        ):
            self.fail(
                node,
                "next(...) is supported as next(iter(x)) or next(iter(x), default), the first "
                "item of a list or str or the first key of a dict; iterate with a for loop "
                "for the rest",
                "next(iter(x))",
                ast.unparse(node)[:40],
            )
        xs = self.expr(arg.args[0], env)
        t = xs.type
        if not (t == STR or isinstance(t, ListT | MapT)):
            self.mismatch(arg, "a list, str or dict for next(iter(x))", t)
        item = t.key if isinstance(t, MapT) else t.item if isinstance(t, ListT) else STR
        if len(node.args) == 1:
            return self.prim("first", [xs], node, "next(iter(x))")
        default = self.expr(node.args[1], env, item)
        return self.prim("first_or", [xs, default], node, "next(iter(x), default)")

    # -- operators ----------------------------------------------------------

    def binop(
        self, node: ast.AST, left: ast.expr, op: ast.operator, right: ast.expr, env: Env
    ) -> Val:
        """``a ** b`` and ``s * n``; the rest as before."""
        if isinstance(op, ast.Pow):
            a = self.expr(left, env)
            return self.power(node, a, self.expr(right, env), right)
        if type(op) in _BITWISE:
            a = self.expr(left, env)
            if a.type == INT:
                return self.combine(node, op, a, self.expr(right, env))
        if isinstance(op, ast.Mult):
            a = self.expr(left, env)
            if a.type == STR or isinstance(a.type, ListT):
                return self.combine(node, op, a, self.expr(right, env))
            if a.type == INT:
                b = self.expr(right, env)
                if b.type == STR or isinstance(b.type, ListT):
                    return self.combine(node, op, a, b)
        return super().binop(node, left, op, right, env)

    def combine(self, node: ast.AST, op: ast.operator, a: Val, b: Val) -> Val:
        """``a op b`` of two translated operands: also ``**`` and repetition."""
        if isinstance(op, ast.Pow):
            return self.power(node, a, b, None)
        if type(op) in _BITWISE and a.type == INT:
            name, text = _BITWISE[type(op)]
            return self.prim(name, [a, b], node, f"the operator {text}")
        if isinstance(op, ast.Mult) and INT in (a.type, b.type):
            seq = b if a.type == INT else a
            if seq.type == STR or isinstance(seq.type, ListT):
                if isinstance(seq.type, ListT) and mutable(seq.type.item):
                    self.fail(
                        node,
                        f"repeating a {show(seq.type)} repeats the same inner lists or dicts "
                        "in Python (changing one changes all), which arrowloop values cannot "
                        "do; build it with a comprehension ([[] for _ in range(n)])",
                        "a list of immutable items",
                        show(seq.type),
                    )
                return self.prim("repeat", [a, b], node, "the operator *")
        return super().combine(node, op, a, b)

    def unary(self, node: ast.expr, op: ast.unaryop, operand: ast.expr, env: Env) -> Val:
        """``~n`` of an int; the rest as before."""
        if isinstance(op, ast.Invert):
            v = self.expr(operand, env)
            if v.type != INT:
                self.mismatch(node, "an int operand of ~", v.type)
            return self.prim("invert", [v], node, "the operator ~")
        return super().unary(node, op, operand, env)

    def power(self, node: ast.AST, a: Val, b: Val, exponent: ast.expr | None) -> Val:
        """``a ** b``: an int for ints (a constant negative exponent gives the
        float Python gives; a negative one at run time raises), else a float."""
        if a.type not in (INT, FLOAT) or b.type not in (INT, FLOAT):
            self.fail(
                node,
                f"** takes int or float operands, found {show(a.type)} and {show(b.type)}",
                "int or float operands",
                f"{show(a.type)}, {show(b.type)}",
            )
        k = int_literal(exponent) if exponent is not None else None
        if a.type == INT and b.type == INT and k is not None and k < 0:
            a = self.prim("float_of_int", [a], node, "**")
        return self.prim("pow", [a, b], node, "the operator **")

    def compare_one(
        self, node: ast.AST, left: ast.expr, op: ast.cmpop, right: ast.expr, env: Env
    ) -> Arrow:
        """``x in (a, b, c)`` and ``x in t`` of a tuple of one item type;
        ``x is Color.RED`` on enum members (one object per member: ``==``)."""
        if isinstance(op, ast.In | ast.NotIn) and is_view(right):
            assert isinstance(right, ast.Call)
            assert isinstance(right.func, ast.Attribute)
            if right.func.attr == "keys":  # k in d.keys() is k in d
                return super().compare_one(node, left, op, right.func.value, env)
            xs = self.iterable(right, env, "in")
            a = self.expr(left, env, xs.type.item if isinstance(xs.type, ListT) else None)
            test = self.prim("list_has", [a, xs], node, "in").arrow
            return test >> Prim("not") if isinstance(op, ast.NotIn) else test
        if isinstance(op, ast.In | ast.NotIn):
            if isinstance(right, ast.Tuple) and not any(
                isinstance(e, ast.Starred) for e in right.elts
            ):
                # The tuple's items are evaluated, then searched: a list does the same.
                shown = ast.copy_location(ast.List(right.elts, ast.Load()), right)
                return super().compare_one(node, left, op, shown, env)
            b = self.expr(right, env)
            if isinstance(b.type, TupleT):
                xs = self.tuple_list(right, b)
                a = self.expr(left, env, xs.type.item if isinstance(xs.type, ListT) else None)
                test = self.prim("list_has", [a, xs], node, "in").arrow
                return test >> Prim("not") if isinstance(op, ast.NotIn) else test
        return super().compare_one(node, left, op, right, env)

    def tuple_list(self, node: ast.expr, t: Val) -> Val:
        """The items of the tuple ``t`` (of one item type) as a list."""
        assert isinstance(t.type, TupleT)
        items = t.type.items
        if not items or len(set(items)) != 1:
            self.fail(
                node,
                f"'in' on a tuple needs items of one type, found {show(t.type)}; "
                "compare with == one by one",
                "a tuple of one item type",
                show(t.type),
            )
        lt = ListT(items[0])
        n = len(items)
        acc = Val(Const(lt, []), lt)
        for i in range(n):
            acc = self.prim("append", [acc, Val(Proj(i, n), items[0])], node, "in")
        return Val(t.arrow >> acc.arrow, lt)

    def destructure(self, target: ast.expr, v: Val, env: Env) -> list[tuple[str, Val]]:
        """``a, b = xs`` of a list: Python's ``ValueError`` unless it has as
        many items as names, then the items; the rest as before."""
        if isinstance(target, ast.Tuple | ast.List) and isinstance(v.type, ListT):
            n = len(target.elts)
            if any(isinstance(e, ast.Starred) for e in target.elts):
                self.fail(target, "a starred name (a, *rest = xs) is not supported; use slices")
            count = Val(Const(INT, n), INT)
            checked = self.prim("unpack_check", [v, count], target, "unpacking a list")
            out: list[tuple[str, Val]] = []
            for i, elt in enumerate(target.elts):
                item = self.prim(
                    "item", [checked, Val(Const(INT, i), INT)], target, "unpacking a list"
                )
                out += self.destructure(elt, item, env)
            return out
        return super().destructure(target, v, env)


def is_view(node: ast.expr) -> bool:
    """Whether ``node`` is ``d.keys()``, ``d.values()`` or ``d.items()``."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in ("keys", "values", "items")
        and not node.args
        and not node.keywords
    )


def _hashable(obj: Any) -> bool:
    try:
        hash(obj)
    except TypeError:
        return False
    return True
