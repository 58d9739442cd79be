"""Translating more of what Python iterates: ``map`` and ``filter``, the
builtins of a set whose result does not depend on its order, and
``min``/``max`` with ``default=``.

Part of the Python front end, a layer of the translator
(:class:`arrowloop.frontend._language.Language` puts the layers together).

* ``map(f, xs)`` and ``filter(f, xs)`` where they are iterated (a loop,
  ``list``, ``sorted``, ``sum``, ``str.join``, ...) are the comprehensions
  ``[f(x) for x in xs]`` and ``[x for x in xs if f(x)]`` (``filter(None,
  xs)`` keeps the true items); ``f`` is a ``lambda`` (inlined) or a function
  name, as for ``key=``. As for generator expressions, every item is
  computed before the consumer starts.
* A set's iteration order is Python's hash order, which no program can
  reproduce, so a set is iterated only where the order cannot show:
  ``sorted(s)``, ``min(s)``, ``max(s)`` (no ``key=``: ties would show it),
  ``sum(s)`` of ints, ``any(s)``, ``all(s)``.
* ``min(xs, default=d)`` and ``max(xs, default=d)`` (also with ``key=``):
  ``d`` when ``xs`` is empty.
* ``[] if c else [x]``: an empty display in a conditional expression has the
  other branch's type.
"""

from __future__ import annotations

import ast
import builtins
from typing import Any

from arrowloop.arrows import Const, Id, If, Prim, Proj
from arrowloop.errors import FrontendError
from arrowloop.frontend._env import Env, Val, tuple_of
from arrowloop.frontend._whiles import Whiles
from arrowloop.typesys import INT, ListT, MapT, SetT, TupleT, Type

__all__ = ["Iteration"]

_ORDER_BLIND = ("sorted", "min", "max", "sum", "any", "all")


