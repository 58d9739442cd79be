"""Long chains in the source, shallow programs in the IR.

Part of the Python front end. Translated one node at a time, a chain in the
source becomes a chain of nested program nodes: ``a + b + c`` nests the
first sum inside the second, ``elif`` nests each ``if`` in the ``else`` of
the one before, a list display nests every ``append`` in the next. Program
nodes may nest only so deep (the checker's ``MAX_NESTING``, the wire's
depth limit), so from :data:`BALANCE_FROM` links on a chain is translated
into a shape whose depth does not grow with its length:

* an associative combination whose parts are evaluated left to right
  (``and``, ``or``, the pieces of a list or dict display) becomes a
  balanced tree (:func:`balanced`), of depth logarithmic in its length;
* a left fold that is not associative (``a + b - c`` on floats) is threaded
  through a flat composition by the operators' translation;
* an ``if``/``elif`` chain first computes which branch runs, threading the
  index through a flat composition (each condition evaluated only while
  none has held, as in Python), then dispatches on the index through a
  balanced tree of ``if`` statements built here (:func:`dispatch`); a
  ``match`` on a scalar whose cases are all literals is such a chain
  (:func:`match_as_if`).

Shorter chains keep their plain translation, so the programs (and the
versions) of ordinary functions do not change.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

__all__ = [
    "BALANCE_FROM",
    "DISPATCH_PREFIX",
    "balanced",
    "elif_chain",
    "dispatch",
    "is_dispatch",
    "match_as_if",
]

#: Chains of at least this many links get a shallow translation.
BALANCE_FROM: Final = 8

#: How the local holding the index of a long if/elif chain's branch starts
#: (``$`` keeps it apart from the function's own names).
DISPATCH_PREFIX: Final = "$elif"

T = TypeVar("T")
N = TypeVar("N", bound=ast.AST)


def balanced(parts: Sequence[T], pair: Callable[[T, T], T]) -> T:
    """``pair`` applied over ``parts`` as a balanced tree, keeping their order."""
    if len(parts) == 1:
        return parts[0]
    mid = len(parts) // 2
    return pair(balanced(parts[:mid], pair), balanced(parts[mid:], pair))


def elif_chain(s: ast.If) -> tuple[list[tuple[ast.expr, list[ast.stmt]]], list[ast.stmt]]:
    """The tests and bodies of ``if``/``elif``/..., and the final ``else`` body."""
    arms: list[tuple[ast.expr, list[ast.stmt]]] = []
    node = s
    while True:
        arms.append((node.test, node.body))
        if len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If):
            node = node.orelse[0]
            continue
        return arms, node.orelse


def _located(node: N, where: ast.AST) -> N:
    # Synthesised nodes point at the source they stand for (for errors);
    # the user's own nodes inside keep their places.
    for sub in ast.walk(node):
        if getattr(sub, "lineno", None) is None:
            ast.copy_location(sub, where)
    return node


def dispatch(where: ast.stmt, index: str, leaves: Sequence[list[ast.stmt]]) -> list[ast.stmt]:
    """Statements running ``leaves[k]`` for the value ``k`` of the local ``index``,
    through a balanced tree of ``if index < mid:`` statements."""

    def tree(lo: int, hi: int) -> list[ast.stmt]:
        if hi - lo == 1:
            return leaves[lo] or [_stmt(ast.Pass(), where)]
        mid = (lo + hi) // 2
        test = ast.Compare(
            left=ast.Name(id=index, ctx=ast.Load()), ops=[ast.Lt()], comparators=[ast.Constant(mid)]
        )
        node = ast.If(test=_located(test, where), body=tree(lo, mid), orelse=tree(mid, hi))
        return [_stmt(node, where)]

    return tree(0, len(leaves))


def is_dispatch(s: ast.If) -> bool:
    """Whether ``s`` is a test of :func:`dispatch` (its tree is balanced already)."""
    test = s.test
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id.startswith(DISPATCH_PREFIX)
    )


def _stmt(node: ast.stmt, where: ast.AST) -> ast.stmt:
    return ast.copy_location(node, where)


def match_as_if(s: ast.Match, subject: str, kind: type) -> list[ast.stmt] | None:
    """A ``match`` whose cases are literal values of the Python type ``kind``
    (``case 1:``, ``case "a" | "b":``, with guards) and at most a final
    ``case _:`` or ``case name:``, as ``subject = ...`` and an
    ``if``/``elif`` chain; ``None`` for other matches.

    Python compares a literal pattern with ``==`` (``True``, ``False`` and
    ``None`` with ``is``; those are left to the plain translation).
    """
    arms: list[tuple[ast.expr, list[ast.stmt]]] = []
    orelse: list[ast.stmt] = []
    for i, case in enumerate(s.cases):
        p = case.pattern
        if isinstance(p, ast.MatchAs) and p.pattern is None:
            if i != len(s.cases) - 1 or case.guard is not None:
                return None
            orelse = list(case.body)
            if p.name is not None:
                bind = ast.Assign(
                    targets=[ast.Name(id=p.name, ctx=ast.Store())],
                    value=ast.Name(id=subject, ctx=ast.Load()),
                )
                orelse.insert(0, _located(bind, p))
            continue
        test = _value_test(p, subject, kind)
        if test is None:
            return None
        if case.guard is not None:
            test = _located(ast.BoolOp(op=ast.And(), values=[test, case.guard]), p)
        arms.append((test, list(case.body)))
    if not arms:
        return None
    assign = ast.Assign(targets=[ast.Name(id=subject, ctx=ast.Store())], value=s.subject)
    chain: list[ast.stmt] = orelse
    for test, body in reversed(arms):
        chain = [_stmt(ast.If(test=test, body=body, orelse=chain), s)]
    return [_located(assign, s), *chain]


def _value_test(p: ast.pattern, subject: str, kind: type) -> ast.expr | None:
    match p:
        case ast.MatchValue(value=value) if _literal(value, kind):
            test = ast.Compare(
                left=ast.Name(id=subject, ctx=ast.Load()), ops=[ast.Eq()], comparators=[value]
            )
            return _located(test, p)
        case ast.MatchOr(patterns=ps):
            tests = [_value_test(q, subject, kind) for q in ps]
            values = [t for t in tests if t is not None]
            if len(values) != len(tests):
                return None
            return _located(ast.BoolOp(op=ast.Or(), values=values), p)
    return None


def _literal(node: ast.expr, kind: type) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and kind is not str:
        node = node.operand
    return isinstance(node, ast.Constant) and type(node.value) is kind
