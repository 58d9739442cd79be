"""The pipelines of the sharded runs of ``benchmarks/distributed.py``: a
CPU-bound stage between two light ones, with 1 shard (``SHARDS_1``) or 2
(``SHARDS_2``), served per process with ``serve benchmarks.sharded_pipeline:SHARDS_2
--nats URL --segment work --shards 0``.

- ``number``: ``int -> (x, n)``, ``n`` counts the items so far;
- ``work`` (sharded by ``x % 20``): per key a hash chain of ``ROUNDS``
  multiply-adds per item, about 0.2 ms of CPU (the stage to share out);
- ``tally``: counts the items, passing them on.
"""

from __future__ import annotations

from arrowloop import arrow, pipeline, stage, statemachine
from arrowloop.runtime import PipelineSpec

#: Multiply-adds per item in ``work``.
ROUNDS = 1000
KEYS = 20


@statemachine(init=0)
def number(x: int, n: int) -> tuple[int, tuple[int, int]]:
    """Number the items."""
    return n + 1, (x, n + 1)


@arrow
def by_key(item: tuple[int, int]) -> int:
    """The item's key."""
    return item[0] % 20


@statemachine(init={})
def work(
    item: tuple[int, int], state: dict[int, int]
) -> tuple[dict[int, int], tuple[int, int, int]]:
    """Per key, a hash chain over its items: CPU-bound."""
    x, n = item
    h = state.get(x % 20, 7)
    i = 0
    while i < 1000:
        h = (h * 31 + x + i) % 1000000007
        i += 1
    state[x % 20] = h
    return state, (x, n, h)


@statemachine(init=0)
def tally(item: tuple[int, int, int], t: int) -> tuple[int, tuple[int, int, int]]:
    """Count the items, passing them on."""
    return t + 1, item


def _spec(shards: int) -> PipelineSpec:
    return pipeline(
        stage("number", number),
        stage("work", work, shards=shards, shard_key=by_key),
        stage("tally", tally),
    )


SHARDS_1 = _spec(1)
SHARDS_2 = _spec(2)


def model(items: list[int]) -> list[tuple[int, int, int]]:
    """Each item's output (the order of the input; across keys the order varies)."""
    out: list[tuple[int, int, int]] = []
    state: dict[int, int] = {}
    for n, x in enumerate(items, 1):
        h = state.get(x % KEYS, 7)
        for i in range(ROUNDS):
            h = (h * 31 + x + i) % 1000000007
        state[x % KEYS] = h
        out.append((x, n, h))
    return out
