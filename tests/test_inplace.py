"""In-place updates (compiler/_ownership.py): the step a stage runs updates its
state's lists and dicts in place, and no one can tell.

The differential tests run the owned step and the reference interpreter side
by side over many steps and check, at every step, equal results; after a step
that raises, the state as it was; at the end, every earlier output unchanged
(nothing that escaped is updated later); and that the plain step never
changes its arguments. The programs come from the general generator
(tests/strategies.py) and from one that writes environment-passing code of
the shape the Python front end produces, with aliases (a container held
twice), nested containers, folds, maps and branches.
"""

from __future__ import annotations

import copy
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arrowloop
from arrowloop.arrows import (
    Arrow,
    Loop,
    compose,
    const,
    fanout,
    fold,
    if_,
    map_,
    prim,
    proj,
)
from arrowloop.compiler import generated_source
from arrowloop.machine import Machine
from arrowloop.typesys import INT, STR, ListT, MapT, TupleT, Type
from tests.profiles import examples
from tests.strategies import loops, value_key, values

SETTINGS = settings(max_examples=examples(150))


#: The size of a state past which a run stops early (see _run).
_MAX_SIZE = 2_000


def _size(v: Any) -> int:
    """How many items the lists, dicts and tuples of ``v`` hold, in all."""
    if isinstance(v, dict):
        return len(v) + sum(_size(x) for x in v.values())
    if isinstance(v, list | tuple):
        return len(v) + sum(_size(x) for x in v)
    return 0


def _run(machine: Machine, inputs: list[Any], init: Any) -> None:
    """Step ``machine`` owned and interpreted through ``inputs``, checking
    the guarantees of the module docstring."""
    step, log = machine.owned_step()
    mine = machine.copy_state(init)
    ref = copy.deepcopy(init)
    outs_mine: list[Any] = []
    outs_ref: list[Any] = []
    for x in inputs:
        before = copy.deepcopy(mine)
        plain_args = copy.deepcopy((x, ref))
        try:
            r_ref: Any = machine.interpret(x, ref)
        except Exception:
            r_ref = None
        try:
            plain: Any = machine.step(x, ref)
        except Exception:
            plain = None
        assert value_key(plain_args) == value_key((x, ref)), "the plain step changed its input"
        try:
            r_mine: Any = step(x, mine)
        except Exception:
            r_mine = None
        assert (r_mine is None) == (r_ref is None) == (plain is None)
        if r_mine is None:
            assert value_key(mine) == value_key(before), "a failing step changed the state"
            continue
        assert value_key(r_mine) == value_key(r_ref) == value_key(plain)
        outs_mine.append(r_mine[1])
        outs_ref.append(copy.deepcopy(r_ref[1]))
        mine, ref = r_mine[0], r_ref[0]
        if log is not None:
            log.clear()
        if _size(mine) > _MAX_SIZE:
            break  # a list folded into itself doubles per step: enough said
    assert value_key(outs_mine) == value_key(outs_ref), "a later step changed an output"


@SETTINGS
@given(loops(), st.data())
def test_owned_steps_of_generated_loops_agree(
    m: tuple[Loop, Type, Type], data: st.DataObject
) -> None:
    lp, src, dst = m
    machine = Machine.build(lp, src, dst)
    inputs = data.draw(st.lists(values(src, nan=False), min_size=1, max_size=5))
    _run(machine, inputs, machine.init)


# -- environment-passing programs with aliases -----------------------------------------

MI = MapT(INT)
LI = ListT(INT)
MLI = MapT(LI)
LLI = ListT(LI)
STATE = TupleT((MI, LI, MLI))
INPUT = TupleT((STR, INT))
OUTPUT = TupleT((LI, MI, INT))
KINDS = (STR, INT, MI, LI, MLI)


@attrs.frozen
class _Env:
    """An arrow from the step's input to a tuple of slots, and their types."""

    arrow: Arrow
    types: tuple[Type, ...]


def _keep(env: _Env, replace: dict[int, Arrow], extra: tuple[tuple[Arrow, Type], ...] = ()) -> _Env:
    n = len(env.types)
    parts = [replace.get(i, proj(i, n)) for i in range(n)] + [a for a, _ in extra]
    return _Env(compose(env.arrow, fanout(*parts)), env.types + tuple(t for _, t in extra))


def _slots(env: _Env, t: Type) -> list[int]:
    return [i for i, x in enumerate(env.types) if x == t]


