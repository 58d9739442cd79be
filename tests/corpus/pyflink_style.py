"""PyFlink style: keyed process functions over ValueState, ListState and MapState.

Part of the corpus of issue 13. A PyFlink ``KeyedProcessFunction`` reads its
state with ``self.state.value()``, which is ``None`` for a new key, and
writes it back with ``update``; the idiom is ``if state is None: state = ...``.
Here the state handle becomes the state parameter and ``update`` becomes
returning it; a ``MapState`` is a dict and a ``ListState`` a list.
"""

from __future__ import annotations

import attrs
from hypothesis import strategies as st

from tests.corpus._entry import Style

CORPUS = Style("pyflink")

KEYS = st.sampled_from(["k1", "k2", "k3"])
VALUES = st.integers(-10, 10)


def value_state_count(value: int, count: int | None) -> tuple[int, tuple[int, int]]:
    """PyFlink: a ``ValueState`` counter (``if current is None: current = 0``)."""
    current = count
    if current is None:
        current = 0
    current += 1
    return current, (value, current)


CORPUS.add(value_state_count, None, VALUES)


def count_window_average(
    value: int, s: tuple[int, int] | None
) -> tuple[tuple[int, int] | None, float | None]:
    """PyFlink: the docs' ``CountWindowAverage``: after two values, emit their mean and clear."""
    if s is None:
        s = (0, 0)
    count, total = s[0] + 1, s[1] + value
    if count >= 2:
        return None, total / count
    return (count, total), None


CORPUS.add(count_window_average, None, VALUES)


@attrs.frozen
class CountWithTimestamp:
    """The docs' ``CountWithTimestamp``: a key, its count and the last modification time."""

    key: str
    count: int
    last_modified: int


def count_with_timeout(
    msg: tuple[str, int], s: CountWithTimestamp | None
) -> tuple[CountWithTimestamp, str | None]:
    """PyFlink: the docs' timeout example; a key silent for 60 emits its count."""
    key, ts = msg
    if s is None:
        s = CountWithTimestamp(key, 0, ts)
    out = None
    if ts >= s.last_modified + 60:
        out = f"{s.key}: {s.count}"
    s = CountWithTimestamp(key, s.count + 1, ts)
    return s, out


CORPUS.add(count_with_timeout, None, st.tuples(KEYS, st.integers(0, 300)))


def map_state_word_count(word: str, counts: dict[str, int]) -> tuple[dict[str, int], int]:
    """PyFlink: ``MapState`` word count: ``contains``, ``get``, ``put``."""
    if counts.get(word) is None:
        counts[word] = 1
    else:
        counts[word] = counts[word] + 1
    return counts, counts[word]


CORPUS.add(map_state_word_count, {}, st.sampled_from(["to", "be", "or", "not"]))


def list_state_buffer(value: int, buffer: list[int]) -> tuple[list[int], list[int]]:
    """PyFlink: a ``ListState`` buffer flushed when it holds five values."""
    buffer.append(value)
    if len(buffer) < 5:
        return buffer, []
    out = list(buffer)
    buffer.clear()
    return buffer, out


CORPUS.add(list_state_buffer, [], VALUES)


def value_state_dedup(event_id: str, seen: bool | None) -> tuple[bool, str | None]:
    """PyFlink: per-key deduplication with a boolean ``ValueState`` (the key is the event id)."""
    if seen is None:
        return True, event_id
    return seen, None


CORPUS.add(value_state_dedup, None, st.sampled_from(["e1", "e2"]))


def keyed_dedup(event_id: str, seen: dict[str, bool]) -> tuple[dict[str, bool], bool]:
    """PyFlink: deduplication across keys, a ``MapState[str, bool]``; replies whether new."""
    if seen.get(event_id):
        return seen, False
    seen[event_id] = True
    return seen, True


CORPUS.add(keyed_dedup, {}, st.sampled_from(["e1", "e2", "e3"]))


