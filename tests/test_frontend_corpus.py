"""The front end against Python itself: a corpus of functions covering every construct.

Each function below is decorated, so it is compiled at import; the property
test then calls the plain Python function and the compiled program (the
generated code and the reference interpreter) on random values of the
declared types and requires the same result, or the same exception.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowloop import PyFunction, PyMachine, arrow, primitive, statemachine
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    UNIT,
    ListT,
    MapT,
    OptionT,
    RecordT,
    TupleT,
    Type,
    VariantT,
    enum_class,
    record_class,
    validate,
)
from tests.profiles import examples

# -- the types the corpus uses --------------------------------------------------


@attrs.frozen
class Point:
    """A plain record."""

    x: int
    y: int


@attrs.frozen
class Labelled:
    """A record with a default field."""

    name: str
    score: int = 0


@attrs.frozen
class Deposit:
    """A command with a payload."""

    amount: int


@attrs.frozen
class Withdraw:
    """Another command with a payload."""

    amount: int


@attrs.frozen
class Balance:
    """A command without a payload."""


@attrs.frozen
class Reply:
    """An answer."""

    value: int


@attrs.frozen
class Refused:
    """A refusal, with the reason."""

    reason: str


@attrs.frozen
class Account:
    """A record used as state."""

    balance: int
    ops: int
    frozen: bool


class Color(enum.Enum):
    """An enum (a variant of unit cases)."""

    RED = 1
    GREEN = 2
    BLUE = 3


Command = Deposit | Withdraw | Balance
Answer = Reply | Refused


@attrs.frozen
class Envelope:
    """A record with a variant field."""

    cmd: Command
    priority: int


LIMIT = 100
GREETING = "hello"
ORIGIN = Point(0, 0)


@primitive
def clamp(x: int, lo: int, hi: int) -> int:
    """A user primitive."""
    return max(lo, min(x, hi))


# -- the corpus -------------------------------------------------------------------


@arrow
def arith(a: int, b: int) -> int:
    """+ - * and precedence."""
    return a + b * 2 - (a - b) * 3


@arrow
def floor_mod(a: int, b: int) -> tuple[int, int]:
    """// and % on negative numbers and zero (ZeroDivisionError)."""
    return a // b, a % b


