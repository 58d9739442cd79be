"""Types, optionals and narrowing: a name's type joined where branches meet
(``None`` and ``str`` make ``str | None``; ``if x is None: x = 0`` leaves an
``int``), ``x += e`` keeping a narrowed optional narrowed, ``is`` between
enum members, ``.value`` of an enum, an int literal where a float is
expected, ``sum(xs)`` of floats in float arithmetic, empty containers typed
by their context, unpacking a list; each against plain Python."""

from __future__ import annotations

import enum

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop import FrontendError, arrow, statemachine
from arrowloop.check import is_subtype
from arrowloop.machine import Machine
from arrowloop.typesys import (
    INT,
    STR,
    OptionT,
    VariantT,
    from_json,
    json_reader,
    json_writer,
    to_json,
    validate,
)
from tests.differential import run_differential
from tests.profiles import examples


class Level(enum.Enum):
    INFO = "info"
    ERROR = "error"


class Rank(enum.Enum):
    LOW = 1
    HIGH = 2


class Mixed(enum.Enum):
    A = 1
    B = "b"


@attrs.frozen
class Box:
    total: float
    n: int


@statemachine(init=None)
def first_item(x: int, s: int | None) -> tuple[int, tuple[int, str]]:
    current = s
    if current is None:
        current = 0
    current += x
    return current, (current, str(current))


@statemachine(init=0)
def maybe_label(x: int, n: int) -> tuple[int, str | None]:
    out = None
    if x > 0:
        out = f"up {x}"
    elif x < -1:
        out = None
    return n + 1, out


@statemachine(init={})
def per_key_box(msg: tuple[str, int], boxes: dict[str, Box]) -> tuple[dict[str, Box], float]:
    key, v = msg
    b = boxes.get(key)
    if b is None:
        b = Box(0.0, 0)
    boxes[key] = Box(b.total + v, b.n + 1)
    return boxes, boxes[key].total / boxes[key].n


@statemachine(init={})
def burst(level: Level, s: dict[str, int]) -> tuple[dict[str, int], tuple[str, bool]]:
    if level is not Level.ERROR:
        s.pop("k", None)
        return s, (level.value, level is Level.INFO)
    s["k"] = s.get("k", 0) + 1
    return s, (level.name, s["k"] > 1)


@arrow
def rank_value(r: Rank, o: Rank | None) -> tuple[int, bool, bool]:
    return r.value, o is Rank.HIGH, r is not o


@statemachine(init={})
def amounts(msg: tuple[str, float], totals: dict[str, float]) -> tuple[dict[str, float], float]:
    key, x = msg
    totals[key] = totals.get(key, 0) + x
    return totals, totals[key]


@statemachine(init=[])
def mean_of_last(x: float, last: list[float]) -> tuple[list[float], float]:
    last.append(x)
    if len(last) > 3:
        last = last[1:]
    return last, sum(last) / len(last) + sum(last) * 0.5 - sum(last)


@statemachine(init=None)
def seen_once(x: str, seen: set[str] | None) -> tuple[set[str], bool]:
    if seen is None:
        seen = set()
    new = x not in seen
    seen.add(x)
    return seen, new


@statemachine(init={})
def distinct(msg: tuple[str, int], seen: dict[str, set[int]]) -> tuple[dict[str, set[int]], int]:
    key, v = msg
    if key not in seen:
        seen[key] = set()
    seen[key].add(v)
    return seen, len(seen[key])


@arrow
def unpack(xs: list[int]) -> int:
    a, b = xs
    return a - b


@settings(max_examples=examples(40))
@given(st.lists(st.integers(-3, 3), max_size=6))
def test_narrowed_branches_join_to_the_item_type(inputs: list[int]) -> None:
    run_differential(first_item, inputs)


@settings(max_examples=examples(40))
@given(st.lists(st.integers(-3, 3), max_size=6))
def test_none_and_str_join_to_an_optional(inputs: list[int]) -> None:
    assert maybe_label.machine.output == maybe_label.output
    run_differential(maybe_label, inputs)


@settings(max_examples=examples(40))
@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(-5, 5)), max_size=6))
def test_a_record_and_its_option_join(inputs: list[tuple[str, int]]) -> None:
    run_differential(per_key_box, inputs)


