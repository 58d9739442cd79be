"""A pipeline with a sharded stage for the distributed tests,
``tests.nats_shards_pipeline:SPEC`` (served per segment, the sharded stage per
shard with ``--shards``), and its sequential model.

- ``number``: ``int -> (x, n)``, ``n`` counts the items so far;
- ``per_key`` (3 shards by ``x % 24``): ``(x, n) -> (x, n, c, h)``, ``c`` the
  items of the key so far and ``h`` a running hash of them, so an item of
  the key lost, repeated or reordered changes every later output of it;
- ``tally``: passes items on marked with its version and counts them
  (after the shards, keys interleave in no fixed order: its state is the
  count).
"""

from __future__ import annotations

from typing import Any

from arrowloop import arrow, pipeline, stage, statemachine

#: The pipeline's name on the broker: the supervisor name `serve` gives it.
PIPELINE = "SPEC"
SHARDS = 3
KEYS = 24


@statemachine(init=0)
def number(x: int, n: int) -> tuple[int, tuple[int, int]]:
    """Number the items."""
    return n + 1, (x, n + 1)


@arrow
def by_key(item: tuple[int, int]) -> int:
    """The item's key."""
    return item[0] % 24


@statemachine(init={})
def per_key(
    item: tuple[int, int], state: dict[int, tuple[int, int]]
) -> tuple[dict[int, tuple[int, int]], tuple[int, int, int, int]]:
    """Per key, the count and a running hash of its items."""
    x, n = item
    k = x % 24
    c, h = state.get(k, (0, 7))
    h2 = (h * 31 + x * 7 + n) % 1000000007
    state[k] = (c + 1, h2)
    return state, (x, n, c + 1, h2)


@statemachine(init={})
def per_key_twice(
    item: tuple[int, int], state: dict[int, tuple[int, int]]
) -> tuple[dict[int, tuple[int, int]], tuple[int, int, int, int]]:
    """The next version of ``per_key`` (same types): each item hashes twice."""
    x, n = item
    k = x % 24
    c, h = state.get(k, (0, 7))
    h2 = (h * 31 + x * 14 + n) % 1000000007
    state[k] = (c + 1, h2)
    return state, (x, n, c + 1, h2)


@statemachine(init={})
def per_key_marked(
    item: tuple[int, int], state: dict[int, tuple[int, int, int]]
) -> tuple[dict[int, tuple[int, int, int]], tuple[int, int, int, int]]:
    """``per_key_twice`` with another state type (a change to it migrates):
    each key's count, hash and a mark."""
    x, n = item
    k = x % 24
    c, h, m = state.get(k, (0, 7, 1))
    h2 = (h * 31 + x * 14 + n) % 1000000007
    state[k] = (c + 1, h2, m)
    return state, (x, n, c + 1, h2)


@arrow
def mark(state: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int, int]]:
    """The migration to ``per_key_marked``: each key's count and hash, marked."""
    return {k: (v[0], v[1], 1) for k, v in state.items()}


