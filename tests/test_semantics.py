"""Semantics that do not depend on where code runs.

The same program must compute the same everywhere: compiled, interpreted,
simplified, after a wire round trip, from the compile cache, and on every
Python the project supports. These tests pin down the places where that
took a decision: the sum of floats, equality of values holding NaNs,
``Machine >> Machine``, and values the wire cannot carry.
"""

from __future__ import annotations

import builtins
import functools
import math
import operator
from collections.abc import Iterable
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arrowloop
from arrowloop import (
    CheckError,
    Function,
    Machine,
    Tagged,
    TypeDefinitionError,
    ValidationError,
    const,
    copy,
    fanout,
    fst,
    loop,
    prim,
    snd,
)
from arrowloop.arrows import Const, simplify
from arrowloop.check import check_arrow
from arrowloop.compiler import compile_arrow, interpret
from arrowloop.examples import counter as c
from arrowloop.typesys import (
    INT,
    STR,
    TupleT,
    Type,
    from_annotation,
    identity_blind,
    values_equal,
)
from tests.profiles import examples
from tests.strategies import types, values

SETTINGS = settings(
    max_examples=examples(150),
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- the sum of floats ---------------------------------------------------------------


def _compensated_sum(xs: Iterable[Any], start: Any = 0) -> Any:
    """Python 3.12's ``sum`` of floats (Neumaier's compensated summation)."""
    total, comp = float(start), 0.0
    for x in xs:
        t = total + x
        comp += (total - t) + x if abs(total) >= abs(x) else (x - t) + total
        total = t
    return total + comp


@pytest.fixture(params=["builtin", "3.12"])
def python_sum(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs the test with this Python's ``sum``, and again with 3.12's compensated one."""
    if request.param == "3.12":
        monkeypatch.setattr(builtins, "sum", _compensated_sum)
    return str(request.param)


def _left_fold(xs: list[float]) -> float:
    return functools.reduce(operator.add, xs, 0.0)


@pytest.mark.parametrize(
    ("xs", "expected"),
    [([0.1] * 10, 0.9999999999999999), ([1e16, 1.0, -1e16], 0.0), ([], 0.0), ([-0.0], 0.0)],
)
def test_sum_of_floats_is_a_left_fold_on_every_python(
    python_sum: str, xs: list[float], expected: float
) -> None:
    """prim("sum") over floats is a left fold from 0.0, whatever the builtin sum does."""
    f = Function.build(prim("sum"), list[float], float)
    received = Function.from_wire(f.to_wire())
    for result in (f(xs), f.interpret(xs), received(xs)):
        assert result.hex() == expected.hex()


def test_the_compensated_sum_differs() -> None:
    """The 3.12 stand-in really differs on the issue's examples (so the test above bites)."""
    assert _compensated_sum([0.1] * 10) == 1.0
    assert _compensated_sum([1e16, 1.0, -1e16]) == 1.0


@arrowloop.arrow
def _float_total(xs: list[float]) -> float:
    return sum(xs, 0.0)


@arrowloop.arrow
def _int_total(xs: list[int]) -> int:
    return sum(xs, 5) + sum(xs)


@settings(SETTINGS, max_examples=examples(60))
@given(st.lists(st.floats(allow_nan=False), max_size=8))
def test_front_end_sum_from_a_start_is_the_same_left_fold(xs: list[float]) -> None:
    """sum(xs, 0.0) in the subset compiles to the pinned left fold, like prim("sum")."""
    expected = _left_fold(xs)
    assert _float_total.compiled(xs).hex() == expected.hex()
    assert _float_total.function.interpret(xs).hex() == expected.hex()
    assert Function.build(prim("sum"), list[float], float)(xs).hex() == expected.hex()


def test_front_end_sum_of_ints_with_a_start() -> None:
    """sum(xs, start) of ints agrees with Python."""
    assert _int_total.compiled([1, 2, 3]) == _int_total([1, 2, 3]) == 17


# -- equality and NaN ----------------------------------------------------------------


def _fresh_nans(v: Any) -> Any:
    """``v`` with every NaN a new float object: Python's == on it is then IEEE."""
    t = type(v)
    if t is float:
        return float("nan") if math.isnan(v) else v
    if t is tuple or t is list:
        return t(_fresh_nans(x) for x in v)
    if t is dict:
        return {k: _fresh_nans(x) for k, x in v.items()}
    if t is Tagged:
        return Tagged(v.tag, _fresh_nans(v.value))
    if attrs.has(t):
        return t(*(_fresh_nans(getattr(v, f.name)) for f in attrs.fields(t)))
    return v


def _ieee_equal(a: Any, b: Any) -> bool:
    return bool(_fresh_nans(a) == _fresh_nans(b))


def _evaluators(prog: Any, src: Type) -> list[Any]:
    """The program compiled, interpreted, simplified and received over the wire."""
    f = Function.build(prog, src, bool)
    typed = check_arrow(prog, src, bool)
    simple = check_arrow(simplify(prog), src, bool)
    received = Function.from_wire(f.to_wire())
    return [
        f,
        f.interpret,
        functools.partial(interpret, typed),
        compile_arrow(simple),
        received,
        received.interpret,
    ]


@SETTINGS
@given(types(2).flatmap(lambda t: st.tuples(st.just(t), values(t), values(t))))
def test_equality_is_ieee_at_every_depth_in_every_evaluator(tv: tuple[Type, Any, Any]) -> None:
    """eq and ne on values holding NaNs give IEEE answers (a NaN equals nothing, at any
    depth), whether the two sides are one object or two, in every evaluator."""
    t, v, w = tv
    pair = TupleT((t, t))
    eq_fns = _evaluators(prim("eq"), pair)
    ne_fns = _evaluators(prim("ne"), pair)
    for a, b in ((v, v), (v, w), (v, _fresh_nans(v))):
        expected = _ieee_equal(a, b)
        assert values_equal(a, b) is expected
        assert all(fn((a, b)) is expected for fn in eq_fns)
        assert all(fn((a, b)) is (not expected) for fn in ne_fns)
    # The same comparison of two constants: one object twice, then two objects
    # (equal programs: the second is served from the compile cache).
    same = fanout(const(v, t), const(v, t)) >> prim("eq")
    two = fanout(const(v, t), const(_fresh_nans(v), t)) >> prim("eq")
    expected = _ieee_equal(v, v)
    for prog in (same, two):
        assert all(fn(0) is expected for fn in _evaluators(prog, INT))


def test_nan_in_a_tuple_is_unequal_to_itself() -> None:
    """The issue's example: (nan,) == (nan,) is False, even for one NaN object."""
    nan = float("nan")
    f = Function.build(fanout(const((nan,)), const((nan,))) >> prim("eq"), int, bool)
    assert f(0) is False
    assert f.interpret(0) is False
    assert Function.from_wire(f.to_wire())(0) is False


def test_plain_equality_is_inlined_where_identity_cannot_matter() -> None:
    """== is pasted into generated code unless a float sits inside a container."""
    assert identity_blind(INT)
    assert identity_blind(from_annotation(float))
    assert identity_blind(from_annotation(float | None))
    assert identity_blind(from_annotation(tuple[int, str]))
    assert not identity_blind(from_annotation(tuple[float, int]))
    assert not identity_blind(from_annotation(list[float]))


# -- Machine >> Machine ----------------------------------------------------------------

_passthrough = loop(fanout(snd, fst), init=None)


def test_composed_machine_refuses_outputs_outside_the_next_input() -> None:
    """A str machine into an int machine is refused, even when the second ignores its input."""
    strs = Machine.build(_passthrough, str, str)
    ints = Machine.build(loop(fanout(snd, const(1)), init=None), int, int)
    with pytest.raises(CheckError) as info:
        _ = strs >> ints
    assert info.value.path == "machine >> machine"
    assert info.value.expected == "int"
    assert info.value.found == "str"


def test_composed_machine_accepts_a_narrower_variant() -> None:
    """v1 messages into counter v3 (whose input has more cases) check and step as v3."""
    first = Machine.build(_passthrough, c.InputV1, c.InputV1)
    v3 = Machine.build(c.counter_v3, c.InputV3, c.Output)
    m = first >> v3
    assert (m.input, m.output) == (first.input, v3.output)
    state = m.init
    for msg in (c.IncrCount(), c.IncrCount(), c.ReadCount()):
        assert m.step(msg, state) == m.interpret(msg, state)
        state, out = m.step(msg, state)
    assert out == c.Count(2)
    assert Machine.from_wire(m.to_wire()).step(c.ReadCount(), state) == (state, c.Count(2))


def test_composed_machine_accepts_a_value_into_an_option() -> None:
    """An int machine into a machine of int | None: the values pass as they are."""
    ints = Machine.build(_passthrough, int, int)
    opt = Machine.build(loop(fanout(snd, fst >> prim("is_none")), init=None), int | None, bool)
    m = ints >> opt
    assert m.step(3, m.init) == ((None, None), False)
    pairs = Machine.build(_passthrough, tuple[int, list[int]], tuple[int, list[int]])
    wide = Machine.build(_passthrough, tuple[int | None, list[int | None]], None)
    assert (pairs >> wide).step((1, [2]), ((None, None)))[1] == (1, [2])


def test_composed_machines_of_equal_types_keep_their_version() -> None:
    """No widening when the types are equal: the loop is loop1 >> loop2, as before."""
    total = loop(prim("add") >> copy, init=0)
    a, b = Machine.build(total, int), Machine.build(total, int)
    assert (a >> b).version == Machine.build(total >> total, int).version


# -- values the wire cannot carry ------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "path"),
    [
        (lambda: const("\ud800"), "const"),
        (lambda: const(10**5000), "const"),
        (lambda: const(2**63), "const"),
        (lambda: const(-(2**63) - 1), "const"),
        (lambda: const((1, 2**70)), "const[1]"),
        (lambda: const({"\udfff": 1}, dict[str, int]), "const.<key>"),
        (lambda: const(["a", "b\ud800"], list[str]), "const[1]"),
        (lambda: loop(fanout(snd, fst), init=2**64), "init"),
        (lambda: loop(fanout(snd, fst), init=10**5000, state=int), "init"),
    ],
)
def test_unencodable_values_are_refused_when_made(make: Any, path: str) -> None:
    """Constants and initial states the wire cannot carry raise ValidationError at once."""
    with pytest.raises(ValidationError) as info:
        make()
    assert info.value.path == path
    assert "wire" in str(info.value) or "UTF-8" in str(info.value)


def test_the_wire_range_is_inclusive() -> None:
    """The ends of the 64-bit range are fine."""
    for n in (2**63 - 1, -(2**63)):
        f = Function.build(const(n), int, int)
        assert Function.from_wire(f.to_wire())(0) == n


@pytest.mark.parametrize("value", ["\ud800", 10**5000, 2**64], ids=["surrogate", "huge", "2**64"])
def test_a_const_built_directly_is_refused_by_the_checker(value: Any) -> None:
    """A Const node made without const() fails the checker cleanly, not in orjson or codegen."""
    t = STR if isinstance(value, str) else INT
    with pytest.raises(CheckError, match=r"wire|UTF-8") as info:
        Function.build(Const(t, value), int, t)
    assert info.value.path == "program"


# -- the known issues of docs/arrows.md that are now fixed -----------------------------


@pytest.mark.parametrize("name", ["min", "max"])
def test_mixed_min_and_max_return_floats(name: str) -> None:
    """min/max of an int and a float return a float, compiled and interpreted."""
    for src in (tuple[int, float], tuple[float, int]):
        f = Function.build(prim(name), src, float)
        for x in ((1, 2.0), (2, 1.0)) if src == tuple[int, float] else ((1.0, 2), (2.0, 1)):
            assert type(f(x)) is float
            assert type(f.interpret(x)) is float


@pytest.mark.parametrize(
    ("name", "input"),
    [("some", int | None), ("some", None), ("map_get", tuple[dict[str, int | None], str])],
)
def test_option_of_option_is_a_check_error_with_a_path(name: str, input: Any) -> None:
    """some/map_get on an option (or unit) item is a CheckError at the node, with a hint."""
    with pytest.raises(CheckError, match="not an option or unit") as info:
        check_arrow(prim(name), input)
    assert info.value.path == "program"


def test_empty_tuple_annotation() -> None:
    """tuple[()] is the empty tuple type, usable in a machine."""
    assert from_annotation(tuple[()]) == TupleT(())
    f = Function.build(const(()), int, tuple[()])
    assert Function.from_wire(f.to_wire())(1) == ()


@attrs.frozen
class _KwOnly:
    a: int
    b: int = attrs.field(kw_only=True)


def test_keyword_only_fields_are_refused_with_the_reason() -> None:
    """A record class with a keyword-only field is refused, naming the field."""
    with pytest.raises(TypeDefinitionError, match="positional __init__ parameter") as info:
        from_annotation(_KwOnly)
    assert info.value.path.endswith(".b")
