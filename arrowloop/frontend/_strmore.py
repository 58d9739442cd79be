"""Translating more methods of ``str`` and ``list``: ``strip(chars)``,
``partition``, ``capitalize`` and the other methods of ``str`` with a
primitive of their own, ``str.format`` with a constant format string,
``sep.join`` of an iterator, ``xs.count``, ``xs.index``, ``x.is_integer()``,
and a list in an f-string.

Part of the Python front end, a layer of the translator
(:class:`arrowloop.frontend._language.Language` puts the layers together),
on top of :mod:`arrowloop.frontend._stdlib`. Each method is Python's own,
as a primitive of ``arrowloop/arrows/_mathprims.py``.
"""

from __future__ import annotations

import ast
import string

from arrowloop.arrows import FORMAT_PREFIX, Const, Id, Proj
from arrowloop.arrows._mathprims import STR_NO_ARG, STR_ONE_STR, STR_WIDTH
from arrowloop.frontend._env import UNIT_TUPLE, Env, Val, tuple_of
from arrowloop.frontend._shapes import balanced
from arrowloop.frontend._stdlib import SCALARS, Stdlib, is_view
from arrowloop.frontend._typing import show
from arrowloop.typesys import FLOAT, STR, ListT, TupleT

__all__ = ["MoreStrings"]

_STRIPS = ("strip", "lstrip", "rstrip")
_MORE_METHODS = frozenset(
    {*STR_NO_ARG, *STR_ONE_STR, *STR_WIDTH}
    | {"zfill", "splitlines", "rsplit", "split", "startswith", "endswith", "format"}
    | {"is_integer", "index"}
)