@settings(max_examples=examples(40))
@given(st.lists(st.sampled_from(Level), max_size=6))
def test_is_on_enum_members_and_enum_value(inputs: list[Level]) -> None:
    run_differential(burst, inputs)


@given(st.sampled_from(Rank), st.none() | st.sampled_from(Rank))
def test_enum_value_and_is_on_optional_enums(r: Rank, o: Rank | None) -> None:
    assert rank_value.compiled(r, o) == rank_value(r, o)


def test_enum_value_of_mixed_types_is_refused() -> None:
    with pytest.raises(FrontendError, match="every member's value is a constant of one type"):

        @arrow
        def bad(m: Mixed) -> int:
            return m.value  # type: ignore[no-any-return]


@settings(max_examples=examples(40))
@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(-9, 9).map(float)), max_size=6))
def test_an_int_literal_where_a_float_is_expected(inputs: list[tuple[str, float]]) -> None:
    run_differential(amounts, inputs)


def test_an_int_literal_without_an_equal_float_is_refused() -> None:
    with pytest.raises(FrontendError, match="has no float of the same value"):

        @arrow
        def bad(x: float) -> float:
            return {"a": x}.get("b", 9007199254740993) + x


def test_an_int_literal_kept_as_an_int_by_python_is_refused() -> None:
    # Box(0, 0).total + 1 is the int 1 in Python: a float would print 1.0.
    with pytest.raises(FrontendError, match=r"Python keeps it an int .* write 0\.0"):

        @arrow
        def bad(n: int) -> float:
            return Box(0, n).total + n


def test_an_int_value_where_a_float_is_expected_is_still_refused() -> None:
    with pytest.raises(FrontendError, match="expected a value of type float, found int"):

        @arrow
        def bad(n: int) -> float:
            return n


@settings(max_examples=examples(40))
@given(st.lists(st.integers(-9, 9).map(float), max_size=6))
def test_sum_of_floats_in_float_arithmetic(inputs: list[float]) -> None:
    run_differential(mean_of_last, inputs)


def test_sum_of_floats_alone_is_still_refused() -> None:
    # Python's sum of no floats is the int 0, which a float result would hide.
    with pytest.raises(FrontendError, match="write sum"):

        @arrow
        def bad(xs: list[float]) -> float:
            return sum(xs)


@settings(max_examples=examples(40))
@given(st.lists(st.sampled_from("xyz"), max_size=6))
def test_an_empty_set_takes_the_declared_type(inputs: list[str]) -> None:
    run_differential(seen_once, inputs)


@settings(max_examples=examples(40))
@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 3)), max_size=6))
def test_an_empty_set_takes_the_type_of_its_place(inputs: list[tuple[str, int]]) -> None:
    run_differential(distinct, inputs)


@given(st.lists(st.integers(-3, 3), max_size=4))
def test_unpacking_a_list_fails_as_python_does(xs: list[int]) -> None:
    try:
        want: tuple[str, object] = ("ok", unpack(xs))
    except ValueError as exc:
        want = ("ValueError", str(exc))
    try:
        got: tuple[str, object] = ("ok", unpack.compiled(xs))
    except Exception as exc:  # the compiled step raises a RaisedError named ValueError
        got = (type(exc).__name__, str(exc))
    assert got == want


@arrow
def later_use(xs: list[int]) -> tuple[list[str], int, list[int]]:
    out = []
    seen = set()
    back = []  # type: ignore[var-annotated]  # typed by the return, as for the front end
    for x in xs:
        out.append(str(x))
        seen.add(x)
    return out, len(seen), back


@given(st.lists(st.integers(-3, 3), max_size=6))
def test_an_empty_container_takes_the_type_of_a_later_use(xs: list[int]) -> None:
    assert later_use.compiled(xs) == later_use(xs)


def test_an_empty_container_no_use_types_is_refused() -> None:
    with pytest.raises(FrontendError, match=r"cannot tell the item type of \[\]"):

        @arrow
        def bad(n: int) -> int:
            out = []  # type: ignore[var-annotated]
            return len(out) + n


# -- unions of records and plain values (Greeting | str) ----------------------------


@attrs.frozen
class Greeting:
    name: str


@statemachine(init=0)
def greet(msg: Greeting | str, n: int) -> tuple[int, str]:
    if isinstance(msg, str):
        return n, f"Greeting, {msg}!"
    n += 1
    return n, f"again {msg.name} #{n}"


