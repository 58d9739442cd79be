"""bytewax style: ``stateful_map`` mappers, windows and sessionizers.

Part of the corpus of issue 13. In bytewax a mapper is
``def mapper(state, value) -> (state, emit)`` applied per key, with ``None``
as the state of a new key (``if state is None: state = ...``). Here the same
bodies take ``(msg, state)``; where bytewax keys the stream for the user, the
message carries the key and the state is the per-key dict bytewax keeps.
"""

from __future__ import annotations

import attrs
from hypothesis import strategies as st

from tests.corpus._entry import Style

CORPUS = Style("bytewax")

KEYS = st.sampled_from(["a", "b", "c"])
SMALL = st.integers(-5, 5)
KEYED = st.tuples(KEYS, SMALL)
TIMED = st.tuples(KEYS, st.integers(0, 30))


def running_count(value: str, count: int | None) -> tuple[int, int]:
    """bytewax: the ``stateful_map`` counter, starting from ``None`` for a new key."""
    if count is None:
        count = 0
    count += 1
    return count, count


CORPUS.add(running_count, None, KEYS)


def running_sum(value: int, total: int | None) -> tuple[int, int]:
    """bytewax: the running sum of a key's values, ``None`` before the first."""
    if total is None:
        total = 0
    total += value
    return total, total


CORPUS.add(running_sum, None, SMALL)


def running_max(value: int, best: int | None) -> tuple[int, int]:
    """bytewax: the running maximum, the first value seeding it."""
    if best is None or value > best:
        best = value
    return best, best


CORPUS.add(running_max, None, SMALL)


def keyed_counts(
    msg: tuple[str, int], counts: dict[str, int]
) -> tuple[dict[str, int], tuple[str, int]]:
    """bytewax: the per-key running count that ``stateful_map`` keeps, as one dict."""
    key, _ = msg
    counts[key] = counts.get(key, 0) + 1
    return counts, (key, counts[key])


CORPUS.add(keyed_counts, {}, KEYED)


def keyed_sums_defaultdict_style(
    msg: tuple[str, int], sums: dict[str, int]
) -> tuple[dict[str, int], int]:
    """bytewax: per-key sums written the ``if key not in d: d[key] = 0`` way."""
    key, value = msg
    if key not in sums:
        sums[key] = 0
    sums[key] += value
    return sums, sums[key]


CORPUS.add(keyed_sums_defaultdict_style, {}, KEYED)


@attrs.frozen
class Avg:
    """A running average's state: the sum and the count."""

    total: float
    count: int


def running_average(value: float, acc: Avg | None) -> tuple[Avg, float]:
    """bytewax: the running mean with the first-item idiom on a record."""
    if acc is None:
        acc = Avg(0.0, 0)
    acc = Avg(acc.total + value, acc.count + 1)
    return acc, acc.total / acc.count


CORPUS.add(running_average, None, st.integers(-50, 50).map(float))


def keyed_average(
    msg: tuple[str, float], accs: dict[str, Avg]
) -> tuple[dict[str, Avg], tuple[str, float]]:
    """bytewax: per-key running means in a dict of records."""
    key, value = msg
    acc = accs.get(key, Avg(0.0, 0))
    acc = Avg(acc.total + value, acc.count + 1)
    accs[key] = acc
    return accs, (key, round(acc.total / acc.count, 2))


CORPUS.add(keyed_average, {}, st.tuples(KEYS, st.integers(-50, 50).map(float)))


def anomaly_detector(value: float, last: list[float]) -> tuple[list[float], bool]:
    """bytewax: the anomaly-detection mapper: flag a value far from the last five's mean."""
    flagged = False
    if len(last) >= 3:
        mean = sum(last) / len(last)
        flagged = abs(value - mean) > 10
    last.append(value)
    if len(last) > 5:
        last.pop(0)
    return last, flagged


CORPUS.add(anomaly_detector, [], st.integers(0, 40).map(float))


