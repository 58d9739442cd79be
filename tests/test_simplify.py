"""The simplifier: its laws, and that it never changes a program's type or behaviour."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowloop.arrows import (
    Arrow,
    Case,
    Compose,
    Const,
    Distribute,
    Fanout,
    Fold,
    GetField,
    Id,
    If,
    Inject,
    MakeRecord,
    MapList,
    Prim,
    Proj,
    SetField,
    Split,
    const,
    droppable,
    fanout,
    fst,
    id_,
    if_,
    inject,
    loop,
    prim,
    simplify,
    simplify_loop,
    snd,
)
from arrowloop.check import check_arrow
from arrowloop.compiler import compile_arrow, interpret
from arrowloop.typesys import (
    BOOL,
    INT,
    ListT,
    RecordT,
    TupleT,
    Type,
    VariantT,
    from_annotation,
    record_class,
)
from examples import counter as c
from tests.profiles import examples


@attrs.frozen
class SPoint:
    """A record for generated programs."""

    x: int
    flag: bool


@attrs.frozen
class SHit:
    """A case with a payload."""

    n: int


@attrs.frozen
class SMiss:
    """A case without one."""


def _record(cls: type) -> RecordT:
    t = from_annotation(cls)
    assert isinstance(t, RecordT)
    return t


def _variant(annotation: object) -> VariantT:
    t = from_annotation(annotation)
    assert isinstance(t, VariantT)
    return t


POINT = _record(SPoint)
HIT = _record(SHit)
MISS = _record(SMiss)
SHOT = _variant(SHit | SMiss)
INTS = ListT(INT)

BASE: list[Type] = [INT, BOOL, POINT, SHOT, INTS]


def values(t: Type) -> st.SearchStrategy[Any]:
    """Values of the types used by the generated programs."""
    if t == INT:
        return st.integers(-5, 5)
    if t == BOOL:
        return st.booleans()
    if t == INTS:
        return st.lists(st.integers(-5, 5), max_size=4)
    if isinstance(t, TupleT):
        return st.tuples(*(values(x) for x in t.items))
    if t == POINT:
        return st.builds(SPoint, st.integers(-5, 5), st.booleans())
    if t == SHOT:
        return st.one_of(st.builds(SHit, st.integers(-5, 5)), st.just(SMiss()))
    if t == HIT:
        return st.builds(SHit, st.integers(-5, 5))
    if t == MISS:
        return st.just(SMiss())
    raise AssertionError(t)


Draw = Callable[[st.SearchStrategy[Any]], Any]


def types(draw: Draw) -> Type:
    """A random type: one of BASE or a pair of them."""
    base: list[Type] = [draw(st.sampled_from(BASE)), draw(st.sampled_from(BASE))]
    if draw(st.booleans()):
        return base[0]
    return TupleT((base[0], base[1]))


def gen(draw: Draw, i: Type, o: Type, depth: int) -> Arrow:
    """A random well-typed program from ``i`` to ``o``."""
    options: list[Callable[[], Arrow]] = [lambda: Const(o, draw(values(o)))]
    if i == o:
        options.append(lambda: Id())
    if isinstance(i, TupleT):
        n = len(i.items)
        for k, item in enumerate(i.items):
            if item == o:
                options += [partial(Proj, k, n)] * 3
    if depth > 0:
        d = depth - 1
        options.append(lambda: Compose((gen(draw, i, (m := types(draw)), d), gen(draw, m, o, d))))
        if isinstance(o, TupleT):
            options += [lambda: Fanout(tuple(gen(draw, i, x, d) for x in o.items))] * 3
        if isinstance(i, TupleT):
            for k in range(len(i.items)):
                options.append(partial(_project, draw, i, k, o, d))
            if isinstance(o, TupleT) and len(o.items) == len(i.items):
                options.append(
                    lambda: Split(
                        tuple(gen(draw, a, b, d) for a, b in zip(i.items, o.items, strict=True))
                    )
                )
            if i.items[0] == SHOT:
                rest = i.items[1]
                options.append(
                    lambda: (
                        Distribute()
                        >> Case(
                            (
                                ("SHit", gen(draw, TupleT((HIT, rest)), o, d)),
                                ("SMiss", gen(draw, TupleT((MISS, rest)), o, d)),
                            )
                        )
                    )
                )
            if i == TupleT((INT, INTS)) and o == INT:
                options.append(lambda: Fold(gen(draw, TupleT((INT, INT)), INT, d)))
        options.append(lambda: If(gen(draw, i, BOOL, d), gen(draw, i, o, d), gen(draw, i, o, d)))
        pair = TupleT((INT, INT))
        if o == INT:
            for name in ("add", "sub", "mul", "floordiv", "mod"):
                options.append(partial(_binary, draw, i, d, name))
        if o == BOOL:
            options.append(lambda: gen(draw, i, pair, d) >> Prim("lt"))
            options.append(lambda: gen(draw, i, BOOL, d) >> Prim("not"))
        if o == POINT:
            options.append(lambda: gen(draw, i, TupleT((INT, BOOL)), d) >> MakeRecord(POINT))
            options.append(lambda: gen(draw, i, TupleT((POINT, INT)), d) >> SetField("x"))
        if i == POINT:
            options.append(lambda: GetField("x") >> gen(draw, INT, o, d))
            options.append(lambda: GetField("flag") >> gen(draw, BOOL, o, d))
        if o == SHOT:
            options.append(lambda: gen(draw, i, HIT, d) >> Inject("SHit", SHOT))
            options.append(lambda: gen(draw, i, MISS, d) >> Inject("SMiss", SHOT))
        if o == HIT:
            options.append(lambda: gen(draw, i, INT, d) >> MakeRecord(HIT))
        if i == SHOT:
            options.append(
                lambda: Case((("SHit", gen(draw, HIT, o, d)), ("SMiss", gen(draw, MISS, o, d))))
            )
        if i == INTS and o == INTS:
            options.append(lambda: MapList(gen(draw, INT, INT, d)))
    chosen: Callable[[], Arrow] = draw(st.sampled_from(options))
    return chosen()


def _project(draw: Draw, i: TupleT, k: int, o: Type, depth: int) -> Arrow:
    return Proj(k, len(i.items)) >> gen(draw, i.items[k], o, depth)


def _binary(draw: Draw, i: Type, depth: int, name: str) -> Arrow:
    return gen(draw, i, TupleT((INT, INT)), depth) >> Prim(name)


def outcome(fn: Callable[[Any], Any], x: Any) -> tuple[str, Any]:
    """The result of ``fn(x)``, or the class and message of what it raised."""
    try:
        return ("ok", fn(x))
    except Exception as exc:  # the property compares failures too
        return ("raised", (type(exc).__name__, str(exc)))


@settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@pytest.mark.slow
@given(st.data())
def test_simplify_preserves_type_and_behaviour(data: st.DataObject) -> None:
    """On random well-typed programs the simplified one has the same type and results."""
    draw: Draw = data.draw
    i, o = types(draw), types(draw)
    program = gen(draw, i, o, 3)
    typed = check_arrow(program, i, o)
    simple = simplify(program)
    simple_typed = check_arrow(simple, i, o)
    assert simple_typed.output == typed.output
    assert simplify(simple) == simple
    compiled = compile_arrow(simple_typed)
    for _ in range(4):
        x = draw(values(i))
        want = outcome(lambda v: interpret(typed, v), x)
        assert outcome(lambda v: interpret(simple_typed, v), x) == want
        assert outcome(compiled, x) == want


def test_projection_of_fanout_keeps_only_the_projected_part() -> None:
    """fanout(f, g) >> fst is f when g cannot raise."""
    f = fanout(id_, const(1)) >> prim("add")
    assert simplify(fanout(f, snd) >> fst) == f


def test_primitives_are_never_dropped() -> None:
    """A division whose result is unused still runs (it may raise)."""
    div = fanout(id_, const(0)) >> prim("floordiv")
    program = fanout(id_, div) >> fst
    assert simplify(program) == program
    typed = check_arrow(simplify(program), int)
    with pytest.raises(ZeroDivisionError):
        compile_arrow(typed)(3)


def test_environment_shuffles_collapse_to_identity() -> None:
    """Rebuilding a tuple from its own projections is the identity."""
    swap = fanout(snd, fst)
    assert simplify(swap >> swap) == Id()
    env = Fanout((Proj(0, 3), Proj(1, 3), Proj(2, 3)))
    assert simplify(env >> Fanout((Proj(0, 3), Fanout((Proj(1, 3), Proj(2, 3)))))) == Fanout(
        (Proj(0, 3), Fanout((Proj(1, 3), Proj(2, 3))))
    )


def test_common_projection_is_read_once() -> None:
    """fanout(snd >> fst, snd >> snd) is snd."""
    assert simplify(fanout(snd >> fst, snd >> snd)) == snd


def test_dead_branches_are_removed() -> None:
    """An if on a constant and a case on an injection keep only the taken branch."""
    add1 = fanout(id_, const(1)) >> prim("add")
    assert simplify(if_(const(True), add1, id_)) == add1
    assert simplify(id_ >> const(False) >> prim("not")) == const(False) >> prim("not")
    read = GetField("n") >> add1
    program = inject(c.Output, c.Count) >> Case((("Ack", const(0)), ("Count", read)))
    assert simplify(program) == read
    folded = const(c.Count(4), c.Output) >> Case((("Ack", const(0)), ("Count", read)))
    assert simplify(folded) == const(4) >> add1


def test_raising_parts_are_not_reordered() -> None:
    """Two parts that may raise keep their order (so the same error is raised)."""
    div = fanout(fst, snd) >> prim("floordiv")
    mod = fanout(snd, fst) >> prim("mod")
    program = fanout(div, mod) >> fanout(snd, fst)
    simple = simplify(program)
    assert isinstance(simple, Compose)
    assert simple.steps[-1] == fanout(snd, fst)
    assert not droppable(div)


def test_simplify_loop_keeps_state_and_init() -> None:
    """simplify_loop simplifies the body only."""
    lp = loop(fanout(snd, fst) >> fanout(snd, fst) >> fanout(fst, snd), init=0, state=int)
    out = simplify_loop(lp)
    assert out.body == Id()
    assert (out.state, out.init) == (lp.state, lp.init)
    assert simplify_loop(out) is out


def test_counter_is_already_simple() -> None:
    """The hand-written counter does not grow and keeps its meaning."""
    body = simplify(c.counter_v3.body)
    assert body == simplify(body)
    assert record_class(POINT) is SPoint
