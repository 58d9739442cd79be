"""The nodes of the arrow language (the IR).

A program is a tree of immutable nodes, each a pure arrow from one type to
another. ``>>`` composes, ``*`` splits (``***``), ``&`` fans out (``&&&``),
``+`` maps over a sum (``+++``) and ``|`` fans in (``|||``). A
:class:`Loop` closes a body ``(input, state) -> (state, output)`` with a
state type and an initial state into a machine; loops compose with ``>>`` by
pairing their states.

Each node has a ``kind`` (its wire tag) and ``children()``, the labelled
sub-programs used for paths in error messages: ``compose[1]``,
``fanout[0]``, ``case[IncrCount]``, ``if.then``, ``map``, ``fold``,
``while.cond``, ``while.body``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, Final

import attrs

from arrowloop.typesys import RecordT, Type, VariantT, check_name

__all__ = [
    "Arrow",
    "Id",
    "Compose",
    "Split",
    "Fanout",
    "Proj",
    "Const",
    "Inject",
    "Case",
    "Distribute",
    "If",
    "MakeRecord",
    "GetField",
    "SetField",
    "Prim",
    "MapList",
    "Fold",
    "While",
    "MAX_ITERATIONS",
    "Loop",
]

#: The most iterations one run of a ``While`` node makes before it fails
#: (part of the node's meaning, hence of every version that uses it).
MAX_ITERATIONS: Final = 1_000_000


class Arrow:
    """Base class of the pure arrow nodes; provides the combinator operators."""

    __slots__ = ()
    kind: ClassVar[str]

    def children(self) -> tuple[tuple[str, Arrow], ...]:
        """The sub-programs with the labels that name them in a path."""
        return ()

    def __rshift__(self, other: Arrow) -> Arrow:
        if not isinstance(other, Arrow):
            return NotImplemented
        return Compose(_flat(self) + _flat(other))

    def __mul__(self, other: Arrow) -> Arrow:
        if not isinstance(other, Arrow):
            return NotImplemented
        return Split((self, other))

    def __and__(self, other: Arrow) -> Arrow:
        if not isinstance(other, Arrow):
            return NotImplemented
        return Fanout((self, other))

    def __add__(self, other: Arrow) -> Arrow:
        if not isinstance(other, Arrow):
            return NotImplemented
        return Case(
            (
                ("left", Compose((self, Inject("left", None)))),
                ("right", Compose((other, Inject("right", None)))),
            )
        )

    def __or__(self, other: Arrow) -> Arrow:
        if not isinstance(other, Arrow):
            return NotImplemented
        return Case((("left", self), ("right", other)))


def _value_key(value: Any) -> Any:
    """The equality key of a constant (``Const.value``, ``Loop.init``).

    Plain ``==`` says ``0.0 == -0.0`` and ``nan != nan``, so two programs
    that behave differently would compare (and hash) equal, sharing one entry
    of the compiled-code cache, and a program holding a NaN would not equal
    itself after a wire round trip. The key tells the zeros apart, makes
    every NaN equal, and keeps ``True`` apart from ``1``.
    """
    t = type(value)
    if t is float:
        return (float, value.hex())
    if t is tuple or t is list:
        return (t, tuple(_value_key(v) for v in value))
    if t is dict:
        return (dict, {k: _value_key(v) for k, v in value.items()})
    if attrs.has(t):
        return (t, tuple(_value_key(getattr(value, f.name)) for f in attrs.fields(t)))
    return (t, value)


def _flat(a: Arrow) -> tuple[Arrow, ...]:
    return a.steps if isinstance(a, Compose) else (a,)


def _arrows(value: Any) -> tuple[Arrow, ...]:
    parts = tuple(value)
    for p in parts:
        if not isinstance(p, Arrow):
            raise TypeError(f"expected an Arrow, found {type(p).__name__}")
    return parts


@attrs.frozen(cache_hash=True)
class Id(Arrow):
    """``a -> a``."""

    kind: ClassVar[str] = "id"


@attrs.frozen(cache_hash=True)
class Compose(Arrow):
    """``steps[0] >> steps[1] >> ...``: the output of each feeds the next."""

    kind: ClassVar[str] = "compose"
    steps: tuple[Arrow, ...] = attrs.field(converter=_arrows)

    def __attrs_post_init__(self) -> None:
        if not self.steps:
            raise ValueError("compose needs at least one step")

    def children(self) -> tuple[tuple[str, Arrow], ...]:
        return tuple((f"compose[{i}]", s) for i, s in enumerate(self.steps))


@attrs.frozen(cache_hash=True)
class Split(Arrow):
    """``(a1, ..., an) -> (b1, ..., bn)``, part ``i`` mapping ``ai`` to ``bi``."""

    kind: ClassVar[str] = "split"
    parts: tuple[Arrow, ...] = attrs.field(converter=_arrows)

    def __attrs_post_init__(self) -> None:
        if not self.parts:
            raise ValueError("split needs at least one part")

    def children(self) -> tuple[tuple[str, Arrow], ...]:
        return tuple((f"split[{i}]", s) for i, s in enumerate(self.parts))


@attrs.frozen(cache_hash=True)
class Fanout(Arrow):
    """``a -> (b1, ..., bn)``: every part sees the same input."""

    kind: ClassVar[str] = "fanout"
    parts: tuple[Arrow, ...] = attrs.field(converter=_arrows)

    def __attrs_post_init__(self) -> None:
        if not self.parts:
            raise ValueError("fanout needs at least one part")

    def children(self) -> tuple[tuple[str, Arrow], ...]:
        return tuple((f"fanout[{i}]", s) for i, s in enumerate(self.parts))


@attrs.frozen(cache_hash=True)
class Proj(Arrow):
    """``(a0, ..., a(arity-1)) -> a(index)``; ``fst``/``snd`` are arity 2."""

    kind: ClassVar[str] = "proj"
    index: int
    arity: int

    def __attrs_post_init__(self) -> None:
        if not (
            type(self.index) is int and type(self.arity) is int and 0 <= self.index < self.arity
        ):
            raise ValueError(
                f"projection index {self.index!r} out of range for arity {self.arity!r}"
            )


@attrs.frozen(cache_hash=True)
class Const(Arrow):
    """``a -> type``: ignores its input and yields ``value``."""

    kind: ClassVar[str] = "const"
    type: Type
    value: Any = attrs.field(hash=False, eq=_value_key)


@attrs.frozen(cache_hash=True)
class Inject(Arrow):
    """``payload -> variant``: builds case ``tag`` of ``variant``.

    With ``variant=None`` and tag ``left``/``right`` it injects into
    ``Either`` with the other side left to inference.
    """

    kind: ClassVar[str] = "inject"
    tag: str
    variant: VariantT | None

    def __attrs_post_init__(self) -> None:
        check_name(self.tag, "variant tag")
        if self.variant is None and self.tag not in ("left", "right"):
            raise ValueError("inject without a variant type needs the tag 'left' or 'right'")
        if self.variant is not None and self.variant.payload(self.tag) is None:
            raise ValueError(f"variant {self.variant!r} has no tag {self.tag!r}")


def _sorted_branches(bs: Iterable[tuple[str, Arrow]]) -> tuple[tuple[str, Arrow], ...]:
    return tuple(sorted(bs, key=lambda b: b[0]))


@attrs.frozen(cache_hash=True)
class Case(Arrow):
    """``variant -> b``: runs the branch for the value's tag on its payload.

    Branches are kept sorted by tag and must cover the variant exactly.
    """

    kind: ClassVar[str] = "case"
    branches: tuple[tuple[str, Arrow], ...] = attrs.field(converter=_sorted_branches)

    def __attrs_post_init__(self) -> None:
        if not self.branches:
            raise ValueError("case needs at least one branch")
        prev = None
        for tag, arrow in self.branches:
            check_name(tag, "variant tag")
            if tag == prev:
                raise ValueError(f"case has two branches for the tag {tag!r}")
            if not isinstance(arrow, Arrow):
                raise TypeError(
                    f"expected an Arrow for branch {tag!r}, found {type(arrow).__name__}"
                )
            prev = tag

    def children(self) -> tuple[tuple[str, Arrow], ...]:
        return tuple((f"case[{tag}]", a) for tag, a in self.branches)


@attrs.frozen(cache_hash=True)
class Distribute(Arrow):
    """``(variant, b) -> variant'`` where case ``t`` carries ``(payload_t, b)``.

    This is how a branch of a case gets to see more than the payload (for a
    machine body: the state beside the message).
    """

    kind: ClassVar[str] = "distribute"


@attrs.frozen(cache_hash=True)
class If(Arrow):
    """``a -> b``: ``then`` if ``cond`` gives true on the input, else ``orelse``."""

    kind: ClassVar[str] = "if"
    cond: Arrow
    then: Arrow
    orelse: Arrow

    def children(self) -> tuple[tuple[str, Arrow], ...]:
        return (("if.cond", self.cond), ("if.then", self.then), ("if.else", self.orelse))


@attrs.frozen(cache_hash=True)
class MakeRecord(Arrow):
    """Builds a record from its fields in order.

    The input is the single field for one-field records, a tuple for more,
    and anything (ignored) for records without fields.
    """

    kind: ClassVar[str] = "make"
    record: RecordT


@attrs.frozen(cache_hash=True)
class GetField(Arrow):
    """``record -> field``."""

    kind: ClassVar[str] = "get"
    field: str

    def __attrs_post_init__(self) -> None:
        check_name(self.field, "field name")


@attrs.frozen(cache_hash=True)
class SetField(Arrow):
    """``(record, value) -> record`` with ``field`` replaced by ``value``."""

    kind: ClassVar[str] = "set"
    field: str

    def __attrs_post_init__(self) -> None:
        check_name(self.field, "field name")


@attrs.frozen(cache_hash=True)
class Prim(Arrow):
    """A named primitive from the registry (``add``, ``lt``, ``len``, ...)."""

    kind: ClassVar[str] = "prim"
    name: str


@attrs.frozen(cache_hash=True)
class MapList(Arrow):
    """``list[a] -> list[b]`` applying ``fn : a -> b`` to every item."""

    kind: ClassVar[str] = "map"
    fn: Arrow

    def children(self) -> tuple[tuple[str, Arrow], ...]:
        return (("map", self.fn),)


@attrs.frozen(cache_hash=True)
class Fold(Arrow):
    """``(b, list[a]) -> b`` folding ``fn : (b, a) -> b`` from the left."""

    kind: ClassVar[str] = "fold"
    fn: Arrow

    def children(self) -> tuple[tuple[str, Arrow], ...]:
        return (("fold", self.fn),)


@attrs.frozen(cache_hash=True)
class While(Arrow):
    """``a -> a``: ``body : a -> a`` applied while ``cond : a -> bool`` holds
    (Python's ``while``); raises :class:`arrowloop.errors.IterationLimitError`
    when the condition still holds after :data:`MAX_ITERATIONS` iterations."""

    kind: ClassVar[str] = "while"
    cond: Arrow
    body: Arrow

    def children(self) -> tuple[tuple[str, Arrow], ...]:
        return (("while.cond", self.cond), ("while.body", self.body))


_FST2 = Proj(0, 2)
_SND2 = Proj(1, 2)


@attrs.frozen(cache_hash=True)
class Loop:
    """A machine in the arrow language: ``loop(body)`` with a delay.

    ``body : (input, state) -> (state, output)``; ``state`` is the state type
    and ``init`` the initial state (a runtime value of ``state``).

    ``loop1 >> loop2`` is a loop whose state is the pair of both states;
    ``arrow >> loop`` and ``loop >> arrow`` fold a pure arrow into the body.
    """

    kind: ClassVar[str] = "loop"
    body: Arrow
    state: Type
    init: Any = attrs.field(hash=False, eq=_value_key)

    def __rshift__(self, other: Loop | Arrow) -> Loop:
        if isinstance(other, Arrow):
            # (a, s) -> (s, b) >> second(g): post-process the output only.
            return Loop(self.body >> Split((Id(), other)), self.state, self.init)
        if isinstance(other, Loop):
            return _pair_loops(self, other)
        return NotImplemented

    def __rrshift__(self, other: Arrow) -> Loop:
        if isinstance(other, Arrow):
            # first(f) >> body: pre-process the input only.
            return Loop(Split((other, Id())) >> self.body, self.state, self.init)
        return NotImplemented


def _pair_loops(a: Loop, b: Loop) -> Loop:
    from arrowloop.typesys import TupleT

    fst, snd = _FST2, _SND2
    # (x, (s1, s2)) -> ((x, s1), s2)
    regroup_in = Fanout((Fanout((fst, snd >> fst)), snd >> snd))
    # ((s1', y), s2) -> (s1', (y, s2))
    regroup_mid = Fanout((fst >> fst, Fanout((fst >> snd, snd))))
    # (s1', (s2', z)) -> ((s1', s2'), z)
    regroup_out = Fanout((Fanout((fst, snd >> fst)), snd >> snd))
    body = (
        regroup_in >> Split((a.body, Id())) >> regroup_mid >> Split((Id(), b.body)) >> regroup_out
    )
    return Loop(body, TupleT((a.state, b.state)), (a.init, b.init))
