"""Translating ``raise`` and ``assert``: the step fails, rejecting the item.

Part of the Python front end, a layer of the translator. ``raise E(msg)``
becomes the primitive ``raise`` applied to ``("E", msg)``: it raises a
:class:`~arrowloop.errors.RaisedError` subclass named ``E`` whose message is
``msg``, and its output type is anything (it never returns), so it can end
any path. ``assert c, msg`` is ``if c`` with that failure on the false
side. A failing step leaves the stage's state as it was (docs/arrows.md,
7.5) and the caller gets a ``StepError`` naming ``E: msg``. ``try`` stays
refused: a program cannot catch.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from arrowloop.arrows import FORMAT_PREFIX, Arrow, Const, Id, If
from arrowloop.frontend._env import Env, Val
from arrowloop.frontend._flow import Exit
from arrowloop.frontend._strings import Strings
from arrowloop.typesys import BOOL, FLOAT, INT, STR

__all__ = ["Failures"]

_TRY: tuple[type[ast.stmt], ...] = (ast.Try, *([ast.TryStar] if hasattr(ast, "TryStar") else []))


class Failures(Strings):
    """``raise`` and ``assert``."""

    def statement(
        self, s: ast.stmt, rest: Sequence[ast.stmt], env: Env, exit: Exit
    ) -> Arrow | tuple[Arrow, Env]:
        if isinstance(s, ast.Raise):
            return self.raise_(s, env)
        if isinstance(s, ast.Assert):
            return self.assertion(s, env)
        if isinstance(s, _TRY):
            self.fail(
                s,
                "try/except is not supported: a program cannot catch; let the step fail "
                "(raise E(message)), or return an error value in the output",
            )
        return super().statement(s, rest, env, exit)

    def raise_(self, s: ast.Raise, env: Env) -> Arrow:
        """``raise E(msg)`` or ``raise E``: an arrow that raises (any output type)."""
        if s.exc is None or s.cause is not None:
            self.fail(
                s,
                "only raise E(message) is supported (not a bare raise, nor raise ... from ...): "
                "a program cannot catch, so there is nothing to re-raise or chain",
            )
        call = s.exc if isinstance(s.exc, ast.Call) else None
        cls_node = call.func if call is not None else s.exc
        cls = self.src.static(cls_node, self.locals)
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            self.fail(
                cls_node,
                "raise needs an exception class named at module level or a builtin one "
                "(raise ValueError(f'bad {n}'))",
                "an exception class",
                ast.unparse(cls_node),
            )
        if call is not None and (call.keywords or len(call.args) > 1):
            self.fail(call, "raise E(message) takes one message argument here (a str)")
        message = (
            self.message(call.args[0], env)
            if call is not None and call.args
            else Val(Const(STR, ""), STR)
        )
        if issubclass(cls, KeyError) and call is not None and call.args:
            # str(KeyError(k)) is repr(k), unlike every other exception.
            message = self.prim("repr", [message], s, "raise KeyError")
        return self.failure(s, cls.__name__, message)

    def assertion(self, s: ast.Assert, env: Env) -> tuple[Arrow, Env]:
        """``assert c, msg``: go on when ``c`` holds, fail with ``AssertionError`` otherwise."""
        cond = self.condition(s.test, env)
        message = Val(Const(STR, ""), STR) if s.msg is None else self.message(s.msg, env)
        return If(cond, Id(), self.failure(s, "AssertionError", message)), env

    def message(self, node: ast.expr, env: Env) -> Val:
        """An exception's message: a str, or a number or bool as ``str()`` shows it."""
        v = self.expr(node, env)
        if v.type in (INT, FLOAT, BOOL):
            return self.prim(FORMAT_PREFIX, [v], node, "the message")
        if v.type != STR:
            self.mismatch(node, "a str message (f'...' or str(x))", v.type)
        return v

    def failure(self, node: ast.AST, name: str, message: Val) -> Arrow:
        """The arrow raising ``name`` with ``message`` (its output is any type)."""
        return self.prim("raise", [Val(Const(STR, name), STR), message], node, "raise").arrow
