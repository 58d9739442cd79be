"""Textbook state machines: vending machines, traffic lights, turnstiles, parsers, tokenizers.

Part of the corpus of issue 13. Each is the version found in a course or a
tutorial, written as a step function ``(msg, state) -> (state, output)``.
"""

from __future__ import annotations

import enum

import attrs
from hypothesis import strategies as st

from tests.corpus._entry import Style

CORPUS = Style("textbook")


class Turnstile(enum.Enum):
    """The two states of the coin-operated turnstile."""

    LOCKED = enum.auto()
    UNLOCKED = enum.auto()


def turnstile(event: str, s: Turnstile) -> tuple[Turnstile, str]:
    """Textbook: the turnstile; a coin unlocks it, a push locks it again."""
    if s == Turnstile.LOCKED and event == "coin":
        return Turnstile.UNLOCKED, "unlock"
    if s == Turnstile.UNLOCKED and event == "push":
        return Turnstile.LOCKED, "lock"
    if s == Turnstile.UNLOCKED and event == "coin":
        return s, "thank you"
    return s, "alarm"


CORPUS.add(turnstile, Turnstile.LOCKED, st.sampled_from(["coin", "push"]))


def turnstile_match(event: str, s: Turnstile) -> tuple[Turnstile, str]:
    """Textbook: the turnstile as one ``match`` on the pair (state, event)."""
    match s, event:
        case Turnstile.LOCKED, "coin":
            return Turnstile.UNLOCKED, "unlock"
        case Turnstile.UNLOCKED, "push":
            return Turnstile.LOCKED, "lock"
        case _, "coin":
            return s, "refund"
        case _:
            return s, "alarm"


CORPUS.add(turnstile_match, Turnstile.LOCKED, st.sampled_from(["coin", "push", "kick"]))


TRANSITIONS: dict[tuple[str, str], str] = {
    ("locked", "coin"): "unlocked",
    ("unlocked", "push"): "locked",
}


def turnstile_table(event: str, s: str) -> tuple[str, str]:
    """Textbook: the table-driven turnstile, a dict of transitions keyed by pairs."""
    nxt = TRANSITIONS.get((s, event), s)
    return nxt, f"{s} --{event}--> {nxt}"


CORPUS.add(turnstile_table, "locked", st.sampled_from(["coin", "push"]))


class Light(enum.Enum):
    """A traffic light's colour."""

    RED = "red"
    GREEN = "green"
    YELLOW = "yellow"


NEXT_LIGHT = {Light.RED: Light.GREEN, Light.GREEN: Light.YELLOW, Light.YELLOW: Light.RED}
DURATION = {Light.RED: 3, Light.GREEN: 2, Light.YELLOW: 1}


def traffic_light(tick: int, s: tuple[Light, int]) -> tuple[tuple[Light, int], Light]:
    """Textbook: a timed traffic light; ``tick`` seconds pass per message."""
    light, left = s
    left -= tick
    while left <= 0:
        light = NEXT_LIGHT[light]
        left += DURATION[light]
    return (light, left), light


CORPUS.add(traffic_light, (Light.RED, 3), st.integers(0, 4))


def traffic_light_simple(tick: bool, light: Light) -> tuple[Light, str]:
    """Textbook: a traffic light advanced by a timer tick, with ``if``/``elif``."""
    if not tick:
        return light, "wait"
    if light == Light.RED:
        light = Light.GREEN
    elif light == Light.GREEN:
        light = Light.YELLOW
    else:
        light = Light.RED
    return light, "go" if light == Light.GREEN else "stop"


CORPUS.add(traffic_light_simple, Light.RED, st.booleans())


@attrs.frozen
class Vending:
    """A vending machine's state: the credit inserted and the stock per item."""

    credit: int
    stock: dict[str, int]


PRICES = {"cola": 150, "chips": 100, "candy": 65}


@attrs.frozen
class Coin:
    """A coin inserted."""

    cents: int


@attrs.frozen
class Select:
    """A button pressed."""

    item: str


@attrs.frozen
class CoinReturn:
    """The coin-return lever."""


VendingMsg = Coin | Select | CoinReturn
VENDING_MSGS = st.one_of(
    st.builds(Coin, st.sampled_from([5, 10, 25, 100, 3])),
    st.builds(Select, st.sampled_from(["cola", "chips", "candy", "gum"])),
    st.just(CoinReturn()),
)


