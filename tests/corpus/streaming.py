"""Everyday stream operators: rate limiters, dedup, running statistics, top-k, LRU caches.

Part of the corpus of issue 13. These are the small stateful functions that
turn up in any service (often copied from a blog post or a Stack Overflow
answer): the state is what the class or the closure would have kept.
"""

from __future__ import annotations

import math

import attrs
from hypothesis import strategies as st

from tests.corpus._entry import Style

CORPUS = Style("streaming")

KEYS = st.sampled_from(["a", "b", "c"])
CLIENTS = st.sampled_from(["10.0.0.1", "10.0.0.2"])
NUMBERS = st.integers(-20, 20).map(float)


# -- rate limiters ---------------------------------------------------------------------


@attrs.frozen
class Tokens:
    """A token bucket: tokens left and the time they were counted."""

    tokens: float
    last: int


CAPACITY = 5.0
RATE = 0.5


def token_bucket(now: int, b: Tokens) -> tuple[Tokens, bool]:
    """Rate limiter: the token bucket (capacity 5, 0.5 tokens per time unit)."""
    elapsed = max(0, now - b.last)
    tokens = min(CAPACITY, b.tokens + elapsed * RATE)
    if tokens >= 1:
        return Tokens(tokens - 1, max(now, b.last)), True
    return Tokens(tokens, max(now, b.last)), False


CORPUS.add(token_bucket, Tokens(CAPACITY, 0), st.integers(0, 50))


def token_bucket_per_client(
    msg: tuple[str, int], buckets: dict[str, Tokens]
) -> tuple[dict[str, Tokens], bool]:
    """Rate limiter: a token bucket per client, created full on the first request."""
    client, now = msg
    b = buckets.get(client)
    if b is None:
        b = Tokens(CAPACITY, now)
    tokens = min(CAPACITY, b.tokens + max(0, now - b.last) * RATE)
    allowed = tokens >= 1
    buckets[client] = Tokens(tokens - 1 if allowed else tokens, max(now, b.last))
    return buckets, allowed


CORPUS.add(token_bucket_per_client, {}, st.tuples(CLIENTS, st.integers(0, 50)))


def fixed_window_limiter(
    msg: tuple[str, int], s: dict[str, tuple[int, int]]
) -> tuple[dict[str, tuple[int, int]], bool]:
    """Rate limiter: at most three requests per client per 10-unit window."""
    client, now = msg
    window = now // 10
    start, count = s.get(client, (window, 0))
    if start != window:
        start, count = window, 0
    if count >= 3:
        return s, False
    s[client] = (start, count + 1)
    return s, True


CORPUS.add(fixed_window_limiter, {}, st.tuples(CLIENTS, st.integers(0, 50)))


def sliding_log_limiter(now: int, log: list[int]) -> tuple[list[int], bool]:
    """Rate limiter: the sliding log; at most three requests in any 10 units."""
    log = [t for t in log if t > now - 10]
    if len(log) >= 3:
        return log, False
    log.append(now)
    return log, True


CORPUS.add(sliding_log_limiter, [], st.integers(0, 50))


def leaky_bucket(msg: tuple[int, int], s: tuple[int, int]) -> tuple[tuple[int, int], bool]:
    """Rate limiter: the leaky bucket as a meter (``(now, size)``), leaking one per unit."""
    now, size = msg
    level, last = s
    level = max(0, level - (now - last)) if now > last else level
    if level + size > 10:
        return (level, max(now, last)), False
    return (level + size, max(now, last)), True


CORPUS.add(leaky_bucket, (0, 0), st.tuples(st.integers(0, 50), st.integers(1, 4)))


def circuit_breaker(
    msg: tuple[int, bool], s: tuple[str, int, int]
) -> tuple[tuple[str, int, int], str]:
    """Resilience: a circuit breaker (closed, open, half-open), opening after three failures."""
    now, ok = msg
    state, failures, opened = s
    if state == "open":
        if now - opened < 10:
            return s, "rejected"
        state = "half-open"
    if ok:
        return ("closed", 0, opened), "passed"
    failures += 1
    if state == "half-open" or failures >= 3:
        return ("open", failures, now), "tripped"
    return ("closed", failures, opened), "failed"


CORPUS.add(circuit_breaker, ("closed", 0, 0), st.tuples(st.integers(0, 60), st.booleans()))


def retry_backoff(failed: bool, attempt: int) -> tuple[int, int | None]:
    """Resilience: exponential backoff; the delay before the next attempt, capped at 32."""
    if not failed:
        return 0, None
    attempt += 1
    return attempt, min(32, 2**attempt)


CORPUS.add(retry_backoff, 0, st.booleans())


# -- deduplication ---------------------------------------------------------------------


