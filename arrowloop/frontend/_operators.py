"""Translating operators: arithmetic, comparisons, ``and``/``or``/``not``, ``a if c else b``.

Part of the Python front end. Arithmetic and comparisons become registry
primitives (``+`` is ``add``, ``<`` is ``lt``), chosen by the operand
types. ``and``, ``or``, chained comparisons and conditional expressions
become ``if`` nodes, so, as in Python, what is not needed is not evaluated
(``b != 0 and a // b > 1`` never divides by zero).
"""

from __future__ import annotations

import ast

from arrowloop.arrows import Arrow, Compose, Const, Id, If, Prim, Proj, type_of_value
from arrowloop.errors import ValidationError
from arrowloop.frontend._env import Env, Val, tuple_of
from arrowloop.frontend._shapes import BALANCE_FROM, balanced
from arrowloop.frontend._typing import FALSE, TRUE, Typing, show
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    UNIT,
    ListT,
    MapT,
    OptionT,
    SetT,
    Type,
    UnitT,
    VariantT,
    validate,
)

__all__ = ["Operators"]

_BINOPS: dict[type[ast.operator], tuple[str, str]] = {
    ast.Add: ("add", "+"),
    ast.Sub: ("sub", "-"),
    ast.Mult: ("mul", "*"),
    ast.FloorDiv: ("floordiv", "//"),
    ast.Mod: ("mod", "%"),
    ast.Div: ("div", "/"),
    ast.BitOr: ("set_union", "|"),
    ast.BitAnd: ("set_inter", "&"),
}
#: Operators that mean something else on sets (the others are set-only).
_SET_BINOPS: dict[type[ast.operator], str] = {ast.Sub: "set_diff"}
_CMPOPS: dict[type[ast.cmpop], tuple[str, str]] = {
    ast.Eq: ("eq", "=="),
    ast.NotEq: ("ne", "!="),
    ast.Lt: ("lt", "<"),
    ast.LtE: ("le", "<="),
    ast.Gt: ("gt", ">"),
    ast.GtE: ("ge", ">="),
}


