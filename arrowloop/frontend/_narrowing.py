"""Narrowing optionals and variants beyond ``if x is (not) None:``.

Part of the Python front end, a layer of the translator.

* An optional name assigned a value that is not optional (``s = Stats()``)
  is narrowed from there on, and a name narrowed at the end of every branch
  of an ``if``/``match`` stays narrowed after it: so the first-item idiom
  ``if s is None: s = Stats()`` (bytewax's ``stateful_map``, PyFlink's
  ``ValueState``) leaves ``s`` a ``Stats``. Reading a narrowed name unwraps it
  (``unwrap``, which cannot fail there).
* ``x is not None and f(x)``, ``x is None or f(x)``, ``a if x is not None
  else b`` and ``if x is not None and y is not None:`` narrow their operands.
* ``if isinstance(x, C):`` (``C`` a class, or a tuple of them) is translated
  as ``match x: case C() as x:``, so it narrows exactly like that ``case``.
* A loop whose body leaves a name it carries with a wider type than it came
  in with (``best = None``, then ``best = x`` in the loop) carries the join
  of the two (``int | None``): the loop is translated again with the name
  converted to it before the loop.
"""

from __future__ import annotations

import ast
import copy
from collections.abc import Sequence

from arrowloop.arrows import Arrow, Compose, Prim
from arrowloop.errors import FrontendError
from arrowloop.frontend._env import Env, Val, assigned, empty_container, place_root
from arrowloop.frontend._failures import Failures
from arrowloop.frontend._flow import Exit, Join, join_types
from arrowloop.typesys import UNIT, OptionT, RecordT, Type, VariantT, case_repr, record_classes

__all__ = ["Narrowing"]


class _Rename(ast.NodeTransformer):
    """Reads of one name renamed (the narrowed binding of an ``isinstance``)."""

    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id == self.old:
            return ast.copy_location(ast.Name(id=self.new, ctx=node.ctx), node)
        return node


def _places(s: ast.stmt) -> list[ast.expr]:
    """The places a changing statement writes through (``d[k]``, ``xs`` of ``xs.append``)."""
    match s:
        case ast.Assign(targets=targets):
            return [t for t in targets if isinstance(t, ast.Subscript)]
        case ast.AugAssign(target=target) | ast.Delete(targets=[target]):
            return [target]
        case ast.Expr(value=ast.Call(func=ast.Attribute(value=recv))):
            return [recv]
    return []


def _split_isinstance_and(s: ast.If) -> ast.If | None:
    """``if isinstance(x, C) and c: A else: B`` as ``if isinstance(x, C): (if c:
    A else: B) else: B``, so that ``c`` and ``A`` see ``x`` narrowed (``B`` is
    translated on both paths; Python runs it on either)."""
    t = s.test
    if not (
        isinstance(t, ast.BoolOp)
        and isinstance(t.op, ast.And)
        and isinstance(t.values[0], ast.Call)
        and isinstance(t.values[0].func, ast.Name)
        and t.values[0].func.id == "isinstance"
    ):
        return None
    more = t.values[1:]
    cond = more[0] if len(more) == 1 else ast.copy_location(ast.BoolOp(op=t.op, values=more), t)
    inner = ast.copy_location(ast.If(test=cond, body=s.body, orelse=s.orelse), s)
    return ast.copy_location(ast.If(test=t.values[0], body=[inner], orelse=s.orelse), s)


class _Widen(Exception):
    """A loop carries ``name``, which must have the type ``type`` from the start."""

    def __init__(self, name: str, type: Type) -> None:
        super().__init__(name)
        self.name, self.type = name, type


#: How many times a loop is translated again with wider types, at most.
_MAX_WIDENINGS = 4


