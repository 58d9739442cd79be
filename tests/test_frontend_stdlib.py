"""math, **, repetition, partition, strip(chars), list.count, next(iter(x)),
``in`` on tuples and lists in f-strings (frontend/_stdlib.py) against plain Python.

Each function is compiled at import; on random typed inputs the generated
code, the reference interpreter and the program after a wire round trip give
what the Python function gives, or raise an exception of the same class.
The documented divergences (bounded powers and repetitions, int ** -n at run
time, complex results) are tested on their own.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop import PyFunction, arrow
from arrowloop.arrows import MAX_POW_BITS, MAX_REPEAT, Const, Prim, fanout, id_
from arrowloop.errors import FrontendError
from arrowloop.machine import Function
from arrowloop.typesys import INT
from tests.profiles import examples
from tests.test_frontend_corpus import agree, outcome

SMALL_INTS = st.integers(-5, 40)
FLOATS = st.one_of(st.floats(-1e6, 1e6), st.sampled_from([0.0, -0.0, 2.5, -2.5]), st.floats())
TEXT = st.text(alphabet="ab=.,!? -\r\n", max_size=8)


@arrow
def roots(x: float, n: int) -> tuple[float, float, int, int]:
    return math.sqrt(x), math.sqrt(n), math.ceil(x), math.floor(x)


@arrow
def logs(x: float) -> tuple[float, float, float, bool, bool, bool, int]:
    return (
        math.exp(x),
        math.log(x),
        math.log10(x),
        math.isnan(x),
        math.isinf(x),
        math.isfinite(x),
        math.trunc(x),
    )


@arrow
def powers(a: int, b: int) -> tuple[int, float, float, int]:
    return a**b, a**-2, 2.0**b, pow(a, 2)


@arrow
def int_power(a: int, b: int) -> int:
    return a**b  # type: ignore[no-any-return]


@arrow
def float_powers(x: float, y: float) -> tuple[float, float]:
    return x**y, x**0.5


@arrow
def backoff(attempt: int) -> int:
    return min(32, 2**attempt)  # type: ignore[no-any-return]


@arrow
def repeats(s: str, n: int, xs: list[int]) -> tuple[str, str, list[int], list[int]]:
    return s * n, n * s, xs * n, [0] * n


@arrow
def rep(s: str, n: int) -> str:
    return s * n


@arrow
def parts(s: str, sep: str) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    return s.partition(sep), s.rpartition(sep)


@arrow
def strips(s: str) -> tuple[str, str, str, str]:
    key, _, value = s.partition("=")
    return s.strip(".,!?"), s.lstrip("-"), s.rstrip("\r"), key.strip() + value.strip()


@arrow
def counts(xs: list[str], ys: list[float], y: float) -> tuple[int, int]:
    return xs.count("a"), ys.count(y)


@arrow
def firsts(d: dict[str, int], xs: list[int], s: str) -> tuple[str, int, str]:
    return next(iter(d), "none"), next(iter(xs), -1), next(iter(s), "")


@arrow
def first_key(d: dict[str, int]) -> str:
    return next(iter(d))


@arrow
def in_tuples(x: int, t: tuple[int, int, int]) -> tuple[bool, bool, bool]:
    return x in (5, 10, 25, 100), x not in t, x in (x + 1, 2 * x)


@arrow
def shown(xs: list[int], ys: list[str], zs: list[float]) -> str:
    return f"queued {xs} {ys!r} {zs}" + str(xs) + repr(ys) + repr(len(xs)) + repr("a'b")


class Hue(enum.Enum):
    """An enum with str values."""

    RED = "red"
    BLUE = "blue"


class Level(enum.Enum):
    """An enum with int values."""

    LOW = 1
    HIGH = 2


@arrow
def members(h: Hue, lv: Level) -> tuple[str, str, int, bool, bool]:
    return h.value, h.name, lv.value, h is Hue.RED, lv is not Level.HIGH


@arrow
def unpacked(xs: list[int], pairs: list[list[str]]) -> tuple[int, int, list[str]]:
    a, b = xs
    out = [x + y for x, y in pairs]
    return a, b, out


@arrow
def str_methods(s: str, w: int) -> tuple[str, bool, bool, list[str], list[str], list[str], str]:
    return (
        s.capitalize() + s.swapcase() + s.casefold() + s.removeprefix("a") + s.removesuffix("b"),
        s.isalnum() or s.isupper() or s.islower() or s.isdecimal() or s.isascii(),
        s.startswith(("a", "B")) or s.endswith(("x", s[:1])),
        s.splitlines(),
        s.rsplit("a", 1) + s.split("a", 1) + s.rsplit("b"),
        [str(s.rfind("a")), s.center(w), s.ljust(w, "*"), s.rjust(w), s.zfill(w)],
        "".join(reversed(s)) + "-".join(sorted(s)),
    )


@arrow
def indexes(s: str, xs: list[int], x: int) -> tuple[int, int, int]:
    return s.index("a"), s.rindex("a"), xs.index(x)


@arrow
def formats(a: int, b: str, x: float) -> str:
    first = "{} and {!r} or {:>6} {:.2f} {{}} {}".format(a, b, b, x, a)  # noqa: UP032
    return first + "{1}{0}{1}".format(a, b)  # noqa: UP032


@arrow
def conversions(s: str, n: int, x: float) -> tuple[int, str, bool]:
    return int(s, 16), hex(n) + bin(n) + oct(n), x.is_integer()


@arrow
def dicts(
    ks: list[str], vs: list[int], d: dict[str, int], v: int
) -> tuple[dict[str, int], dict[int, str], bool, bool]:
    made = dict(zip(ks, vs, strict=False))
    key = ks[0] if ks else ""
    return made, dict(enumerate(ks)), v in d.values(), key not in d.keys()  # noqa: SIM118


@arrow
def bits(a: int, b: int) -> tuple[int, int, int, int, int, int]:
    c = a
    c ^= b
    return a & b, a | b, c, a << (b % 8), a >> (b % 8), ~a


@arrow
def maps(xs: list[int]) -> tuple[list[str], int, str, list[int], list[int], int]:
    total = 0
    for y in map(abs, xs):
        total += y
    return (
        list(map(str, xs)),
        sum(map(lambda x: x * x, xs)),  # noqa: C417 - map is what is tested
        ",".join(map(str, filter(None, xs))),
        sorted(filter(lambda x: x > 2, xs)),
        list(filter(None, xs)),
        total,
    )


@arrow
def of_sets(
    s: set[int], t: set[str], b: set[bool]
) -> tuple[list[int], int, int, int, list[str], bool]:
    if not s:
        return sorted(s), 0, 0, sum(s), sorted(t, reverse=True), all(b)
    return sorted(s), min(s), max(s), sum(s), sorted(t, reverse=True), any(b)


@arrow
def defaults(xs: list[int], ws: list[str]) -> tuple[int, int, str, str]:
    return (
        min(xs, default=-1),
        max(xs, default=99),
        max(ws, key=len, default="?"),
        min(ws, default="", key=lambda w: (len(w), w)),
    )


@arrow
def empties(n: int, xs: list[str]) -> tuple[list[str], dict[str, int], set[int]]:
    a = [] if n > 0 else [x + "!" for x in xs]
    b = {x: n + len(x) for x in xs} if n < 0 else {}
    c = set() if n == 0 else {n, len(xs)}
    return a, b, c


CASES: list[tuple[PyFunction, Any]] = [
    (roots, st.tuples(FLOATS, SMALL_INTS)),
    (logs, FLOATS),
    (powers, st.tuples(SMALL_INTS, st.integers(0, 70))),
    # A negative base to a fractional power is complex in Python (test_complex_power_raises).
    (float_powers, st.tuples(st.floats(min_value=0.0), FLOATS)),
    (backoff, st.integers(0, 200)),
    (repeats, st.tuples(TEXT, st.integers(-2, 5), st.lists(SMALL_INTS, max_size=4))),
    (parts, st.tuples(TEXT, st.sampled_from(["=", "ab", ""]))),
    (strips, TEXT),
    (
        counts,
        st.tuples(
            st.lists(st.sampled_from("ab"), max_size=5), st.lists(FLOATS, max_size=4), FLOATS
        ),
    ),
    (
        firsts,
        st.tuples(
            st.dictionaries(st.text("abc", max_size=2), SMALL_INTS, max_size=3),
            st.lists(SMALL_INTS, max_size=3),
            TEXT,
        ),
    ),
    (first_key, st.dictionaries(st.text("abc", max_size=2), SMALL_INTS, max_size=3)),
    (in_tuples, st.tuples(SMALL_INTS, st.tuples(SMALL_INTS, SMALL_INTS, SMALL_INTS))),
    (members, st.tuples(st.sampled_from(Hue), st.sampled_from(Level))),
    (str_methods, st.tuples(st.text(alphabet="aAbB1 \n\rx_", max_size=8), st.integers(-1, 9))),
    (indexes, st.tuples(TEXT, st.lists(SMALL_INTS, max_size=4), SMALL_INTS)),
    (formats, st.tuples(SMALL_INTS, TEXT, FLOATS)),
    (conversions, st.tuples(st.sampled_from(["ff", "-1A", "0x10", "z", ""]), SMALL_INTS, FLOATS)),
    (
        dicts,
        st.tuples(
            st.lists(st.sampled_from("abc"), max_size=4),
            st.lists(SMALL_INTS, max_size=4),
            st.dictionaries(st.sampled_from("abc"), SMALL_INTS, max_size=3),
            SMALL_INTS,
        ),
    ),
    (bits, st.tuples(st.integers(-300, 300), st.integers(-20, 20))),
    (maps, st.lists(SMALL_INTS, max_size=5)),
    (empties, st.tuples(st.integers(-2, 2), st.lists(TEXT, max_size=3))),
    (
        of_sets,
        st.tuples(
            st.sets(SMALL_INTS, max_size=5), st.sets(TEXT, max_size=4), st.sets(st.booleans())
        ),
    ),
    (defaults, st.tuples(st.lists(SMALL_INTS, max_size=4), st.lists(TEXT, max_size=4))),
    (
        unpacked,
        st.tuples(
            st.lists(SMALL_INTS, min_size=1, max_size=2),
            st.lists(st.lists(TEXT, min_size=1, max_size=2), max_size=3),
        ),
    ),
    (
        shown,
        st.tuples(
            st.lists(SMALL_INTS, max_size=3),
            st.lists(TEXT, max_size=3),
            st.lists(FLOATS, max_size=2),
        ),
    ),
]


@pytest.mark.parametrize(("fn", "inputs"), CASES, ids=lambda c: getattr(c, "__name__", ""))
@settings(max_examples=examples(60), deadline=None)
@given(data=st.data())
def test_compiled_interpreted_and_received_match_python(
    fn: PyFunction, inputs: Any, data: st.DataObject
) -> None:
    """Generated code, interpreter and a wire round trip give Python's result or error."""
    x = data.draw(inputs, label="input")
    args = x if len(fn.params) > 1 else (x,)
    expected = outcome(fn, *args)
    received = Function.from_wire(fn.function.to_wire())
    for run in (fn.function, fn.function.interpret, received):
        got = outcome(run, x)
        assert agree(got, expected), (run, got, expected)