def _take_or_push() -> Arrow:
    """A fold body ``(acc, item) -> acc``: the item itself when it is shorter
    than the accumulator plus two, else the accumulator with 7 appended."""

    def length(i: int) -> Arrow:
        return compose(proj(i, 2), prim("len"))

    bound = compose(fanout(length(0), const(2)), prim("add"))
    short = compose(fanout(length(1), bound), prim("lt"))
    return if_(short, proj(1, 2), compose(fanout(proj(0, 2), const(7)), prim("append")))


@st.composite
def _op(draw: st.DrawFn, env: _Env) -> _Env:
    n = len(env.types)

    def p(i: int) -> Arrow:
        return proj(i, n)

    strs, ints = _slots(env, STR), _slots(env, INT)
    choices = [
        "dup",
        "put",
        "append",
        "remove",
        "get",
        "item",
        "if",
        "fold",
        "map",
        "empty",
        "drop",
        "set",
        "droplast",
        "take",
        "fold_alias",
        "unpair",
        "popat",
        "delat",
        "removeitem",
        "insert",
        "entryappend",
    ]
    kind = draw(st.sampled_from(choices))
    if kind == "dup":
        j = draw(st.integers(0, n - 1))
        return _keep(env, {}, ((p(j), env.types[j]),))
    if kind == "drop":
        j = draw(st.integers(0, n - 1))
        if len(_slots(env, env.types[j])) < 2:
            return env
        keep = [i for i in range(n) if i != j]
        return _Env(
            compose(env.arrow, fanout(*[p(i) for i in keep])), tuple(env.types[i] for i in keep)
        )
    if kind == "empty":
        t = draw(st.sampled_from([MI, LI, MLI]))
        value = draw(
            st.sampled_from(
                [{}, {"a": 1}] if t == MI else [[], [1, 2]] if t == LI else [{}, {"a": [1]}]
            )
        )
        return _keep(env, {}, ((const(value, t), t),))
    if kind in ("put", "remove", "get"):
        maps = _slots(env, MI) + _slots(env, MLI)
        j, k = draw(st.sampled_from(maps)), draw(st.sampled_from(strs))
        vt = env.types[j].value  # type: ignore[attr-defined]
        if kind == "remove":
            return _keep(env, {j: compose(fanout(p(j), p(k)), prim("map_remove"))})
        if kind == "get":
            default = const(0) if vt == INT else const([], LI)
            got = compose(
                fanout(compose(fanout(p(j), p(k)), prim("map_get")), default), prim("unwrap_or")
            )
            return _keep(env, {}, ((got, vt),))
        v = draw(st.sampled_from(_slots(env, vt)))
        return _keep(env, {j: compose(fanout(p(j), p(k), p(v)), prim("map_put"))})
    if kind == "append":
        j, v = draw(st.sampled_from(_slots(env, LI))), draw(st.sampled_from(ints))
        return _keep(env, {j: compose(fanout(p(j), p(v)), prim("append"))})
    if kind == "item":
        j, i = draw(st.sampled_from(_slots(env, LI))), draw(st.sampled_from(ints))
        return _keep(env, {}, ((compose(fanout(p(j), p(i)), prim("item")), INT),))
    if kind == "if":
        j = draw(st.sampled_from(_slots(env, LI)))
        v, c = draw(st.sampled_from(ints)), draw(st.sampled_from(ints))
        then = compose(fanout(p(j), p(v)), prim("append"))
        return _keep(env, {j: if_(compose(fanout(p(c), const(0)), prim("lt")), then, p(j))})
    if kind == "set":
        j, i, v = (draw(st.sampled_from(_slots(env, t))) for t in (LI, INT, INT))
        return _keep(env, {j: compose(fanout(p(j), p(i), p(v)), prim("list_set"))})
    if kind == "popat":
        j, i = draw(st.sampled_from(_slots(env, LI))), draw(st.sampled_from(ints))
        return _keep(env, {j: compose(fanout(p(j), p(i)), prim("list_pop_at"))})
    if kind == "entryappend":
        j, k = draw(st.sampled_from(_slots(env, MLI))), draw(st.sampled_from(strs))
        v = draw(st.sampled_from(ints))
        if draw(st.booleans()):
            appended = compose(fanout(p(j), p(k), p(v)), prim("map_append"))
        else:
            appended = compose(fanout(p(j), p(k), const([9], LI), p(v)), prim("map_append_or"))
        return _keep(env, {j: appended})
    if kind == "delat":
        j, i = draw(st.sampled_from(_slots(env, LI))), draw(st.sampled_from(ints))
        return _keep(env, {j: compose(fanout(p(j), p(i)), prim("list_del_at"))})
    if kind == "removeitem":
        j, v = draw(st.sampled_from(_slots(env, LI))), draw(st.sampled_from(ints))
        return _keep(env, {j: compose(fanout(p(j), p(v)), prim("list_remove"))})
    if kind == "insert":
        j, i, v = (draw(st.sampled_from(_slots(env, t))) for t in (LI, INT, INT))
        return _keep(env, {j: compose(fanout(p(j), p(i), p(v)), prim("list_insert"))})
    if kind == "droplast":
        j = draw(st.sampled_from(_slots(env, LI)))
        return _keep(env, {j: compose(p(j), prim("drop_last"))})
    if kind == "take":
        # (d', v) = take(d, k): d' replaces d, v is a new slot
        j, k = draw(st.sampled_from(_slots(env, MLI))), draw(st.sampled_from(strs))
        if draw(st.booleans()):
            taken = compose(fanout(p(j), p(k)), prim("map_take"))
        else:
            taken = compose(fanout(p(j), p(k), const([9], LI)), prim("map_take_or"))
        m = n + 1
        both = _keep(env, {}, ((taken, TupleT((MLI, LI))),))
        rest = [proj(i, m) for i in range(n)]
        rest[j] = compose(proj(n, m), proj(0, 2))
        return _Env(
            compose(both.arrow, fanout(*rest, compose(proj(n, m), proj(1, 2)))),
            (*env.types, LI),
        )
    if kind == "fold_alias":
        # A fold whose accumulator becomes one of the items (an alias of a
        # slot) and is appended to in a later iteration.
        a, c = (draw(st.sampled_from(_slots(env, LI))) for _ in range(2))

        def push(xs: Arrow, x: Arrow) -> Arrow:
            return compose(fanout(xs, x), prim("append"))

        longer = push(push(p(a), const(0)), const(0))  # a + [0, 0]
        pairs = _keep(env, {}, ((push(push(const([], LLI), p(a)), longer), LLI),))
        m = len(pairs.types)
        folded = compose(fanout(proj(c, m), proj(m - 1, m)), fold(_take_or_push()))
        return _keep(pairs, {}, ((folded, LI),))
    if kind == "unpair":
        lists = _slots(env, LLI)
        if not lists:
            return env
        got = compose(
            fanout(p(draw(st.sampled_from(lists))), const(draw(st.integers(0, 1)))), prim("item")
        )
        return _keep(env, {}, ((got, LI),))
    if kind == "fold":
        into = draw(st.sampled_from(_slots(env, LI) + _slots(env, MI)))
        xs = draw(st.sampled_from(_slots(env, LI)))
        if env.types[into] == LI:
            body: Arrow = prim("append")
        else:
            body = compose(
                fanout(proj(0, 2), compose(proj(1, 2), prim("str_of_int")), proj(1, 2)),
                prim("map_put"),
            )
        return _keep(env, {into: compose(fanout(p(into), p(xs)), fold(body))})
    # map
    xs = draw(st.sampled_from(_slots(env, LI)))
    bump = map_(compose(fanout(prim("neg"), const(1)), prim("add")))
    return _keep(env, {}, ((compose(p(xs), bump), LI),))


