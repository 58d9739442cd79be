"""Conditions by Python's truthiness: numbers unless zero, strings and
containers unless empty, optionals when they hold a true value (and ``if x:``
narrows an optional), records always, ``None`` never; each against plain
Python."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop import FrontendError, arrow, statemachine
from tests.differential import run_differential
from tests.profiles import examples


@attrs.frozen
class Seen:
    n: int


@arrow
def truths(
    i: int, f: float, s: str, xs: list[int], d: dict[str, int], o: int | None
) -> tuple[bool, bool, bool, bool, bool, bool, bool]:
    return (
        bool(i),
        not f,
        bool(s),
        bool(xs) and not d,
        not d,
        (o + 1 if o else 0) > 0,
        (not xs) or (not s),
    )


@statemachine(init=None)
def first(x: int, s: Seen | None) -> tuple[Seen | None, int]:
    if s:
        return Seen(s.n + x), s.n
    if not x:
        return None, 0
    return Seen(x), -1


@settings(max_examples=examples(80))
@given(
    st.integers(-2, 2),
    st.floats(allow_nan=True, width=32) | st.just(0.0) | st.just(-0.0),
    st.sampled_from(["", "a"]),
    st.lists(st.integers(0, 1), max_size=2),
    st.dictionaries(st.sampled_from("ab"), st.integers(0, 1), max_size=2),
    st.none() | st.integers(-1, 1),
)
def test_truthiness_agrees_with_python(
    i: int, f: float, s: str, xs: list[int], d: dict[str, int], o: int | None
) -> None:
    assert truths.compiled(i, f, s, xs, d, o) == truths(i, f, s, xs, d, o)


@settings(max_examples=examples(40))
@given(st.lists(st.integers(-2, 2), max_size=6))
def test_if_x_narrows_an_optional(inputs: list[int]) -> None:
    run_differential(first, inputs)


@attrs.frozen
class Odd:
    n: int

    def __bool__(self) -> bool:
        return self.n % 2 == 1


def test_the_truth_of_a_record_with_its_own_bool_is_refused() -> None:
    with pytest.raises(FrontendError, match="the truth of a"):

        @arrow
        def check(o: Odd) -> int:
            return 1 if o else 0


def test_and_of_non_bools_as_a_value_is_refused() -> None:
    """Python's ``a and b`` is one of the operands: as a value it would not be a bool."""
    with pytest.raises(FrontendError, match="gives one of its operands"):

        @arrow
        def pick(a: int, b: int) -> bool:
            x = a and b
            return x  # type: ignore[return-value]


@arrow
def both(xs: list[int], s: str) -> int:
    if xs and s:
        return 1
    return 0


@given(st.lists(st.integers(), max_size=2), st.sampled_from(["", "a"]))
def test_and_of_non_bools_as_a_condition(xs: list[int], s: str) -> None:
    assert both.compiled(xs, s) == both(xs, s)