def test_math_errors_are_pythons() -> None:
    """A negative square root fails the step with math's ValueError."""
    with pytest.raises(ValueError, match="math domain error"):
        roots.compiled(-1.0, 4)


def test_int_power_is_bounded() -> None:
    """An int power past MAX_POW_BITS raises OverflowError instead of working for hours."""
    assert backoff.compiled(MAX_POW_BITS - 1) == 32
    assert int_power.compiled(2, MAX_POW_BITS) == 2**MAX_POW_BITS
    with pytest.raises(OverflowError, match="bits"):
        int_power.compiled(2, MAX_POW_BITS + 1)
    with pytest.raises(OverflowError, match="bits"):
        int_power.compiled(3, 10**12)
    assert int_power.compiled(1, 10**12) == 1
    assert int_power.compiled(-1, 10**12 + 1) == -1


def test_int_to_a_negative_power_at_run_time_raises() -> None:
    """int ** int is an int; Python's float for a negative exponent fails the step."""
    with pytest.raises(ValueError, match=r"float\(a\) \*\* b"):
        int_power.compiled(2, -1)
    assert powers.compiled(2, 3)[1] == 0.25  # a constant negative exponent is a float


def test_complex_power_raises() -> None:
    """Python's complex result of (-8.0) ** 0.5 fails the step."""
    with pytest.raises(ValueError, match="complex"):
        float_powers.compiled(-8.0, 1.0)


