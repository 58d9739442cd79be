"""Sharded stages across processes, without a broker: producer names, the
router before the shards (each item to its key's shard, every shard's part
of an input numbered by that input, changes and end of stream to every
shard), the end of the next channel at the last shard's end (also when the
reader restarts between the ends), and changes in shard segments (the same
outcome on every shard)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any, cast

import pytest

from arrowloop import arrow, statemachine
from arrowloop.distributed import ChannelName, InputPosition, NatsSendChannel
from arrowloop.distributed._frames import END, Frame
from arrowloop.distributed._shardnet import (
    ShardChanges,
    ShardRouter,
    merge_end,
    producer_shard,
    replica_spec,
    shard_producer,
)
from arrowloop.runtime import CutMsg, DeadLetters, EndMsg, StageActor, UpgradeMsg, open_channel
from arrowloop.runtime._shards import shard_of
from arrowloop.supervisor import code_change
from arrowloop.upgrade import encode_change
from tests.nats_shards_pipeline import SPEC, by_key, per_key, per_key_twice
from tests.test_nats_order import FakeMsg, _handed_out, _receiver

pytestmark = pytest.mark.anyio


def test_a_shards_producer_name_says_which_shard_of_how_many() -> None:
    name = shard_producer("SPEC.per_key", 1, 3)
    assert producer_shard(name) == ("SPEC.per_key", 1, 3)
    assert producer_shard("SPEC.number") is None
    assert producer_shard("SPEC.x~3of3") is None  # no shard 3 of 3


def test_the_channel_ends_at_the_last_shards_end() -> None:
    marks: dict[str, tuple[int, int]] = {}
    names = [shard_producer("p.s", k, 3) for k in range(3)]
    assert merge_end(names[2], marks)[0] is False
    last, notes = merge_end(names[0], marks)
    assert last is False
    assert notes == ((f"~end:{names[0]}", 1, 0),)
    # A reader restarted with the notes it committed waits for the last only.
    restored = dict(marks)
    assert merge_end(names[1], restored)[0] is True
    assert merge_end("p.other", {}) == (True, ())


async def test_the_reader_after_the_shards_hands_out_one_end_and_notes_the_others() -> None:
    r = _receiver()
    producers = [shard_producer("p.s", k, 2) for k in range(2)]
    await r._take(cast(Any, FakeMsg(1, [1], msg_id=f"{producers[0]}:5:0")))
    await r._take(cast(Any, FakeMsg(2, None, msg_id=f"{producers[0]}:5:1")))
    await r._take(cast(Any, FakeMsg(3, [2], msg_id=f"{producers[1]}:4:0")))
    assert _handed_out(r) == [1, ("cut", 1), ("cut", 2), 2, ("cut", 3)]
    await r._take(cast(Any, FakeMsg(4, None, msg_id=f"{producers[1]}:7:0")))
    out: list[Any] = []
    while r.queued:
        out.extend(r.receive_nowait(100))
    cut, end = out
    assert type(end) is EndMsg
    assert cut.reply.end
    assert cut.reply.notes == ((f"~end:{producers[1]}", 1, 0),)


class FakeSender:
    """What the router asks of a shard's sending half."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, list[Any], list[bytes]]] = []
        self.published = self.duplicates = self.waits = 0

    async def send_at(self, position: int, items: list[Any], then: Any = ()) -> None:
        self.sent.append((position, items, list(then)))


async def test_the_router_sends_each_item_to_its_keys_shard_at_the_cut() -> None:
    senders = [FakeSender() for _ in range(3)]
    commits: list[int] = []
    positions: deque[int] = deque([7, 8])

    async def commit(cut: CutMsg, at: InputPosition) -> None:
        commits.append(at.position)

    router = ShardRouter(
        ChannelName("p", "s"),
        cast(list[NatsSendChannel], senders),
        by_key.function,
        positions,
        commit,
    )
    items = [(x, i) for i, x in enumerate(range(0, 60, 5))]
    router.send_nowait(items[:4])
    await router.send(items[4:])
    assert commits == []
    assert all(s.sent == [] for s in senders)
    await router.send(CutMsg(InputPosition(7, False)))
    assert commits == [7]
    assert list(positions) == [8]
    for k, s in enumerate(senders):
        mine = [x for x in items if shard_of(x[0] % 24, 3) == k]
        assert s.sent == [(7, mine, [])]  # in order, under the input's position
    await router.send(CutMsg(InputPosition(8, True, forward=b'{"u":{}}')))
    await router.send(EndMsg())
    assert [s.sent[-1] for s in senders] == [(8, [], [b'{"u":{}}', END])] * 3
    assert router.closed


@arrow
def bad_key(item: tuple[int, int]) -> int:
    """A key that fails on some items."""
    return item[0] // item[1]


async def test_an_item_whose_key_raises_is_dropped_and_counted() -> None:
    senders = [FakeSender(), FakeSender()]

    async def commit(cut: CutMsg, at: InputPosition) -> None:
        pass

    router = ShardRouter(
        ChannelName("p", "s"),
        cast(list[NatsSendChannel], senders),
        bad_key.function,
        deque([1]),
        commit,
    )
    await router.send([(4, 2), (4, 0), (6, 3)])
    await router.send(CutMsg(InputPosition(1, False)))
    assert router.unroutable == 1
    assert sorted(x for s in senders for x in s.sent[0][1]) == [(4, 2), (6, 3)]


@statemachine(init={})
def per_key_new_state(
    item: tuple[int, int], state: dict[int, int]
) -> tuple[dict[int, int], tuple[int, int, int, int]]:
    """``per_key`` with another state type (a change needs a migration)."""
    x, n = item
    state[x % 24] = state.get(x % 24, 0) + 1
    return state, (x, n, 0, 0)


@arrow
def to_counts(state: dict[int, tuple[int, int]]) -> dict[int, int]:
    """The migration to ``per_key_new_state``: each key's count."""
    return {k: v[0] for k, v in state.items()}


@pytest.fixture
def changes() -> Iterator[ShardChanges]:
    """What a shard segment of ``per_key`` (not the last stage) does with changes."""
    inbox, inbox_r = open_channel(4)
    outbox, outbox_r = open_channel(4)
    replica = StageActor(replica_spec(SPEC.stages[1]), inbox_r, outbox, DeadLetters())
    yield ShardChanges([replica], False)
    for ch in (inbox, inbox_r, outbox, outbox_r):
        ch.close()


def _frame(change: Any) -> Frame:
    return Frame([], encode_change(change), "reply.subject")


def test_a_shard_applies_a_change_of_its_stage_that_keeps_the_state(
    changes: ShardChanges,
) -> None:
    version = per_key.machine.version
    messages, forward = changes(_frame(code_change("per_key", version, per_key_twice)), 3, b"")
    assert forward is None
    assert [type(m) for m in messages] == [UpgradeMsg]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            code_change("per_key", per_key.machine.version, per_key_new_state, to_counts),
            "sharded migration",
        ),
        (
            code_change("tally", SPEC.stages[2].machine.version, SPEC.stages[2].machine),
            "after shards",
        ),
    ],
    ids=["migration", "stage-after-the-shards"],
)
def test_a_shard_refuses_alike_what_it_could_not_apply_alike(
    changes: ShardChanges, change: Any, reason: str
) -> None:
    messages, forward = changes(_frame(change), 3, b"raw")
    assert (messages, forward) == ([], None)
    [(subject, position, reply)] = changes.replies
    assert (subject, position) == ("reply.subject", 3)
    assert reply.done
    assert getattr(reply.error, "reason", None) == reason
