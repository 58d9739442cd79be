"""The environment of local names, passed through the program as a flat tuple.

Part of the Python front end. This is the "compiling to categories"
construction: at every point of the function the values of the live local
names travel together as one tuple, a name is read with a projection, and a
statement is an arrow from the tuple before it to the tuple after it. The
simplifier and the code generator remove the tuples again.

Also here: which names a piece of syntax reads or assigns (for liveness),
and *holes*, placeholders for the end of a branch whose layout is only
known once every branch has been translated (see :class:`Join`).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

import attrs

from arrowloop.arrows import Arrow, Const, Fanout, Proj, map_children
from arrowloop.typesys import TupleT, Type

__all__ = [
    "Slot",
    "Val",
    "Env",
    "Hole",
    "fill_holes",
    "reads",
    "assigned",
    "place_root",
    "CHANGING_METHODS",
    "has_return",
    "empty_container",
    "UNIT_TUPLE",
    "tuple_of",
    "READS_CACHE",
]

#: The attribute under which :func:`reads` keeps a node's names.
READS_CACHE = "_arrowloop_reads"

#: The empty tuple, as a constant arrow.
UNIT_TUPLE: Arrow = Const(TupleT(()), ())


def tuple_of(parts: Sequence[Arrow]) -> Arrow:
    """``fanout(parts)``, or the empty tuple when there are none."""
    return Fanout(tuple(parts)) if parts else UNIT_TUPLE


@attrs.frozen
class Slot:
    """One local name in the environment tuple, with its type."""

    name: str
    type: Type


@attrs.frozen
class Val:
    """A translated expression: an arrow from the environment tuple, and its type."""

    arrow: Arrow
    type: Type


@attrs.frozen(eq=False)
class Env:
    """The local names at one point of the function, in tuple order.

    ``declared`` holds the annotated type of names (parameters and annotated
    assignments): later assignments are converted to it. ``unbound`` says,
    for names that may not be bound here, why (for the error message).
    ``narrowed`` are optional names known not to be ``None`` here (inside
    ``if x is not None:``); reading one unwraps it. Later slots shadow
    earlier ones with the same name.
    """

    slots: tuple[Slot, ...]
    declared: Mapping[str, Type] = attrs.field(factory=dict)
    unbound: Mapping[str, str] = attrs.field(factory=dict)
    narrowed: frozenset[str] = frozenset()

    @property
    def arity(self) -> int:
        """How many items the environment tuple has."""
        return len(self.slots)

    def find(self, name: str) -> int | None:
        """The position of ``name`` (the last slot of that name), or ``None``."""
        for i in range(len(self.slots) - 1, -1, -1):
            if self.slots[i].name == name:
                return i
        return None

    def names(self) -> list[str]:
        """The visible names, in tuple order."""
        return [s.name for i, s in enumerate(self.slots) if self.find(s.name) == i]

    def read(self, name: str) -> Arrow:
        """The projection that reads ``name`` (which must be bound)."""
        i = self.find(name)
        assert i is not None, name
        return Proj(i, self.arity)

    def type_of(self, name: str) -> Type:
        """The type of the bound name ``name``."""
        i = self.find(name)
        assert i is not None, name
        return self.slots[i].type

    def val(self, name: str) -> Val:
        """``name`` as a translated expression."""
        return Val(self.read(name), self.type_of(name))

    def rebuild(self, keep: Iterable[str], new: Sequence[tuple[str, Val]]) -> tuple[Arrow, Env]:
        """The arrow to a new environment: the kept names, then the new bindings.

        Names in ``new`` shadow kept names of the same name (which are then
        not kept). The new values are evaluated in order, after nothing else.
        """
        fresh = {name for name, _ in new}
        wanted = set(keep)
        kept = [n for n in self.names() if n in wanted and n not in fresh]
        parts = [self.read(n) for n in kept] + [v.arrow for _, v in new]
        slots = tuple(Slot(n, self.type_of(n)) for n in kept) + tuple(
            Slot(n, v.type) for n, v in new
        )
        unbound = {k: v for k, v in self.unbound.items() if k not in fresh}
        return tuple_of(parts), Env(slots, self.declared, unbound, self.narrowed - fresh)

    def with_info(
        self,
        *,
        declared: Mapping[str, Type] | None = None,
        unbound: Mapping[str, str] | None = None,
        narrowed: frozenset[str] | None = None,
    ) -> Env:
        """The same slots with other declarations, unbound reasons or narrowings."""
        return Env(
            self.slots,
            self.declared if declared is None else declared,
            self.unbound if unbound is None else unbound,
            self.narrowed if narrowed is None else narrowed,
        )


@attrs.frozen
class Hole(Arrow):
    """A placeholder the front end fills before anything else sees the program."""

    kind: ClassVar[str] = "hole"
    key: int


def fill_holes(arrow: Arrow, fills: Mapping[int, Arrow]) -> Arrow:
    """``arrow`` with each hole whose key is in ``fills`` replaced."""
    if isinstance(arrow, Hole):
        return fills.get(arrow.key, arrow)
    return map_children(arrow, lambda a: fill_holes(a, fills))


# -- syntax facts -------------------------------------------------------------


def reads(nodes: Iterable[ast.AST]) -> set[str]:
    """Every name loaded anywhere in ``nodes``."""
    out: set[str] = set()
    for node in nodes:
        out |= _reads_of(node)
    return out


def _reads_of(node: ast.AST) -> frozenset[str]:
    # Asked for every statement about all the statements after it: kept on
    # the node, so a long body is walked once, not once per statement.
    known: frozenset[str] | None = getattr(node, READS_CACHE, None)
    if known is None:
        known = frozenset(
            sub.id
            for sub in ast.walk(node)
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load)
        )
        setattr(node, READS_CACHE, known)
    return known


#: Methods that change a list or dict in place: a statement calling one
#: rebinds the name it is called through (see frontend/_mutation.py).
CHANGING_METHODS = frozenset(
    {"append", "extend", "clear", "pop", "setdefault", "add", "discard", "remove", "insert"}
)


def assigned(nodes: Iterable[ast.AST]) -> set[str]:
    """Every name bound anywhere in ``nodes`` (assignments, loop targets,
    patterns), and every name whose list or dict a statement changes in
    place (``d[k] = v``, ``xs.append(x)``: translated as rebinding it)."""
    out: set[str] = set()
    for node in nodes:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                out.add(sub.id)
            elif isinstance(sub, ast.MatchAs | ast.MatchStar) and sub.name:
                out.add(sub.name)
            elif isinstance(sub, ast.Subscript | ast.Attribute) and isinstance(
                sub.ctx, ast.Store | ast.Del
            ):
                root = place_root(sub)
                if root is not None:
                    out.add(root)
            elif (
                isinstance(sub, ast.Call)
                and isinstance(sub.func, ast.Attribute)
                and sub.func.attr in CHANGING_METHODS
            ):
                root = place_root(sub.func.value)
                if root is not None:
                    out.add(root)
    return out


def place_root(node: ast.expr) -> str | None:
    """The name a place (``a.b[k].c``, ``d.setdefault(k, v)``, ``d.get(k,
    set())``) starts from."""
    while True:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute | ast.Subscript):
            node = node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (node.func.attr, len(node.args)) in (("setdefault", 2), ("get", 2))
        ):
            node = node.func.value
        else:
            return None


def has_return(nodes: Iterable[ast.AST]) -> bool:
    """Whether a ``return`` statement occurs anywhere in ``nodes``."""
    return any(isinstance(sub, ast.Return) for node in nodes for sub in ast.walk(node))


def empty_container(node: ast.expr) -> bool:
    """Whether ``node`` is ``[]``, ``{}``, ``set()``, ``list()`` or ``dict()``: a
    new empty container, whose item type only its context tells."""
    if isinstance(node, ast.List | ast.Dict):
        return not (node.elts if isinstance(node, ast.List) else node.keys)
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("set", "list", "dict")
        and not node.args
        and not node.keywords
    )