class MoreStrings(Stdlib):
    """More methods of str and list, ``str.format``, lists in f-strings."""

    # -- methods --------------------------------------------------------------

    def method(self, node: ast.Call, f: ast.Attribute, env: Env) -> Val:
        """``s.strip(chars)``, ``s.partition(sep)``, ``xs.count(x)`` and more
        methods of str, list and float; else as before."""
        m = f.attr
        if m == "join" and len(node.args) == 1 and _lazy(node.args[0], self):
            sep = self.expr(f.value, env)
            if sep.type == STR:
                xs = self.iterable(node.args[0], env, "str.join")
                return self.prim("join", [sep, xs], node, "str.join")
        if m in _MORE_METHODS:
            recv = self.expr(f.value, env)
            found = self.more_method(node, f, recv, env)
            if found is not None:
                return found
        if (m in _STRIPS and len(node.args) == 1) or m in ("partition", "rpartition", "count"):
            recv = self.expr(f.value, env)
            if recv.type == STR and m != "count":
                (arg,) = self.positional(node, env, f"str.{m}", 1)
                return self.prim(m, [recv, arg], node, f"str.{m}")
            if isinstance(recv.type, ListT) and m == "count":
                if len(node.args) != 1 or node.keywords:
                    self.fail(node, "list.count takes one positional argument")
                x = self.expr(node.args[0], env, recv.type.item)
                return self.prim("list_count", [recv, x], node, "list.count")
        return super().method(node, f, env)

    def more_method(self, node: ast.Call, f: ast.Attribute, recv: Val, env: Env) -> Val | None:
        """The methods of :data:`_MORE_METHODS` on their receiver's type, or ``None``."""
        m, t, n = f.attr, recv.type, len(node.args)
        what = f"{show(t)}.{m}"
        if node.keywords:
            return None
        if t == STR:
            if m == "format" and isinstance(f.value, ast.Constant):
                return self.str_format(node, str(f.value.value), env)
            if m in STR_NO_ARG or (m == "splitlines" and n == 0):
                self.positional(node, env, what, 0)
                return self.prim(m, [recv], node, what)
            if m in STR_ONE_STR or (m == "rsplit" and n == 1):
                (x,) = self.positional(node, env, what, 1)
                return self.prim(m, [recv, x], node, what)
            if (m in STR_WIDTH and n in (1, 2)) or (m in ("split", "rsplit") and n == 2):
                args = self.positional(node, env, what, n)
                return self.prim(m, [recv, *args], node, what)
            if m == "zfill":
                args = self.positional(node, env, what, 1)
                return self.prim(m, [recv, *args], node, what)
            if m in ("startswith", "endswith") and n == 1:
                arg = node.args[0]
                tup = arg if isinstance(arg, ast.Tuple) else None
                if tup is not None:
                    items = ast.copy_location(ast.List(tup.elts, ast.Load()), tup)
                    xs = self.expr(items, env, ListT(STR))
                    return self.prim(f"{m}_any", [recv, xs], node, what)
                v = self.expr(arg, env)
                if isinstance(v.type, TupleT):
                    return self.prim(f"{m}_any", [recv, self.tuple_list(arg, v)], node, what)
        if isinstance(t, ListT) and m == "index":
            if n != 1:
                self.fail(node, "list.index takes one argument here (no start or end)")
            item = self.expr(node.args[0], env, t.item)
            return self.prim("list_index", [recv, item], node, what)
        if t == FLOAT and m == "is_integer":
            self.positional(node, env, what, 0)
            return self.prim(m, [recv], node, what)
        return None

    def str_format(self, node: ast.Call, fmt: str, env: Env) -> Val:
        """``"{} of {name:>4}".format(a, name=b)``: the arguments evaluated
        first, in order, then each field formatted as an f-string's."""
        try:
            fields = list(string.Formatter().parse(fmt))
        except ValueError as exc:
            self.fail(node, f"the format string is not one Python accepts: {exc}")
        args = [self.expr(a, env) for a in node.args]
        n = len(args)
        auto = 0
        pieces: list[Val] = []
        for literal, field, spec, conversion in fields:
            if literal:
                pieces.append(Val(Const(STR, literal), STR))
            if field is None:
                continue
            if field == "":
                index, auto = auto, auto + 1
            elif field.isdigit():
                index = int(field)
            else:
                self.fail(
                    node,
                    f"the field {{{field}}} is not supported in str.format; use {{}} or {{0}} "
                    "with positional arguments, or an f-string",
                )
            if index >= n:
                self.fail(node, f"str.format has no argument {index} ({n} given)")
            if spec and ("{" in spec or "}" in spec):
                self.fail(node, "a format spec with a replacement field is not supported")
            v = Val(Proj(index, n), args[index].type) if n > 1 else Val(Id(), args[index].type)
            pieces.append(self.format_value(node, v, conversion, spec or ""))
        if not pieces:
            return Val(Const(STR, ""), STR)
        joined = balanced(pieces, lambda a, b: self.prim("add", [a, b], node, "str.format"))
        if not args:
            return Val(UNIT_TUPLE >> joined.arrow, STR)
        source = args[0].arrow if n == 1 else tuple_of([a.arrow for a in args])
        return Val(source >> joined.arrow, STR)

    def format_value(self, node: ast.AST, v: Val, conversion: str | None, spec: str) -> Val:
        """``format(v, spec)`` after ``!r``/``!s``, as in an f-string."""
        if v.type not in SCALARS:
            self.mismatch(node, "an int, float, str or bool to format", v.type)
        if conversion == "r":
            v = self.prim("repr", [v], node, "!r")
        elif conversion not in (None, "s"):
            self.fail(node, f"!{conversion} is not supported; use !r or !s")
        if v.type == STR and not spec:
            return v
        if FORMAT_PREFIX + spec not in self.registry:
            self.fail(node, f"the format spec {spec!r} is not one Python accepts")
        return self.prim(FORMAT_PREFIX + spec, [v], node, f"the format spec {spec!r}")

    # -- f-strings ------------------------------------------------------------

    def formatted(self, part: ast.FormattedValue, env: Env) -> Val:
        """``{xs}`` of a list of ints, floats, strs or bools: its ``repr``, as
        Python's ``str`` of a list; the rest as before."""
        v = self.expr(part.value, env)
        t = v.type
        if isinstance(t, ListT) and t.item in SCALARS:
            if part.format_spec is not None or part.conversion == ord("a"):
                self.fail(
                    part,
                    "a list in an f-string is supported as {xs} or {xs!r} (its repr), without "
                    "a format spec",
                    "{xs}",
                    ast.unparse(part)[:40],
                )
            return self.prim("repr", [v], part, "a list in an f-string")
        return super().formatted(part, env)


def _lazy(node: ast.expr, tr: MoreStrings) -> bool:
    """Whether ``node`` is an iterator call (``reversed(s)``, ``zip(a, b)``,
    ``d.items()``), which Python's ``str.join`` iterates."""
    if not isinstance(node, ast.Call):
        return False
    obj = tr.src.static(node.func, tr.locals)
    lazy = (reversed, zip, enumerate, range, map, filter)
    return is_view(node) or any(obj is f for f in lazy)
