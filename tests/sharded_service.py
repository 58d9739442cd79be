"""A service with a sharded stage, served by the kill -9 test
(tests/test_sharded_durable_server.py): per key, the running sum."""

from __future__ import annotations

from arrowloop import arrow, statemachine
from arrowloop.runtime import stage
from arrowloop.supervisor import supervisor


@statemachine(init={})
def sums(item: tuple[str, int], state: dict[str, int]) -> tuple[dict[str, int], tuple[str, int]]:
    """Per key, the running sum."""
    k, v = item
    total = state.get(k, 0) + v
    state[k] = total
    return state, (k, total)


@arrow
def by_key(item: tuple[str, int]) -> str:
    """The item's key."""
    return item[0]


service = supervisor("sharded_sums", stage("sums", sums, shards=3, shard_key=by_key))
