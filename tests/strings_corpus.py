"""Step functions and helpers using strings, f-strings, failures, narrowing and
record methods, compiled at import (issue 13; tests/test_frontend_strings.py).

Not a test module, so that pytest does not rewrite its ``assert`` statements
(their messages are part of what is compared with the compiled programs).
"""

from __future__ import annotations

import attrs

from arrowloop import PyFunction, PyMachine, arrow, statemachine


@attrs.frozen
class Fetch:
    """Read a key."""

    key: str


@attrs.frozen
class Store:
    """Write a key."""

    key: str
    value: int


@attrs.frozen
class KeyStats:
    """Running statistics of one key, with methods and a property."""

    n: int = 0
    total: int = 0
    words: list[str] = attrs.field(factory=list)
    seen: dict[str, int] = attrs.Factory(dict)

    def mean(self) -> float:
        """The mean of the values seen (0.0 before any)."""
        return self.total / self.n if self.n != 0 else 0.0

    @property
    def busy(self) -> bool:
        """Whether more than three values were seen."""
        return self.n > 3

    def add(self, x: int) -> KeyStats:
        """These statistics with one more value."""
        return attrs.evolve(self, n=self.n + 1, total=self.total + x)


@attrs.frozen
class Bag:
    """A record whose method changes it in place (refused where it is called)."""

    seen: dict[str, int]

    def bump(self, k: str) -> int:
        """Changes self.seen: the caller's record would change too."""
        self.seen[k] = 1
        return len(self.seen)


class Overdrawn(Exception):
    """A user-defined error class."""


# -- strings ------------------------------------------------------------------


@arrow
def indexing(s: str, i: int) -> str:
    """s[i], raising IndexError like Python."""
    return s[i]


@arrow
def slicing(s: str, a: int, b: int) -> tuple[str, str, str, str, str]:
    """Slices with and without bounds and steps."""
    return s[a:b], s[a:], s[:b], s[::-1], s[a:b:2]


@arrow
def stepped(s: str, c: int) -> str:
    """A slice with a variable step (ValueError when it is 0)."""
    return s[1::c]


@arrow
def list_slices(xs: list[int], a: int, b: int) -> tuple[list[int], list[int]]:
    """List slices."""
    return xs[a:b], xs[::-2]


@arrow
def searching(s: str, sub: str) -> tuple[int, int, bool, bool, bool]:
    """find, count and the character classes."""
    return s.find(sub), s.count(sub), s.isdigit(), s.isalpha(), s.isspace()


@arrow
def cleaning(s: str) -> tuple[str, str, str, list[str], int]:
    """title, lstrip, rstrip and split on whitespace."""
    words = s.split()
    return s.title(), s.lstrip(), s.rstrip(), words, len(words)


@arrow
def membership(x: int, xs: list[int], w: str, ws: list[str]) -> tuple[bool, bool, bool]:
    """in and not in on lists."""
    return x in xs, x not in xs, w in ws


@arrow
def formatting(x: float, n: int, s: str, b: bool) -> str:
    """f-strings with format specs and conversions."""
    return f"x={x:.1f} n={n:>5} z={n:05d} s={s!r} w={s:>4}|{s:<3}| {n:+} {x} {b} {x:e} {n:,}"


@arrow
def formatting2(x: float, n: int) -> tuple[str, str, str]:
    """More specs: percentages, hex, centering with a fill."""
    return f"{x:.2%}", f"{n:x}{n:#o}", f"{n:*^9}"


# -- failures -----------------------------------------------------------------


@arrow
def checked(n: int, s: str) -> int:
    """assert and raise of builtin and user classes."""
    assert n != 3, f"n is {n}"
    assert n != 4
    if n > 10:
        raise ValueError(f"too big: {n}")
    if n < -10:
        raise KeyError(s)
    if n == 7:
        raise Overdrawn("seven")
    return n


@statemachine(init=0)
def account(amount: int, balance: int) -> tuple[int, int]:
    """A withdrawal below zero rejects the item."""
    if amount > balance + 10:
        raise Overdrawn(f"cannot take {amount} from {balance}")
    balance -= amount
    return balance, balance


@arrow
def converted(s: str) -> float:
    """A failing conversion of a slice (the primitive's own ValueError)."""
    return float(len(s[1:])) / len(s[:1])


