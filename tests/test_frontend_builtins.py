"""Loops, builtins and comprehensions of the Python subset, against Python itself.

``for`` over ranges, dicts (``.items()``, ``.keys()``, ``.values()``),
``enumerate``, ``zip``, ``reversed`` and strings; ``break``, ``continue``,
``return`` and ``else`` in loops; ``min``/``max``/``sorted`` with ``key=``,
``sum``/``any``/``all`` of generator expressions, ``round``, ``divmod``,
``ord``/``chr``, ``int``/``float`` of strings, ``list``/``tuple``; list and
dict comprehensions with filters and nested ``for``s. Each function runs as
plain Python, compiled and interpreted (machines also as the owned step a
stage runs) on random values; results must be the same, dict order
included, and so must failures.
"""

from __future__ import annotations

import ast
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowloop import FrontendError, PyFunction, arrow, statemachine
from arrowloop.compiler import generated_source
from tests.differential import run_differential as _run
from tests.profiles import examples
from tests.test_frontend_corpus import agree, outcome, same, values

# -- loops ----------------------------------------------------------------------


@arrow
def ranges(n: int, a: int, step: int) -> tuple[int, list[int], list[int]]:
    total = 0
    for i in range(n % 30):
        total += i * i
    up = [i for i in range(a % 7, n % 9)]  # noqa: C416 - a comprehension over a range
    # A step of 0 raises ValueError, in Python and compiled.
    stepped = list(range(a % 11, n % 13 - 6, step % 5 - 2))
    return total, up, stepped


@arrow
def dict_loops(d: dict[str, int]) -> tuple[list[str], list[str], list[int], list[str], int]:
    ks: list[str] = []
    for k in d:
        ks.append(k)
    named = list(d.keys())
    vs = [v for v in d.values()]  # noqa: C416 - a comprehension over a view
    both: list[str] = []
    total = 0
    for k, v in d.items():
        both.append(k + "=" + str(v))
        total += v
    return ks, named, vs, both, total


@arrow
def pairs(xs: list[int], ys: list[str]) -> tuple[list[str], list[int], str]:
    out: list[str] = []
    for i, (x, y) in enumerate(zip(xs, ys, strict=False), len(xs) - 2):
        out.append(str(i) + y + str(x % 3))
    back: list[int] = []
    for x in reversed(xs):
        back.append(x)
    letters = ""
    for c in reversed("".join(ys)):
        letters += c.upper()
    return out, back, letters


@arrow
def zip_strict(xs: list[int], ys: list[str]) -> list[str]:
    """ValueError when the lengths differ, in both."""
    return [str(a) + b for a, b in zip(xs, ys, strict=True)]


@arrow
def early_exits(xs: list[int], limit: int) -> tuple[int, int, int]:
    before = 0
    for x in xs:
        if x > limit:
            break
        before += 1
    odd = 0
    for x in xs:
        if x % 2 == 0:
            continue
        odd += x
    found = -1
    for i, x in enumerate(xs):
        if x == limit:
            found = i
            break
    else:
        found = -2
    return before, odd, found


@arrow
def first_above(xs: list[int], limit: int) -> int | None:
    for x in xs:
        if x > limit:
            return x
    return None


@arrow
def nested_exits(rows: list[list[int]], target: int) -> tuple[int, int] | None:
    for i, row in enumerate(rows):
        for j, x in enumerate(row):
            if x < 0:
                break
            if x == target:
                return i, j
        else:
            continue
        if i > 3:
            return None
    return (-1, -1)


@arrow
def match_in_loop(xs: list[int]) -> str:
    out = ""
    for x in xs:
        match x % 4:
            case 0:
                continue
            case 1:
                out += "a"
            case 3:
                return out + "!"
            case _:
                out += "b"
        out += "."
    return out


@statemachine(init=[])
def remember(word: str, seen: list[str]) -> tuple[list[str], int]:
    """The index of a word seen before, or remember it."""
    for i, w in enumerate(seen):
        if w == word:
            return seen, i
    seen.append(word)
    return seen, -1