def vending_machine(msg: VendingMsg, s: Vending) -> tuple[Vending, str]:
    """Textbook: the vending machine; coins, selection with change, coin return."""
    match msg:
        case Coin(cents) if cents in (5, 10, 25, 100):
            return attrs.evolve(s, credit=s.credit + cents), f"credit {s.credit + cents}"
        case Coin(cents):
            return s, f"rejected {cents}"
        case Select(item):
            if item not in PRICES:
                return s, "unknown item"
            price = PRICES[item]
            if s.stock.get(item, 0) == 0:
                return s, "sold out"
            if s.credit < price:
                return s, f"insert {price - s.credit} more"
            s.stock[item] -= 1
            return Vending(0, s.stock), f"vend {item}, change {s.credit - price}"
        case CoinReturn():
            return attrs.evolve(s, credit=0), f"return {s.credit}"


CORPUS.add(vending_machine, Vending(0, {"cola": 2, "chips": 1, "candy": 3}), VENDING_MSGS)


def vending_simple(coin: int, credit: int) -> tuple[int, bool]:
    """Textbook: the 25-cent gum machine; vends when the credit reaches 25."""
    credit += coin
    if credit >= 25:
        return credit - 25, True
    return credit, False


CORPUS.add(vending_simple, 0, st.sampled_from([5, 10, 25]))


def vending_change(coin: int, credit: int) -> tuple[int, list[int]]:
    """Textbook: a 75-cent machine returning change greedily in coins."""
    credit += coin
    if credit < 75:
        return credit, []
    change = credit - 75
    coins: list[int] = []
    for c in [25, 10, 5]:
        while change >= c:
            coins.append(c)
            change -= c
    return 0, coins


CORPUS.add(vending_change, 0, st.sampled_from([5, 10, 25, 50, 100]))


class Door(enum.Enum):
    """The states of a door with a lock."""

    OPEN = "open"
    CLOSED = "closed"
    LOCKED = "locked"


def door(event: str, s: Door) -> tuple[Door, bool]:
    """Textbook: a door (open, closed, locked); replies whether the event was allowed."""
    match s, event:
        case Door.OPEN, "close":
            return Door.CLOSED, True
        case Door.CLOSED, "open":
            return Door.OPEN, True
        case Door.CLOSED, "lock":
            return Door.LOCKED, True
        case Door.LOCKED, "unlock":
            return Door.CLOSED, True
    return s, False


CORPUS.add(door, Door.CLOSED, st.sampled_from(["open", "close", "lock", "unlock"]))


@attrs.frozen
class Keypad:
    """A combination lock's state: the digits entered and the failures so far."""

    entered: str
    failures: int


SECRET = "1234"


def combination_lock(key: str, s: Keypad) -> tuple[Keypad, str]:
    """Textbook: a keypad lock that opens on the code and locks out after three failures."""
    if s.failures >= 3:
        return s, "locked out"
    entered = s.entered + key
    if len(entered) < len(SECRET):
        return Keypad(entered, s.failures), "..."
    if entered == SECRET:
        return Keypad("", 0), "open"
    return Keypad("", s.failures + 1), "wrong"


CORPUS.add(combination_lock, Keypad("", 0), st.sampled_from(["1", "2", "3", "4"]))


def balanced_parens(ch: str, depth: int) -> tuple[int, bool]:
    """Textbook: the bracket counter (a one-counter automaton); ``True`` while balanced."""
    if ch == "(":
        depth += 1
    elif ch == ")":
        depth -= 1
    if depth < 0:
        raise ValueError("unbalanced: ')' without '('")
    return depth, depth == 0


CORPUS.add(balanced_parens, 0, st.sampled_from(["(", ")", "x"]))


PAIRS = {")": "(", "]": "[", "}": "{"}


def bracket_matcher(ch: str, stack: list[str]) -> tuple[list[str], str]:
    """Textbook: the pushdown automaton for ``()[]{}``, with a stack of open brackets."""
    if ch in "([{":
        stack.append(ch)
        return stack, "open"
    if ch in PAIRS:
        if not stack or stack[-1] != PAIRS[ch]:
            return [], "mismatch"
        stack.pop()
        return stack, "close" if stack else "balanced"
    return stack, "skip"


CORPUS.add(bracket_matcher, [], st.sampled_from(list("()[]{}a")))


def binary_div3(bit: str, rem: int) -> tuple[int, bool]:
    """Textbook: the DFA for binary numbers divisible by three (the remainder as state)."""
    rem = (rem * 2 + int(bit)) % 3
    return rem, rem == 0


CORPUS.add(binary_div3, 0, st.sampled_from(["0", "1"]))


def dfa_ends_with_ab(ch: str, state: int) -> tuple[int, bool]:
    """Textbook: the DFA accepting strings over {a, b} that end in ``ab``."""
    table = [[1, 0], [1, 2], [1, 0]]
    state = table[state][0 if ch == "a" else 1]
    return state, state == 2


CORPUS.add(dfa_ends_with_ab, 0, st.sampled_from(["a", "b"]))


@attrs.frozen
class Token:
    """A token: its kind and its text."""

    kind: str
    text: str


