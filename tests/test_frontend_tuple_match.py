"""``match msg, state:`` without a catch-all case: taken as exhaustive when
the cases (those without guards) cover every combination of the items'
tags, bools and none/some, and refused as before when one is missing.
(mypy does not see such matches as exhaustive, hence its ignores here.)"""

from __future__ import annotations

import enum

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop import FrontendError, statemachine
from tests.differential import run_differential
from tests.profiles import examples


@attrs.frozen
class Insert:
    cents: int


@attrs.frozen
class Shove:
    pass


class Gate(enum.Enum):
    SHUT = "shut"
    AJAR = "ajar"


@statemachine(init=Gate.SHUT)
def gate(msg: Insert | Shove, g: Gate) -> tuple[Gate, str]:  # type: ignore[return]
    match msg, g:
        case Insert(cents=c), Gate.SHUT if c >= 25:
            return Gate.AJAR, "open"
        case Insert(), Gate.SHUT:
            return g, "more"
        case Insert(), Gate.AJAR:
            return g, "thanks"
        case Shove(), Gate.AJAR:
            return Gate.SHUT, "shut"
        case Shove(), _:
            return g, "locked"


@statemachine(init=None)
def toggles(msg: bool, last: int | None) -> tuple[int | None, str]:  # type: ignore[return]
    match msg, last:
        case True, None:
            return 1, "first on"
        case False, None:
            return 0, "first off"
        case True, int(n):
            return n + 1, "on"
        case False, int(n):
            return n - 1, "off"


@settings(max_examples=examples(60))
@given(st.lists(st.one_of(st.builds(Insert, st.integers(0, 50)), st.just(Shove())), max_size=8))
def test_an_exhaustive_match_on_tags_and_enum_members_agrees_with_python(
    inputs: list[Insert | Shove],
) -> None:
    run_differential(gate, inputs)


@settings(max_examples=examples(40))
@given(st.lists(st.booleans(), max_size=8))
def test_an_exhaustive_match_on_bools_and_an_optional_agrees_with_python(
    inputs: list[bool],
) -> None:
    run_differential(toggles, inputs)


def test_a_missing_combination_is_refused() -> None:
    with pytest.raises(FrontendError, match="some values match no case of this match"):

        @statemachine(init=Gate.SHUT)
        def partial(msg: Insert | Shove, g: Gate) -> tuple[Gate, str]:  # type: ignore[return]
            match msg, g:
                case Insert(), Gate.SHUT:
                    return Gate.AJAR, "open"
                case Shove(), _:
                    return g, "locked"


def test_a_case_with_a_guard_or_a_test_on_a_field_does_not_count_as_covering() -> None:
    with pytest.raises(FrontendError, match="some values match no case of this match"):

        @statemachine(init=Gate.SHUT)
        def guarded(msg: Insert | Shove, g: Gate) -> tuple[Gate, str]:  # type: ignore[return]
            match msg, g:
                case Insert(), _ if g == Gate.SHUT:
                    return Gate.AJAR, "open"
                case Insert(cents=0), _:
                    return g, "nothing"
                case Shove(), _:
                    return g, "locked"
