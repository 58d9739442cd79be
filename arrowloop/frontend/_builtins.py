"""Translating iteration: what a loop walks, builtins over lists, comprehensions.

Part of the Python front end, between call translation
(:mod:`arrowloop.frontend._calls`) and control flow. Everything a ``for``
loop or a comprehension walks becomes a list first (``range(a, b)``,
``d.items()``, ``enumerate``, ``zip``, ``reversed``, a dict's keys, a
string's characters, a generator expression), so one ``fold`` translates
them all; those calls are accepted only where Python iterates them (their
results are lazy objects in Python, which compare and print unlike lists).

A comprehension is a ``fold`` per ``for`` clause, nested, whose accumulator
is the tuple of the names the comprehension reads and the list or dict being
built; ``if`` clauses choose between adding the item and keeping the
accumulator. ``key=`` functions (a ``lambda`` or a function name) are
applied once per item into ``(key, item)`` pairs, then sorted or compared by
key only, which is what Python's ``sorted``/``min``/``max`` with ``key=``
compute (stably, the first of equal keys).
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Callable
from typing import Any

from arrowloop.arrows import Arrow, Const, Fold, Id, If, Prim, Proj
from arrowloop.frontend._calls import Calls
from arrowloop.frontend._env import Env, Slot, Val, assigned, reads, tuple_of
from arrowloop.frontend._typing import show
from arrowloop.typesys import BOOL, FLOAT, INT, STR, ListT, MapT, TupleT, Type

__all__ = ["Builtins", "key_lambdas"]

#: Calls whose Python result is a lazy iterator or range: only iterated.
_ITERATORS = ("range", "enumerate", "zip", "reversed")
_VIEWS = ("items", "keys", "values")
_PRIMS = {"round": "round", "divmod": "divmod", "ord": "ord", "chr": "chr"}


def _builtin(obj: Any) -> str | None:
    names = (*_ITERATORS, *_PRIMS, "sorted", "any", "all", "min", "max", "sum", "len", "tuple")
    for name in names:
        if obj is getattr(builtins, name):
            return name
    return None


class Builtins(Calls):
    """Iteration, the builtins over lists and comprehensions, on top of :class:`Calls`."""

    def destructure(self, target: ast.expr, v: Val, env: Env) -> list[tuple[str, Val]]:
        """The names a target binds (see :mod:`arrowloop.frontend._stmts`)."""
        raise NotImplementedError

    def call_object(self, node: ast.Call, obj: Any, env: Env) -> Val:
        """The builtins this module adds, else :meth:`Calls.call_object`."""
        name = _builtin(obj)
        if name in _ITERATORS:
            self.fail(
                node,
                f"{name}(...) is only supported where it is iterated (for, a comprehension, "
                f"list(...), sorted(...), sum(...)); write list({ast.unparse(node)})",
                "an iteration",
                name,
            )
        if name in _PRIMS:
            n = {"round": min(max(len(node.args), 1), 2), "divmod": 2}.get(name, 1)
            args = self.positional(node, env, name, n)
            return self.prim(_PRIMS[name], args, node, name)
        if name in ("sorted", "any", "all", "sum") or (
            name in ("min", "max") and (len(node.args) == 1 or node.keywords)
        ):
            assert name is not None
            return self.over_list(node, name, env)
        if name in ("min", "max") and len(node.args) > 2:
            return self.of_several(node, name, env)
        if name == "len" and len(node.args) == 1 and not node.keywords:
            v = self.expr(node.args[0], env)
            if isinstance(v.type, TupleT):
                # Evaluated all the same: it may raise, as in Python.
                return Val(v.arrow >> Const(INT, len(v.type.items)), INT)
        if name == "tuple" or obj is list:
            return self.collection(node, obj, env)
        if obj in (int, float) and len(node.args) == 1 and not node.keywords:
            v = self.expr(node.args[0], env)
            if v.type == STR:
                return self.prim(f"{obj.__name__}_of_str", [v], node, f"{obj.__name__}()")
        return super().call_object(node, obj, env)

    def of_several(self, node: ast.Call, name: str, env: Env) -> Val:
        """``min(a, b, c, ...)``: Python's scan, the first smallest, as a left chain."""
        vals = [self.expr(a, env) for a in node.args]
        if len({v.type for v in vals}) != 1 or vals[0].type not in (INT, FLOAT, STR):
            found = ", ".join(show(v.type) for v in vals)
            self.fail(
                node, f"{name} takes values of one type (int, float or str) here, found {found}"
            )
        acc = vals[0]
        for v in vals[1:]:
            acc = self.prim(name, [acc, v], node, name)
        return acc

    def method(self, node: ast.Call, f: ast.Attribute, env: Env) -> Val:
        """``sep.join(<generator expression>)``, else :meth:`Calls.method`."""
        if f.attr == "join" and len(node.args) == 1 and isinstance(node.args[0], ast.GeneratorExp):
            sep = self.expr(f.value, env)
            if sep.type == STR:
                xs = self.iterable(node.args[0], env, "str.join")
                return self.prim("join", [sep, xs], node, "str.join")
        return super().method(node, f, env)

    def collection(self, node: ast.Call, obj: Any, env: Env) -> Val:
        """``list(iterable)`` and ``tuple(t)``."""
        if len(node.args) != 1 or node.keywords:
            self.fail(node, f"{obj.__name__} takes one iterable here")
        if obj is list:
            return self.iterable(node.args[0], env, "list(...)")
        v = self.expr(node.args[0], env)
        if not isinstance(v.type, TupleT):
            self.fail(
                node,
                f"tuple(...) of {show(v.type)} has no length known before it runs, and arrowloop "
                "tuples have a fixed length; keep a list, or build the tuple (xs[0], xs[1])",
                "a tuple",
                show(v.type),
            )
        return v

    # -- what a loop walks ----------------------------------------------------

    def iterable(self, node: ast.expr, env: Env, where: str = "a for loop") -> Val:
        """``node`` as the list Python would iterate over (items in its order)."""
        if isinstance(node, ast.GeneratorExp):
            return self.comprehension(node, env, None)
        if isinstance(node, ast.Call):
            f = node.func
            name = _builtin(self.src.static(f, self.locals))
            if name in _ITERATORS:
                assert name is not None
                return self.iterator(node, name, env)
            if isinstance(f, ast.Attribute) and f.attr in _VIEWS and not node.args + node.keywords:
                d = self.expr(f.value, env)
                if isinstance(d.type, MapT):
                    return self.prim(f.attr, [d], node, f"dict.{f.attr}()")
        v = self.expr(node, env)
        if isinstance(v.type, ListT):
            return v
        if isinstance(v.type, MapT):
            return self.prim("keys", [v], node, where)
        if v.type == STR:
            return self.prim("chars", [v], node, where)
        self.mismatch(
            node,
            f"something to iterate in {where} (a list, a dict, a str, range(...), d.items(), "
            "enumerate(...), zip(...), reversed(...), a generator expression)",
            v.type,
        )

    def iterator(self, node: ast.Call, name: str, env: Env) -> Val:
        """``range``, ``enumerate``, ``zip``, ``reversed`` as lists."""
        args = node.args
        strict = None
        for k in node.keywords:
            if name != "zip" or k.arg != "strict":
                self.fail(k, f"{name} takes no keyword {k.arg} here")
            strict = self.expr(k.value, env, BOOL)
        if name == "range":
            if not 1 <= len(args) <= 3:
                self.fail(node, f"range takes 1 to 3 ints, found {len(args)} arguments")
            vals = [self.expr(a, env, INT) for a in args]
            if len(vals) == 1:
                vals.insert(0, Val(Const(INT, 0), INT))
            if len(vals) == 2:
                vals.append(Val(Const(INT, 1), INT))
            return self.prim("range", vals, node, "range")
        if name == "zip":
            if len(args) != 2:
                self.fail(node, "zip takes two iterables here (and strict=); nest zips for more")
            xs, ys = (self.iterable(a, env, "zip(...)") for a in args)
            if strict is None:
                strict = Val(Const(BOOL, False), BOOL)
            return self.prim("zip", [xs, ys, strict], node, "zip")
        if name == "enumerate" and len(args) == 2:
            xs = self.iterable(args[0], env, "enumerate(...)")
            start = self.expr(args[1], env, INT)
            return self.prim("enumerate", [xs, start], node, name)
        if len(args) != 1:
            self.fail(node, f"{name} takes one iterable here")
        xs = self.iterable(args[0], env, f"{name}(...)")
        return self.prim("enumerate" if name == "enumerate" else "reverse", [xs], node, name)

    # -- builtins over lists ----------------------------------------------------

    def over_list(self, node: ast.Call, name: str, env: Env) -> Val:
        """``sorted``, ``any``, ``all``, ``sum``, ``min``/``max`` of one iterable."""
        if not node.args:
            self.fail(node, f"{name} takes an iterable")
        keywords = {k.arg: k.value for k in node.keywords}
        allowed = {"sorted": {"key", "reverse"}, "min": {"key"}, "max": {"key"}}.get(name, set())
        extra = set(keywords) - allowed
        if extra:
            self.fail(
                node,
                f"{name} does not take {', '.join(sorted(str(k) for k in extra))} here "
                f"(supported: {', '.join(sorted(allowed)) or 'no keywords'})",
            )
        n_args = 2 if name == "sum" else 1
        if len(node.args) > n_args:
            self.fail(node, f"{name} takes {n_args} positional argument(s) here")
        key = keywords.get("key")
        if key is not None and not (isinstance(key, ast.Constant) and key.value is None):
            pairs = self.keyed(node.args[0], key, env)
            if name == "sorted":
                return self.sort(node, "sort_by", pairs, keywords.get("reverse"), env)
            item = pairs.type.item.items[1]  # type: ignore[attr-defined]
            return Val(pairs.arrow >> Prim(f"{name}_by"), item)
        xs = self.iterable(node.args[0], env, f"{name}(...)")
        if name == "sorted":
            return self.sort(node, "sort", xs, keywords.get("reverse"), env)
        if name in ("min", "max"):
            return self.prim(f"list_{name}", [xs], node, name)
        if name == "sum":
            return self.sum_of(node, xs, env)
        return self.prim(name, [xs], node, name)

    def sort(self, node: ast.Call, prim: str, xs: Val, reverse: ast.expr | None, env: Env) -> Val:
        """``sorted`` (``prim`` is ``sort`` or ``sort_by`` of key pairs)."""
        r = Val(Const(BOOL, False), BOOL) if reverse is None else self.expr(reverse, env, BOOL)
        return self.prim(prim, [xs, r], node, "sorted")

    def sum_of(self, node: ast.Call, xs: Val, env: Env) -> Val:
        """``sum(xs)`` of ints, or ``sum(xs, start)`` as a left fold of ``+``."""
        if len(node.args) == 1:
            if xs.type != ListT(INT):
                self.fail(
                    node,
                    f"sum takes ints here, found {show(xs.type)} (sum of no floats is the int "
                    "0 in Python); write sum(xs, 0.0)",
                    "list[int]",
                    show(xs.type),
                )
            return self.prim("sum", [xs], node, "sum")
        return self.fold_sum(node, xs, self.expr(node.args[1], env))

    def keyed(self, xs: ast.expr, key: ast.expr, env: Env) -> Val:
        """The ``(key(x), x)`` pairs of the items of ``xs``."""
        if isinstance(key, ast.Lambda):
            a = key.args
            params = [*a.posonlyargs, *a.args]
            if len(params) != 1 or a.vararg or a.kwarg or a.kwonlyargs or a.defaults:
                self.fail(key, "a key= lambda takes exactly one parameter (lambda x: ...)")
            param, body = params[0].arg, key.body
        else:
            param = f"$key{key.lineno}.{key.col_offset}"
            body = ast.Call(key, [ast.Name(param, ast.Load())], [])
        item = ast.Name(param, ast.Load())
        comp = ast.ListComp(
            ast.Tuple([body, item], ast.Load()),
            [ast.comprehension(ast.Name(param, ast.Store()), xs, [], 0)],
        )
        ast.copy_location(comp, key)
        ast.fix_missing_locations(comp)
        added = param not in self.locals
        self.locals.add(param)
        try:
            return self.comprehension(comp, env, None)
        finally:
            if added:
                self.locals.discard(param)

    # -- comprehensions ---------------------------------------------------------

    def comprehension(
        self, node: ast.ListComp | ast.GeneratorExp | ast.DictComp, env: Env, expected: Type | None
    ) -> Val:
        """A list (or generator, iterated at once) or dict comprehension."""
        for g in node.generators:
            if g.is_async:
                self.fail(g.iter, "async comprehensions are not supported")
        if isinstance(node, ast.DictComp):
            value_t = expected.value if isinstance(expected, MapT) else None

            def emit_dict(e: Env) -> tuple[Arrow, Type]:
                k = self.expr(node.key, e)
                v = self.expr(node.value, e, value_t)
                acc = Val(Proj(1, 2), MapT(v.type))
                got = self.prim(
                    "map_put",
                    [acc, Val(Proj(0, 2) >> k.arrow, k.type), Val(Proj(0, 2) >> v.arrow, v.type)],
                    node,
                    "a dict comprehension",
                )
                return got.arrow, got.type

            arrow, t = self.clauses(node, node.generators, env, emit_dict)
            return Val(tuple_of([Id(), Const(t, {})]) >> arrow, t)
        item_t = expected.item if isinstance(expected, ListT) else None

        def emit_list(e: Env) -> tuple[Arrow, Type]:
            v = self.expr(node.elt, e, item_t)
            return tuple_of([Proj(1, 2), Proj(0, 2) >> v.arrow]) >> Prim("append"), ListT(v.type)

        arrow, t = self.clauses(node, node.generators, env, emit_list)
        return Val(tuple_of([Id(), Const(t, [])]) >> arrow, t)

    def clauses(
        self,
        node: ast.expr,
        gens: list[ast.comprehension],
        env: Env,
        emit: Callable[[Env], tuple[Arrow, Type]],
    ) -> tuple[Arrow, Type]:
        """``(env, acc) -> acc``: the ``for`` clauses ``gens`` adding to ``acc``."""
        if not gens:
            arrow, t = emit(env)
            return arrow, t
        g = gens[0]
        xs = self.iterable(g.iter, env, "a comprehension")
        assert isinstance(xs.type, ListT)
        wanted = reads([node])
        carried = [n for n in env.names() if n in wanted and n not in env.unbound]
        k = len(carried)
        item = f"$item{g.iter.lineno}.{g.iter.col_offset}"
        env_in = Env(
            (*(Slot(n, env.type_of(n)) for n in carried), Slot(item, xs.type.item)),
            # A comprehension's names are its own (not the function's, as
            # a for loop's are): an annotation outside does not apply.
            {n: t for n, t in env.declared.items() if n not in assigned([g.target])},
            env.unbound,  # read inside: reported (or not, after a refusal) as outside
            env.narrowed,
        )
        # The fold's input is ((carried, acc), item).
        prefix = tuple_of([Proj(0, 2) >> Proj(0, 2) >> Proj(i, k) for i in range(k)] + [Proj(1, 2)])
        bind, env_b = env_in.rebuild(carried, self.destructure(g.target, env_in.val(item), env_in))
        conds = [self.condition(c, env_b) for c in g.ifs]
        inner, t = self.clauses(node, gens[1:], env_b, emit)
        # Each if only when the ones before it held, as Python's filters.
        for c in reversed(conds):
            inner = If(Proj(0, 2) >> c, inner, Proj(1, 2))
        step = tuple_of([prefix >> bind, Proj(0, 2) >> Proj(1, 2)]) >> inner
        body = tuple_of([Proj(0, 2) >> Proj(0, 2), step])
        start = tuple_of([Proj(0, 2) >> tuple_of([env.read(n) for n in carried]), Proj(1, 2)])
        return tuple_of([start, Proj(0, 2) >> xs.arrow]) >> Fold(body) >> Proj(1, 2), t


def key_lambdas(tree: ast.AST) -> set[ast.AST]:
    """The ``lambda``s passed as ``key=``, or as the function of ``map`` or
    ``filter`` (translated inline, frontend/_iteration.py; others are refused)."""
    keys: set[ast.AST] = {
        k.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        for k in node.keywords
        if k.arg == "key" and isinstance(k.value, ast.Lambda)
    }
    return keys | {
        node.args[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("map", "filter")
        and node.args
        and isinstance(node.args[0], ast.Lambda)
    }
