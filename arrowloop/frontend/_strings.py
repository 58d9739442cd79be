"""Translating string indexing and slicing, more string methods, f-strings,
and ``in`` on lists.

Part of the Python front end, a layer of the translator
(:class:`arrowloop.frontend._language.Language` puts the layers together).
Each construct becomes a primitive that calls Python's own operation
(``arrowloop/arrows/_strprims.py``), so results and exceptions are Python's.
An f-string is the concatenation of its pieces; a replacement field
``{x:spec}`` is the primitive ``format:spec`` applying ``format(x, spec)``,
the spec being part of the primitive's name, hence a constant of the program.
"""

from __future__ import annotations

import ast

from arrowloop.arrows import FORMAT_PREFIX, Arrow, Const, Prim
from arrowloop.frontend._env import Env, Val
from arrowloop.frontend._shapes import balanced
from arrowloop.frontend._stmts import Translator
from arrowloop.frontend._typing import show
from arrowloop.typesys import BOOL, FLOAT, INT, STR, ListT, Type

__all__ = ["Strings"]

# Methods of str that take no argument, or one str, and their primitives.
_NO_ARG = {
    "isdigit": "isdigit",
    "isalpha": "isalpha",
    "isspace": "isspace",
    "title": "title",
    "lstrip": "lstrip",
    "rstrip": "rstrip",
}
_ONE_STR = {"find": "find", "count": "count"}
_FORMATTABLE = (INT, FLOAT, STR, BOOL)


class Strings(Translator):
    """Strings, slices, f-strings and list membership."""

    def _expr(self, node: ast.expr, env: Env, expected: Type | None) -> Val:
        if isinstance(node, ast.JoinedStr):
            return self.fstring(node, env)
        return super()._expr(node, env, expected)

    def fstring(self, node: ast.JoinedStr, env: Env) -> Val:
        """``f"n={n:>5}"``: the pieces concatenated, in source order."""
        pieces: list[Val] = []
        for part in node.values:
            if isinstance(part, ast.FormattedValue):
                pieces.append(self.formatted(part, env))
            elif isinstance(part, ast.Constant) and isinstance(part.value, str):
                pieces.append(Val(Const(STR, part.value), STR))
        if not pieces:
            return Val(Const(STR, ""), STR)
        # Concatenation is associative: a balanced tree keeps long f-strings shallow.
        return balanced(pieces, lambda a, b: self.prim("add", [a, b], node, "an f-string"))

    def formatted(self, part: ast.FormattedValue, env: Env) -> Val:
        """One replacement field: ``format(x, spec)``, after ``!r``/``!s``."""
        spec = ""
        if part.format_spec is not None:
            fs = part.format_spec
            values = fs.values if isinstance(fs, ast.JoinedStr) else [fs]
            if not all(isinstance(v, ast.Constant) for v in values):
                self.fail(
                    part,
                    "a format spec with a replacement field ({x:{width}}) is not supported: the "
                    "spec must be a constant; write it out ({x:>8})",
                    "a constant format spec",
                    ast.unparse(fs),
                )
            spec = "".join(str(v.value) for v in values if isinstance(v, ast.Constant))
        v = self.expr(part.value, env)
        if v.type not in _FORMATTABLE:
            self.fail(
                part.value,
                f"an f-string formats int, float, str and bool values, found {show(v.type)}; "
                "format its parts ({r.name} {r.score})",
                "int, float, str or bool",
                show(v.type),
            )
        if part.conversion == ord("r"):
            v = self.prim("repr", [v], part, "!r")
        elif part.conversion == ord("a"):
            self.fail(part, "!a is not supported in f-strings; use !r", "!r or !s", "!a")
        # !s is str(x), which is format(x, "") for these types.
        if v.type == STR and not spec:
            return v
        name = FORMAT_PREFIX + spec
        if name not in self.registry:
            self.fail(
                part,
                f"the format spec {spec!r} is not one Python accepts for int, float, str or "
                "bool (see the format specification mini-language)",
                "a valid format spec",
                repr(spec),
            )
        return self.prim(name, [v], part, f"the format spec {spec!r}")

    def subscript(self, node: ast.Subscript, env: Env) -> Val:
        """``s[i]``, ``s[a:b:c]`` and ``xs[a:b:c]``; the rest as before."""
        if isinstance(node.slice, ast.Slice):
            return self.slice_(node, node.slice, env)
        base = self.expr(node.value, env)
        if base.type == STR:
            i = self.expr(node.slice, env, INT)
            return self.prim("item", [base, i], node, "indexing a str")
        return super().subscript(node, env)

    def slice_(self, node: ast.Subscript, sl: ast.Slice, env: Env) -> Val:
        """A slice of a str or a list (Python's bounds: clamped, negative from the end)."""
        base = self.expr(node.value, env)
        if base.type != STR and not isinstance(base.type, ListT):
            self.mismatch(node, "a str or a list to slice", base.type)
        return self.prim("slice", [base, *self.slice_bounds(sl, env)], node, "a slice")

    def method(self, node: ast.Call, f: ast.Attribute, env: Env) -> Val:
        """More methods of str: find, count, isdigit, ..., split()."""
        m = f.attr
        if m in _NO_ARG or m in _ONE_STR or (m == "split" and not node.args):
            recv = self.expr(f.value, env)
            if recv.type == STR:
                if m == "split" and not node.keywords:
                    return self.prim("split_ws", [recv], node, "str.split")
                if m in _NO_ARG:
                    self.positional(node, env, f"str.{m}", 0)
                    return self.prim(_NO_ARG[m], [recv], node, f"str.{m}")
                if m in _ONE_STR:
                    (sub,) = self.positional(node, env, f"str.{m}", 1)
                    return self.prim(_ONE_STR[m], [recv, sub], node, f"str.{m}")
        return super().method(node, f, env)

    def compare_one(
        self, node: ast.AST, left: ast.expr, op: ast.cmpop, right: ast.expr, env: Env
    ) -> Arrow:
        """``x in xs`` and ``x not in xs`` on lists; the rest as before."""
        if isinstance(op, ast.In | ast.NotIn):
            b = self.expr(right, env)
            if isinstance(b.type, ListT):
                a = self.expr(left, env, b.type.item)
                # (item, list): evaluated in source order, as in Python.
                test = self.prim("list_has", [a, b], node, "in").arrow
                return test >> Prim("not") if isinstance(op, ast.NotIn) else test
        return super().compare_one(node, left, op, right, env)