class Iteration(Whiles):
    """``map``, ``filter``, builtins of sets, ``default=``, on top of :class:`Whiles`."""

    def iterable(self, node: ast.expr, env: Env, where: str = "a for loop") -> Val:
        """Also ``map(f, xs)`` and ``filter(f, xs)``, as comprehensions."""
        if isinstance(node, ast.Call) and not node.keywords:
            obj = self.src.static(node.func, self.locals)
            if obj is builtins.map or obj is builtins.filter:
                if len(node.args) != 2:
                    self.fail(
                        node,
                        f"{obj.__name__} takes a function and one iterable here; zip them "
                        "first, or write a comprehension",
                    )
                comp, param = self.as_comprehension(node, obj)
                added = param not in self.locals
                self.locals.add(param)  # a name of the comprehension only
                try:
                    return self.comprehension(comp, env, None)
                finally:
                    if added:
                        self.locals.discard(param)
        return super().iterable(node, env, where)

    def as_comprehension(self, node: ast.Call, fn: Any) -> tuple[ast.ListComp, str]:
        """``map(f, xs)`` as ``[f(x) for x in xs]``, ``filter(f, xs)`` as
        ``[x for x in xs if f(x)]``, and the name ``x`` (the lambda's, or made up)."""
        f, xs = node.args
        param = f"$it{node.lineno}.{node.col_offset}"
        item = ast.Name(param, ast.Load())
        if isinstance(f, ast.Lambda):
            a = f.args
            params = [*a.posonlyargs, *a.args]
            if len(params) != 1 or a.vararg or a.kwarg or a.kwonlyargs or a.defaults:
                self.fail(f, "a lambda of map or filter takes exactly one parameter")
            param = params[0].arg
            item = ast.Name(param, ast.Load())
            applied: ast.expr = f.body
        elif isinstance(f, ast.Constant) and f.value is None and fn is builtins.filter:
            applied = item
        else:
            applied = ast.Call(f, [item], [])
        target = ast.Name(param, ast.Store())
        if fn is builtins.map:
            comp = ast.ListComp(applied, [ast.comprehension(target, xs, [], 0)])
        else:
            comp = ast.ListComp(item, [ast.comprehension(target, xs, [applied], 0)])
        return ast.fix_missing_locations(ast.copy_location(comp, node)), param

    def if_expr(
        self,
        node: ast.expr,
        test: ast.expr,
        body: ast.expr,
        orelse: ast.expr,
        env: Env,
        expected: Type | None,
    ) -> Val:
        """``[] if c else [x]``: an empty display takes the other branch's type
        (only the types are worked out in this order; the program is as before)."""
        if expected is None and _empty(body) != _empty(orelse):
            env_a, env_b = self.branch_envs(test, env)
            full, env_full = (orelse, env_b) if _empty(body) else (body, env_a)
            # Translated here for its type only: what that notes (refusals,
            # sharing) is forgotten, since the branch is translated again.
            mark = self.mark()
            try:
                t: Type | None = self.expr(full, env_full).type
            except FrontendError:
                t = None
            finally:
                self.forget(mark)
            if isinstance(t, ListT | MapT | SetT):
                expected = t
        return super().if_expr(node, test, body, orelse, env, expected)

    def call_object(self, node: ast.Call, obj: Any, env: Env) -> Val:
        """Builtins of a set whose result does not depend on its order;
        ``min``/``max`` with ``default=``; else as before."""
        name = next((n for n in _ORDER_BLIND if obj is getattr(builtins, n)), None)
        if name is not None and len(node.args) == 1:
            keywords = {k.arg for k in node.keywords}
            if name in ("min", "max") and "default" in keywords:
                return self.with_default(node, name, env)
            if keywords <= {"reverse"} and not isinstance(node.args[0], ast.GeneratorExp):
                s = self.maybe_set(node.args[0], env)
                if s is not None:
                    return self.of_set(node, name, s, env)
        return super().call_object(node, obj, env)

    def maybe_set(self, node: ast.expr, env: Env) -> Val | None:
        """``node`` translated when it is a set, else ``None``."""
        if isinstance(node, ast.Call | ast.ListComp | ast.DictComp):
            return None  # iterators and comprehensions: as before
        v = self.expr(node, env)
        return v if isinstance(v.type, SetT) else None

    def of_set(self, node: ast.Call, name: str, s: Val, env: Env) -> Val:
        """``sorted(s)``, ``min(s)``, ... of a set: its items in canonical order,
        which the result does not depend on."""
        assert isinstance(s.type, SetT)
        if name == "sum" and s.type.item != INT:
            self.mismatch(node, "a set of ints to sum (a float sum depends on the order)", s.type)
        xs = self.prim("list_of_set", [s], node, f"{name}(...)")
        if name == "sorted":
            reverse = next((k.value for k in node.keywords if k.arg == "reverse"), None)
            return self.sort(node, "sort", xs, reverse, env)
        prim = f"list_{name}" if name in ("min", "max") else name
        return self.prim(prim, [xs], node, name)

    def with_default(self, node: ast.Call, name: str, env: Env) -> Val:
        """``min(xs, default=d)``: ``d`` when ``xs`` is empty, else ``min(xs)``
        (with ``key=`` too); ``xs`` is evaluated first, then ``d``."""
        other = [k.arg for k in node.keywords if k.arg not in ("key", "default")]
        if other:
            self.fail(node, f"{name} does not take {other[0]} here (supported: key, default)")
        default = next(k.value for k in node.keywords if k.arg == "default")
        key = next((k.value for k in node.keywords if k.arg == "key"), None)
        if key is not None and not (isinstance(key, ast.Constant) and key.value is None):
            xs = self.keyed(node.args[0], key, env)
            pick = f"{name}_by"
            assert isinstance(xs.type, ListT)
            assert isinstance(xs.type.item, TupleT)
            item = xs.type.item.items[1]
        else:
            xs = self.iterable(node.args[0], env, f"{name}(...)")
            pick = f"list_{name}"
            assert isinstance(xs.type, ListT)
            item = xs.type.item
        d = self.expr(default, env, item)
        empty = Proj(0, 2) >> Prim("len") >> tuple_of([Id(), Const(INT, 0)]) >> Prim("eq")
        chosen = If(empty, Proj(1, 2), Proj(0, 2) >> Prim(pick))
        return Val(tuple_of([xs.arrow, d.arrow]) >> chosen, item)


def _empty(node: ast.expr) -> bool:
    """Whether ``node`` is an empty list, dict or set display (``[]``, ``{}``, ``set()``)."""
    if isinstance(node, ast.List | ast.Set):
        return not node.elts
    if isinstance(node, ast.Dict):
        return not node.keys
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("list", "dict", "set")
        and not node.args
        and not node.keywords
    )