@statemachine(init={})
def word_counts(line: str, counts: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """Counts of the words seen, in place; the output: the words seen most, in order."""
    for w in line.split(" "):
        if w == "":
            continue
        if w in counts:
            counts[w] += 1
        else:
            counts[w] = 1
    most = 0
    for n in counts.values():
        most = max(most, n)
    return counts, [k for k, n in counts.items() if n == most]


@attrs.frozen
class Found:
    """Where a word was seen."""

    row: int
    col: int


@attrs.frozen
class New:
    """A word not seen before."""


@statemachine(init=[])
def finder(rows: list[list[str]], seen: list[str]) -> tuple[list[str], Found | New]:
    """A return from an inner loop, converted to the output variant."""
    for i, row in enumerate(rows):
        for j, w in enumerate(row):
            if any(v == w for v in seen):
                return seen, Found(i, j)
            seen.append(w)
    return seen, New()


@statemachine(init={})
def grouped(
    msg: tuple[str, int], g: dict[str, list[int]]
) -> tuple[dict[str, list[int]], list[str]]:
    """A nested change (an entry taken out and put back) keeps the key's place."""
    k, v = msg
    g.setdefault(k, []).append(v)
    if v == 0:
        del g[k]
    return g, [key + str(len(xs)) for key, xs in g.items()]


# -- builtins ---------------------------------------------------------------------


@arrow
def by_length(s: str) -> int:
    return len(s)


@arrow
def reductions(xs: list[int], words: list[str]) -> tuple[int, int, int, bool, bool, int, int]:
    return (
        min(xs),  # ValueError on an empty list, in both
        len(max(words, key=by_length)) if len(words) > 0 else 0,
        sum(x * x for x in xs if x > 0),
        any(x > 3 for x in xs),
        all(w != "" for w in words),
        min(xs, key=lambda x: (x % 3, -x)) if len(xs) > 0 else 0,
        max(len(xs), len(words), 2, sum(xs)),
    )


@arrow
def sorting(xs: list[int], words: list[str], desc: bool) -> tuple[list[int], list[str], list[str]]:
    return (
        sorted(xs, reverse=desc),
        sorted(words, key=lambda w: len(w), reverse=desc),
        sorted(w.upper() for w in words if w != ""),
    )


@arrow
def numbers(x: float, n: int, d: int) -> tuple[int, float, int, tuple[int, int], int, float]:
    # round(nan) and round(inf) raise, divmod(n, 0) raises: as in Python.
    return round(x), round(x, n % 4), round(n, -1), divmod(n, d), abs(n - d), min(x, -0.0, 0.0)


@arrow
def float_divmod(x: float, y: float) -> tuple[float, float]:
    return divmod(x, y)


@arrow
def characters(s: str) -> tuple[list[int], str]:
    codes = [ord(c) for c in s]
    return codes, "".join(chr(c + 1) for c in codes)


@arrow
def parse(s: str) -> tuple[int, float]:
    return int(s), float(s)


@arrow
def conversions(d: dict[str, int], t: tuple[int, str]) -> tuple[list[str], tuple[int, str], int]:
    return list(d), tuple(t), len(t) + len(list(range(3)))  # type: ignore[return-value]


# -- comprehensions ---------------------------------------------------------------


@arrow
def comprehensions(xs: list[int], d: dict[str, int]) -> tuple[list[int], dict[str, int], int]:
    x = 100  # a comprehension's names are its own
    grid = [a * b for a in xs if a > 0 for b in range(a % 4) if b != 1]
    inverted = {k + str(v): v * x for k, v in d.items() if v % 2 == 0}
    return grid, inverted, x


@arrow
def nested_comprehension(rows: list[list[int]]) -> list[list[int]]:
    return [[x + len(row) for x in row if x > 0] for row in rows if len(row) > 0]


@arrow
def keyed_comprehensions(xs: list[int]) -> tuple[dict[int, int], dict[tuple[int, bool], str]]:
    counts: dict[int, int] = {x % 5: 0 for x in xs}
    return counts, {(x, x > 0): str(x) for x in xs}


LOOP_FUNCTIONS: list[PyFunction] = [
    ranges,
    dict_loops,
    pairs,
    zip_strict,
    early_exits,
    first_above,
    nested_exits,
    match_in_loop,
    reductions,
    sorting,
    numbers,
    float_divmod,
    characters,
    conversions,
    comprehensions,
    nested_comprehension,
    keyed_comprehensions,
]


def ordered(a: Any, b: Any) -> bool:
    """``same``, and dicts in the same order, at every depth."""
    if isinstance(a, dict):
        return list(a) == list(b) and all(ordered(a[k], b[k]) for k in a)
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(ordered(x, y) for x, y in zip(a, b, strict=True))
    return same(a, b)


@pytest.mark.parametrize("fn", LOOP_FUNCTIONS, ids=lambda f: f.fn.__name__)
@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_matches_python(fn: PyFunction, data: st.DataObject) -> None:
    """On random inputs the compiled and interpreted function do what Python does."""
    x = data.draw(values(fn.input), label="input")
    args = x if len(fn.params) > 1 else (x,)
    expected = outcome(fn, *args)
    for got in (outcome(fn.function, x), outcome(fn.function.interpret, x)):
        assert agree(got, expected), (got, expected)
        if got[0] == "ok":
            assert ordered(got[1], expected[1]), (got, expected)


NUMBER_TEXT = st.one_of(
    st.sampled_from(["1", " 2 ", "-3", "x", "1.5", "nan", "1e3", "", "1_0", "٣"]),
    st.integers().map(str),
    st.floats().map(str),
)


@settings(max_examples=examples(80), deadline=None)
@given(NUMBER_TEXT)
def test_parsing_fails_the_step_as_python_raises(s: str) -> None:
    """int(s) and float(s) give Python's value or Python's ValueError."""
    expected = outcome(parse, s)
    assert agree(outcome(parse.function, s), expected)
    assert agree(outcome(parse.function.interpret, s), expected)


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c", "d"]), max_size=12))
def test_a_loop_with_return_in_a_machine(words: list[str]) -> None:
    """A machine returning from inside a loop steps as Python, owned step included."""
    _run(remember, words)


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.lists(st.lists(st.sampled_from("abcdef"), max_size=3), max_size=3), max_size=6))
def test_a_return_from_an_inner_loop(steps: list[list[list[str]]]) -> None:
    """A return inside nested loops of a machine steps as Python, owned step included."""
    _run(finder, steps)