@st.composite
def env_machines(draw: st.DrawFn) -> Machine:
    """A machine ``(str, int) x STATE -> STATE x OUTPUT`` written as a run of
    operations on a tuple of slots (the input's and the state's parts)."""
    ip, sp = proj(0, 2), proj(1, 2)
    start = fanout(
        compose(ip, proj(0, 2)),
        compose(ip, proj(1, 2)),
        compose(sp, proj(0, 3)),
        compose(sp, proj(1, 3)),
        compose(sp, proj(2, 3)),
    )
    env = _Env(start, KINDS)
    for _ in range(draw(st.integers(1, 8))):
        env = draw(_op(env))
    n = len(env.types)

    def pick(t: Type) -> Arrow:
        return proj(draw(st.sampled_from(_slots(env, t))), n)

    state = fanout(pick(MI), pick(LI), pick(MLI))
    out = fanout(pick(LI), pick(MI), pick(INT))
    body = compose(env.arrow, fanout(state, out))
    init = ({"a": 1}, [1], {"a": [1, 2], "b": []})
    return Machine.build(Loop(body, STATE, init), INPUT, OUTPUT)


@SETTINGS
@given(
    env_machines(),
    st.lists(st.tuples(st.sampled_from("ab"), st.integers(-3, 3)), min_size=1, max_size=6),
)
def test_owned_steps_of_env_programs_agree(machine: Machine, inputs: list[tuple[str, int]]) -> None:
    _run(machine, inputs, machine.init)