def test_shift_is_bounded() -> None:
    """n << k past MAX_POW_BITS bits raises OverflowError; a negative count ValueError."""

    @arrow
    def shift(a: int, b: int) -> int:
        return a << b

    assert shift.compiled(1, MAX_POW_BITS - 1) == 1 << (MAX_POW_BITS - 1)
    assert shift.compiled(0, 10**12) == 0
    with pytest.raises(OverflowError, match="bits"):
        shift.compiled(1, 10**12)
    with pytest.raises(ValueError, match="negative shift count"):
        shift.compiled(1, -1)


def test_repetition_is_bounded() -> None:
    """s * n past MAX_REPEAT raises OverflowError."""
    with pytest.raises(OverflowError, match="limit"):
        rep.compiled("ab", MAX_REPEAT)
    assert rep.compiled("", MAX_REPEAT * 10) == ""
    assert len(rep.compiled("a", MAX_REPEAT)) == MAX_REPEAT


def test_next_of_an_empty_dict_raises_stop_iteration() -> None:
    """next(iter({})) fails the step with StopIteration, as in Python."""
    with pytest.raises(StopIteration):
        first_key.compiled({})
    assert first_key.compiled({"b": 1, "a": 2}) == "b"


def test_unpacking_too_many_raises_value_error() -> None:
    """a, b = xs of three items fails with ValueError, as in Python (3.11's message)."""
    with pytest.raises(ValueError, match=r"too many values to unpack \(expected 2"):
        unpacked.compiled([1, 2, 3], [])