LINES = st.lists(st.sampled_from(["a", "b", "c", ""]), max_size=5).map(" ".join)


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(LINES, max_size=8))
def test_counting_in_a_loop(lines: list[str]) -> None:
    """``counts[w] += 1`` in a loop, then iterating the dict: as Python, in its order."""
    _run(word_counts, lines)


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 3)), max_size=10))
def test_dict_order_after_nested_changes(steps: list[tuple[str, int]]) -> None:
    """``d.setdefault(k, []).append(v)`` leaves k where Python leaves it."""
    _run(grouped, steps)


def test_counts_changed_in_a_loop_stay_in_place() -> None:
    """The loop's changes of the state dict are made in place, not on a copy."""
    step, log = word_counts.machine.owned_step()
    state = word_counts.machine.copy_state(word_counts.init)
    counts = state
    for line in ("a b", "b c a", "c c"):
        state, out = step(line, state)
        assert state is counts
    assert list(state.items()) == [("a", 2), ("b", 2), ("c", 3)]
    assert out == ["c"]
    source = generated_source(word_counts.machine.typed, owned=True)
    assert "] = " in source  # an entry is set in place
    assert log


# -- what is still refused, and how it is said -------------------------------------


def test_a_lambda_other_than_a_key_is_refused() -> None:
    """Only a lambda passed as key= is translated."""
    with pytest.raises(FrontendError, match="lambda expressions are not supported"):

        @arrow
        def bad(xs: list[int]) -> list[int]:
            f = lambda x: x  # noqa: E731
            return sorted(xs, key=f)


def test_lazy_iterators_are_only_iterated() -> None:
    """zip(...) as a value is refused with the list(...) to write."""
    with pytest.raises(FrontendError, match=r"write list\(zip\(xs, xs, strict=True\)\)"):

        @arrow
        def bad(xs: list[int]) -> int:
            z = zip(xs, xs, strict=True)
            return len(list(z))


def test_a_loop_without_exits_is_translated_as_before() -> None:
    """Loops without break/continue/return/else keep their program (and version)."""
    tree = ast.parse("for x in xs:\n    t += x\n")
    from arrowloop.frontend._loops import rewrite_exits

    body = list(tree.body)
    assert rewrite_exits(body, None) == body


def test_a_wrong_value_returned_in_a_loop_is_reported_as_at_any_return() -> None:
    """The flag encoding does not show: the message names the return type, not $ret's."""
    with pytest.raises(FrontendError, match="expected a value of type int, found str") as err:

        @arrow
        def bad(xs: list[int]) -> int:
            for x in xs:
                if x > 0:
                    return "positive"  # type: ignore[return-value]
            return 0

    assert "$" not in str(err.value)


def test_a_dict_comprehension_with_float_keys_is_refused_at_the_key() -> None:
    with pytest.raises(FrontendError, match="float cannot be a set item or dict key"):

        @arrow
        def by_float(xs: list[float]) -> int:
            return len({x: 0 for x in xs})  # noqa: C420 - the comprehension is the test
