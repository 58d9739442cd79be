"""The Python subset changes lists and dicts in place: ``d[k] = v``, ``d[k] += 1``,
``del d[k]``, ``xs.append(x)``, ``xs.pop()``, ``d.setdefault(k, []).append(v)``,
``state.counts[k] = v``, ...

Each machine below is run step by step three ways on random messages: the
plain Python function (which really changes its state in place), the
compiled plain step, and the owned step a stage runs (which changes the
state in place too, and undoes a failing step); the states and outputs
must agree at every step, failures included. Aliasing that would make
Python and arrowloop disagree is refused with a message naming both names.
"""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop import FrontendError, statemachine
from arrowloop.typesys import OptionT
from benchmarks import stateful_machines as sm
from tests.differential import run_differential as _run
from tests.profiles import examples


@attrs.frozen
class Tally:
    counts: dict[str, int]
    recent: list[str]
    total: int


@statemachine(init=Tally({}, [], 0))
def tally(word: str, s: Tally) -> tuple[Tally, int]:
    s.counts[word] = s.counts.get(word, 0) + 1
    s.recent.append(word)
    if len(s.recent) > 3:
        s.recent.pop()
    return Tally(s.counts, s.recent, s.total + 1), s.counts[word]


@statemachine(init={})
def groups(msg: tuple[str, int], g: dict[str, list[int]]) -> tuple[dict[str, list[int]], int]:
    k, v = msg
    g.setdefault(k, []).append(v)
    return g, len(g[k])


@statemachine(init={})
def kv(msg: tuple[str, str, int], d: dict[str, int]) -> tuple[dict[str, int], int]:
    op, k, v = msg
    if op == "put":
        d[k] = v
        return d, v
    if op == "add":
        d[k] += v  # KeyError when absent, in Python and compiled
        return d, d[k]
    if op == "del":
        del d[k]  # KeyError when absent
        return d, 0
    if op == "pop":
        old = d.pop(k, -1)
        return d, old
    d.clear()
    return d, len(d)


@statemachine(init=[])
def stack(msg: tuple[str, int], xs: list[int]) -> tuple[list[int], int]:
    op, v = msg
    if op == "push":
        xs.append(v)
        return xs, len(xs)
    if op == "pop":
        top = xs.pop()  # IndexError on an empty stack
        return xs, top
    if op == "set":
        xs[v] = 0  # IndexError out of range
        return xs, v
    xs += [v, v]
    return xs, len(xs)


@statemachine(init={})
def nested(
    msg: tuple[str, str, int], d: dict[str, dict[str, int]]
) -> tuple[dict[str, dict[str, int]], int]:
    a, b, v = msg
    d.setdefault(a, {})[b] = v
    d[a][b] += 1
    return d, d[a][b]


@statemachine(init=([], 0))
def loop_sum(msg: list[int], s: tuple[list[int], int]) -> tuple[tuple[list[int], int], int]:
    seen, n = s
    for x in msg:
        seen.append(x)
        n += x
    return (seen, n), len(seen)


WORDS = st.sampled_from(["a", "b", "c"])


@settings(max_examples=examples(60))
@given(st.lists(WORDS, max_size=10))
def test_tally(inputs: list[str]) -> None:
    _run(tally, inputs)


@settings(max_examples=examples(60))
@given(st.lists(st.tuples(WORDS, st.integers(-3, 3)), max_size=10))
def test_groups(inputs: list[tuple[str, int]]) -> None:
    _run(groups, inputs)


@settings(max_examples=examples(100))
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["put", "add", "del", "pop", "clear"]), WORDS, st.integers(-3, 3)
        ),
        max_size=12,
    )
)
def test_kv(inputs: list[tuple[str, str, int]]) -> None:
    _run(kv, inputs)


@settings(max_examples=examples(100))
@given(
    st.lists(
        st.tuples(st.sampled_from(["push", "pop", "set", "extend"]), st.integers(-3, 3)),
        max_size=12,
    )
)
def test_stack(inputs: list[tuple[str, int]]) -> None:
    _run(stack, inputs)


@settings(max_examples=examples(60))
@given(st.lists(st.tuples(WORDS, WORDS, st.integers(-3, 3)), max_size=10))
def test_nested(inputs: list[tuple[str, str, int]]) -> None:
    _run(nested, inputs)


@settings(max_examples=examples(40))
@given(st.lists(st.lists(st.integers(-3, 3), max_size=4), max_size=6))
def test_loop(inputs: list[list[int]]) -> None:
    _run(loop_sum, inputs)


def test_a_dict_of_counts_is_changed_in_place_by_a_stage() -> None:
    step, log = tally.machine.owned_step()
    s = tally.machine.copy_state(tally.init)
    counts = s.counts
    for w in "abcab":
        s, _ = step(w, s)
    assert s.counts is counts
    assert log  # undo entries, which a stage clears per batch