@attrs.frozen
class Lexer:
    """A character-at-a-time tokenizer's state: the kind and text of the pending token."""

    kind: str
    text: str


def char_kind(ch: str) -> str:
    """The class of a character, for the tokenizer."""
    if ch.isdigit():
        return "num"
    if ch.isalpha() or ch == "_":
        return "ident"
    if ch.isspace():
        return "space"
    return "op"


def tokenizer(ch: str, s: Lexer) -> tuple[Lexer, list[Token]]:
    """Textbook: a tokenizer fed one character at a time, emitting finished tokens."""
    kind = char_kind(ch)
    if kind == s.kind and kind != "op":
        return Lexer(kind, s.text + ch), []
    out = [] if s.kind in ("", "space") else [Token(s.kind, s.text)]
    return Lexer(kind, ch), out


CORPUS.add(tokenizer, Lexer("", ""), st.sampled_from(list("ab1 2+_")))


def word_splitter(chunk: str, pending: str) -> tuple[str, list[str]]:
    """Textbook: splitting a stream of text chunks into whole words, keeping the tail."""
    text = pending + chunk
    parts = text.split(" ")
    return parts[-1], [w for w in parts[:-1] if w]


CORPUS.add(word_splitter, "", st.sampled_from(["ab", " ", "c d", "e ", " f"]))


def line_buffer(chunk: str, buf: str) -> tuple[str, list[str]]:
    """Textbook: a line reader over arbitrary chunks; complete lines out, the rest kept."""
    buf += chunk
    lines: list[str] = []
    while "\n" in buf:
        line, _, buf = buf.partition("\n")
        lines.append(line.rstrip("\r"))
    return buf, lines


CORPUS.add(line_buffer, "", st.sampled_from(["ab", "\n", "c\r\nd", "e\n\n"]))


def csv_field_parser(
    ch: str, s: tuple[bool, str, list[str]]
) -> tuple[tuple[bool, str, list[str]], list[str] | None]:
    """Textbook: a CSV record parser with quotes, one character at a time; a row at newline."""
    quoted, field, row = s
    if quoted:
        if ch == '"':
            return (False, field, row), None
        return (True, field + ch, row), None
    if ch == '"':
        return (True, field, row), None
    if ch == ",":
        return (False, "", [*row, field]), None
    if ch == "\n":
        return (False, "", []), [*row, field]
    return (False, field + ch, row), None


CORPUS.add(csv_field_parser, (False, "", []), st.sampled_from(list('ab,"\n')))


def rpn_calculator(tok: str, stack: list[int]) -> tuple[list[int], int | None]:
    """Textbook: the reverse Polish calculator; numbers push, operators pop two."""
    if tok.lstrip("-").isdigit():
        stack.append(int(tok))
        return stack, None
    if len(stack) < 2:
        raise ValueError(f"stack underflow at {tok!r}")
    b = stack.pop()
    a = stack.pop()
    if tok == "+":
        r = a + b
    elif tok == "-":
        r = a - b
    elif tok == "*":
        r = a * b
    elif tok == "/":
        r = a // b
    else:
        raise ValueError(f"unknown operator {tok}")
    stack.append(r)
    return stack, r


CORPUS.add(rpn_calculator, [], st.sampled_from(["1", "2", "-3", "+", "-", "*", "/", "%"]))


def rpn_calculator_match(tok: str, stack: list[int]) -> tuple[list[int], int]:
    """Textbook: the RPN calculator with ``match`` on the token and a stack of ints."""
    match tok:
        case "+":
            stack.append(stack.pop() + stack.pop())
        case "*":
            stack.append(stack.pop() * stack.pop())
        case "dup":
            stack.append(stack[-1])
        case "drop":
            stack.pop()
        case _:
            stack.append(int(tok))
    return stack, stack[-1] if stack else 0


CORPUS.add(rpn_calculator_match, [], st.sampled_from(["1", "2", "+", "*", "dup", "drop"]))


MORSE = {".-": "A", "-...": "B", "-.-.": "C", "..": "I", ".": "E", "-": "T", "...": "S", "---": "O"}


def morse_decoder(sym: str, pending: str) -> tuple[str, str]:
    """Textbook: a Morse decoder; dots and dashes accumulate, a space ends a letter."""
    if sym == " ":
        letter = MORSE.get(pending, "?") if pending else ""
        return "", letter
    return pending + sym, ""


CORPUS.add(morse_decoder, "", st.sampled_from([".", "-", " "]))


def run_length_encoder(ch: str, s: tuple[str, int]) -> tuple[tuple[str, int], str | None]:
    """Textbook: run-length encoding of a stream; a run is emitted when it ends."""
    last, n = s
    if ch == last:
        return (last, n + 1), None
    out = f"{n}{last}" if n > 0 else None
    return (ch, 1), out


CORPUS.add(run_length_encoder, ("", 0), st.sampled_from(["a", "b"]))