def tumbling_window_count(
    msg: tuple[str, int], s: tuple[int, dict[str, int]]
) -> tuple[tuple[int, dict[str, int]], dict[str, int] | None]:
    """bytewax: a 10-second tumbling window of counts per key, emitted when time passes it."""
    key, ts = msg
    window, counts = s
    start = ts - ts % 10
    if start > window:
        closed = counts
        return (start, {key: 1}), closed
    counts[key] = counts.get(key, 0) + 1
    return (window, counts), None


CORPUS.add(tumbling_window_count, (0, {}), TIMED)


@attrs.frozen
class Window:
    """A tumbling window being filled: its start and the values in it."""

    start: int
    values: list[int]


def tumbling_window_max(msg: tuple[int, int], w: Window | None) -> tuple[Window | None, int | None]:
    """bytewax: the max per 10-unit tumbling window, emitted when the window closes."""
    ts, value = msg
    start = ts // 10 * 10
    if w is None:
        return Window(start, [value]), None
    if start != w.start:
        return Window(start, [value]), max(w.values)
    w.values.append(value)
    return w, None


CORPUS.add(tumbling_window_max, None, st.tuples(st.integers(0, 40), SMALL))


def sliding_window_sum(value: int, window: list[int]) -> tuple[list[int], int]:
    """bytewax: the sum over the last four values, a sliding window of items."""
    window.append(value)
    if len(window) > 4:
        del window[0]
    return window, sum(window)


CORPUS.add(sliding_window_sum, [], SMALL)


def sliding_window_slices(value: int, window: list[int]) -> tuple[list[int], float]:
    """bytewax: a moving average over a window kept by slicing."""
    window = [*window, value][-3:]
    return window, sum(window) / len(window)


CORPUS.add(sliding_window_slices, [], SMALL)


@attrs.frozen
class Session:
    """A user session: when it began, its last event, and how many events it had."""

    start: int
    last: int
    events: int


def sessionizer(ts: int, session: Session | None) -> tuple[Session, Session | None]:
    """bytewax: the sessionizer; a gap of more than 5 closes the session and emits it."""
    if session is None:
        return Session(ts, ts, 1), None
    if ts - session.last > 5:
        return Session(ts, ts, 1), session
    return attrs.evolve(session, last=ts, events=session.events + 1), None


CORPUS.add(sessionizer, None, st.integers(0, 100))


def keyed_sessionizer(
    msg: tuple[str, int], sessions: dict[str, Session]
) -> tuple[dict[str, Session], list[Session]]:
    """bytewax: sessions per user, closing every session idle longer than the gap."""
    user, ts = msg
    closed = [s for u, s in sessions.items() if ts - s.last > 5 and u != user]
    for u in [u for u, s in sessions.items() if ts - s.last > 5 and u != user]:
        del sessions[u]
    s = sessions.get(user)
    if s is None or ts - s.last > 5:
        if s is not None:
            closed.append(s)
        sessions[user] = Session(ts, ts, 1)
    else:
        sessions[user] = Session(s.start, max(s.last, ts), s.events + 1)
    return sessions, closed


CORPUS.add(keyed_sessionizer, {}, TIMED)


def session_durations(
    msg: tuple[str, int], last_seen: dict[str, tuple[int, int]]
) -> tuple[dict[str, tuple[int, int]], int]:
    """bytewax: the running session length per user, a pair (start, last) per key."""
    user, ts = msg
    if user in last_seen:
        start, last = last_seen[user]
        if ts - last <= 10:
            last_seen[user] = (start, ts)
            return last_seen, ts - start
    last_seen[user] = (ts, ts)
    return last_seen, 0


CORPUS.add(session_durations, {}, TIMED)


def dedupe_mapper(value: str, seen: set[str] | None) -> tuple[set[str], str | None]:
    """bytewax: drop items seen before for this key (a set starting as ``None``)."""
    if seen is None:
        seen = set()
    if value in seen:
        return seen, None
    seen.add(value)
    return seen, value


CORPUS.add(dedupe_mapper, None, st.sampled_from(["x", "y", "z"]))


def first_and_last(
    value: int, s: tuple[int, int] | None
) -> tuple[tuple[int, int], tuple[int, int]]:
    """bytewax: the first and the latest value of a key."""
    if s is None:
        s = (value, value)
    first, _ = s
    return (first, value), (first, value)