def test_order_showing_uses_of_sets_are_refused() -> None:
    """Iterating a set where the order would show is refused, saying what to write."""
    with pytest.raises(FrontendError, match=r"a set of ints to sum"):

        @arrow
        def total(s: set[str]) -> str:
            return sum(s)  # type: ignore[arg-type,return-value]

    with pytest.raises(FrontendError, match=r"list\(\.\.\.\)"):

        @arrow
        def listed(s: set[int]) -> list[int]:
            return list(s)


def test_the_repeat_primitive_never_shares_items() -> None:
    """repeat of a list of lists (a hand-written program) copies each item: values never share."""
    grid = list[list[int]]
    f = Function.build(fanout(id_, Const(INT, 3)) >> Prim("repeat"), grid, grid)
    for run in (f, f.interpret):
        out = run([[1]])
        assert out == [[1], [1], [1]]
        assert out[0] is not out[1]


def test_repeating_a_list_of_lists_is_refused() -> None:
    """[[0]] * n shares the inner list in Python: refused, saying what to write."""
    with pytest.raises(FrontendError, match=r"comprehension"):

        @arrow
        def grid(n: int) -> list[list[int]]:
            return [[0]] * n


def test_next_other_than_of_iter_is_refused() -> None:
    """next(x) of anything but iter(...) is refused with what to write."""
    with pytest.raises(FrontendError, match=r"next\(iter\(x\)\)"):

        @arrow
        def nxt(xs: list[int]) -> int:
            return next(xs)  # type: ignore[call-overload,no-any-return]
