"""``while`` loops (frontend/_whiles.py) and the ``While`` node against plain Python.

Each function is compiled at import; on random inputs the generated code, the
reference interpreter and the program after a wire round trip do what the
Python function does (break, continue, return, else, nested loops, lists and
dicts changed in place inside the loop). A loop still running after
``MAX_ITERATIONS`` iterations fails the step (IterationLimitError; Python
would go on): in a stage the item is rejected and the state kept.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop import Function, PyFunction, arrow, open_pipeline, stage, statemachine
from arrowloop.arrows import MAX_ITERATIONS, Const, Id, Prim, While, fanout, id_, while_
from arrowloop.check import infer
from arrowloop.errors import CheckError, IterationLimitError, StepError
from arrowloop.typesys import INT, STR
from arrowloop.wire import decode_arrow, encode_arrow
from tests.profiles import examples
from tests.test_frontend_corpus import agree, outcome

SMALL = st.integers(-3, 30)


@arrow
def triangle(n: int) -> tuple[int, int]:
    total = 0
    while n > 0:
        total += n
        n -= 1
    return total, n


@arrow
def collatz(n: int) -> int:
    steps = 0
    while n > 1 and steps < 200:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


@arrow
def exits(n: int, stop: int) -> tuple[int, str]:
    i = 0
    seen = ""
    while i < n:
        i += 1
        if i % 3 == 0:
            continue
        if i == stop:
            break
        if i > 20:
            return -1, seen
        seen += str(i)
    else:
        seen += "!"
    return i, seen


@arrow
def nested(xs: list[int], limit: int) -> tuple[list[int], dict[str, int]]:
    counts: dict[str, int] = {}
    for x in xs:
        while x > limit:
            x -= 5
            counts[str(x % 3)] = counts.get(str(x % 3), 0) + 1
    out: list[int] = []
    while xs and len(out) < 4:
        y = xs.pop()
        for d in range(y % 3):
            out.append(d)
    return out, counts


@arrow
def find(grid: list[list[int]], target: int) -> tuple[int, int]:
    i = 0
    while i < len(grid):
        for j, v in enumerate(grid[i]):
            if v == target:
                return i, j
        i += 1
    return -1, -1


@arrow
def nested_while(n: int) -> int:
    total = 0
    i = 0
    while i < n:
        j = 0
        while True:
            j += 1
            if j > i:
                break
            if (i + j) % 3 == 0:
                continue
            total += j
        i += 1
    return total


@arrow
def greedy_change(amount: int) -> list[int]:
    coins: list[int] = []
    for c in [25, 10, 5, 1]:
        while amount >= c:
            coins.append(c)
            amount -= c
    return coins


@arrow
def lines(buf: str) -> tuple[str, list[str]]:
    out: list[str] = []
    while "\n" in buf:
        line, _, buf = buf.partition("\n")
        out.append(line.rstrip("\r"))
    return buf, out


@arrow
def chain(start: str, nxt: dict[str, str]) -> tuple[int, str]:
    cur: str | None = start
    last = start
    n = 0
    while cur is not None and n < 50:
        last = cur
        cur = nxt.get(cur)
        n += 1
    return n, last


@statemachine(init={})
def trim(key: str, d: dict[str, int]) -> tuple[dict[str, int], int]:
    d[key] = d.get(key, 0) + 1
    while len(d) > 2:
        del d[next(iter(d))]
    return d, len(d)


@arrow
def forever(n: int) -> int:
    while True:
        n += 1
    return n  # unreachable, as in Python


CASES: list[tuple[PyFunction, Any]] = [
    (triangle, SMALL),
    (collatz, st.integers(-2, 10_000)),
    (exits, st.tuples(SMALL, SMALL)),
    (nested, st.tuples(st.lists(SMALL, max_size=5), st.integers(0, 10))),
    (greedy_change, st.integers(-5, 300)),
    (find, st.tuples(st.lists(st.lists(st.integers(0, 5), max_size=3), max_size=3), SMALL)),
    (nested_while, st.integers(-1, 12)),
    (lines, st.text(alphabet="ab\r\n", max_size=10)),
    (
        chain,
        st.tuples(
            st.sampled_from("abc"),
            st.dictionaries(st.sampled_from("abcd"), st.sampled_from("abcd"), max_size=4),
        ),
    ),
]


@pytest.mark.parametrize(("fn", "inputs"), CASES, ids=lambda c: getattr(c, "__name__", ""))
@settings(max_examples=examples(60), deadline=None)
@given(data=st.data())
def test_while_matches_python(fn: PyFunction, inputs: Any, data: st.DataObject) -> None:
    """Compiled, interpreted and received after a wire round trip, as Python."""
    x = data.draw(inputs, label="input")
    # The Python function may change its arguments (xs.pop()): each run gets a copy.
    args = copy.deepcopy(x) if len(fn.params) > 1 else (copy.deepcopy(x),)
    expected = outcome(fn, *args)
    received = Function.from_wire(fn.function.to_wire())
    for run in (fn.function, fn.function.interpret, received):
        assert agree(outcome(run, copy.deepcopy(x)), expected), run


@settings(max_examples=examples(40), deadline=None)
@given(keys=st.lists(st.sampled_from("abcd"), max_size=8))
def test_while_changing_the_state_in_place(keys: list[str]) -> None:
    """A while loop deleting from the state dict, step after step, as Python."""
    state: dict[str, int] = {}
    py_state: dict[str, int] = {}
    step, _log = trim.machine.owned_step()
    owned: Any = trim.machine.copy_state(trim.init)
    for k in keys:
        py_state, py_out = trim(k, py_state)
        state, out = trim.step(k, state)
        owned, owned_out = step(k, owned)
        assert (state, out) == (py_state, py_out) == (owned, owned_out)
        assert list(state) == list(py_state) == list(owned)


def test_a_loop_that_does_not_end_fails_the_step() -> None:
    """After MAX_ITERATIONS iterations the step raises IterationLimitError."""
    with pytest.raises(IterationLimitError, match="1,000,000 iterations"):
        forever.compiled(0)
    with pytest.raises(IterationLimitError):
        forever.function.interpret(0)
    # Exactly MAX_ITERATIONS iterations are allowed.
    assert triangle.compiled(MAX_ITERATIONS) == (MAX_ITERATIONS * (MAX_ITERATIONS + 1) // 2, 0)


@statemachine(init=0)
def spin(n: int, total: int) -> tuple[int, int]:
    total += n
    while n < 0:
        total += 1
    return total, total


@pytest.mark.anyio
async def test_a_loop_that_does_not_end_rejects_the_item_and_keeps_the_state() -> None:
    """In a stage: StepError naming the limit, the state from before the item kept."""
    async with open_pipeline(stage("spin", spin)) as p:
        assert await p.call(5) == 5
        with pytest.raises(StepError, match="IterationLimitError"):
            await p.call(-1)
        assert p.state("spin") == 5
        assert await p.call(2) == 7


def test_the_while_node_checks_and_travels() -> None:
    """While(cond, body): a -> a with cond: a -> bool and body: a -> a; its wire form."""
    add7 = fanout(id_, Const(INT, 7)) >> Prim("add")
    lt100 = fanout(id_, Const(INT, 100)) >> Prim("lt")
    w = while_(lt100, add7)
    assert encode_arrow(w) == {
        "kind": "while",
        "cond": encode_arrow(lt100),
        "body": encode_arrow(add7),
    }
    assert decode_arrow(encode_arrow(w)) == w
    f = Function.build(w, int, int)
    assert f(3) == f.interpret(3) == 101
    assert infer(w, INT).output == INT
    with pytest.raises(CheckError, match=r"while\.cond"):
        infer(While(Id(), Id()), INT)
    with pytest.raises(CheckError, match=r"while\.body"):
        infer(While(lt100, Const(STR, "x")), INT)