CORPUS.add(first_and_last, None, SMALL)


def collect_batch(value: int, batch: list[int]) -> tuple[list[int], list[int] | None]:
    """bytewax: ``collect`` into batches of three; a full batch is emitted and cleared."""
    batch.append(value)
    if len(batch) == 3:
        return [], batch
    return batch, None


CORPUS.add(collect_batch, [], SMALL)


def word_count_mapper(
    line: str, counts: dict[str, int]
) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """bytewax: the wordcount example's ``flat_map`` and ``stateful_map`` in one step."""
    out: list[tuple[str, int]] = []
    for word in line.lower().split():
        counts[word] = counts.get(word, 0) + 1
        out.append((word, counts[word]))
    return counts, out


CORPUS.add(word_count_mapper, {}, st.sampled_from(["The cat", "the dog ran", "", "Cat cat"]))


def word_count_strip(line: str, counts: dict[str, int]) -> tuple[dict[str, int], int]:
    """bytewax: word counts with punctuation stripped by a comprehension."""
    words = [w.strip(".,!?") for w in line.split(" ")]
    for w in words:
        if w:
            counts[w] = counts.get(w, 0) + 1
    return counts, len(counts)


CORPUS.add(word_count_strip, {}, st.sampled_from(["a, b.", "b!", "c a?", " "]))


def late_event_filter(ts: int, watermark: int) -> tuple[int, int | None]:
    """bytewax: a watermark 5 behind the latest event; events older than it are dropped."""
    watermark = max(watermark, ts - 5)
    if ts < watermark:
        return watermark, None
    return watermark, ts


CORPUS.add(late_event_filter, 0, st.integers(0, 40))


def out_of_order_buffer(ts: int, buf: list[int]) -> tuple[list[int], list[int]]:
    """bytewax: reorder events within a lateness of 3; emit those old enough, sorted."""
    buf.append(ts)
    horizon = max(buf) - 3
    ready = sorted(t for t in buf if t <= horizon)
    buf = [t for t in buf if t > horizon]
    return buf, ready


CORPUS.add(out_of_order_buffer, [], st.integers(0, 20))


def join_two_streams(
    msg: tuple[str, str, int], s: dict[str, dict[str, int]]
) -> tuple[dict[str, dict[str, int]], tuple[int, int] | None]:
    """bytewax: the join of two keyed streams ("left", "right"), emitted when both sides arrived."""
    side, key, value = msg
    s.setdefault(key, {})[side] = value
    sides = s[key]
    if "left" in sides and "right" in sides:
        del s[key]
        return s, (sides["left"], sides["right"])
    return s, None


CORPUS.add(join_two_streams, {}, st.tuples(st.sampled_from(["left", "right"]), KEYS, SMALL))


def rolling_min_max(value: int, s: tuple[int, int] | None) -> tuple[tuple[int, int], str]:
    """bytewax: the running range of a sensor, as a formatted string."""
    if s is None:
        lo, hi = value, value
    else:
        lo, hi = min(s[0], value), max(s[1], value)
    return (lo, hi), f"[{lo}, {hi}]"


CORPUS.add(rolling_min_max, None, SMALL)


def fold_window_into_dict(
    msg: tuple[str, int], acc: dict[str, list[int]]
) -> tuple[dict[str, list[int]], int]:
    """bytewax: ``fold_window`` building a list per key, replying with the key's list size."""
    key, value = msg
    acc.setdefault(key, []).append(value)
    return acc, len(acc[key])


CORPUS.add(fold_window_into_dict, {}, KEYED)


def count_distinct_per_key(
    msg: tuple[str, int], seen: dict[str, set[int]]
) -> tuple[dict[str, set[int]], int]:
    """bytewax: the number of distinct values per key, a set per key."""
    key, value = msg
    if key not in seen:
        seen[key] = set()
    seen[key].add(value)
    return seen, len(seen[key])


CORPUS.add(count_distinct_per_key, {}, KEYED)