@attrs.frozen
class Transaction:
    """A card transaction: account and amount in cents."""

    account: str
    amount: int


TXNS = st.builds(Transaction, st.sampled_from(["acc1", "acc2"]), st.integers(0, 1000))


def fraud_detector(txn: Transaction, flag: bool | None) -> tuple[bool | None, str | None]:
    """PyFlink: the fraud-detection walkthrough: a tiny transaction then a large one alerts."""
    if flag is not None and flag and txn.amount > 500:
        return None, f"alert {txn.account}"
    if txn.amount < 1:
        return True, None
    return None, None


CORPUS.add(fraud_detector, None, TXNS)


def fraud_detector_v2(
    txn: Transaction, s: tuple[bool, int] | None
) -> tuple[tuple[bool, int] | None, str | None]:
    """PyFlink: the walkthrough's second version: the flag expires one minute (60 events) later."""
    if s is not None:
        small, timer = s
        if small and txn.amount > 500 and timer > 0:
            return None, f"alert {txn.account}"
        s = (small, timer - 1) if timer > 1 else None
    if txn.amount < 10:
        s = (True, 60)
    return s, None


CORPUS.add(fraud_detector_v2, None, TXNS)


def per_account_fraud(txn: Transaction, flags: dict[str, bool]) -> tuple[dict[str, bool], bool]:
    """PyFlink: the fraud detector keyed by account, its flags in a ``MapState``."""
    alert = flags.pop(txn.account, False) and txn.amount > 500
    if txn.amount < 10:
        flags[txn.account] = True
    return flags, alert


CORPUS.add(per_account_fraud, {}, TXNS)


def reduce_state_max(value: int, best: int | None) -> tuple[int, int]:
    """PyFlink: a ``ReducingState`` with ``max`` as the reduce function."""
    best = value if best is None else max(best, value)
    return best, best


CORPUS.add(reduce_state_max, None, VALUES)


def aggregating_state_mean(value: float, acc: tuple[float, int]) -> tuple[tuple[float, int], float]:
    """PyFlink: an ``AggregatingState`` for the mean: accumulator (sum, count), result sum/count."""
    total, n = acc
    acc = (total + value, n + 1)
    return acc, acc[0] / acc[1]


CORPUS.add(aggregating_state_mean, (0.0, 0), st.integers(-30, 30).map(float))


@attrs.frozen
class Reading:
    """A sensor reading with its event time."""

    sensor: str
    ts: int
    temperature: float


READINGS = st.builds(
    Reading, st.sampled_from(["s1", "s2"]), st.integers(0, 100), st.integers(10, 40).map(float)
)


def temperature_rise(r: Reading, last: dict[str, float]) -> tuple[dict[str, float], str | None]:
    """PyFlink: alert when a sensor's temperature rises by more than 5 from its last reading."""
    prev = last.get(r.sensor)
    last[r.sensor] = r.temperature
    if prev is not None and r.temperature - prev > 5:
        return last, f"{r.sensor} +{r.temperature - prev:.1f}"
    return last, None


CORPUS.add(temperature_rise, {}, READINGS)


def event_time_max_per_window(
    r: Reading, s: dict[int, float]
) -> tuple[dict[int, float], list[tuple[int, float]]]:
    """PyFlink: the max temperature per 20-unit window, firing windows the watermark passed."""
    window = r.ts // 20
    s[window] = max(s.get(window, r.temperature), r.temperature)
    watermark = r.ts - 10
    fired = [(w, t) for w, t in sorted(s.items()) if (w + 1) * 20 <= watermark]
    for w, _ in fired:
        del s[w]
    return s, fired


CORPUS.add(event_time_max_per_window, {}, READINGS)


def stateful_enrichment(
    msg: tuple[str, str, str], s: dict[str, str]
) -> tuple[dict[str, str], str | None]:
    """PyFlink: a connected stream: "dim" events store a name, "fact" events read it."""
    kind, key, value = msg
    if kind == "dim":
        s[key] = value
        return s, None
    return s, f"{value}@{s[key]}" if key in s else None