class Operators(Typing):
    """Operator translation, on top of :class:`Typing`."""

    def literal(self, node: ast.expr, value: bool | int | float | str) -> Val:
        """The constant of a literal (``-5`` included), which the wire must carry."""
        t = type_of_value(value)
        try:
            validate(t, value, "literal", wire=True)
        except ValidationError as exc:
            self.fail(node, f"this literal cannot be part of a program: {exc.message}")
        return Val(Const(t, value), t)

    def operand_env(self, test: ast.expr, env: Env, and_: bool) -> Env:
        """The environment of the operand after ``test`` in an ``and`` (or an
        ``or``); the narrowing layer (``_narrowing.py``) narrows it."""
        return env

    def branch_envs(self, test: ast.expr, env: Env) -> tuple[Env, Env]:
        """The environments of the two branches of ``a if test else b``."""
        return env, env

    def boolop(
        self, op: ast.boolop, values: list[ast.expr], env: Env, as_condition: bool = False
    ) -> Val:
        """``a and b``, ``a or b``, stopping as soon as the result is known: on
        bools, or, as a condition, on any values by their truth. (As a value,
        Python's ``a and b`` is one of the operands, not a bool, so other
        operands are refused there.)"""
        conds = []
        for v in values:
            if as_condition:
                conds.append(self.condition(v, env))
            else:
                val = self.expr(v, env)
                if val.type != BOOL:
                    word = "and" if isinstance(op, ast.And) else "or"
                    self.fail(
                        v,
                        f"`{word}` on a {show(val.type)} gives one of its operands in Python, "
                        f"not a bool; use it as a condition, or write bool(...) {word} ...",
                        "bool",
                        show(val.type),
                    )
                conds.append(val.arrow)
            # ``x is not None and f(x)``: later operands see what this one narrows.
            env = self.operand_env(v, env, isinstance(op, ast.And))
        if len(conds) >= BALANCE_FROM:
            # and/or are associative, evaluation order and stopping included.
            both = isinstance(op, ast.And)
            tree = balanced(conds, lambda a, b: If(a, b, FALSE) if both else If(a, TRUE, b))
            return Val(tree, BOOL)
        out = conds[-1]
        for c in reversed(conds[:-1]):
            out = If(c, out, FALSE) if isinstance(op, ast.And) else If(c, TRUE, out)
        return Val(out, BOOL)

    def binop(
        self, node: ast.AST, left: ast.expr, op: ast.operator, right: ast.expr, env: Env
    ) -> Val:
        """``+ - * // % /`` on numbers, ``+`` on strings and lists."""
        self._binop_entry(node, op)
        links = [(node, op, right)]
        first = left
        while isinstance(first, ast.BinOp) and type(first.op) in _BINOPS:
            links.append((first, first.op, first.right))
            first = first.left
        if len(links) >= BALANCE_FROM:
            return self.binop_chain(first, links[::-1], env)
        a = self.expr(left, env)
        b = self.expr(right, env, a.type if isinstance(a.type, ListT | SetT) else None)
        return self.combine(node, op, a, b)

    def combine(self, node: ast.AST, op: ast.operator, a: Val, b: Val) -> Val:
        """``a op b`` of two translated operands."""
        name, text = self._binop_entry(node, op)
        if isinstance(a.type, SetT):
            name = _SET_BINOPS.get(type(op), name)
        return self.prim(name, [a, b], node, f"the operator {text}")

    def _binop_entry(self, node: ast.AST, op: ast.operator) -> tuple[str, str]:
        entry = _BINOPS.get(type(op))
        if entry is None:
            self.fail(
                node,
                f"the operator {_op_text(op)} is not supported; supported are + - * // % / "
                "(and | & - on sets) "
                "(register a primitive for anything else)",
                found=_op_text(op),
            )
        return entry

    def binop_chain(
        self,
        first: ast.expr,
        links: list[tuple[ast.AST, ast.operator, ast.expr]],
        env: Env,
    ) -> Val:
        """``a + b - c ...`` (a left fold, not associative on floats) threaded
        through a flat composition of ``(result so far, environment)`` steps,
        so that the program does not nest one level per operator."""
        acc = self.expr(first, env)
        steps: list[Arrow] = [tuple_of([acc.arrow, Id()])]
        for node, op, right in links:
            name, text = _BINOPS[type(op)]
            if isinstance(acc.type, SetT):
                name = _SET_BINOPS.get(type(op), name)
            b = self.expr(right, env, acc.type if isinstance(acc.type, ListT | SetT) else None)
            parts = [Val(Proj(0, 2), acc.type), Val(Proj(1, 2) >> b.arrow, b.type)]
            # The result comes first in the pair: the simplifier then leaves
            # the steps side by side (it fuses a step into the next only when
            # that cannot reorder two that may raise).
            acc = self.prim(name, parts, node, f"the operator {text}")
            steps.append(tuple_of([acc.arrow, Proj(1, 2)]))
        return Val(Compose((*steps, Proj(0, 2))), acc.type)

    def unary(self, node: ast.expr, op: ast.unaryop, operand: ast.expr, env: Env) -> Val:
        """``-x``, ``+x`` on numbers; ``not b`` on bools."""
        if isinstance(op, ast.Not):
            return Val(self.condition(operand, env) >> Prim("not"), BOOL)
        if isinstance(op, ast.USub | ast.UAdd):
            literal = operand.value if isinstance(operand, ast.Constant) else None
            if isinstance(op, ast.USub) and isinstance(literal, int | float):
                return self.literal(node, -literal)
            v = self.expr(operand, env)
            if v.type not in (INT, FLOAT):
                self.mismatch(node, "an int or float operand of unary - or +", v.type)
            return self.prim("neg", [v], node, "unary -") if isinstance(op, ast.USub) else v
        self.fail(node, "the operator ~ is not supported", found="~")

    def compare(self, node: ast.Compare, env: Env) -> Val:
        """Comparisons, chained as in Python (``a < b < c`` stops at the first false)."""
        operands = [node.left, *node.comparators]
        tests = [
            self.compare_one(node, operands[i], op, operands[i + 1], env)
            for i, op in enumerate(node.ops)
        ]
        out = tests[-1]
        for t in reversed(tests[:-1]):
            out = If(t, out, FALSE)
        return Val(out, BOOL)

    def member(self, node: ast.AST, x: Val, c: Val) -> Val:
        """``x in c`` for a dict or a set ``c`` (``x`` converted to its key type)."""
        assert isinstance(c.type, MapT | SetT)
        kt = c.type.key if isinstance(c.type, MapT) else c.type.item
        if x.type != kt:
            conv = self.convert(x.arrow, x.type, kt)
            if conv is None:
                self.mismatch(node, f"a key of type {show(kt)} for 'in'", x.type)
            x = Val(conv, kt)
        name = "map_has" if isinstance(c.type, MapT) else "set_has"
        return self.prim(name, [c, x], node, "in")

    def compare_one(
        self, node: ast.AST, left: ast.expr, op: ast.cmpop, right: ast.expr, env: Env
    ) -> Arrow:
        """One comparison ``left op right`` as a ``bool`` arrow."""
        if isinstance(op, ast.Is | ast.IsNot):
            return self.is_none(node, left, op, right, env)
        a, b = self.expr(left, env), self.expr(right, env)
        if isinstance(op, ast.In | ast.NotIn):
            if b.type == STR and a.type == STR:
                test = self.prim("contains", [b, a], node, "in")
            elif isinstance(b.type, MapT | SetT):
                test = self.member(node, a, b)
            else:
                self.fail(
                    node,
                    f"'in' works on a str in a str, a key in a dict or an item in a set here, "
                    f"found {show(a.type)} in {show(b.type)}",
                    "str in str, K in dict[K, T], or K in set[K]",
                    f"{show(a.type)} in {show(b.type)}",
                )
            return test.arrow >> Prim("not") if isinstance(op, ast.NotIn) else test.arrow
        name, text = _CMPOPS[type(op)]
        if name in ("eq", "ne") and a.type != b.type:
            a2 = self.convert(a.arrow, a.type, b.type)
            b2 = self.convert(b.arrow, b.type, a.type)
            if b2 is not None:
                b = Val(b2, a.type)
            elif a2 is not None:
                a = Val(a2, b.type)
            else:
                self.fail(
                    node,
                    f"{text} compares values of one type here, found {show(a.type)} and "
                    f"{show(b.type)}; convert one side (float(n), str(n))",
                    "operands of one type",
                    f"{show(a.type)} and {show(b.type)}",
                )
        return self.prim(name, [a, b], node, f"the comparison {text}").arrow

    def is_none(
        self, node: ast.AST, left: ast.expr, op: ast.cmpop, right: ast.expr, env: Env
    ) -> Arrow:
        """``x is None`` and ``x is not None`` on an optional value; ``is``
        between enum members or bools (see :meth:`is_singleton`)."""
        if not (isinstance(right, ast.Constant) and right.value is None):
            same = self.is_singleton(node, left, right, env)
            if same is not None:
                return same >> Prim("not") if isinstance(op, ast.IsNot) else same
            self.fail(
                node,
                "'is' is only supported as 'x is None' or 'x is not None'; use == to compare "
                "values",
                "is None",
                "is",
            )
        v = self.expr(left, env)
        if not isinstance(v.type, OptionT):
            self.mismatch(left, "an optional value (T | None) left of 'is None'", v.type)
        name = "is_none" if isinstance(op, ast.Is) else "is_some"
        return self.prim(name, [v], node, "is").arrow

    def is_singleton(
        self, node: ast.AST, left: ast.expr, right: ast.expr, env: Env
    ) -> Arrow | None:
        """``a is b`` as ``a == b`` when both are enum members or bools (or
        optionals of them): Python makes one object per member and one each of
        ``True`` and ``False``, so identity is equality there. ``None`` if the
        operands are of other types."""
        a, b = self.expr(left, env), self.expr(right, env)
        if not (_singletons(a.type) and _singletons(b.type)):
            return None
        same = self.one_type(a, b)
        if same is None:
            return None
        return self.prim("eq", list(same), node, "is").arrow

    def one_type(self, a: Val, b: Val) -> tuple[Val, Val] | None:
        """``a`` and ``b`` of one type: as they are, or one converted to the
        other's type (``b`` to ``a``'s first); ``None`` when neither converts."""
        if a.type == b.type:
            return a, b
        b2 = self.convert(b.arrow, b.type, a.type)
        if b2 is not None:
            return a, Val(b2, a.type)
        a2 = self.convert(a.arrow, a.type, b.type)
        if a2 is not None:
            return Val(a2, b.type), b
        return None

    def if_expr(
        self,
        node: ast.expr,
        test: ast.expr,
        body: ast.expr,
        orelse: ast.expr,
        env: Env,
        expected: Type | None,
    ) -> Val:
        """``a if c else b``: an ``if`` node, so only the taken branch is evaluated."""
        cond = self.condition(test, env)
        env_a, env_b = self.branch_envs(test, env)
        a = self.expr(body, env_a, expected)
        b = self.expr(orelse, env_b, expected)
        same = self.one_type(a, b)
        if same is not None:
            a, b = same
        elif UNIT in (a.type, b.type) and not isinstance(
            other := b.type if a.type == UNIT else a.type, OptionT | UnitT
        ):
            # ``None if c else x``: an optional
            a, b = self.coerce(a, OptionT(other), body), self.coerce(b, OptionT(other), orelse)
        else:
            self.fail(
                node,
                f"the branches of the conditional expression have the types {show(a.type)} "
                f"and {show(b.type)}; annotate the target with a type that holds both "
                "(reply: Output = ...)",
                show(a.type),
                show(b.type),
            )
        return Val(If(cond, a.arrow, b.arrow), a.type)


def _op_text(op: ast.operator) -> str:
    return {
        ast.Pow: "**",
        ast.MatMult: "@",
        ast.LShift: "<<",
        ast.RShift: ">>",
        ast.BitOr: "|",
        ast.BitAnd: "&",
        ast.BitXor: "^",
    }.get(type(op), type(op).__name__)


def _singletons(t: Type) -> bool:
    """Whether every value of ``t`` is one of a fixed set of Python objects
    (enum members, ``True``/``False``, ``None`` in an optional of those)."""
    if isinstance(t, OptionT):
        t = t.item
    if t == BOOL:
        return True
    return isinstance(t, VariantT) and all(isinstance(p, UnitT) for _, p in t.cases)
