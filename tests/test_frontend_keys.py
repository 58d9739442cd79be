"""The Python subset's sets and dicts with keys other than ``str``: ``set[int]``,
``{a, b}``, ``set()``, ``x in s``, ``s.add(x)``, ``s.discard(x)``,
``s.remove(x)``, ``| & -``, and ``dict[int, V]`` / ``dict[tuple[str, int], V]``
/ enum keys with ``d[k]``, ``d[k] = v``, ``del d[k]``, ``k in d``.

Each machine runs three ways (the plain Python function, the compiled plain
step and the owned step a stage runs) and they must agree at every step,
failures included (see tests/test_frontend_mutation.py); a stage changes a
set or an int-keyed dict in place, and a failing step leaves it as it was.
"""

from __future__ import annotations

import enum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop import FrontendError, statemachine
from tests.differential import run_differential as _run
from tests.profiles import examples
from tests.test_frontend_corpus import outcome, same


class Hue(enum.Enum):
    RED = 1
    GREEN = 2
    BLUE = 3


@statemachine(init=set())
def dedup(msg: int, seen: set[int]) -> tuple[set[int], bool]:
    if msg in seen:
        return seen, False
    seen.add(msg)
    return seen, True


@statemachine(init=set())
def set_ops(msg: tuple[str, int], s: set[int]) -> tuple[set[int], int]:
    op, x = msg
    if op == "add":
        s.add(x)
    elif op == "discard":
        s.discard(x)
    elif op == "remove":
        s.remove(x)  # KeyError when absent, in Python and compiled
    elif op == "union":
        s = s | {x, x + 1}
    elif op == "inter":
        s = s & {x, 0, 1}
    elif op == "diff":
        s = s - {x}
    elif op == "clear":
        s.clear()
    elif op == "copy":
        t = set(s)
        t.add(x)
        return s, len(t)
    return s, len(s)


@statemachine(init={})
def by_int(msg: tuple[str, int, int], d: dict[int, int]) -> tuple[dict[int, int], int]:
    op, k, v = msg
    if op == "put":
        d[k] = v
        return d, v
    if op == "add":
        d[k] += v  # KeyError when absent
        return d, d[k]
    if op == "del":
        del d[k]  # KeyError when absent
        return d, 0
    if op == "has":
        return d, 1 if k in d else 0
    if op == "get":
        return d, d.get(k, -1)
    d = {k: v, k + 1: v}
    return d, len(d)


@statemachine(init={})
def by_pair(
    msg: tuple[str, int], d: dict[tuple[str, int], list[int]]
) -> tuple[dict[tuple[str, int], list[int]], int]:
    name, n = msg
    d.setdefault((name, n % 2), []).append(n)
    return d, len(d[(name, n % 2)])


@statemachine(init={})
def by_color(msg: tuple[Hue, bool], d: dict[Hue, int]) -> tuple[dict[Hue, int], int]:
    c, reset = msg
    if reset and c in d:
        del d[c]
        return d, 0
    d[c] = d.get(c, 0) + 1
    return d, d[c]


INTS = st.integers(-3, 3)
SET_OPS = ["add", "discard", "remove", "union", "inter", "diff", "clear", "copy"]


@settings(max_examples=examples(60))
@given(st.lists(INTS, max_size=12))
def test_dedup(inputs: list[int]) -> None:
    """A set of seen items agrees with Python."""
    _run(dedup, inputs)


@settings(max_examples=examples(100))
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["add", "discard", "remove", "union", "inter", "diff", "clear", "copy"]
            ),
            INTS,
        ),
        max_size=12,
    )
)
def test_set_ops(inputs: list[tuple[str, int]]) -> None:
    """Set methods, operators and set() agree with Python, failures included."""
    _run(set_ops, inputs)


@settings(max_examples=examples(100))
@given(
    st.lists(
        st.tuples(st.sampled_from(["put", "add", "del", "has", "get", "new"]), INTS, INTS),
        max_size=12,
    )
)
def test_int_keys(inputs: list[tuple[str, int, int]]) -> None:
    """A dict with int keys agrees with Python, failures included."""
    _run(by_int, inputs)