CORPUS.add(
    stateful_enrichment,
    {},
    st.tuples(st.sampled_from(["dim", "fact"]), KEYS, st.sampled_from(["x", "y"])),
)


def broadcast_rules(
    msg: tuple[str, str, int], rules: dict[str, int]
) -> tuple[dict[str, int], bool | None]:
    """PyFlink: the broadcast-state pattern: rule updates and events checked against the rules."""
    kind, name, value = msg
    if kind == "rule":
        rules[name] = value
        return rules, None
    threshold = rules.get(name)
    if threshold is None:
        return rules, None
    return rules, value > threshold


CORPUS.add(
    broadcast_rules,
    {},
    st.tuples(st.sampled_from(["rule", "event"]), st.sampled_from(["cpu", "mem"]), VALUES),
)


def top_n_per_key(
    msg: tuple[str, int], s: dict[str, list[int]]
) -> tuple[dict[str, list[int]], list[int]]:
    """PyFlink: the top three values per key in a ``MapState`` of lists, kept sorted descending."""
    key, value = msg
    top = s.get(key, [])
    top = sorted([*top, value], reverse=True)[:3]
    s[key] = top
    return s, top


CORPUS.add(top_n_per_key, {}, st.tuples(KEYS, VALUES))


def state_ttl(
    msg: tuple[str, int], s: dict[str, tuple[int, int]]
) -> tuple[dict[str, tuple[int, int]], int]:
    """PyFlink: state with a TTL of 30: an entry older than that reads as missing."""
    key, ts = msg
    value, written = s.get(key, (0, ts))
    if ts - written > 30:
        value = 0
    s[key] = (value + 1, ts)
    return s, value + 1


CORPUS.add(state_ttl, {}, st.tuples(KEYS, st.integers(0, 100)))


def interval_join(
    msg: tuple[str, int], s: tuple[list[int], list[int]]
) -> tuple[tuple[list[int], list[int]], list[tuple[int, int]]]:
    """PyFlink: an interval join of orders and shipments within 5 time units."""
    side, ts = msg
    orders, shipments = s
    if side == "order":
        orders.append(ts)
        pairs = [(ts, t) for t in shipments if 0 <= t - ts <= 5]
    else:
        shipments.append(ts)
        pairs = [(o, ts) for o in orders if 0 <= ts - o <= 5]
    return (orders, shipments), pairs


CORPUS.add(
    interval_join, ([], []), st.tuples(st.sampled_from(["order", "ship"]), st.integers(0, 30))
)


def process_function_side_output(
    value: int, s: tuple[int, int]
) -> tuple[tuple[int, int], tuple[str, int]]:
    """PyFlink: a process function with a side output for negative values, counting both."""
    main, side = s
    if value < 0:
        return (main, side + 1), ("side", value)
    return (main + 1, side), ("main", value)


CORPUS.add(process_function_side_output, (0, 0), VALUES)


def pattern_a_then_b(event: str, s: list[str]) -> tuple[list[str], bool]:
    """PyFlink CEP by hand: detect ``login`` followed by ``fail`` three times in a row."""
    if event == "login":
        return ["login"], False
    if s and event == "fail":
        s.append("fail")
        if s.count("fail") >= 3:
            return [], True
        return s, False
    return [], False


CORPUS.add(pattern_a_then_b, [], st.sampled_from(["login", "fail", "ok"]))


def coprocess_balance(msg: tuple[str, int], balance: int | None) -> tuple[int, str]:
    """PyFlink: a ``CoProcessFunction`` over deposits and debits, rejecting overdrafts."""
    kind, amount = msg
    if balance is None:
        balance = 0
    if kind == "deposit":
        balance += amount
    elif amount > balance:
        return balance, "rejected"
    else:
        balance -= amount
    return balance, str(balance)


CORPUS.add(
    coprocess_balance, None, st.tuples(st.sampled_from(["deposit", "debit"]), st.integers(0, 9))
)
