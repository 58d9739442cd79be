"""Module-level dicts, lists and sets as constants, and plain helper functions
(frontend/_globals.py), against plain Python.

A constant read by a function is captured when it is decorated; a dict whose
keys are not in sorted order keeps Python's order after a wire round trip
(it travels as its pairs). Changing a module-level container, directly or
through a local that may hold it, is refused: Python would keep the change
in the module. A plain annotated function called from a step is compiled and
inlined; recursion and changing an argument in place are refused.
"""

from __future__ import annotations

import enum
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop import PyFunction, arrow, statemachine
from arrowloop.errors import FrontendError
from arrowloop.machine import Function
from tests.profiles import examples
from tests.test_frontend_corpus import agree, outcome


class Lamp(enum.Enum):
    """A light with a successor."""

    RED = "red"
    GREEN = "green"
    YELLOW = "yellow"


PRICES = {"cola": 150, "chips": 100, "candy": 65}  # not in sorted order
SORTED = {"a": 1, "b": 2}
TABLE: dict[tuple[str, str], str] = {("locked", "coin"): "unlocked"}
EMPTY: dict[str, int] = {}
ORDER = [3, 1, 2]
VOWELS = {"a", "e", "i"}
NEXT_LIGHT = {Lamp.RED: Lamp.GREEN, Lamp.GREEN: Lamp.YELLOW, Lamp.YELLOW: Lamp.RED}
GROUPS = {"x": [1, 2], "y": [3]}
PAIRS = (["a", "b"], {"c": 1})
KEYS = st.sampled_from(["cola", "chips", "candy", "a", "b", "gum", "e"])


def kind_of(ch: str) -> str:
    """A plain helper, not decorated."""
    if ch.isdigit():
        return "num"
    if ch in VOWELS:
        return "vowel"
    return "other"


def scaled(x: int, by: int) -> int:
    """A helper of two parameters."""
    return x * by


@arrow
def reads(k: str) -> tuple[int, list[str], list[int], int, bool, str, int]:
    return (
        PRICES.get(k, 0),
        [x + "" for x in PRICES],
        [v + 1 for v in PRICES.values()],
        len(EMPTY) + SORTED.get(k, -1),
        k in VOWELS,
        TABLE.get((k, "coin"), k),
        sum(ORDER),
    )


@arrow
def in_a_tuple(k: str) -> tuple[bool, int]:
    first, second = PAIRS
    return k in first, second.get(k, 0) + len(PAIRS[0])


@arrow
def helpers(k: str, n: int) -> tuple[str, int, list[int]]:
    copy = dict(PRICES)
    copy[k] = n
    return kind_of(k[:1]), scaled(n, by=3) + copy[k], GROUPS.get(k, [])


@statemachine(init=Lamp.RED)
def lights(tick: bool, light: Lamp) -> tuple[Lamp, Lamp]:
    if tick:
        light = NEXT_LIGHT[light]
    return light, light


@settings(max_examples=examples(60), deadline=None)
@given(k=KEYS, n=st.integers(-5, 5))
def test_constants_and_helpers_match_python(k: str, n: int) -> None:
    """Compiled, interpreted and received after a wire round trip, as Python."""
    for fn, args in ((reads, (k,)), (helpers, (k, n)), (in_a_tuple, (k,))):
        expected = outcome(fn, *args)
        x = args[0] if len(args) == 1 else args
        assert isinstance(fn, PyFunction)
        received = Function.from_wire(fn.function.to_wire())
        for run in (fn.function, fn.function.interpret, received):
            assert agree(outcome(run, x), expected), (fn, run)


def test_enum_keyed_constant() -> None:
    """A dict of enum members is a constant like any other."""
    state: Any = lights.init
    for tick in (True, False, True, True):
        state, out = lights.step(tick, state)
    assert (state, out) == (Lamp.RED, Lamp.RED)


def test_dict_order_is_pythons_after_a_round_trip() -> None:
    """A constant dict not in sorted order iterates in Python's order everywhere."""
    received = Function.from_wire(reads.function.to_wire())
    assert received("x")[1] == ["cola", "chips", "candy"]


def test_changing_a_constant_is_refused() -> None:
    """PRICES[k] = v would stay in the module in Python: refused, saying what to write."""
    with pytest.raises(FrontendError, match=r"module-level PRICES.*d = dict\(PRICES\)"):

        @arrow
        def put(k: str) -> int:
            PRICES[k] = 1
            return 0

    with pytest.raises(FrontendError, match=r"module-level ORDER.*list\(ORDER\)"):

        @arrow
        def push(k: int) -> int:
            ORDER.append(k)
            return 0


def test_changing_a_constant_through_a_local_is_refused() -> None:
    """d = PRICES; d[k] = v, and GROUPS' inner lists, are the module's objects in Python."""
    with pytest.raises(FrontendError, match=r"module-level PRICES \(d may hold it"):

        @arrow
        def alias(k: str) -> int:
            d = PRICES
            d[k] = 1
            return d[k]

    with pytest.raises(FrontendError, match=r"module-level GROUPS \(xs may hold it"):

        @arrow
        def inner(k: str) -> int:
            xs = dict(GROUPS)["x"]
            xs.append(1)
            return len(xs)


def fact(n: int) -> int:
    """Recursive: refused as a helper."""
    return 1 if n <= 1 else n * fact(n - 1)


def ping(n: int) -> int:
    """Mutually recursive with pong: refused as a helper."""
    return 0 if n <= 0 else pong(n - 1)


def pong(n: int) -> int:
    return ping(n)


def bump(xs: list[int]) -> int:
    """Changes its argument: refused as a helper."""
    xs.append(1)
    return len(xs)


def test_helper_recursion_and_argument_changes_are_refused() -> None:
    """A helper that calls itself (directly or not), or changes its argument in
    place, is refused."""
    with pytest.raises(FrontendError, match=r"recursion is not supported"):

        @arrow
        def f(n: int) -> int:
            return fact(n)

    with pytest.raises(FrontendError, match=r"not supported \(the function ping calls itself"):

        @arrow
        def g(n: int) -> int:
            return ping(n)

    with pytest.raises(FrontendError, match=r"the function bump changes xs in place"):

        @arrow
        def h(n: int) -> int:
            return bump([n])