@attrs.frozen
class Elevator:
    """An elevator: its floor, and the floors requested, in order."""

    floor: int
    queue: list[int]


def elevator(msg: int | None, s: Elevator) -> tuple[Elevator, str]:
    """Textbook: an elevator; an int requests a floor, ``None`` is a tick moving it a floor."""
    if msg is not None:
        if msg not in s.queue and msg != s.floor:
            s.queue.append(msg)
        return s, f"queued {s.queue}"
    if not s.queue:
        return s, "idle"
    target = s.queue[0]
    floor = s.floor + (1 if target > s.floor else -1)
    if floor == target:
        s.queue.pop(0)
        return Elevator(floor, s.queue), f"arrived at {floor}"
    return Elevator(floor, s.queue), f"passing {floor}"


CORPUS.add(elevator, Elevator(0, []), st.one_of(st.none(), st.integers(0, 3)))


def microwave(event: str, s: tuple[str, int]) -> tuple[tuple[str, int], str]:
    """Textbook: a microwave oven (idle, cooking, paused) with a timer in seconds."""
    mode, left = s
    if event == "add30":
        return (mode, left + 30), f"{left + 30}s"
    if event == "start" and mode != "cooking" and left > 0:
        return ("cooking", left), "hum"
    if event == "open":
        return ("paused" if mode == "cooking" else mode, left), "light on"
    if event == "tick" and mode == "cooking":
        left = max(0, left - 10)
        return ("idle" if left == 0 else "cooking", left), "beep" if left == 0 else ""
    if event == "stop":
        return ("idle", 0), "cleared"
    return s, ""


CORPUS.add(microwave, ("idle", 0), st.sampled_from(["add30", "start", "open", "tick", "stop"]))


def tcp_connection(event: str, state: str) -> tuple[str, str]:
    """Textbook: a fragment of the TCP connection state machine (RFC 793)."""
    table = {
        ("CLOSED", "open"): "LISTEN",
        ("LISTEN", "syn"): "SYN_RCVD",
        ("SYN_RCVD", "ack"): "ESTABLISHED",
        ("ESTABLISHED", "fin"): "CLOSE_WAIT",
        ("CLOSE_WAIT", "close"): "LAST_ACK",
        ("LAST_ACK", "ack"): "CLOSED",
    }
    key = (state, event)
    if key not in table:
        raise ValueError(f"illegal event {event} in {state}")
    return table[key], table[key]


CORPUS.add(tcp_connection, "CLOSED", st.sampled_from(["open", "syn", "ack", "fin", "close"]))


def number_parser(ch: str, s: tuple[int, bool, int]) -> tuple[tuple[int, bool, int], int | None]:
    """Textbook: parsing signed integers from a character stream; a number ends at a separator."""
    value, negative, digits = s
    if ch == "-" and digits == 0:
        return (0, True, 0), None
    if "0" <= ch <= "9":
        return (value * 10 + ord(ch) - ord("0"), negative, digits + 1), None
    if digits == 0:
        return (0, False, 0), None
    return (0, False, 0), -value if negative else value


CORPUS.add(number_parser, (0, False, 0), st.sampled_from(list("-0123 ,")))


def key_value_parser(line: str, config: dict[str, str]) -> tuple[dict[str, str], str]:
    """Textbook: an INI-style config reader; ``[section]`` lines prefix the keys that follow."""
    line = line.strip()
    if not line or line.startswith("#"):
        return config, "skip"
    if line.startswith("[") and line.endswith("]"):
        config["__section__"] = line[1:-1]
        return config, "section"
    key, sep, value = line.partition("=")
    if not sep:
        raise ValueError(f"bad line: {line!r}")
    section = config.get("__section__", "")
    config[f"{section}.{key.strip()}" if section else key.strip()] = value.strip()
    return config, "set"


CORPUS.add(
    key_value_parser,
    {},
    st.sampled_from(["[db]", "host = x", "port=5", "# c", "", "junk", "[web]"]),
)


def debounce(level: bool, s: tuple[bool, int]) -> tuple[tuple[bool, int], bool]:
    """Textbook: a switch debouncer; the output changes after three equal readings."""
    stable, count = s
    if level == stable:
        return (stable, 0), stable
    count += 1
    if count >= 3:
        return (level, 0), level
    return (stable, count), stable


CORPUS.add(debounce, (False, 0), st.booleans())


def hysteresis_thermostat(temp: float, heating: bool) -> tuple[bool, str]:
    """Textbook: a thermostat with hysteresis: on below 19, off above 21."""
    if temp < 19.0:
        heating = True
    elif temp > 21.0:
        heating = False
    return heating, "heat" if heating else "idle"


CORPUS.add(hysteresis_thermostat, False, st.integers(15, 25).map(float))
