"""Control flow: where a block ends, and how branches meet again.

Part of the Python front end. Statements are translated in
continuation-passing style: a block is translated together with everything
that follows it, up to an :class:`Exit`. Two strategies keep that small:

* when a branch of an ``if`` or a ``match`` contains a ``return``, the
  statements after it are translated into each branch that falls through
  (the arrow ``if``/``case`` then produces the function's result);
* otherwise the branches end in a :class:`Join`: each produces the names it
  assigned that are still needed, the branches meet, and the statements
  after run once. The layout of the join is only known when every branch
  is translated, so branch ends are :class:`~arrowloop.frontend._env.Hole`
  placeholders, filled in :meth:`Flow.join_env`.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any, NoReturn

from arrowloop.arrows import Arrow, Id, Prim, Proj
from arrowloop.errors import FrontendError
from arrowloop.frontend._builtins import Builtins
from arrowloop.frontend._env import Env, Hole, Slot, fill_holes, reads, tuple_of
from arrowloop.frontend._typing import show
from arrowloop.typesys import UNIT, OptionT, RecordT, Type, VariantT, plain_tag

__all__ = [
    "Exit",
    "MustReturn",
    "Join",
    "Flow",
    "MAX_STATEMENTS",
    "REFUSED_ABOVE",
    "Enough",
    "join_types",
]

#: Statements translated per function, after expanding branches (a guard
#: against exponential growth of duplicated continuations).
MAX_STATEMENTS = 5_000

#: Why a name is unbound after a statement that was refused: reading it is a
#: consequence of that refusal, not another one, and is not reported.
REFUSED_ABOVE = "(assigned by a statement refused above)"


class Enough(Exception):
    """Raised when a function has :data:`FrontendError.MAX_REFUSALS` refusals."""


class Exit:
    """What happens when a block runs out of statements."""

    needs: frozenset[str] = frozenset()
    #: Names read after the construct the block belongs to (after the ``if``,
    #: after the loop, and by the loop's later iterations): live there even
    #: when the block does not carry them (the sharing check needs them).
    after: frozenset[str] = frozenset()

    def finish(self, flow: Flow, env: Env, after: ast.stmt | None) -> Arrow:
        """The arrow for the end of a block whose environment is ``env``."""
        raise NotImplementedError


class MustReturn(Exit):
    """The end of the function: reaching it without ``return`` is an error."""

    def finish(self, flow: Flow, env: Env, after: ast.stmt | None) -> Arrow:
        flow.missing_return(after)


class Join(Exit):
    """The end of a branch that rejoins the others (or of a loop body).

    ``names`` are the candidates to carry out of the branches: the names
    the branches assign that the code after them reads.
    """

    def __init__(self, names: Sequence[str], after: frozenset[str] = frozenset()) -> None:
        self.names = tuple(names)
        self.needs = frozenset(names)
        self.after = after
        self.ends: list[tuple[int, Env]] = []

    def finish(self, flow: Flow, env: Env, after: ast.stmt | None) -> Arrow:
        key = flow.new_key()
        self.ends.append((key, env))
        return Hole(key)


class Flow(Builtins):
    """Joins, liveness and the end-of-function check, on top of :class:`Calls`."""

    statements = 0
    keys = 0
    #: The refusals found so far; the translation goes on after each.
    refusals: list[FrontendError]

    def record(self, err: FrontendError) -> None:
        """Keep ``err`` (unless it follows from an earlier refusal).

        Raises:
            Enough: the function has as many refusals as are reported.
        """
        if err.reason.endswith(REFUSED_ABOVE):
            return
        self.refusals.append(err)
        if len(self.refusals) >= FrontendError.MAX_REFUSALS:
            raise Enough

    def block(
        self, stmts: Sequence[ast.stmt], env: Env, exit: Exit, after: ast.stmt | None
    ) -> Arrow:
        """Translate ``stmts`` then ``exit`` (see :mod:`arrowloop.frontend._stmts`)."""
        raise NotImplementedError

    def mark(self) -> dict[str, Any]:
        """What translating a part again must forget (see :meth:`forget`): the
        refusals recorded and statements counted so far."""
        return {"refusals": len(self.refusals), "statements": self.statements}

    def forget(self, mark: dict[str, Any]) -> None:
        """Forget what was noted since ``mark``, so that a part translated
        once more (with other types) is not counted or reported twice."""
        del self.refusals[mark["refusals"] :]
        self.statements = mark["statements"]

    def new_key(self) -> int:
        """A fresh key for a hole."""
        self.keys += 1
        return self.keys

    def count(self, node: ast.stmt) -> None:
        """Count a translated statement; refuse functions that expand too much."""
        self.statements += 1
        if self.statements > MAX_STATEMENTS:
            self.fail(
                node,
                f"the function is too large once its branches are expanded (more than "
                f"{MAX_STATEMENTS} statements); split it into @arrow functions",
            )

    def live(self, rest: Sequence[ast.stmt], exit: Exit) -> set[str]:
        """The names the statements ``rest`` and the exit may read."""
        return reads(rest) | exit.needs

    def missing_return(self, after: ast.stmt | None) -> NoReturn:
        """Raise the error for a path that reaches the end of the function."""
        none = "(the function would return None); every path must end in a return"
        if after is None:
            self.fail(self.src.tree, f"the function has no return statement {none}")
        if isinstance(after, ast.Match):
            self.fail(
                after,
                "some values match no case of this match, and nothing after it returns "
                f"{none}; add a case for the rest (case _:)",
                "a case for every value",
                "an incomplete match",
            )
        if isinstance(after, ast.If) and not after.orelse:
            self.fail(
                after,
                f"this if has no else, and nothing after it returns {none}",
                "an else branch or a return after the if",
                "no else",
            )
        self.fail(after, f"the function can end after this statement without returning {none}")

    def join_env(
        self,
        arrow: Arrow,
        env: Env,
        join: Join,
        rest: Sequence[ast.stmt],
        exit: Exit,
        stmt: ast.stmt,
    ) -> tuple[Arrow, Env]:
        """Fill the holes of ``arrow``'s branches: the arrow to the joined
        environment (for ``rest``), and that environment.

        ``arrow`` maps ``env`` to the joined tuple; a name comes out of the
        join when every branch binds it with one type. Others are recorded
        as unbound, with the reason, for the error if ``rest`` reads them.
        """
        ends = [e for _, e in join.ends]
        common: list[Slot] = []
        # How each branch hands a joined name over, when its type there is
        # not the joined one (see :meth:`joined_type`).
        convert: dict[tuple[int, str], Arrow] = {}
        unbound = {k: v for k, v in env.unbound.items() if k not in join.names}
        for name in join.names:
            if any(e.unbound.get(name) == REFUSED_ABOVE for e in ends):
                unbound[name] = REFUSED_ABOVE
                continue
            bound = [e.type_of(name) for e in ends if e.find(name) is not None]
            if len(bound) == len(ends) and all(name not in e.unbound for e in ends):
                if all(t == bound[0] for t in bound):
                    common.append(Slot(name, bound[0]))
                    continue
                wide = self.joined_type(name, join.ends, convert)
                if wide is not None:
                    common.append(Slot(name, wide))
                    continue
                kinds = " and ".join(sorted({show(t) for t in bound}))
                unbound[name] = (
                    f"{name} has different types on different paths through the "
                    f"{_what(stmt)} at line {self.src.file_line(stmt)} ({kinds}); "
                    f"declare one type for it ({name}: T = ...)"
                )
            else:
                unbound[name] = (
                    f"{name} may be unbound here: not every path through the {_what(stmt)} at "
                    f"line {self.src.file_line(stmt)} assigns it"
                )
        fills = {
            key: tuple_of([convert.get((key, s.name), e.read(s.name)) for s in common])
            for key, e in join.ends
        }
        arrow = fill_holes(arrow, fills)
        live = self.live(rest, exit)
        joined = {s.name for s in common}
        kept = [n for n in env.names() if n in live and n not in join.names]
        k = len(common)
        parts = [Proj(0, 2) >> env.read(n) for n in kept]
        parts += [Proj(1, 2) >> Proj(i, k) for i in range(k)]
        slots = tuple(Slot(n, env.type_of(n)) for n in kept) + tuple(common)
        declared = dict(env.declared)
        for name, t in ends[0].declared.items() if ends else ():
            if all(e.declared.get(name) == t for e in ends):
                declared.setdefault(name, t)
        narrowed = env.narrowed - set(join.names) - joined
        after_env = Env(slots, declared, unbound, narrowed)
        glue = tuple_of([Id(), arrow]) >> tuple_of(parts)
        return glue, after_env

    def joined_type(
        self, name: str, ends: Sequence[tuple[int, Env]], convert: dict[tuple[int, str], Arrow]
    ) -> Type | None:
        """The one type ``name`` can have after branches that leave it with
        different types, or ``None``; each branch's conversion to it goes
        into ``convert`` (by the branch's hole key and the name).

        Python's variable simply holds whichever value its path left, so the
        join is the smallest type holding them all: an optional narrowed in
        a branch counts as its item there (``if x is None: x = 0`` leaves an
        ``int``), ``None`` and ``T`` make ``T | None``, ``T`` and ``T | None``
        make ``T | None``, and a record joins a variant it is a case of.
        Numbers are not joined (an ``int`` and a ``float`` print, divide and
        compare as different types in Python).
        """
        have: list[tuple[int, Arrow, Type]] = []
        for key, e in ends:
            t = e.type_of(name)
            if name in e.narrowed and isinstance(t, OptionT):
                have.append((key, e.read(name) >> Prim("unwrap"), t.item))
            else:
                have.append((key, e.read(name), t))
        joined: Type | None = have[0][2]
        for _, _, t in have[1:]:
            joined = join_types(joined, t) if joined is not None else None
        if joined is None:
            return None
        for key, arrow, t in have:
            conv = self.convert(arrow, t, joined)
            if conv is None:
                return None
            convert[(key, name)] = conv
        return joined


def join_types(a: Type, b: Type) -> Type | None:
    """The least type holding ``a`` and ``b`` that :meth:`Flow.convert` takes
    both to, or ``None``: ``None`` and ``T`` make ``T | None``, so do ``T``
    and ``T | None``, and a record (or a plain value, ``str``) joins a
    variant it is a case of."""
    if a == b:
        return a
    if a == UNIT:
        a, b = b, a
    if b == UNIT:
        return a if isinstance(a, OptionT) else OptionT(a)
    if isinstance(a, OptionT) or isinstance(b, OptionT):
        ia = a.item if isinstance(a, OptionT) else a
        ib = b.item if isinstance(b, OptionT) else b
        inner = join_types(ia, ib)
        return None if inner is None else OptionT(inner)
    for r, v in ((a, b), (b, a)):
        if not isinstance(v, VariantT):
            continue
        tag = r.name if isinstance(r, RecordT) else plain_tag(r)
        if tag is not None and v.payload(tag) == r:
            return v
    return None


def _what(stmt: ast.stmt) -> str:
    return {ast.If: "if", ast.Match: "match", ast.For: "for loop"}.get(type(stmt), "statement")
