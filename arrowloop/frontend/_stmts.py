"""Translating statements: assignments, ``if``, ``for``, ``return``.

Part of the Python front end. :meth:`Translator.block` walks a statement
list in continuation-passing style (see :mod:`arrowloop.frontend._flow`);
an assignment is an arrow from the environment tuple before it to the one
after it, keeping only the names still read later. ``for x in xs:`` over a
list becomes a ``fold`` whose accumulator carries the names the loop body
reads or updates. Everything else is refused with the reason and what to
write instead.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import NoReturn

from arrowloop.arrows import Arrow, Compose, Const, Fold, Id, If, Prim, Proj
from arrowloop.errors import FrontendError
from arrowloop.frontend._env import (
    Env,
    Slot,
    Val,
    assigned,
    fill_holes,
    has_return,
    reads,
    tuple_of,
)
from arrowloop.frontend._flow import REFUSED_ABOVE, Exit, Join, MustReturn
from arrowloop.frontend._mutation import Mutations
from arrowloop.frontend._shapes import (
    BALANCE_FROM,
    DISPATCH_PREFIX,
    dispatch,
    elif_chain,
    is_dispatch,
)
from arrowloop.frontend._typing import TRUE, show
from arrowloop.typesys import INT, ListT, MapT, OptionT, SetT, TupleT, Type

__all__ = ["Translator"]

_REFUSED: dict[type[ast.stmt], str] = {
    ast.Try: "try/except is not supported: the function must not raise; return an error "
    "value in the output instead",
    ast.Raise: "raise is not supported: return an error value in the output instead",
    ast.Assert: "assert is not supported: return an error value in the output instead",
    ast.With: "with statements are not supported (they exist for side effects)",
    ast.AsyncWith: "async with is not supported: the function must be pure",
    ast.AsyncFor: "async for is not supported: the function must be pure",
    ast.Global: "global is not supported: the function may only change its state by "
    "returning the new state",
    ast.Nonlocal: "nonlocal is not supported: the function may only change its state by "
    "returning the new state",
    ast.Delete: "del is supported for dict keys (del d[k]); deleting a name or a list item "
    "is not (use xs.pop() for the last item)",
    ast.Import: "imports inside the function are not supported; import at module level",
    ast.ImportFrom: "imports inside the function are not supported; import at module level",
    ast.ClassDef: "classes inside the function are not supported; define them at module level",
    ast.FunctionDef: "nested functions are not supported; write a module-level @arrow "
    "function and call it",
    ast.AsyncFunctionDef: "nested functions are not supported; write a module-level @arrow "
    "function and call it",
    ast.Break: "break is not supported: a for loop is a fold over the whole list",
    ast.Continue: "continue is not supported: put the rest of the loop body under an if",
}
if hasattr(ast, "TryStar"):
    _REFUSED[ast.TryStar] = _REFUSED[ast.Try]


class Translator(Mutations):
    """The whole translation of one function body."""

    ret_type: Type

    def block(
        self, stmts: Sequence[ast.stmt], env: Env, exit: Exit, after: ast.stmt | None
    ) -> Arrow:
        """``stmts`` then ``exit``, as an arrow from ``env``'s tuple."""
        # Statements after which the code goes on (assignments, joined ifs,
        # loops) are taken in a loop, not by recursion, so that a long
        # function body does not exhaust Python's stack.
        done: list[Arrow] = []
        refused = False
        for i, s in enumerate(stmts):
            self.count(s)
            try:
                again = self.rewrite(s, stmts[i + 1 :], env, exit)
                if again is not None:
                    # Changes inside expressions as statements of their own,
                    # a name for a list inside a dict as that place.
                    return _sequence(done, self.block(again, env, exit, after))
                out = self.statement(s, stmts[i + 1 :], env, exit)
            except FrontendError as err:
                # Refused: note it and go on after the statement, its names
                # unbound, to find the other refusals (the program is never used).
                self.record(err)
                refused = True
                if has_return([s]):
                    return _sequence(done, Id())
                out = (
                    Id(),
                    env.with_info(
                        unbound={**env.unbound, **dict.fromkeys(assigned([s]), REFUSED_ABOVE)}
                    ),
                )
            if isinstance(out, Arrow):
                return _sequence(done, out)
            arrow, env = out
            done.append(arrow)
            after = s
        if refused and isinstance(exit, MustReturn):
            # Whether a refused statement would have returned is unknown.
            return _sequence(done, Id())
        return _sequence(done, exit.finish(self, env, after))

    def statement(
        self, s: ast.stmt, rest: Sequence[ast.stmt], env: Env, exit: Exit
    ) -> Arrow | tuple[Arrow, Env]:
        """``s`` with ``rest`` and ``exit`` (an arrow), or ``s`` alone: the arrow
        to the environment after it, and that environment."""
        changed = self.mutation(s, rest, env, exit)
        if changed is not None:
            return changed
        match s:
            case ast.Return(value=None):
                self.fail(s, "a return needs a value: return (state, output) or the result")
            case ast.Return(value=value):
                assert value is not None
                return self.expr(value, env, self.ret_type).arrow
            case ast.Assign() | ast.AnnAssign() | ast.AugAssign():
                return self.assign(s, rest, env, exit)
            case ast.Pass():
                return Id(), env
            case ast.Expr(value=ast.Constant(value=v)) if isinstance(v, str) or v is Ellipsis:
                return Id(), env  # docstrings and ``...``: no effect
            case ast.If():
                return self.if_(s, rest, env, exit)
            case ast.Match():
                return self.match_(s, rest, env, exit)
            case ast.For():
                return self.for_(s, rest, env, exit)
            case ast.Expr(value=ast.Yield() | ast.YieldFrom() | ast.Await() | ast.Call() as v):
                self.expr(v, env)  # refused with the reason, if there is a specific one
                self.fail(
                    s,
                    "a call whose value is not used is not supported (it could only matter "
                    "for a side effect); assign it or return it",
                )
            case ast.Expr():
                self.fail(
                    s,
                    "an expression whose value is not used is not supported (it could only "
                    "matter for a side effect, such as print); assign it or return it",
                )
        self.fail(s, _REFUSED.get(type(s), f"{type(s).__name__} statements are not supported"))

    # -- assignment -------------------------------------------------------------

    def assign(
        self,
        s: ast.Assign | ast.AnnAssign | ast.AugAssign,
        rest: Sequence[ast.stmt],
        env: Env,
        exit: Exit,
    ) -> tuple[Arrow, Env]:
        """An assignment, as the arrow to the environment after it."""
        live = self.live(rest, exit)
        if isinstance(s, ast.AnnAssign):
            if not isinstance(s.target, ast.Name) or s.value is None:
                self.fail(s, "annotated assignments are supported as name: type = value")
            name = s.target.id
            t = self.src.annotation(s.annotation, f"the variable {name}")
            old = env.declared.get(name)
            if old is not None and old != t:
                self.fail(
                    s,
                    f"{name} is declared as {show(old)} already, found {show(t)}",
                    show(old),
                    show(t),
                )
            env = env.with_info(declared={**env.declared, name: t})
            self.note_sharing(name, s.value, s, env)
            return env.rebuild(live, [(name, self.expr(s.value, env, t))])
        if isinstance(s, ast.AugAssign):
            if not isinstance(s.target, ast.Name):
                self.refuse_target(s.target)
            name = s.target.id
            current = self.name(s.target, name, env)
            if isinstance(current.type, ListT | MapT | SetT):
                self.fail(
                    s,
                    f"{_op(s.op)}= on a {show(current.type)} changes it in place in Python; "
                    f"write {name} = {name} {_op(s.op)} ...",
                )
            load = ast.copy_location(ast.Name(id=name, ctx=ast.Load()), s.target)
            value = self.binop(s, load, s.op, s.value, env)
            want = env.declared.get(name)
            v = self.coerce(value, want, s) if want is not None else value
            return env.rebuild(live, [(name, v)])
        for target in s.targets:
            if not isinstance(target, ast.Name | ast.Tuple | ast.List):
                self.refuse_target(target)
        for target in s.targets:
            self.note_unpacked(target, s.value, s, env)
        if len(s.targets) == 1 and isinstance(s.targets[0], ast.Name):
            name = s.targets[0].id
            return env.rebuild(live, [(name, self.expr(s.value, env, env.declared.get(name)))])
        value = self.expr(s.value, env)
        tmp = f"$value{s.lineno}.{s.col_offset}"
        a1, env1 = env.rebuild(env.names(), [(tmp, value)])
        binds: list[tuple[str, Val]] = []
        for target in s.targets:
            binds += self.destructure(target, env1.val(tmp), env1)
        a2, env2 = env1.rebuild(live, binds)
        return a1 >> a2, env2

    def destructure(self, target: ast.expr, v: Val, env: Env) -> list[tuple[str, Val]]:
        """The names a target binds, each with its part of ``v``."""
        if isinstance(target, ast.Name):
            want = env.declared.get(target.id)
            return [(target.id, self.coerce(v, want, target) if want is not None else v)]
        if isinstance(target, ast.Tuple | ast.List):
            n = len(target.elts)
            if not isinstance(v.type, TupleT) or len(v.type.items) != n:
                self.mismatch(target, f"a tuple of {n} items to unpack", v.type)
            out: list[tuple[str, Val]] = []
            for i, (elt, t) in enumerate(zip(target.elts, v.type.items, strict=True)):
                out += self.destructure(elt, Val(v.arrow >> Proj(i, n), t), env)
            return out
        self.refuse_target(target)

    def refuse_target(self, target: ast.expr) -> NoReturn:
        """Raise the error for an assignment target other than names and tuples of them."""
        if isinstance(target, ast.Attribute):
            self.fail(
                target,
                "attribute assignment is not supported: records are immutable; build a new one "
                "with attrs.evolve(record, field=value)",
                "a name",
                "attribute",
            )
        if isinstance(target, ast.Subscript):
            self.fail(
                target,
                "item assignment changes a list or dict in place, which is not supported; build "
                "a new one ({**d, key: value}, xs + [x])",
                "a name",
                "item",
            )
        if isinstance(target, ast.Starred):
            self.fail(target, "*name in assignments is not supported")
        self.fail(target, "only names and tuples of names can be assigned to")

    # -- if -----------------------------------------------------------------------

    def if_(
        self, s: ast.If, rest: Sequence[ast.stmt], env: Env, exit: Exit
    ) -> Arrow | tuple[Arrow, Env]:
        """``if``/``elif``/``else`` as an ``if`` node."""
        arms, last = elif_chain(s)
        if (
            len(arms) >= BALANCE_FROM
            and not is_dispatch(s)
            and not any(self.narrows(t, env) for t, _ in arms)
        ):
            return self.long_if(s, arms, last, rest, env, exit)
        cond = self.test(s.test, env)
        env_then, env_else = self.narrow(s.test, env)
        if has_return([*s.body, *s.orelse]):
            then = self.block([*s.body, *rest], env_then, exit, s)
            orelse = self.block([*s.orelse, *rest], env_else, exit, s)
            return If(cond, then, orelse)
        live = self.live(rest, exit)
        join = Join(sorted(live & assigned([*s.body, *s.orelse])), frozenset(live) | exit.after)
        then = self.block(s.body, env_then, join, s)
        orelse = self.block(s.orelse, env_else, join, s)
        return self.join_env(If(cond, then, orelse), env, join, rest, exit, s)

    def long_if(
        self,
        s: ast.If,
        arms: Sequence[tuple[ast.expr, list[ast.stmt]]],
        orelse: list[ast.stmt],
        rest: Sequence[ast.stmt],
        env: Env,
        exit: Exit,
    ) -> Arrow:
        """A long ``if``/``elif`` chain: the index of the branch that runs,
        threaded through a flat composition, then a balanced dispatch on it
        (see :mod:`arrowloop.frontend._shapes`)."""
        n = len(arms)
        index = f"{DISPATCH_PREFIX}{self.new_key()}"
        k, e, none = Proj(0, 2), Proj(1, 2), Const(INT, n)
        steps: list[Arrow] = [tuple_of([none, Id()])]
        for i, (test, _) in enumerate(arms):
            # A condition is evaluated only while no earlier one has held.
            cond = e >> self.test(test, env)
            pick = If(tuple_of([k, none]) >> Prim("eq"), If(cond, Const(INT, i), none), k)
            steps.append(tuple_of([pick, e]))
        found = Val(Compose((*steps, k)), INT)
        a0, env1 = env.rebuild(env.names(), [(index, found)])
        leaves = [body for _, body in arms] + [orelse]
        return a0 >> self.block([*dispatch(s, index, leaves), *rest], env1, exit, s)

    def test(self, test: ast.expr, env: Env) -> Arrow:
        """The condition of an ``if``; a refused one is noted, and the branches
        are still translated (for their own refusals) as if it held."""
        try:
            return self.condition(test, env)
        except FrontendError as err:
            self.record(err)
            return TRUE

    def narrows(self, test: ast.expr, env: Env) -> bool:
        """Whether ``test`` narrows an optional in one of its branches."""
        then, orelse = self.narrow(test, env)
        return then is not env or orelse is not env

    def narrow(self, test: ast.expr, env: Env) -> tuple[Env, Env]:
        """The environments of the two branches of ``if x is (not) None``
        and ``if x:`` (``x`` an optional)."""
        match test:
            case ast.Compare(
                left=ast.Name(id=name), ops=[op], comparators=[ast.Constant(value=None)]
            ) if (
                env.find(name) is not None
                and isinstance(env.type_of(name), OptionT)
                and name not in env.narrowed
            ):
                narrowed = env.with_info(narrowed=env.narrowed | {name})
                if isinstance(op, ast.IsNot):
                    return narrowed, env
                if isinstance(op, ast.Is):
                    return env, narrowed
            case ast.Name(id=name) if (
                env.find(name) is not None
                and isinstance(env.type_of(name), OptionT)
                and name not in env.narrowed
            ):
                # ``if x:`` on an optional: true only when x holds a value.
                return env.with_info(narrowed=env.narrowed | {name}), env
        return env, env

    # -- for ----------------------------------------------------------------------

    def loop_end(self, name: str, end: Env, start: Type) -> Arrow | None:
        """How the end of a loop body hands ``name`` to the next iteration
        when its type there is not ``start``, or ``None`` (a refusal)."""
        return None

    def for_(self, s: ast.For, rest: Sequence[ast.stmt], env: Env, exit: Exit) -> tuple[Arrow, Env]:
        """``for x in xs:`` over a list, as a ``fold`` over the names it updates."""
        if s.orelse:
            self.fail(s.orelse[0], "for ... else is not supported")
        for node in (n for b in s.body for n in ast.walk(b)):
            if isinstance(node, ast.Return):
                self.fail(
                    node,
                    "return inside a for loop is not supported: a for loop is a fold over the "
                    "whole list; set a variable and return after the loop",
                )
            if isinstance(node, ast.Break | ast.Continue):
                self.fail(node, _REFUSED[type(node)])
        xs = self.iterable(s.iter, env)
        self.check_walk(s, env)
        for bound in assigned([s.target]):
            self.note_sharing(bound, s.iter, s, env, "part")
        if not isinstance(xs.type, ListT):
            self.mismatch(s.iter, "a list to loop over", xs.type)
        live_after = self.live(rest, exit)
        body_reads = reads(s.body)
        changed = assigned(s.body) | assigned([s.target])
        carried = [n for n in env.names() if n in body_reads or (n in changed and n in live_after)]
        carried = [n for n in carried if n not in env.unbound]
        k = len(carried)
        item = f"$item{s.lineno}.{s.col_offset}"
        env_in = Env(
            (*(Slot(n, env.type_of(n)) for n in carried), Slot(item, xs.type.item)),
            env.declared,
            {},
            env.narrowed - changed,
        )
        prefix = tuple_of([Proj(0, 2) >> Proj(i, k) for i in range(k)] + [Proj(1, 2)])
        bind, env_body = env_in.rebuild(
            carried, self.destructure(s.target, env_in.val(item), env_in)
        )
        join = Join(carried, frozenset(live_after | body_reads) | exit.after)
        body = (
            prefix
            >> bind
            >> self.loop_body(env, carried, lambda: self.block(s.body, env_body, join, s))
        )
        body = self.loop_body_end(s, body, join, carried, env)
        fold = tuple_of([tuple_of([env.read(n) for n in carried]), xs.arrow]) >> Fold(body)
        return self.after_loop(s, fold, carried, changed, live_after, env, "the list may be empty")

    def loop_body_end(
        self, s: ast.stmt, body: Arrow, join: Join, carried: Sequence[str], env: Env
    ) -> Arrow:
        """``body`` ending in the tuple of the ``carried`` names (of a loop
        that started in ``env``), each still bound and of its type."""
        ((key, end),) = join.ends
        ends = {n: end.read(n) for n in carried}
        for n in carried:
            if end.unbound.get(n) == REFUSED_ABOVE:
                self.fail(s, REFUSED_ABOVE)
            if end.find(n) is None or n in end.unbound:
                self.fail(s, f"{n} may be unbound at the end of the loop body")
            if end.type_of(n) != env.type_of(n):
                conv = self.loop_end(n, end, env.type_of(n))
                if conv is not None:
                    ends[n] = conv
                    continue
                self.fail(
                    s,
                    f"{n} changes type in the loop, from {show(env.type_of(n))} to "
                    f"{show(end.type_of(n))}; declare its type before the loop ({n}: T = ...)",
                    show(env.type_of(n)),
                    show(end.type_of(n)),
                )
        return fill_holes(body, {key: tuple_of([ends[n] for n in carried])})

    def after_loop(
        self,
        s: ast.For | ast.While,
        loop: Arrow,
        carried: Sequence[str],
        changed: set[str],
        live_after: set[str],
        env: Env,
        why: str,
    ) -> tuple[Arrow, Env]:
        """The environment after a loop (``loop`` maps ``env``'s tuple to the
        carried names' last values): names assigned only inside it are unbound
        (``why``: the loop may run no times)."""
        k = len(carried)
        kept = [n for n in env.names() if n in live_after and n not in carried]
        parts = [Proj(0, 2) >> env.read(n) for n in kept]
        parts += [Proj(1, 2) >> Proj(i, k) for i in range(k)]
        line = self.src.file_line(s)
        what = "for" if isinstance(s, ast.For) else "while"
        unbound = dict(env.unbound)
        for n in changed - set(carried):
            if unbound.get(n) == REFUSED_ABOVE:
                continue
            unbound[n] = (
                f"{n} is not available after the {what} loop at line {line} (it is assigned "
                f"only inside it, and {why}); assign it before the loop"
            )
        after_env = Env(
            tuple(Slot(n, env.type_of(n)) for n in [*kept, *carried]),
            env.declared,
            unbound,
            env.narrowed - changed,
        )
        glue = tuple_of([Id(), loop]) >> tuple_of(parts)
        return glue, after_env


def _sequence(done: Sequence[Arrow], tail: Arrow) -> Arrow:
    """``done[0] >> ... >> tail``, built at once (the operator copies its steps)."""
    if not done:
        return tail
    steps = [x for a in (*done, tail) for x in (a.steps if isinstance(a, Compose) else (a,))]
    steps = [x for x in steps if not isinstance(x, Id)] or [Id()]
    return steps[0] if len(steps) == 1 else Compose(tuple(steps))


def _op(op: ast.operator) -> str:
    return {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.BitOr: "|", ast.BitAnd: "&"}.get(
        type(op), "op"
    )