@statemachine(init={})
def kv(
    msg: Greeting | str | int, store: dict[str, int]
) -> tuple[dict[str, int], int | list[str] | None]:
    match msg:
        case Greeting(name=k):
            return store, store.get(k)
        case str(k):
            store[k] = len(k)
            return store, None
        case int():
            return store, sorted(store)


@arrow
def kind(x: bool | int | float | list[int]) -> tuple[str, bool | int | float | list[int]]:
    match x:
        case int():  # a bool too, as in Python
            return "int", x
        case float():
            return "float", x
    return "list", x


#: Messages of Greeting | str | int (ints within the wire's 64 bits).
MSGS = st.one_of(
    st.builds(Greeting, st.sampled_from("ab")),
    st.sampled_from(["a", "bb"]),
    st.integers(-(2**63), 2**63 - 1),
)


@settings(max_examples=examples(40))
@given(st.lists(MSGS, max_size=6))
def test_a_union_of_a_record_and_str_narrowed_by_isinstance(inputs: list[object]) -> None:
    run_differential(greet, [m for m in inputs if not isinstance(m, int)])


@settings(max_examples=examples(40))
@given(st.lists(MSGS, max_size=6))
def test_a_union_with_plain_cases_matched_and_returned(inputs: list[object]) -> None:
    run_differential(kv, inputs)


@given(st.booleans() | st.integers() | st.floats(allow_nan=False) | st.lists(st.integers()))
def test_a_plain_case_is_matched_by_its_class_as_isinstance_does(x: object) -> None:
    assert kind.compiled(x) == kind(x)


@settings(max_examples=examples(40))
@given(st.lists(MSGS, max_size=4))
def test_plain_cases_round_trip_on_the_wire(inputs: list[object]) -> None:
    m = Machine.from_wire(kv.machine.to_wire())
    assert m.version == kv.machine.version
    t = kv.machine.input
    state: object = {}
    for x in inputs:
        assert from_json(t, to_json(t, x)) == x
        assert json_reader(t)(json_writer(t)(x, "$"), "$") == x
        validate(t, x)
        got, want = m.step(x, state), m.interpret(x, state)
        assert got == want
        state = got[0]


def test_a_union_of_two_list_types_is_refused() -> None:
    with pytest.raises(FrontendError, match="at most one each of int"):

        @arrow
        def bad(x: list[int] | list[str]) -> int:
            return 0


# -- loops carrying a wider type than they start with -----------------------------


@arrow
def best_of(xs: list[int]) -> tuple[int | None, str | None]:
    best = None
    word = None
    for x in xs:
        if best is None or x > best:
            best = x
        for c in str(x):
            if c == "1":
                word = str(x)
    return best, word


@given(st.lists(st.integers(-20, 20), max_size=6))
def test_a_loop_carries_the_join_of_its_types(xs: list[int]) -> None:
    assert best_of.compiled(xs) == best_of(xs)


def test_a_loop_changing_a_type_that_does_not_join_is_refused() -> None:
    with pytest.raises(FrontendError, match="changes type in the loop, from int to str"):

        @arrow
        def bad(xs: list[int]) -> int:
            v = 0
            for x in xs:
                v = str(x)  # type: ignore[assignment]
            return len(str(v))


def test_a_plain_case_is_no_subtype_of_a_case_represented_otherwise() -> None:
    # Under the tag int, an int is the value itself; an int | None is a Tagged.
    plain = VariantT("", (("int", INT), ("ok", STR)))
    tagged = VariantT("", (("int", OptionT(INT)), ("ok", STR)))
    wider = VariantT("", (("int", INT), ("ok", STR), ("str", STR)))
    assert not is_subtype(plain, tagged)
    assert is_subtype(plain, wider)


@arrow
def pick(n: int, g: Greeting | str) -> Greeting | str:
    out = g
    if n > 0:
        out = str(n)  # str joins Greeting | str, of which it is a case
    return out


@given(st.integers(-2, 2), st.builds(Greeting, st.sampled_from("ab")) | st.sampled_from(["x"]))
def test_a_plain_value_joins_a_union_it_is_a_case_of(n: int, g: Greeting | str) -> None:
    assert pick.compiled(n, g) == pick(n, g)