@statemachine(init={})
def tally(x: str, counts: dict[str, int]) -> tuple[dict[str, int], int]:
    """A write in place, then a raise: the stage must undo the write."""
    counts[x] = counts.get(x, 0) + 1
    if counts[x] > 2:
        raise ValueError(f"too many {x}")
    return counts, counts[x]


# -- narrowing ----------------------------------------------------------------


@statemachine(init=None)
def per_key(x: tuple[str, int], s: dict[str, int] | None) -> tuple[dict[str, int] | None, int]:
    """The first-item idiom, then changes in place through the narrowed name."""
    if s is None:
        s = {}
    k, v = x
    s[k] = s.get(k, 0) + v
    return s, s[k]


@statemachine(init=None)
def nested_state(x: str, s: KeyStats | None) -> tuple[KeyStats | None, int]:
    """The first-item idiom with a record holding a dict changed in place."""
    if s is None:
        s = KeyStats()
    s.seen[x] = s.seen.get(x, 0) + 1
    return s, s.seen[x] + s.n


@statemachine(init=None)
def running_mean(x: int, s: KeyStats | None) -> tuple[KeyStats | None, float]:
    """bytewax's stateful_map idiom: the first item creates the state."""
    if s is None:
        s = KeyStats()
    s = s.add(x)
    return s, s.mean()


@statemachine(init=None)
def first_seen(x: str, s: str | None) -> tuple[str | None, str]:
    """Narrowing with an else branch that keeps the value."""
    if s is None:  # noqa: SIM108 - the if statement is what is tested
        s = x
    else:
        s = s + x
    return s, s.upper()


@arrow
def conditionals(x: int | None, y: int | None) -> tuple[int, bool, bool, int]:
    """Narrowing in conditional expressions, and, or, not."""
    a = x + 1 if x is not None else 0
    b = x is not None and x > 3
    c = y is None or y < 0
    d = 0
    if x is not None and y is not None:
        d = x * y
    return a, b, c, d


@arrow
def kinds(m: Fetch | Store) -> str:
    """isinstance as a condition narrows like a case."""
    if isinstance(m, Fetch):
        return "get " + m.key
    k = "put " + m.key
    if isinstance(m, Store):  # noqa: SIM102 - the nested form is tested too
        if m.value > 0:
            k = k + str(m.value)
    return k


@arrow
def kinds_and(m: Fetch | Store, n: int) -> str:
    """isinstance first in an and: the later operands and the body see the class."""
    if isinstance(m, Store) and m.value > n and n >= 0:
        return "big " + str(m.value)
    elif isinstance(m, Fetch) and len(m.key) > n:
        out = "long"
    else:
        out = "other"
    return out + str(n)


@arrow
def either_kind(m: Fetch | Store, n: int) -> int:
    """isinstance of a tuple of classes, with an else, and the name read after."""
    if isinstance(m, (Fetch, Store)):  # noqa: SIM108 - the if statement is what is tested
        out = len(m.key)
    else:
        out = -1
    if isinstance(m, Store):
        out += m.value
    return out + n


# -- classes ------------------------------------------------------------------


@statemachine(init=KeyStats())
def summary(x: int, s: KeyStats) -> tuple[KeyStats, tuple[float, bool, int]]:
    """Methods and a property on the state record."""
    s = s.add(x)
    return s, (s.mean(), s.busy, len(s.words) + len(s.seen))


@statemachine(init=0)
def store(msg: Fetch | Store, state: int) -> tuple[int, str]:
    """match on a tuple subject with class patterns inside."""
    match msg, state:
        case Fetch(key=k), 0:
            return state, "empty " + k
        case Store(value=v), n if v > n:
            return v, f"up {n}->{v}"
        case Fetch(), n:
            return n, str(n)
        case _:
            return state, "kept"


@arrow
def defaults(n: int) -> KeyStats:
    """Construction relying on factory defaults."""
    return KeyStats(n=n)


CORPUS: list[PyFunction | PyMachine] = [
    indexing,
    slicing,
    stepped,
    list_slices,
    searching,
    cleaning,
    membership,
    formatting,
    formatting2,
    checked,
    account,
    converted,
    tally,
    per_key,
    nested_state,
    running_mean,
    first_seen,
    conditionals,
    kinds,
    kinds_and,
    either_kind,
    summary,
    store,
    defaults,
]
