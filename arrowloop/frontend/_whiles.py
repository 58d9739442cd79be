"""Translating ``while`` loops into the ``While`` node.

Part of the Python front end, a layer of the translator
(:class:`arrowloop.frontend._language.Language` puts the layers together).
``while c: body`` is ``While(cond, body)`` over the tuple of the names the
loop reads or updates that exist before it (as a ``for`` loop's fold
accumulator): the condition is evaluated on that tuple, the body maps it to
its next value, and after the loop those names hold their last values.
``break``, ``continue``, ``return`` and ``else`` were rewritten into flags
before the translation (:mod:`arrowloop.frontend._loops`). A loop whose
condition still holds after ``MAX_ITERATIONS`` iterations fails the step
(``IterationLimitError``), where Python would go on, perhaps forever.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence

from arrowloop.arrows import Arrow, While
from arrowloop.frontend._env import Env, Slot, assigned, reads, tuple_of
from arrowloop.frontend._flow import Exit, Join
from arrowloop.frontend._globals import Globals

__all__ = ["Whiles"]


class Whiles(Globals):
    """``while`` loops, on top of :class:`Globals`."""

    def statement(
        self, s: ast.stmt, rest: Sequence[ast.stmt], env: Env, exit: Exit
    ) -> Arrow | tuple[Arrow, Env]:
        """A ``while`` loop; the rest as before."""
        if isinstance(s, ast.While):
            return self.while_(s, rest, env, exit)
        return super().statement(s, rest, env, exit)

    def while_(
        self, s: ast.While, rest: Sequence[ast.stmt], env: Env, exit: Exit
    ) -> tuple[Arrow, Env]:
        """``while c: body`` as a ``While`` node over the names it carries."""
        if s.orelse:  # pragma: no cover - rewritten into flags (_loops.py)
            self.fail(s.orelse[0], "while ... else is not supported")
        live_after = self.live(rest, exit)
        body_reads = reads([s.test, *s.body])
        changed = assigned(s.body)
        carried = [
            n
            for n in env.names()
            if (n in body_reads or (n in changed and n in live_after)) and n not in env.unbound
        ]
        env_in = Env(
            tuple(Slot(n, env.type_of(n)) for n in carried),
            env.declared,
            {},
            env.narrowed - changed,
        )
        cond = self.condition(s.test, env_in)
        # The body runs where the condition held: while x is not None: narrows x.
        env_body, _ = self.narrow(s.test, env_in)
        join = Join(carried, frozenset(live_after | body_reads) | exit.after)
        body = self.loop_body(env, carried, lambda: self.block(s.body, env_body, join, s))
        body = self.loop_body_end(s, body, join, carried, env)
        loop = tuple_of([env.read(n) for n in carried]) >> While(cond, body)
        return self.after_loop(s, loop, carried, changed, live_after, env, "it may run no times")
