"""``break``, ``continue``, ``return`` and ``else`` of ``for`` and ``while``
loops, as flags.

Part of the Python front end, run on the function's syntax tree before the
translation. A ``for`` loop is a ``fold``, which visits the whole list; a
loop that leaves early is rewritten into one that visits every item but does
nothing once it is done, with flags the fold's accumulator carries (the
names start with ``$``, so they cannot clash with the user's):

    for x in xs:                      $brk = False
        if p(x):                      for x in xs:
            found = x                     if not $brk:
            break                             $skip = False
        n += 1                                if p(x):
                                                  found = x
                                                  $brk = True
                                                  $skip = True
                                              if not $skip:
                                                  n += 1

``continue`` sets ``$skip`` only; ``return e`` stores ``(e,)`` in
``$ret: tuple[R] | None`` (the one-tuple keeps a returned ``None`` apart
from "not returned") and breaks, and after the loop
``if $ret is not None: return $ret[0]``; ``for ... else`` runs its ``else``
under ``if not $brk:``. No new program node is needed, so the checker,
compiler, interpreter and wire form are unchanged; the cost is one test per
remaining item after the loop is done (docs/python-subset.md). A ``while``
loop gets the same flags, its body unguarded and its condition
``not $brk and (condition)``, so it stops at once after a ``break`` without
evaluating the condition again, as Python.

Loops are rewritten innermost first, so a ``return`` in an inner loop
becomes the inner loop's flags plus a ``return`` after it, which the outer
loop then rewrites in turn.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

__all__ = ["rewrite_exits"]

_EXITS = (ast.Break, ast.Continue, ast.Return)


def rewrite_exits(body: list[ast.stmt], returns: ast.expr | None) -> list[ast.stmt]:
    """``body`` with every ``for`` loop's early exits and ``else`` rewritten as flags.

    ``returns`` is the function's return annotation (the type of ``$ret``).
    """
    return _Rewriter(returns).block(body)


class _Rewriter:
    def __init__(self, returns: ast.expr | None) -> None:
        self.returns = returns

    def block(self, stmts: Sequence[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for s in stmts:
            out.extend(self.stmt(s))
        return out

    def stmt(self, s: ast.stmt) -> list[ast.stmt]:
        match s:
            case ast.For():
                s.body = self.block(s.body)
                s.orelse = self.block(s.orelse)
                return self.for_(s)
            case ast.While():
                s.body = self.block(s.body)
                s.orelse = self.block(s.orelse)
                return self.for_(s)
            case ast.If():
                s.body = self.block(s.body)
                s.orelse = self.block(s.orelse)
            case ast.Match():
                for case in s.cases:
                    case.body = self.block(case.body)
        return [s]

    def for_(self, s: ast.For | ast.While) -> list[ast.stmt]:
        exits = [n for b in s.body for n in ast.walk(b) if isinstance(n, _EXITS)]
        if not exits and not s.orelse:
            return [s]
        tag = f"{s.lineno}.{s.col_offset}"
        brk, skip, ret = f"$brk{tag}", f"$skip{tag}", f"$ret{tag}"
        returns = any(isinstance(n, ast.Return) for n in exits)
        before: list[ast.stmt] = [_set(brk, False, s)]
        if returns:
            ann = ast.BinOp(
                ast.Subscript(ast.Name("tuple", ast.Load()), _copy(self.returns), ast.Load()),
                ast.BitOr(),
                ast.Constant(None),
            )
            before.append(
                _at(ast.AnnAssign(ast.Name(ret, ast.Store()), ann, ast.Constant(None), 1), s)
            )
        guard = _Guard(brk, skip, ret, self.returns)
        guarded = [_set(skip, False, s), *guard.block(s.body)]
        if isinstance(s, ast.While):
            # After a break the condition is not evaluated again, as in Python.
            both = ast.BoolOp(ast.And(), [_not(brk, s), s.test])
            s.test = ast.fix_missing_locations(ast.copy_location(both, s.test))
            s.body = guarded
        else:
            s.body = [_at(ast.If(_not(brk, s), guarded, []), s)]
        after: list[ast.stmt] = []
        if s.orelse:
            after.append(_at(ast.If(_not(brk, s), s.orelse, []), s))
            s.orelse = []
        if returns:
            test = ast.Compare(ast.Name(ret, ast.Load()), [ast.IsNot()], [ast.Constant(None)])
            value = ast.Subscript(ast.Name(ret, ast.Load()), ast.Constant(0), ast.Load())
            after.append(_at(ast.If(test, [_at(ast.Return(value), s)], []), s))
        return [*before, s, *after]


class _Guard:
    """The body of one loop with its exits replaced by flag assignments."""

    def __init__(self, brk: str, skip: str, ret: str, returns: ast.expr | None) -> None:
        self.brk, self.skip, self.ret = brk, skip, ret
        self.returns = returns

    def block(self, stmts: Sequence[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for i, s in enumerate(stmts):
            if isinstance(s, _EXITS):
                out.extend(self.exit(s))
                return out  # the rest is unreachable, as in Python
            if not _exits_in(s):
                out.append(s)
                continue
            out.append(self.compound(s))
            rest = self.block(stmts[i + 1 :])
            if rest:
                out.append(_at(ast.If(_not(self.skip, s), rest, []), s))
            return out
        return out

    def exit(self, s: ast.stmt) -> list[ast.stmt]:
        done = [_set(self.skip, True, s)]
        if isinstance(s, ast.Continue):
            return done
        if isinstance(s, ast.Return):
            # The value is converted to the return type on its own first,
            # so a wrong one is reported as at any return (int, not tuple[int]).
            value = s.value if s.value is not None else ast.Constant(None)
            name = self.ret + "v"
            target = ast.Name(name, ast.Store())
            done.append(_at(ast.AnnAssign(target, _copy(self.returns), value, 1), s))
            one = ast.Tuple([ast.Name(name, ast.Load())], ast.Load())
            done.append(_at(ast.Assign([ast.Name(self.ret, ast.Store())], one), s))
        return [*done, _set(self.brk, True, s)]

    def compound(self, s: ast.stmt) -> ast.stmt:
        if isinstance(s, ast.If):
            s.body = self.block(s.body)
            s.orelse = self.block(s.orelse)
        elif isinstance(s, ast.Match):
            for case in s.cases:
                case.body = self.block(case.body)
        # Other statements holding an exit (try, with) are refused
        # by the translation, which reports them where they are.
        return s


def _exits_in(s: ast.stmt) -> bool:
    # Inner loops were rewritten first: no exit is left in them.
    return any(isinstance(n, _EXITS) for n in ast.walk(s))


def _at(node: ast.stmt, where: ast.AST) -> ast.stmt:
    return ast.fix_missing_locations(ast.copy_location(node, where))


def _set(name: str, value: bool, where: ast.AST) -> ast.stmt:
    return _at(ast.Assign([ast.Name(name, ast.Store())], ast.Constant(value)), where)


def _not(name: str, where: ast.AST) -> ast.expr:
    node = ast.UnaryOp(ast.Not(), ast.Name(name, ast.Load()))
    return ast.fix_missing_locations(ast.copy_location(node, where))


def _copy(node: ast.expr | None) -> ast.expr:
    # The return annotation is reused inside a new annotation: a copy, so
    # the original keeps its own location.
    assert node is not None, "a function in the subset has a return annotation"
    return ast.fix_missing_locations(ast.parse(ast.unparse(node), mode="eval").body)