class Narrowing(Failures):
    """More narrowing: after assignments and ifs, in and/or, conditional
    expressions and ``isinstance`` tests; loops carrying wider types."""

    #: Whether a loop's end may ask for a wider type (off on the last try).
    widen_loops = True

    # -- loops -----------------------------------------------------------------

    def for_(self, s: ast.For, rest: Sequence[ast.stmt], env: Env, exit: Exit) -> tuple[Arrow, Env]:
        """Also a loop that leaves a name wider than it came (see the module)."""
        before: list[Arrow] = []
        outer = self.widen_loops
        try:
            for attempt in range(_MAX_WIDENINGS + 1):
                self.widen_loops = outer and attempt < _MAX_WIDENINGS
                mark = self.mark()
                try:
                    arrow, after = super().for_(s, rest, env, exit)
                    return _chain([*before, arrow]), after
                except _Widen as w:
                    self.forget(mark)
                    v = self.name(s.target, w.name, env)
                    conv = self.convert(v.arrow, v.type, w.type)
                    if conv is None:  # pragma: no cover - the join holds the start's type
                        raise AssertionError(w.name) from None
                    a, env = env.rebuild(env.names(), [(w.name, Val(conv, w.type))])
                    before.append(a)
        finally:
            self.widen_loops = outer
        raise AssertionError("unreachable: the last try does not widen")  # pragma: no cover

    def loop_end(self, name: str, end: Env, start: Type) -> Arrow | None:
        """``name`` converted to ``start`` (``x`` to ``x | None``), or a wider
        start asked for (:class:`_Widen`) when the two types join."""
        have = end.type_of(name)
        arrow = end.read(name)
        if name in end.narrowed and isinstance(have, OptionT):
            arrow, have = arrow >> Prim("unwrap"), have.item
        conv = self.convert(arrow, have, start)
        if conv is not None:
            return conv
        wide = join_types(start, have)
        if wide is not None and wide != start and self.widen_loops:
            raise _Widen(name, wide)
        return None

    # -- and / or / conditional expressions ------------------------------------

    def operand_env(self, test: ast.expr, env: Env, and_: bool) -> Env:
        then, orelse = self.narrow(test, env)
        return then if and_ else orelse

    def branch_envs(self, test: ast.expr, env: Env) -> tuple[Env, Env]:
        return self.narrow(test, env)

    def narrow(self, test: ast.expr, env: Env) -> tuple[Env, Env]:
        """Also ``a and b`` (both narrow the true side) and ``a or b`` (the false side)."""
        if isinstance(test, ast.BoolOp):
            and_ = isinstance(test.op, ast.And)
            cur = env
            for v in test.values:
                then, orelse = self.narrow(v, cur)
                cur = then if and_ else orelse
            return (cur, env) if and_ else (env, cur)
        if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
            then, orelse = self.narrow(test.operand, env)
            return orelse, then
        return super().narrow(test, env)

    # -- assignments and joins ---------------------------------------------------

    def assign(
        self,
        s: ast.Assign | ast.AnnAssign | ast.AugAssign,
        rest: Sequence[ast.stmt],
        env: Env,
        exit: Exit,
    ) -> tuple[Arrow, Env]:
        arrow, after = super().assign(s, rest, env, exit)
        target = s.targets[0] if isinstance(s, ast.Assign) and len(s.targets) == 1 else None
        if isinstance(s, ast.AnnAssign | ast.AugAssign):
            target = s.target
        if (
            isinstance(target, ast.Name)
            and s.value is not None
            and after.find(target.id) is not None
            and isinstance(after.type_of(target.id), OptionT)
            # ``x += e`` stores the result of an operator, never None.
            and (isinstance(s, ast.AugAssign) or self.not_none(s.value, env))
        ):
            after = after.with_info(narrowed=after.narrowed | {target.id})
        return arrow, after

    def mutation(
        self, s: ast.stmt, rest: Sequence[ast.stmt], env: Env, exit: Exit
    ) -> tuple[Arrow, Env] | None:
        """A change in place through a narrowed name (``s[k] = v``) keeps it narrowed."""
        out = super().mutation(s, rest, env, exit)
        if out is None:
            return None
        arrow, after = out
        rebound = assigned([s]) - {place_root(t) for t in _places(s)}
        kept = {
            n
            for n in env.narrowed - rebound
            if after.find(n) is not None and isinstance(after.type_of(n), OptionT)
        }
        return arrow, after.with_info(narrowed=after.narrowed | kept)

    def not_none(self, value: ast.expr, env: Env) -> bool:
        """Whether ``value`` is never ``None`` (its type before the conversion
        to the declared optional type is not optional)."""
        if isinstance(value, ast.List | ast.Dict | ast.Set | ast.JoinedStr) or empty_container(
            value
        ):
            return True
        # Translating is pure, so doing it again only costs time.
        try:
            raw = self.expr(value, env).type
        except FrontendError:
            return False
        return not isinstance(raw, OptionT) and raw != UNIT

    def _expr(self, node: ast.expr, env: Env, expected: Type | None) -> Val:
        # ``s = {}`` where ``s: dict[str, int] | None``: the display has the item type.
        if isinstance(expected, OptionT) and (
            isinstance(node, ast.List | ast.Dict | ast.Set) or empty_container(node)
        ):
            return super()._expr(node, env, expected.item)
        return super()._expr(node, env, expected)

    def join_env(
        self,
        arrow: Arrow,
        env: Env,
        join: Join,
        rest: Sequence[ast.stmt],
        exit: Exit,
        stmt: ast.stmt,
    ) -> tuple[Arrow, Env]:
        glue, after = super().join_env(arrow, env, join, rest, exit, stmt)
        ends = [e for _, e in join.ends]
        kept = {
            n
            for n in join.names
            if ends
            and after.find(n) is not None
            and isinstance(after.type_of(n), OptionT)
            and all(n in e.narrowed and e.find(n) is not None for e in ends)
        }
        if kept:
            after = after.with_info(narrowed=after.narrowed | kept)
        return glue, after

    # -- isinstance ----------------------------------------------------------------

    def if_(
        self, s: ast.If, rest: Sequence[ast.stmt], env: Env, exit: Exit
    ) -> Arrow | tuple[Arrow, Env]:
        split = _split_isinstance_and(s)
        if split is not None:
            return self.if_(split, rest, env, exit)
        known = self.isinstance_known(s, env)
        if known is not None:
            # Decided by the record's type: only that branch (the other is
            # dead code in Python too, such as an elif after a narrowing).
            return self.block([*(s.body if known else s.orelse), *rest], env, exit, s)
        m = self.isinstance_match(s, env)
        if m is not None:
            return self.match_(m, rest, env, exit)
        return super().if_(s, rest, env, exit)

    def isinstance_test(self, t: ast.expr, env: Env) -> ast.Call | None:
        """``t`` if it is ``isinstance(name, C)`` (or a tuple of classes) on a
        bound local name, else ``None``."""
        if (
            isinstance(t, ast.Call)
            and isinstance(t.func, ast.Name)
            and t.func.id == "isinstance"
            and self.src.static(t.func, self.locals) is isinstance
            and len(t.args) == 2
            and not t.keywords
            and isinstance(t.args[0], ast.Name)
            and env.find(t.args[0].id) is not None
        ):
            return t
        return None

    def isinstance_known(self, s: ast.If, env: Env) -> bool | None:
        """The value of ``isinstance(x, C)`` when ``x`` is a record (not a variant)."""
        t = self.isinstance_test(s.test, env)
        if t is None:
            return None
        rt = env.type_of(t.args[0].id)  # type: ignore[attr-defined]
        if not isinstance(rt, RecordT):
            return None
        classes = t.args[1].elts if isinstance(t.args[1], ast.Tuple) else [t.args[1]]
        tested = [self.src.static(c, self.locals) for c in classes]
        if not all(isinstance(k, type) for k in tested):
            return None
        return any(issubclass(c, k) for c in record_classes(rt) for k in tested)

    def isinstance_match(self, s: ast.If, env: Env) -> ast.Match | None:
        """``if isinstance(x, C): body else: orelse`` as ``match x: case C() as x:``."""
        t = self.isinstance_test(s.test, env)
        if t is None:
            return None
        name = t.args[0].id  # type: ignore[attr-defined]
        classes = t.args[1].elts if isinstance(t.args[1], ast.Tuple) else [t.args[1]]
        pats: list[ast.pattern] = [
            ast.copy_location(ast.MatchClass(cls=c, patterns=[], kwd_attrs=[], kwd_patterns=[]), c)
            for c in classes
        ]
        pat = pats[0] if len(pats) == 1 else ast.copy_location(ast.MatchOr(patterns=pats), t)
        body = s.body
        bound = name
        if name not in assigned(body):
            # The narrowed value under a name of its own, so that after the
            # if, ``name`` keeps its type on every path.
            bound = f"{name}$is{s.lineno}.{s.col_offset}"
            body = [_Rename(name, bound).visit(copy.deepcopy(b)) for b in body]
        cases = [ast.match_case(pattern=ast.MatchAs(pattern=pat, name=bound), body=body)]
        if s.orelse:
            cases.append(
                ast.match_case(pattern=ast.MatchAs(pattern=None, name=None), body=s.orelse)
            )
        else:
            other = self.other_case(s, env.type_of(name), classes)
            if other is not None:
                # ``if isinstance(m, Get): return ...`` leaves one class: the
                # code after the if sees ``m`` narrowed to it, as a type checker does.
                pat2 = ast.MatchClass(cls=other, patterns=[], kwd_attrs=[], kwd_patterns=[])
                cases.append(
                    ast.match_case(
                        pattern=ast.MatchAs(pattern=ast.copy_location(pat2, t), name=name),
                        body=[ast.copy_location(ast.Pass(), s)],
                    )
                )
        for c in cases:
            ast.copy_location(c.pattern, t)
        subject = ast.copy_location(ast.Name(id=name, ctx=ast.Load()), t.args[0])
        return ast.copy_location(ast.Match(subject=subject, cases=cases), s)

    def other_case(self, s: ast.If, t: Type, classes: list[ast.expr]) -> ast.expr | None:
        """The class left of a variant ``t`` of records when the ``if`` tests the
        others and its body ends in ``return`` or ``raise``, named as in the
        module; or ``None``."""
        last = s.body[-1] if s.body else None
        if not isinstance(t, VariantT) or not isinstance(last, ast.Return | ast.Raise):
            return None
        tested = [self.src.static(c, self.locals) for c in classes]
        reps = [case_repr(t, tag) for tag in t.tags]
        if any(r.how not in ("record", "plain") for r in reps):
            return None
        left = [
            cls
            for cls in (r.cls for r in reps)
            if cls is not None
            and not any(isinstance(k, type) and issubclass(cls, k) for k in tested)
        ]
        if len(left) != 1:
            return None
        node = ast.copy_location(ast.Name(id=left[0].__name__, ctx=ast.Load()), s.test)
        return node if self.src.static(node, self.locals) is left[0] else None


def _chain(steps: list[Arrow]) -> Arrow:
    """``steps[0] >> steps[1] >> ...`` (one step as itself)."""
    return steps[0] if len(steps) == 1 else Compose(tuple(steps))