def dedup_set(event_id: str, seen: set[str]) -> tuple[set[str], bool]:
    """Dedup: the set of ids seen; replies whether this one is new."""
    if event_id in seen:
        return seen, False
    seen.add(event_id)
    return seen, True


CORPUS.add(dedup_set, set(), KEYS)


def dedup_bounded(event_id: str, recent: list[str]) -> tuple[list[str], str | None]:
    """Dedup: against the last four ids only, a bounded FIFO of ids."""
    if event_id in recent:
        return recent, None
    recent.append(event_id)
    if len(recent) > 4:
        recent.pop(0)
    return recent, event_id


CORPUS.add(dedup_bounded, [], st.sampled_from(["a", "b", "c", "d", "e", "f"]))


def dedup_consecutive(value: int, last: int | None) -> tuple[int, int | None]:
    """Dedup: drop a value equal to the previous one (``uniq``)."""
    if last is not None and value == last:
        return value, None
    return value, value


CORPUS.add(dedup_consecutive, None, st.integers(0, 2))


def dedup_within_ttl(msg: tuple[str, int], seen: dict[str, int]) -> tuple[dict[str, int], bool]:
    """Dedup: an id repeated within 10 time units is a duplicate; old entries are purged."""
    event_id, now = msg
    for k in [k for k, t in seen.items() if now - t > 10]:
        del seen[k]
    duplicate = event_id in seen
    seen[event_id] = now
    return seen, not duplicate


CORPUS.add(dedup_within_ttl, {}, st.tuples(KEYS, st.integers(0, 40)))


# -- running statistics ----------------------------------------------------------------


@attrs.frozen
class Welford:
    """Welford's running mean and variance: the count, mean and M2."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def variance(self) -> float:
        """The sample variance, 0.0 before two values."""
        return self.m2 / (self.n - 1) if self.n > 1 else 0.0


def welford_variance(x: float, w: Welford) -> tuple[Welford, float]:
    """Running statistics: Welford's online variance, with a method on the state record."""
    n = w.n + 1
    delta = x - w.mean
    mean = w.mean + delta / n
    m2 = w.m2 + delta * (x - mean)
    w = Welford(n, mean, m2)
    return w, w.variance()


CORPUS.add(welford_variance, Welford(), NUMBERS)


def welford_tuple(
    x: float, s: tuple[int, float, float]
) -> tuple[tuple[int, float, float], tuple[float, float]]:
    """Running statistics: Welford's algorithm on a plain tuple, replying mean and stddev."""
    n, mean, m2 = s
    n += 1
    delta = x - mean
    mean += delta / n
    m2 += delta * (x - mean)
    std = math.sqrt(m2 / n)
    return (n, mean, m2), (mean, std)


CORPUS.add(welford_tuple, (0, 0.0, 0.0), NUMBERS)


def exponential_moving_average(x: float, ema: float | None) -> tuple[float, float]:
    """Running statistics: the EMA with alpha 0.25, seeded by the first value."""
    ema = x if ema is None else 0.25 * x + 0.75 * ema
    return ema, ema


CORPUS.add(exponential_moving_average, None, NUMBERS)


def running_median(x: int, values: list[int]) -> tuple[list[int], float]:
    """Running statistics: the median of everything so far, with ``sorted``."""
    values.append(x)
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2 == 1:
        return values, float(ordered[mid])
    return values, (ordered[mid - 1] + ordered[mid]) / 2


CORPUS.add(running_median, [], st.integers(-9, 9))


def histogram(x: int, bins: dict[int, int]) -> tuple[dict[int, int], str]:
    """Running statistics: a histogram with bins of width 5 and an int key per bin."""
    b = x // 5 * 5
    bins[b] = bins.get(b, 0) + 1
    return bins, " ".join(f"{k}:{v}" for k, v in sorted(bins.items()))


CORPUS.add(histogram, {}, st.integers(-12, 12))


def percentile_tracker(x: int, values: list[int]) -> tuple[list[int], int]:
    """Running statistics: the 90th percentile by nearest rank over the last ten values."""
    values = [*values[-9:], x]
    ranked = sorted(values)
    rank = math.ceil(0.9 * len(ranked)) - 1
    return values, ranked[rank]


CORPUS.add(percentile_tracker, [], st.integers(0, 99))


# -- top-k, word counts, caches --------------------------------------------------------