# -- what is updated in place -----------------------------------------------------------


@attrs.frozen
class Totals:
    counts: dict[str, int]
    total: int


@arrowloop.statemachine(init=Totals({}, 0))
def tally(word: str, s: Totals) -> tuple[Totals, int]:
    n = s.counts.get(word, 0) + 1
    return Totals({**s.counts, word: n}, s.total + 1), n


def test_a_per_key_count_updates_its_dict_in_place() -> None:
    step, log = tally.machine.owned_step()
    state = tally.machine.copy_state(tally.machine.init)
    counts = state.counts
    for w in ["a", "b", "a", "c"]:
        state, _ = step(w, state)
        assert state.counts is counts  # the same dict, not a copy per item
    assert state == Totals({"a": 2, "b": 1, "c": 1}, 4)
    assert log is not None
    assert len(log) == 4  # one undo entry per write; the stage clears it
    assert tally.machine.init == Totals({}, 0)  # the initial state is not touched


def test_the_plain_step_copies() -> None:
    s0 = Totals({"a": 1}, 1)
    s1, _ = tally.machine.step("a", s0)
    assert s0 == Totals({"a": 1}, 1)
    assert s1.counts is not s0.counts


@arrowloop.statemachine(init=Totals({}, 0))
def leaky(word: str, s: Totals) -> tuple[Totals, dict[str, int]]:
    counts = {**s.counts, word: s.total}
    return Totals(counts, s.total + 1), counts


def test_a_state_shared_with_an_output_is_copied() -> None:
    step, _ = leaky.machine.owned_step()
    state = leaky.machine.copy_state(leaky.machine.init)
    state, first = step("a", state)
    state, second = step("b", state)
    assert first == {"a": 0}  # sent before the second step: unchanged by it
    assert second == {"a": 0, "b": 1}


@arrowloop.statemachine(init=Totals({}, 0))
def picky(word: str, s: Totals) -> tuple[Totals, int]:
    counts = {**s.counts, word: 1}
    return Totals(counts, s.total + 1), 10 // len(word)


def test_a_failing_step_leaves_the_state_as_it_was() -> None:
    step, log = picky.machine.owned_step()
    state = picky.machine.copy_state(picky.machine.init)
    state, _ = step("a", state)
    assert log is not None
    log.clear()
    with pytest.raises(ZeroDivisionError):
        step("", state)  # writes counts[""] in place, then divides by zero
    assert state == Totals({"a": 1}, 1)
    assert not log


def test_the_source_shows_the_in_place_write_and_its_undo_entry() -> None:
    src = generated_source(tally.machine.typed, owned=True)
    assert "_u((" in src
    assert "] = " in src
    plain = generated_source(tally.machine.typed)
    assert "_u(" not in plain


@pytest.mark.anyio
async def test_a_stage_hands_out_copies_of_its_state() -> None:
    async with arrowloop.open_pipeline(arrowloop.stage("t", tally.machine)) as p:
        for w in ["a", "b"]:
            await p.call(w)
        seen = p.state("t")
        await p.call("a")
        assert seen == Totals({"a": 1, "b": 1}, 2)
        assert p.state("t") == Totals({"a": 2, "b": 1}, 3)


@attrs.frozen
class Batch:
    key: str
    items: list[int]


@arrowloop.statemachine(init={})
def grouper(msg: Batch, groups: dict[str, list[int]]) -> tuple[dict[str, list[int]], int]:
    return {**groups, msg.key: msg.items}, len(msg.items)


def test_a_value_put_in_the_state_is_copied_not_the_state() -> None:
    step, _ = grouper.machine.owned_step()
    state = grouper.machine.copy_state({})
    first = state
    items = [1, 2]
    state, _ = step(Batch("a", items), state)
    state, _ = step(Batch("b", [3]), state)
    assert state is first  # updated in place, never copied whole
    items.append(99)  # the caller's list is not the state's
    assert state == {"a": [1, 2], "b": [3]}