@arrow
def mixed_numbers(x: float, n: int) -> float:
    """int/float arithmetic, true division, float // and %."""
    return x * n + x / 2.0 - n / 4 + (x // 3.0) + (n % 2.5)


@arrow
def unary(a: int, x: float) -> tuple[int, float, int]:
    """Unary minus and plus, negative literals."""
    return -a, +x, -3 + -a


@arrow
def chained(a: int, b: int, c: int) -> bool:
    """Chained comparisons."""
    return a < b <= c != a


@arrow
def short_circuit(a: int, b: int) -> bool:
    """and/or/not stop early, so the division by zero is never reached."""
    return (b != 0 and a // b > 1) or not a > 3


@arrow
def cond_expr(a: int, b: int) -> int:
    """A conditional expression evaluates only the branch taken."""
    return a // b if b != 0 else -1


@arrow
def classify(n: int) -> str:
    """if/elif/else assigning a name that is used after."""
    if n < 0:
        label = "negative"
    elif n == 0:
        label = "zero"
    else:
        label = "positive"
    return label + "!"


@arrow
def early_returns(n: int) -> int:
    """Returns in some branches, falling through in others."""
    if n > 3:
        return n * 2
    if n < -3:  # noqa: SIM108 - statements are what is tested
        n = -n
    else:
        n = n + 10
    return n


@arrow
def swap(a: int, b: str) -> tuple[str, int]:
    """Tuple unpacking evaluates the right side first."""
    x, y = a, b
    x2, y2 = y, x
    return x2, y2


@arrow
def nested_unpack(p: tuple[int, tuple[bool, str]]) -> tuple[str, bool, int]:
    """Nested tuple targets and constant tuple indexes."""
    n, (flag, text) = p
    return text, not flag, n + p[0] + len(p[1][1])


@arrow
def aug(a: int, b: int) -> int:
    """Augmented assignment."""
    a += b
    a *= 2
    a -= 1
    a //= 3 if b == 0 else b
    return a


@arrow
def records(a: int, b: int) -> tuple[Point, Point, Labelled, Labelled]:
    """Record construction: positional, keyword, out of order, with a default."""
    p = Point(a, b)
    q = Point(y=a, x=b)
    return p, q, Labelled("x"), Labelled(score=a, name="y")


@arrow
def fields(p: Point) -> int:
    """Field access."""
    return p.x * 10 + p.y


@arrow
def evolve_record(acc: Account, n: int) -> tuple[Account, Account]:
    """attrs.evolve of one field and of several."""
    one = attrs.evolve(acc, balance=acc.balance + n)
    two = attrs.evolve(acc, ops=acc.ops + 1, frozen=not acc.frozen)
    return one, two


@statemachine(init=0)
def bank(cmd: Command, balance: int) -> tuple[int, Answer]:
    """Class patterns with positional and keyword fields."""
    match cmd:
        case Deposit(amount):
            return balance + amount, Reply(balance + amount)
        case Withdraw(amount=a):
            if a > balance:
                return balance, Refused("insufficient")
            return balance - a, Reply(balance - a)
        case Balance():
            return balance, Reply(balance)


@statemachine(init=0)
def wildcard(cmd: Command, n: int) -> tuple[int, Answer]:
    """A wildcard covers the remaining cases."""
    match cmd:
        case Deposit(amount=a):
            return n + a, Reply(a)
        case _:
            return n, Refused("no")


@statemachine(init=0)
def or_pattern(cmd: Command, n: int) -> tuple[int, int]:
    """Alternatives of classes."""
    match cmd:
        case Deposit() | Withdraw():
            return n + 1, 1
        case Balance():
            return n, 0


@statemachine(init=0)
def guards(cmd: Command, n: int) -> tuple[int, Answer]:
    """Guards, falling to later cases when false."""
    match cmd:
        case Deposit(amount=a) if a > 3:
            return n + a, Reply(a)
        case Deposit(amount=a) if a < -3:
            return n, Refused("negative")
        case Withdraw(amount=a) if a <= n:
            return n - a, Reply(n - a)
        case _:
            return n, Refused("ignored")


@arrow
def capture(cmd: Command) -> tuple[Command, int]:
    """A capture pattern binds the whole subject."""
    match cmd:
        case Balance():
            return cmd, 0
        case other:
            return other, 1


@arrow
def as_pattern(cmd: Command) -> int:
    """'as' binds the matched record."""
    match cmd:
        case Deposit() as d:
            return d.amount
        case Withdraw(amount=0) as w:
            return w.amount + 1000
        case Withdraw(amount=a):
            return -a
        case Balance():
            return 0


@arrow
def int_literals(n: int) -> str:
    """Literal patterns on ints, with | and a wildcard."""
    match n:
        case 0:
            return "zero"
        case 1 | 2:
            return "small"
        case -1:
            return "minus one"
        case _:
            return "other"


@arrow
def str_literals(s: str) -> int:
    """Literal patterns on strings; no match continues after the match."""
    result = 0
    match s:
        case "a":
            result = 1
        case "ab" | "ba":
            result = 2
    return result * 10


@arrow
def bool_match(flag: bool, n: int) -> int:
    """True and False cover a bool: no wildcard needed."""
    match flag:
        case True:
            return n
        case False:
            return -n


@arrow
def option_match(x: int | None) -> int:
    """None and int(v) cover an optional."""
    match x:
        case None:
            return 0
        case int(v):
            return v + 1


@arrow
def tuple_match(p: tuple[int, str]) -> str:
    """Sequence patterns on tuples."""
    match p:
        case (0, s):
            return s
        case (n, "x"):
            return str(n)
        case _:
            return "?"


@arrow
def record_match(p: Point) -> int:
    """Class patterns on a record subject with literal sub-patterns."""
    match p:
        case Point(x=0, y=0):
            return 0
        case Point(0, y):
            return y
        case Point(x=x, y=1):
            return -x
        case _:
            return 99


@arrow
def leaky_guard(cmd: Command) -> int:
    """A name bound by a case whose guard fails stays bound, as in Python."""
    k = -1
    match cmd:
        case Deposit(amount=k) if k > 2:
            return 100
        case _:
            return k


@arrow
def strings(s: str, t: str) -> tuple[str, str, str, bool, bool, int, str, list[str], bool]:
    """String methods, concatenation, len, in."""
    return (
        s.upper() + t.lower(),
        s.strip(),
        s.replace("a", t),
        s.startswith(t),
        s.endswith("b"),
        len(s) + len(t),
        ",".join([s, t, GREETING]),
        s.split(","),
        t in s,
    )


@arrow
def lists(xs: list[int], x: int) -> tuple[list[int], list[int], int, int, list[int]]:
    """New lists: + [x], [*xs, x], literals; len, sum, indexing (IndexError)."""
    ys = xs + [x]  # noqa: RUF005 - both forms are tested
    zs = [*xs, x, x + 1]
    return ys, zs, len(zs) + sum(xs), xs[x], [x, 2 * x]


@arrow
def two_failures(xs: list[int], a: int, b: int) -> tuple[int, int]:
    """Of two failures, the one Python meets first is raised."""
    q = a // b
    v = xs[a]
    _unused = b // a
    return v, q


@arrow
def fold_sum(xs: list[int]) -> tuple[int, int]:
    """A for loop is a fold; an if inside updates a counter."""
    total = 0
    evens = 0
    for x in xs:
        total = total + x
        if x % 2 == 0:
            evens += 1
    return total, evens


@arrow
def fold_pairs(pairs: list[tuple[str, int]], bonus: int) -> dict[str, int]:
    """Tuple loop targets; the accumulator is a dict; a name read in the body."""
    out: dict[str, int] = {}
    for key, value in pairs:
        out = {**out, key: out.get(key, 0) + value + bonus}
    return out


@arrow
def nested_loops(rows: list[list[int]]) -> int:
    """A loop in a loop."""
    best = 0
    for row in rows:
        acc = 0
        for v in row:
            acc = acc + v
        best = max(best, acc)
    return best


@arrow
def dicts(d: dict[str, int], k: str) -> tuple[int, int | None, bool, dict[str, int], int]:
    """dict.get with and without a default, in, a new dict."""
    return d.get(k, -1), d.get(k), k in d, {**d, k: 7, "z": 0}, len({"a": 1, k: 2})


@arrow
def builtins_(a: int, b: int, x: float) -> tuple[int, int, float, int, str, str, float, int]:
    """min, max, abs, and the conversions."""
    return min(a, b), max(a, b), abs(x), abs(a), str(a), str(x), float(a), int(x)


@arrow
def helper(n: int, scale: int) -> int:
    """A helper called by other functions."""
    return n * scale + 1


@arrow
def calls(n: int) -> tuple[int, int, int]:
    """Calls of an @arrow (positional and keyword) and of a user primitive."""
    return helper(n, 2), helper(scale=3, n=n), clamp(n, -2, 2)


@statemachine(init=(0, 0))
def composed(cmd: Command, state: tuple[int, int]) -> tuple[tuple[int, int], Answer]:
    """A machine calling another machine's step (inlined)."""
    ops, balance = state
    new_balance, answer = bank(cmd, balance)
    return (ops + 1, new_balance), answer


@arrow
def colors(c: Color) -> tuple[Color, int, bool]:
    """Enums: value patterns, constants, ==."""
    match c:
        case Color.RED:
            n = 1
        case Color.GREEN | Color.BLUE:
            n = 2
    nxt = Color.GREEN if c == Color.RED else Color.RED
    return nxt, n, c != Color.BLUE


@arrow
def narrowing(x: int | None, y: int | None) -> int:
    """Inside 'if x is not None' (or the else of 'is None') x is an int."""
    total = 0
    if x is not None:
        total = total + x
    if y is None:  # noqa: SIM108 - statements are what is tested
        total = total - 1
    else:
        total = total + y * 2
    return total


@arrow
def optional_out(n: int) -> tuple[int | None, int | None, bool]:
    """None and plain values where an optional is expected; is None as a value."""
    m = None if n < 0 else n
    return m, n, m is None


@arrow
def constants(n: int) -> tuple[int, str, Point, bool]:
    """Module-level constants (captured when the function is decorated)."""
    return n + LIMIT, GREETING, ORIGIN, n > LIMIT


@arrow
def docstring_and_pass(n: int) -> int:
    """A docstring and pass are no-ops."""
    pass
    ...
    return n


@statemachine(init=[])
def log(msg: str, seen: list[str]) -> tuple[list[str], int]:
    """A list as state, appended to as a new list."""
    if msg == "reset":
        return [], 0
    new = [*seen, msg.upper()]
    return new, len(new)


@statemachine(init=Account(0, 0, False))
def account(cmd: Command, acc: Account) -> tuple[Account, Answer]:
    """A record as state, updated with evolve; a declared variable of the variant type."""
    reply: Answer = Refused("frozen")
    if not acc.frozen:
        match cmd:
            case Deposit(amount=a):
                acc = attrs.evolve(acc, balance=acc.balance + a, ops=acc.ops + 1)
                reply = Reply(acc.balance)
            case Withdraw(amount=a):
                if a > acc.balance:
                    acc = attrs.evolve(acc, frozen=True)
                else:
                    acc = attrs.evolve(acc, balance=acc.balance - a)
                    reply = Reply(acc.balance)
            case Balance():
                reply = Reply(acc.balance)
    return acc, reply


@arrow
def enum_wildcard(c: Color, n: int) -> int:
    """A wildcard over enum members; a non-exhaustive match followed by code."""
    match c:
        case Color.RED:
            n = n + 1
    match c:
        case Color.BLUE:
            return n * 2
        case _:
            return n


@arrow
def float_compare(x: float, y: float, n: int) -> tuple[bool, bool, bool, float]:
    """Comparisons of floats (NaN included) and of an int with a float."""
    return x < y, x == y, n >= x, max(x, y)


@arrow
def string_building(n: int, s: str) -> str:
    """Strings built from pieces."""
    word = s.strip().upper()
    if word == "":
        word = "EMPTY"
    return word + ":" + str(n * 2) + ("!" if n > 0 else "?")


@arrow
def tuple_index(t: tuple[int, str, bool]) -> tuple[bool, int, str]:
    """Tuple indexing with positive and negative constants."""
    return t[-1], t[0], t[1]


@arrow
def record_default_compare(p: Point, q: Point) -> tuple[bool, bool, Point]:
    """Records compare by value."""
    return p == q, p != ORIGIN, p if p.x > q.x else q


@arrow
def nested_match(e: Envelope) -> int:
    """A match inside a case, on a field of variant type."""
    match e:
        case Envelope(cmd=inner, priority=p) if p >= 0:
            match inner:
                case Deposit(amount=a):
                    return a * p
                case _:
                    return p
        case _:
            return -1


@statemachine(init=0)
def batch(cmds: list[Command], balance: int) -> tuple[int, list[Answer]]:
    """A loop whose body is a match that updates the state and the replies."""
    replies: list[Answer] = []
    for cmd in cmds:
        match cmd:
            case Deposit(amount=a):
                balance = balance + a
                replies = replies + [Reply(balance)]  # noqa: RUF005
            case Withdraw(amount=a) if a <= balance:
                balance -= a
            case _:
                replies = [*replies, Refused("no")]
    return balance, replies


@arrow
def migrate_account(balance: int) -> Account:
    """A migration: old state to new state."""
    return Account(balance=balance, ops=0, frozen=False)


CORPUS: list[PyFunction | PyMachine] = [
    arith,
    floor_mod,
    mixed_numbers,
    unary,
    chained,
    short_circuit,
    cond_expr,
    classify,
    early_returns,
    swap,
    nested_unpack,
    aug,
    records,
    fields,
    evolve_record,
    bank,
    wildcard,
    or_pattern,
    guards,
    capture,
    as_pattern,
    int_literals,
    str_literals,
    bool_match,
    option_match,
    tuple_match,
    record_match,
    leaky_guard,
    strings,
    lists,
    two_failures,
    fold_sum,
    fold_pairs,
    nested_loops,
    dicts,
    builtins_,
    helper,
    calls,
    composed,
    colors,
    narrowing,
    optional_out,
    constants,
    docstring_and_pass,
    log,
    account,
    enum_wildcard,
    float_compare,
    string_building,
    tuple_index,
    record_default_compare,
    nested_match,
    batch,
    migrate_account,
]


# -- random values of a type, and comparing results ------------------------------


def values(t: Type) -> st.SearchStrategy[Any]:
    """Random runtime values of ``t``."""
    match t:
        case _ if t == INT:
            return st.one_of(st.integers(-6, 6), st.integers())
        case _ if t == FLOAT:
            return st.one_of(st.sampled_from([0.0, -0.0, 1.5, -2.5, 3.0]), st.floats())
        case _ if t == STR:
            return st.text(alphabet="ab, xAB", max_size=6)
        case _ if t == BOOL:
            return st.booleans()
        case _ if t == UNIT:
            return st.none()
        case TupleT(items=items):
            return st.tuples(*(values(x) for x in items))
        case ListT(item=item):
            return st.lists(values(item), max_size=5)
        case MapT(value=v):
            return st.dictionaries(st.text(alphabet="abz", max_size=2), values(v), max_size=4)
        case OptionT(item=item):
            return st.one_of(st.none(), values(item))
        case RecordT(fields=fs):
            cls = record_class(t)
            return st.builds(lambda *a: cls(*a), *(values(ft) for _, ft in fs))
        case VariantT(cases=cases):
            ecls = enum_class(t)
            if ecls is not None:
                return st.sampled_from(list(ecls))
            return st.one_of(*(values(p) for _, p in cases))
    raise AssertionError(f"no strategy for {t!r}")


def same(a: Any, b: Any) -> bool:
    """Equal values of equal Python types (NaN equals NaN, 0.0 is not -0.0, 1 is not True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, tuple | list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if attrs.has(type(a)):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in attrs.fields(type(a)))
    return bool(a == b)


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """The result, or the exception's class and message."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # the property compares failures too
        return ("raised", (type(exc).__name__, str(exc)))


def agree(a: tuple[str, Any], b: tuple[str, Any]) -> bool:
    """Two outcomes are the same."""
    return a[0] == b[0] and (same(a[1], b[1]) if a[0] == "ok" else a[1] == b[1])


def test_corpus_is_broad() -> None:
    """The corpus has at least 40 functions, all compiled."""
    assert len(CORPUS) >= 40
    assert len({f.fn.__name__ for f in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("fn", CORPUS, ids=lambda f: f.fn.__name__)
@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_matches_python(fn: PyFunction | PyMachine, data: st.DataObject) -> None:
    """On random typed inputs the compiled program does what the Python function does."""
    if isinstance(fn, PyMachine):
        msg = data.draw(values(fn.input), label="input")
        state = data.draw(values(fn.state), label="state")
        args: tuple[Any, ...] = (msg, state)
        compiled = outcome(fn.step, msg, state)
        interpreted = outcome(fn.machine.interpret, msg, state)
        out_t: Type = TupleT((fn.state, fn.output))
    else:
        x = data.draw(values(fn.input), label="input")
        args = x if len(fn.params) > 1 else (x,)
        compiled = outcome(fn.function, x)
        interpreted = outcome(fn.function.interpret, x)
        out_t = fn.output
    expected = outcome(fn, *args)
    assert agree(compiled, expected), (compiled, expected)
    assert agree(interpreted, expected), (interpreted, expected)
    if compiled[0] == "ok":
        validate(out_t, compiled[1])