def top_k_words(word: str, counts: dict[str, int]) -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Top-k: the three most frequent words so far, ties by word."""
    counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return counts, ranked[:3]


CORPUS.add(top_k_words, {}, st.sampled_from(["the", "a", "of", "to", "in"]))


def top_k_heap_style(x: int, top: list[int]) -> tuple[list[int], list[int]]:
    """Top-k: the three largest values, kept as a sorted list by insertion."""
    pos = len(top)
    for i, y in enumerate(top):
        if x > y:
            pos = i
            break
    top.insert(pos, x)
    del top[3:]
    return top, top


CORPUS.add(top_k_heap_style, [], st.integers(-9, 9))


def heavy_hitters(word: str, counters: dict[str, int]) -> tuple[dict[str, int], list[str]]:
    """Top-k: the Misra-Gries frequent-items sketch with two counters."""
    if word in counters:
        counters[word] += 1
    elif len(counters) < 2:
        counters[word] = 1
    else:
        for k in list(counters):
            counters[k] -= 1
            if counters[k] == 0:
                del counters[k]
    return counters, sorted(counters)


CORPUS.add(heavy_hitters, {}, st.sampled_from(["x", "y", "z"]))


def word_count_counter(line: str, counts: dict[str, int]) -> tuple[dict[str, int], dict[str, int]]:
    """Word count: lines in, the counts of this line's words out (a dict comprehension)."""
    words = line.split()
    for w in words:
        counts[w] = counts.get(w, 0) + 1
    return counts, {w: counts[w] for w in words}


CORPUS.add(word_count_counter, {}, st.sampled_from(["a b", "b c c", "", "a"]))


def char_frequencies(text: str, freq: dict[str, int]) -> tuple[dict[str, int], str]:
    """Word count: letter frequencies, replying with the most common letter."""
    for ch in text:
        if ch.isalpha():
            freq[ch] = freq.get(ch, 0) + 1
    if not freq:
        return freq, ""
    return freq, max(freq, key=lambda c: (freq[c], c))


CORPUS.add(char_frequencies, {}, st.sampled_from(["abc", "aab", "!!", "zz"]))


@attrs.frozen
class Lru:
    """An LRU cache of capacity 3: the entries, and the keys from least to most recent."""

    data: dict[str, int]
    order: list[str]


def lru_cache(msg: tuple[str, int | None], c: Lru) -> tuple[Lru, int | None]:
    """LRU cache: ``(key, value)`` puts, ``(key, None)`` gets; the least recent is evicted."""
    key, value = msg
    if value is None:
        if key not in c.data:
            return c, None
        c.order.remove(key)
        c.order.append(key)
        return c, c.data[key]
    if key in c.data:
        c.order.remove(key)
    elif len(c.data) >= 3:
        oldest = c.order.pop(0)
        del c.data[oldest]
    c.data[key] = value
    c.order.append(key)
    return c, value


CORPUS.add(
    lru_cache,
    Lru({}, []),
    st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.one_of(st.none(), st.integers(0, 9))),
)


def lru_cache_dict_order(
    msg: tuple[str, int], cache: dict[str, int]
) -> tuple[dict[str, int], int | None]:
    """LRU cache: relying on dict order, re-inserting on access, evicting ``next(iter(d))``."""
    key, value = msg
    if key in cache:
        old = cache.pop(key)
        cache[key] = old
        return cache, old
    if len(cache) >= 3:
        del cache[next(iter(cache))]
    cache[key] = value
    return cache, None


CORPUS.add(
    lru_cache_dict_order, {}, st.tuples(st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 9))
)


def lfu_counter(key: str, s: dict[str, int]) -> tuple[dict[str, int], str | None]:
    """LFU cache: capacity 2; a new key evicts the least frequently used one."""
    if key in s:
        s[key] += 1
        return s, None
    evicted = None
    if len(s) >= 2:
        evicted = min(s, key=lambda k: (s[k], k))
        del s[evicted]
    s[key] = 1
    return s, evicted


CORPUS.add(lfu_counter, {}, st.sampled_from(["a", "b", "c"]))


def bloom_like_seen(word: str, bits: list[bool]) -> tuple[list[bool], bool]:
    """Sketch: a tiny Bloom filter with two hash functions over 16 bits."""
    h1 = sum(ord(c) for c in word) % len(bits)
    h2 = sum((i + 1) * ord(c) for i, c in enumerate(word)) % len(bits)
    maybe = bits[h1] and bits[h2]
    bits[h1] = True
    bits[h2] = True
    return bits, maybe


CORPUS.add(bloom_like_seen, [False] * 16, st.sampled_from(["ab", "ba", "cd", "x"]))


def count_min_sketch(word: str, rows: list[list[int]]) -> tuple[list[list[int]], int]:
    """Sketch: a count-min sketch of two rows of eight counters."""
    estimates = []
    for i, row in enumerate(rows):
        j = (sum(ord(c) for c in word) * (i + 3)) % len(row)
        row[j] += 1
        estimates.append(row[j])
    return rows, min(estimates)


CORPUS.add(count_min_sketch, [[0] * 8, [0] * 8], st.sampled_from(["ab", "ba", "cd", "x"]))