# -- aliasing that would make Python and arrowloop disagree -----------------------------


def test_changing_a_dict_through_a_second_name_is_refused() -> None:
    with pytest.raises(FrontendError) as err:

        @statemachine(init={})
        def bad(word: str, d: dict[str, int]) -> tuple[dict[str, int], int]:
            e = d
            e[word] = 1
            return d, len(e)

    text = str(err.value)
    assert "e and d may be the same list or dict" in text
    assert "e = d" in text


def test_a_list_kept_in_a_record_then_changed_is_refused() -> None:
    with pytest.raises(FrontendError, match="xs and t may be the same"):

        @statemachine(init=Tally({}, [], 0))
        def bad(word: str, t: Tally) -> tuple[Tally, int]:
            xs = [word]
            t = Tally(t.counts, xs, t.total)
            xs.append(word)
            return t, len(xs)


def test_sharing_set_up_later_in_a_loop_is_refused() -> None:
    with pytest.raises(FrontendError, match="may be the same"):

        @statemachine(init=[])
        def bad(msg: list[int], acc: list[int]) -> tuple[list[int], int]:
            other: list[int] = []
            for x in msg:
                acc.append(x)
                other = acc
            return acc, len(other)


def test_a_name_of_a_scalar_does_not_count_as_sharing() -> None:
    @statemachine(init=[])
    def fine(x: int, xs: list[int]) -> tuple[list[int], int]:
        n = len(xs)
        xs.append(x)
        return xs, n

    assert fine.step(5, [1])[0] == [1, 5]
    assert fine.step(5, [1])[1] == 1


@statemachine(init=[])
def copies(x: int, xs: list[int]) -> tuple[list[int], list[int]]:
    before = list(xs)
    xs.append(x)
    snapshot = xs.copy()
    snapshot.append(-1)
    return xs, before + snapshot


@settings(max_examples=examples(40))
@given(st.lists(st.integers(-3, 3), max_size=6))
def test_copies_may_be_changed_apart(inputs: list[int]) -> None:
    _run(copies, inputs)


@settings(max_examples=examples(60))
@given(st.lists(st.tuples(WORDS, st.integers(0, 40)), max_size=12))
def test_the_benchmarked_machines_agree_with_python(steps: list[tuple[str, int]]) -> None:
    """The stateful machines benchmarks/step_cost.py measures compute what
    their plain Python functions compute (few keys, time going forward)."""
    ts = 0
    readings, events, requests = [], [], []
    for key, dt in steps:
        ts += dt
        readings.append(sm.Reading(key, dt))
        events.append(sm.Event(key, ts))
        requests.append(sm.Request(key, ts))
    _run(sm.aggregate, readings)
    _run(sm.sessionize, events)
    _run(sm.token_bucket, requests)


def test_a_name_bound_by_setdefault_is_the_entry_of_its_dict() -> None:
    """``users = table.setdefault(k, [])`` is ``table[k]`` itself in Python:
    appending to it changes the table, and so it does compiled (the name is
    read as the entry, tests/test_frontend_mutation_more.py); when the entry
    may stop being that list first, the change is refused."""

    @statemachine(init={})
    def good(
        click: tuple[str, str], table: dict[str, list[str]]
    ) -> tuple[dict[str, list[str]], int]:
        ad, user = click
        users = table.setdefault(ad, [])
        users.append(user)
        return table, len(users)

    _run(good, [("a", "x"), ("b", "y"), ("a", "z")])
    with pytest.raises(FrontendError, match="users and table may be the same"):

        @statemachine(init={})
        def bad(
            click: tuple[str, str], table: dict[str, list[str]]
        ) -> tuple[dict[str, list[str]], int]:
            ad, user = click
            users = table.setdefault(ad, [])
            table.clear()
            users.append(user)
            return table, len(users)


def test_sharing_is_checked_inside_branches_against_what_is_read_after_them() -> None:
    """A change inside an if is checked against the names read after the if,
    not only the ones the if carries out."""
    with pytest.raises(FrontendError, match="e and d may be the same"):

        @statemachine(init={})
        def bad(k: str, d: dict[str, int]) -> tuple[dict[str, int], int]:
            e = d
            if k != "":
                e[k] = 1
            return d, 0


@attrs.frozen
class Mean:
    n: int
    total: int


@statemachine(init=None)
def running_mean(x: int, s: Mean | None) -> tuple[Mean, float]:
    """bytewax's stateful_map: the state is None before the first item."""
    if s is None:
        s = Mean(0, 0)
    s = Mean(s.n + 1, s.total + x)
    return s, s.total / s.n


@settings(max_examples=examples(40))
@given(st.lists(st.integers(-3, 3), max_size=6))
def test_an_optional_state_returned_as_its_item(inputs: list[int]) -> None:
    assert running_mean.machine.state == OptionT(running_mean.machine.state.item)  # type: ignore[attr-defined]
    _run(running_mean, inputs)