@settings(max_examples=examples(60))
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), INTS), max_size=10))
def test_tuple_keys(inputs: list[tuple[str, int]]) -> None:
    """A dict with tuple keys agrees with Python."""
    _run(by_pair, inputs)


@settings(max_examples=examples(60))
@given(st.lists(st.tuples(st.sampled_from(list(Hue)), st.booleans()), max_size=10))
def test_enum_keys(inputs: list[tuple[Hue, bool]]) -> None:
    """A dict with enum keys agrees with Python."""
    _run(by_color, inputs)


def test_a_set_is_changed_in_place_and_restored_when_a_step_fails() -> None:
    """A stage adds to its set in place, and undoes a failing step's changes."""
    step, log = set_ops.machine.owned_step()
    assert log is not None
    s = set_ops.machine.copy_state(set_ops.init)
    first = s
    for x in (1, 2, 3):
        s, _ = step(("add", x), s)
    assert s is first
    assert s == {1, 2, 3}
    mark = len(log)
    with pytest.raises(KeyError):
        step(("remove", 7), s)
    s, _ = step(("discard", 2), s)
    assert s is first
    assert s == {1, 3}
    from arrowloop.compiler import undo

    undo(log, mark)  # what a stage does with the entries of a failing item
    assert s is first
    assert s == {1, 2, 3}


def test_an_int_keyed_dict_is_changed_in_place_and_restored_when_a_step_fails() -> None:
    """A stage puts into its int-keyed dict in place; a failing step leaves it as it was."""
    step, log = by_int.machine.owned_step()
    assert log is not None
    d = by_int.machine.copy_state(by_int.init)
    first = d
    for k in (1, 2, 3):
        d, _ = step(("put", k, k * 10), d)
    assert d is first
    mark = len(log)
    d, _ = step(("put", 1, 0), d)
    d, _ = step(("del", 2, 0), d)
    assert d == {1: 0, 3: 30}
    from arrowloop.compiler import undo

    undo(log, mark)
    assert d is first
    assert d == {1: 10, 2: 20, 3: 30}


def test_a_float_set_is_refused_with_a_hint() -> None:
    """Set items must be hashable by value: floats are refused, saying what is allowed."""
    with pytest.raises(FrontendError, match="hashable"):

        @statemachine(init=set())
        def floats(msg: float, s: set[float]) -> tuple[set[float], int]:
            s.add(msg)
            return s, len(s)


@settings(max_examples=examples(60))
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                ["add", "discard", "remove", "union", "inter", "diff", "clear", "copy"]
            ),
            INTS,
        ),
        max_size=10,
    ),
    st.lists(st.tuples(st.sampled_from(["put", "del", "has", "get", "new"]), INTS, INTS)),
)
def test_the_interpreter_agrees_with_the_compiled_step(
    set_steps: list[tuple[str, int]], dict_steps: list[tuple[str, int, int]]
) -> None:
    """The reference interpreter computes what the compiled step does on sets and int keys."""
    for m, steps in ((set_ops, set_steps), (by_int, dict_steps)):
        s_compiled = m.machine.copy_state(m.init)
        s_interp = m.machine.copy_state(m.init)
        for x in steps:
            a = outcome(m.machine.step, x, s_compiled)
            b = outcome(m.machine.interpret, x, s_interp)
            assert a[0] == b[0], (x, a, b)
            if a[0] == "raised":
                continue
            assert same(a[1], b[1]), (x, a, b)
            s_compiled, s_interp = a[1][0], b[1][0]


def test_an_augmented_set_operator_is_refused_with_a_hint() -> None:
    """s |= t changes s in place in Python (other names see it): refused, saying what to write."""
    with pytest.raises(FrontendError, match=r"write s = s \|"):

        @statemachine(init=set())
        def grow(msg: int, s: set[int]) -> tuple[set[int], int]:
            s |= {msg}
            return s, len(s)
