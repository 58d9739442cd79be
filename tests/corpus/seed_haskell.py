"""The seed's Haskell examples, translated literally into step functions.

Part of the corpus of issue 13. The seed wrote its machines as Haskell
``Mealy`` transducers over sum types (``data Msg = Up | Down | Read``); these
are the same machines as a Python programmer ports them: one frozen record
per constructor, a union for the message type, ``match`` for the ``case``,
and the state returned beside the output.
"""

from __future__ import annotations

import enum

import attrs
from hypothesis import strategies as st

# The replies are the counter example's own (``Count Int`` and ``Ack``, as in the
# seed), not copies: a copy would be the same structural type (docs/arrows.md, 1.3).
from arrowloop.examples.counter import Ack, Count
from tests.corpus._entry import Style

CORPUS = Style("seed_haskell")


@attrs.frozen
class Up:
    """``Up``: count one up."""


@attrs.frozen
class Down:
    """``Down``: count one down."""


@attrs.frozen
class Read:
    """``Read``: reply with the count."""


@attrs.frozen
class Toggle:
    """``Toggle``: flip the direction of ``Up``."""


@attrs.frozen
class Reset:
    """``Reset``: back to zero."""


CounterMsg = Up | Down | Read
COUNTER_MSGS = st.sampled_from([Up(), Down(), Read()])
TOGGLE_MSGS = st.sampled_from([Up(), Down(), Read(), Toggle(), Reset()])


def counter_updown(msg: CounterMsg, n: int) -> tuple[int, Count | Ack]:
    """Seed Haskell: ``counter Up n = (n + 1, Ack)``, ``Down``, ``Read``."""
    match msg:
        case Up():
            return n + 1, Ack()
        case Down():
            return n - 1, Ack()
        case Read():
            return n, Count(n)


CORPUS.add(counter_updown, 0, COUNTER_MSGS)


def counter_floor(msg: CounterMsg, n: int) -> tuple[int, Count | Ack]:
    """Seed Haskell: the counter that never goes below zero (``max 0 (n - 1)``)."""
    match msg:
        case Up():
            return n + 1, Ack()
        case Down():
            return max(0, n - 1), Ack()
        case Read():
            return n, Count(n)


CORPUS.add(counter_floor, 0, COUNTER_MSGS)


def counter_if_chain(msg: CounterMsg, n: int) -> tuple[int, int]:
    """Seed Haskell with guards turned into ``isinstance``: the count after each message."""
    if isinstance(msg, Up):
        n += 1
    elif isinstance(msg, Down):
        n -= 1
    return n, n


CORPUS.add(counter_if_chain, 0, COUNTER_MSGS)


@attrs.frozen
class Toggled:
    """``data S = S { count :: Int, down :: Bool }``: the counter v3's state."""

    count: int
    down: bool


ToggleMsg = Up | Down | Read | Toggle | Reset


def counter_toggle(msg: ToggleMsg, s: Toggled) -> tuple[Toggled, Count | Ack]:
    """Seed Haskell: the counter v3, whose ``Toggle`` flips what ``Up`` does."""
    match msg:
        case Up():
            step = -1 if s.down else 1
            return attrs.evolve(s, count=s.count + step), Ack()
        case Down():
            return attrs.evolve(s, count=s.count - 1), Ack()
        case Toggle():
            return attrs.evolve(s, down=not s.down), Ack()
        case Reset():
            return Toggled(0, s.down), Ack()
        case Read():
            return s, Count(s.count)


CORPUS.add(counter_toggle, Toggled(0, False), TOGGLE_MSGS)


def counter_tuple_state(msg: ToggleMsg, s: tuple[int, bool]) -> tuple[tuple[int, bool], int]:
    """Seed Haskell: the toggling counter with a pair for its state, as ``(Int, Bool)``."""
    n, down = s
    match msg:
        case Up():
            n = n - 1 if down else n + 1
        case Down():
            n = n - 1
        case Toggle():
            down = not down
        case Reset():
            n = 0
        case Read():
            pass
    return (n, down), n


CORPUS.add(counter_tuple_state, (0, False), TOGGLE_MSGS)


def toggle_switch(msg: Toggle | Read, on: bool) -> tuple[bool, bool]:
    """Seed Haskell: ``toggle Toggle b = (not b, not b)``; ``Read`` replies with it."""
    match msg:
        case Toggle():
            return not on, not on
        case Read():
            return on, on


CORPUS.add(toggle_switch, False, st.sampled_from([Toggle(), Read()]))


def toggle_bool_input(flip: bool, on: bool) -> tuple[bool, bool]:
    """Seed Haskell: ``toggle`` over ``Bool`` inputs, flipping on ``True``."""
    if flip:
        on = not on
    return on, on


CORPUS.add(toggle_bool_input, False, st.booleans())


class Light(enum.Enum):
    """``data Light = Off | On | Blinking``."""

    OFF = "off"
    ON = "on"
    BLINKING = "blinking"


def light_cycle(press: bool, light: Light) -> tuple[Light, str]:
    """Seed Haskell: a three-state light cycling on each press, replying with its name."""
    if not press:
        return light, light.value
    match light:
        case Light.OFF:
            light = Light.ON
        case Light.ON:
            light = Light.BLINKING
        case Light.BLINKING:
            light = Light.OFF
    return light, light.value


CORPUS.add(light_cycle, Light.OFF, st.booleans())


def accumulate(x: int, total: int) -> tuple[int, int]:
    """Seed Haskell: ``accum x s = (s + x, s + x)``, the running sum."""
    total += x
    return total, total


CORPUS.add(accumulate, 0, st.integers(-100, 100))


def delay(x: int, prev: int) -> tuple[int, int]:
    """Seed Haskell: ``delay x s = (x, s)``, a one-item delay line."""
    return x, prev


CORPUS.add(delay, 0, st.integers(-100, 100))


def edge_detect(x: bool, prev: bool) -> tuple[bool, str | None]:
    """Seed Haskell: ``Maybe Edge`` on a change of a boolean signal."""
    if x and not prev:
        return x, "rising"
    if prev and not x:
        return x, "falling"
    return x, None


CORPUS.add(edge_detect, False, st.booleans())


def counter_history(
    msg: CounterMsg, s: tuple[int, list[int]]
) -> tuple[tuple[int, list[int]], list[int]]:
    """Seed Haskell: the counter that keeps every count it had (``n : hist``), newest first."""
    n, hist = s
    match msg:
        case Up():
            n += 1
        case Down():
            n -= 1
        case Read():
            return (n, hist), hist
    hist = [n, *hist]
    return (n, hist), hist[:3]


CORPUS.add(counter_history, (0, []), COUNTER_MSGS)


def mealy_parity(bit: int, odd: bool) -> tuple[bool, str]:
    """Seed Haskell: the parity transducer over bits, replying ``"odd"``/``"even"``."""
    if bit % 2 == 1:
        odd = not odd
    return odd, "odd" if odd else "even"


CORPUS.add(mealy_parity, False, st.integers(0, 3))