def test_an_accumulator_taken_from_the_list_is_copied_before_it_is_updated() -> None:
    """A fold whose accumulator becomes an item of the list it folds, then is
    appended to: the list, still used after the fold, keeps its items."""

    def push(xs: Arrow, x: Arrow) -> Arrow:
        return compose(fanout(xs, x), prim("append"))

    pairs = push(push(const([], LLI), const([1], LI)), const([1, 0, 0], LI))
    folded = compose(fanout(const([], LI), proj(0, 1)), fold(_take_or_push()))
    # state: the pairs; output: the fold's result and the first pair again
    after = fanout(proj(0, 1), fanout(folded, compose(fanout(proj(0, 1), const(0)), prim("item"))))
    step_body = compose(fanout(compose(proj(1, 2), pairs)), after)
    machine = Machine.build(Loop(step_body, LLI, []), INT, TupleT((LI, LI)))
    _run(machine, [0, 1], machine.init)
    step, _ = machine.owned_step()
    _, (acc, first) = step(0, [])
    assert (acc, first) == ([1, 7], [1])


@pytest.mark.anyio
async def test_a_cut_keeps_the_states_it_took() -> None:
    async with arrowloop.open_pipeline(arrowloop.stage("t", tally.machine)) as p:
        for w in ["a", "b"]:
            await p.call(w)
        [(_, _, state, applied)] = await p.cut()
        for w in ["a", "c"]:
            await p.call(w)
        assert (state, applied) == (Totals({"a": 1, "b": 1}, 2), 2)


def _mli_machine(body: Arrow) -> Machine:
    """A machine over a dict of lists, input a key, output a list."""
    return Machine.build(Loop(body, MLI, {"a": [1], "b": [2]}), STR, LI)


def test_a_taken_entry_still_held_elsewhere_is_copied_before_it_is_changed() -> None:
    # x = d[k]; (d, v) = take(d, k); v.append(7); d[k] = v; output x
    k, d = proj(0, 2), proj(1, 2)
    held = compose(fanout(d, k), prim("map_at"))  # x
    taken = compose(fanout(d, k), prim("map_take"))  # (d', v)
    # env: (k, x, (d', v))
    env = fanout(k, held, taken)
    v = compose(proj(2, 3), proj(1, 2))
    pushed = compose(fanout(v, const(7)), prim("append"))
    put = compose(fanout(compose(proj(2, 3), proj(0, 2)), proj(0, 3), pushed), prim("map_put"))
    body = compose(env, fanout(put, proj(1, 3)))
    machine = _mli_machine(body)
    _run(machine, ["a", "b", "a"], machine.init)
    step, _ = machine.owned_step()
    state, out = step("a", machine.copy_state(machine.init))
    assert (state, out) == ({"a": [1, 7], "b": [2]}, [1])


def test_a_failing_step_after_a_take_puts_the_entry_back() -> None:
    # (d, v) = take(d, k); v.append(7); d[k] = v; then fail on an index
    k, d = proj(0, 2), proj(1, 2)
    taken = compose(fanout(d, k), prim("map_take"))
    pushed = compose(fanout(compose(proj(1, 2), proj(1, 2)), const(7)), prim("append"))
    put = compose(fanout(compose(proj(1, 2), proj(0, 2)), proj(0, 2), pushed), prim("map_put"))
    boom = compose(fanout(const([], LI), const(3)), prim("item"))  # IndexError
    body = compose(fanout(k, taken), fanout(put, compose(fanout(boom, const([], LI)), proj(1, 2))))
    machine = _mli_machine(body)
    step, _ = machine.owned_step()
    state = machine.copy_state(machine.init)
    with pytest.raises(IndexError):
        step("a", state)
    assert state == {"a": [1], "b": [2]}
    with pytest.raises(KeyError):
        step("z", state)
    assert state == {"a": [1], "b": [2]}


def test_the_analysis_is_linear_in_a_program_that_shares_sub_programs() -> None:
    """A fanout of one node n levels deep has 2^n paths to it: the ownership
    analysis (infos of symbolic values, what each node needs) visits each
    node a bounded number of times, as code generation does."""
    import arrowloop.compiler._codegen as codegen
    import arrowloop.compiler._ownership as ownership
    from arrowloop.check import check_loop
    from arrowloop.compiler import compile_owned

    calls = {"info": 0, "needs": 0}
    info_of, needs = codegen._Gen.info_of, ownership._needs

    def counting_info(self: Any, sym: Any) -> Any:
        calls["info"] += 1
        return info_of(self, sym)

    def counting_needs(*args: Any) -> Any:
        calls["needs"] += 1
        return needs(*args)

    from tests.test_hostile_changes import LIST, doubling, summing

    levels = 200  # a value (x, x) nested 200 times: 2^200 paths to x
    tl = check_loop(summing(doubling(levels)), LIST, INT)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(codegen._Gen, "info_of", counting_info)
        mp.setattr(ownership, "_needs", counting_needs)
        compile_owned(tl)
    assert calls["info"] < 50 * levels
    assert calls["needs"] < 50 * levels