@arrow
def mark_badly(state: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int, int]]:
    """A migration that raises on the shard holding key 5 only (a division by zero)."""
    return {k: (v[0], v[1], 1 // (k - 5)) for k, v in state.items()}


@statemachine(init=0)
def tally(item: tuple[int, int, int, int], t: int) -> tuple[int, tuple[int, int, int, int, int]]:
    """Count the items, passing them on marked 1 (this version)."""
    x, n, c, h = item
    return t + 1, (x, n, c, h, 1)


@statemachine(init=0)
def tally_v2(item: tuple[int, int, int, int], t: int) -> tuple[int, tuple[int, int, int, int, int]]:
    """The next version of ``tally`` (same types): marks the items 2."""
    x, n, c, h = item
    return t + 1, (x, n, c, h, 2)


@statemachine(init=0)
def number_wide(x: int, n: int) -> tuple[int, tuple[int, tuple[int, int]]]:
    """The next version of ``number`` with another output type (the channel
    into the shards changes): each item numbered and tagged 2."""
    return n + 1, (x, (n + 1, 2))


@statemachine(init={})
def per_key_wide(
    item: tuple[int, tuple[int, int]], state: dict[int, tuple[int, int, int]]
) -> tuple[dict[int, tuple[int, int, int]], tuple[int, int, int, int, int]]:
    """``per_key_marked`` reading ``number_wide``'s items and writing five
    fields (another input, state and output type): the tag passed on."""
    x, p = item
    n, t = p
    k = x % 24
    c, h, m = state.get(k, (0, 7, 1))
    h2 = (h * 31 + x * 14 + n) % 1000000007
    state[k] = (c + 1, h2, m)
    return state, (x, n, c + 1, h2, t)


@statemachine(init=0)
def tally_wide(
    item: tuple[int, int, int, int, int], t: int
) -> tuple[int, tuple[int, int, int, int, int]]:
    """``tally`` reading ``per_key_wide``'s items (its output type the same):
    marks them with the tag plus one (3)."""
    x, n, c, h, g = item
    return t + 1, (x, n, c, h, g + 1)


@arrow
def count_badly(t: int) -> int:
    """A migration of ``tally``'s state that raises (a division by zero)."""
    return t // (t - t)


SPEC = pipeline(
    stage("number", number),
    stage("per_key", per_key, shards=SHARDS, shard_key=by_key),
    stage("tally", tally),
)


def model(
    items: list[int], twice_from: int | None = None, v2_from: int | None = None
) -> tuple[list[tuple[int, int, int, int, int]], dict[int, tuple[int, int]]]:
    """Each item's output, in input order, and the per-key states at the end
    (with ``per_key_twice`` from item ``twice_from`` on and ``tally_v2`` from
    item ``v2_from`` on, counted from 1)."""
    out: list[tuple[int, int, int, int, int]] = []
    state: dict[int, tuple[int, int]] = {}
    for n, x in enumerate(items, 1):
        twice = twice_from is not None and n > twice_from
        c, h = state.get(x % KEYS, (0, 7))
        h = (h * 31 + x * (14 if twice else 7) + n) % 1000000007
        state[x % KEYS] = (c + 1, h)
        out.append((x, n, c + 1, h, 2 if v2_from is not None and n > v2_from else 1))
    return out, state


def as_tuples(outputs: list[Any]) -> list[tuple[int, int, int, int, int]]:
    """Outputs read from a sink (JSON arrays) as tuples."""
    return [tuple(o) for o in outputs]


#: A pipeline whose first stage is sharded (2 shards): its source routes
#: each ``(x, n)`` pair (``n`` numbered by the source) to its key's shard;
#: ``tally`` after it. Served as ``tests.nats_shards_pipeline:FIRST``.
FIRST = pipeline(
    stage("per_key", per_key, shards=2, shard_key=by_key),
    stage("tally", tally),
)


@arrow
def by_key4(item: tuple[int, int, int, int]) -> int:
    """The key of ``per_key``'s output: the same key, so each key's items
    reach ``seen`` from one shard of ``per_key``, in order."""
    return item[0] % 24


@statemachine(init={})
def seen(
    item: tuple[int, int, int, int], state: dict[int, int]
) -> tuple[dict[int, int], tuple[int, int, int, int]]:
    """Per key, counts its items again and mixes the count into the hash
    (``s`` equals ``c`` only while each key's items come in order, once)."""
    x, n, c, h = item
    s = state.get(x % 24, 0) + 1
    state[x % 24] = s
    return state, (x, n, c, (h * 3 + s) % 1000000007)


@statemachine(init={})
def seen_v2(
    item: tuple[int, int, int, int], state: dict[int, int]
) -> tuple[dict[int, int], tuple[int, int, int, int]]:
    """The next version of ``seen`` (same types): mixes by 5."""
    x, n, c, h = item
    s = state.get(x % 24, 0) + 1
    state[x % 24] = s
    return state, (x, n, c, (h * 5 + s) % 1000000007)


#: Two sharded stages in a row, the first first: ``per_key`` (2 shards, its
#: source routes), ``seen`` (3 shards, each reading the 2 shards of
#: ``per_key`` merged), ``tally``.
TWO = pipeline(
    stage("per_key", per_key, shards=2, shard_key=by_key),
    stage("seen", seen, shards=3, shard_key=by_key4),
    stage("tally", tally),
)


def model_two(
    items: list[int],
    twice_from: int | None = None,
    seen_from: int | None = None,
    v2_from: int | None = None,
) -> tuple[list[tuple[int, int, int, int, int]], dict[int, tuple[int, int]], dict[int, int]]:
    """:func:`model` for ``TWO`` (``seen_v2`` from item ``seen_from`` on):
    the outputs, ``per_key``'s states and ``seen``'s."""
    out, state = model(items, twice_from, v2_from)
    mixed = [
        (x, n, c, (h * (5 if seen_from is not None and n > seen_from else 3) + c) % 1000000007, v)
        for x, n, c, h, v in out
    ]
    return mixed, state, {k: c for k, (c, _) in state.items()}
