"""Stateful machines over many keys, in the Python subset, for step_cost.py.

Each is written the way a Python programmer would write it (changing its
dict in place), compiled by the front end, and measured against the very
same function run as plain Python (``fn``): the plain function is the
hand-written baseline, and the differential tests already hold that the two
compute the same.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import attrs

import arrowloop

KEYS = 100_000
GAP = 30
RATE = 0.5
CAPACITY = 10.0


@attrs.frozen
class Stats:
    """Per key: how many readings, and their sum."""

    count: int
    total: int


@attrs.frozen
class Reading:
    """One reading of a key."""

    key: str
    value: int


@arrowloop.statemachine(init={})
def aggregate(msg: Reading, stats: dict[str, Stats]) -> tuple[dict[str, Stats], Stats]:
    """Per-key count and sum."""
    old = stats.get(msg.key)
    # Statements, not a conditional expression or `and`: the subset narrows
    # an optional only in an if statement's branches so far.
    if old is None:  # noqa: SIM108
        new = Stats(1, msg.value)
    else:
        new = Stats(old.count + 1, old.total + msg.value)
    stats[msg.key] = new
    return stats, new


@attrs.frozen
class Event:
    """A user did something at time ``ts``."""

    user: str
    ts: int


@arrowloop.statemachine(init={})
def sessionize(e: Event, sessions: dict[str, list[int]]) -> tuple[dict[str, list[int]], int]:
    """Group each user's events into sessions; a gap longer than GAP closes
    one, and its length is the output (0 while it is open)."""
    times = sessions.get(e.user)
    if times is not None:  # noqa: SIM102 (see aggregate)
        if e.ts - times[-1] > GAP:
            n = len(times)
            sessions[e.user] = [e.ts]
            return sessions, n
    sessions.setdefault(e.user, []).append(e.ts)
    return sessions, 0


@attrs.frozen
class Bucket:
    """A key's tokens and when they were last counted."""

    tokens: float
    last: int


@attrs.frozen
class Request:
    """A request of a key at time ``ts``."""

    key: str
    ts: int


@arrowloop.statemachine(init={})
def token_bucket(r: Request, buckets: dict[str, Bucket]) -> tuple[dict[str, Bucket], bool]:
    """A rate limiter per key: RATE tokens a tick, at most CAPACITY."""
    b = buckets.get(r.key, Bucket(CAPACITY, r.ts))
    tokens = min(CAPACITY, b.tokens + (r.ts - b.last) * RATE)
    ok = tokens >= 1.0
    if ok:
        tokens = tokens - 1.0
    buckets[r.key] = Bucket(tokens, r.ts)
    return buckets, ok


@attrs.frozen
class Case:
    """One machine to measure: its messages and a starting state."""

    name: str
    machine: arrowloop.PyMachine
    messages: Callable[[int], list[Any]]
    state: Callable[[], Any]

    @property
    def by_hand(self) -> Callable[[Any, Any], tuple[Any, Any]]:
        """The plain Python function."""
        fn: Callable[[Any, Any], tuple[Any, Any]] = self.machine.fn
        return fn


def _keys(n: int, seed: int) -> list[str]:
    rnd = random.Random(seed)
    return [f"key{rnd.randrange(KEYS)}" for _ in range(n)]


def _readings(n: int) -> list[Reading]:
    return [Reading(k, i % 100) for i, k in enumerate(_keys(n, 7))]


def _events(n: int) -> list[Event]:
    return [Event(k, i // 50) for i, k in enumerate(_keys(n, 8))]


def _requests(n: int) -> list[Request]:
    return [Request(k, i // 1000) for i, k in enumerate(_keys(n, 9))]


CASES: list[Case] = [
    Case("aggregate", aggregate, _readings, lambda: {f"key{k}": Stats(1, k) for k in range(KEYS)}),
    Case("sessionize", sessionize, _events, lambda: {f"key{k}": [0] for k in range(KEYS)}),
    Case(
        "token_bucket",
        token_bucket,
        _requests,
        lambda: {f"key{k}": Bucket(CAPACITY, 0) for k in range(KEYS)},
    ),
]
