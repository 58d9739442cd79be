"""The receiving half's order, without a broker: broker messages delivered out
of order (a redelivery after a crash comes after later messages), twice, or
with positions the stream no longer has, are handed out once each, in
stream order, and redeliveries of committed positions are acked and dropped."""

from __future__ import annotations

from typing import Any, cast

import nats.js.errors
import orjson
import pytest

from arrowloop.distributed import ChannelConfig, ChannelName, FrameCodec, NatsReceiveChannel
from arrowloop.runtime import CutMsg, EndMsg
from arrowloop.typesys import INT

pytestmark = pytest.mark.anyio


class FakeMsg:
    """What the receiving half reads of a broker message."""

    def __init__(
        self, seq: int, items: list[int] | None, data: bytes | None = None, msg_id: str = ""
    ) -> None:
        self.data = b'{"e":true}' if items is None else orjson.dumps({"i": items})
        if data is not None:
            self.data = data
        self.headers = {"Nats-Msg-Id": msg_id} if msg_id else None
        self.acks = 0
        seq_pair = type("Seq", (), {"stream": seq})()
        self.metadata = type("Meta", (), {"sequence": seq_pair})()

    async def ack(self) -> None:
        self.acks += 1


class FakeJetStream:
    """A stream whose messages from ``first`` on exist, except ``deleted``."""

    def __init__(self, first: int, deleted: set[int]) -> None:
        self.first = first
        self.deleted = deleted

    async def stream_info(self, stream: str) -> Any:
        return type("Info", (), {"state": type("State", (), {"first_seq": self.first})()})()

    async def get_msg(self, stream: str, seq: int) -> None:
        if seq < self.first or seq in self.deleted:
            raise nats.js.errors.NotFoundError


def _receiver(committed: int = 0, js: Any = None) -> NatsReceiveChannel:
    r = NatsReceiveChannel(
        cast(Any, js), ChannelName("p", "c"), FrameCodec(None), ChannelConfig(), cuts=True
    )
    r.start_at(committed)
    return r


def _handed_out(r: NatsReceiveChannel) -> list[Any]:
    """Items and cut positions taken so far, in order."""
    out: list[Any] = []
    while r.queued:
        for m in r.receive_nowait(1 << 20):
            if type(m) is list:
                out.extend(m)
            elif type(m) is CutMsg:
                out.append(("cut", m.reply.position))  # type: ignore[attr-defined]
            elif type(m) is EndMsg:
                out.append("end")
    return out


async def test_later_messages_wait_for_the_expected_one() -> None:
    r = _receiver()
    for seq in (3, 2, 4):
        await r._take(cast(Any, FakeMsg(seq, [seq * 10])))
    assert _handed_out(r) == []
    await r._take(cast(Any, FakeMsg(1, [10, 11])))
    assert _handed_out(r) == [10, 11, ("cut", 1), 20, ("cut", 2), 30, ("cut", 3), 40, ("cut", 4)]
    assert list(r.positions) == [1, 2, 3, 4]


async def test_committed_redeliveries_are_acked_and_dropped_in_flight_ones_replaced() -> None:
    r = _receiver(committed=5)
    old = FakeMsg(4, [1])
    await r._take(cast(Any, old))
    assert old.acks == 1
    assert r.redelivered == 1
    first, again = FakeMsg(6, [60]), FakeMsg(6, [60])
    await r._take(cast(Any, first))
    await r._take(cast(Any, again))  # redelivered before it was committed
    assert _handed_out(r) == [60, ("cut", 6)]
    await r.commit(6)
    assert (first.acks, again.acks) == (0, 1)  # the newest delivery is acked
    assert r.committed == 6


async def test_end_of_stream_follows_its_cut() -> None:
    r = _receiver()
    await r._take(cast(Any, FakeMsg(1, [1])))
    await r._take(cast(Any, FakeMsg(2, None)))
    assert _handed_out(r) == [1, ("cut", 1), ("cut", 2), "end"]


async def test_positions_the_stream_no_longer_has_are_skipped() -> None:
    r = _receiver(js=FakeJetStream(first=3, deleted={5}))
    for seq in (4, 6):
        await r._take(cast(Any, FakeMsg(seq, [seq])))
    await r._skip_gap()  # 1 and 2 are before the stream's first; 3 exists
    assert _handed_out(r) == []
    await r._take(cast(Any, FakeMsg(3, [3])))
    assert _handed_out(r) == [3, ("cut", 3), 4, ("cut", 4)]
    await r._skip_gap()  # 5 was deleted
    assert _handed_out(r) == [6, ("cut", 6)]


async def test_a_message_that_is_not_a_frame_is_passed_over() -> None:
    r = NatsReceiveChannel(
        cast(Any, None), ChannelName("p", "c"), FrameCodec(INT), ChannelConfig(), cuts=True
    )
    await r._take(cast(Any, FakeMsg(1, None, b"not json")))
    await r._take(cast(Any, FakeMsg(2, None, b'{"i": ["not an int"]}')))
    await r._take(cast(Any, FakeMsg(3, [3])))
    assert _handed_out(r) == [("cut", 1), ("cut", 2), 3, ("cut", 3)]
    assert r.malformed == 2


async def test_a_producers_replay_the_broker_let_through_is_passed_over() -> None:
    r = _receiver()
    sent = [
        (1, [1], "up.a:7:0"),
        (2, [2], "up.a:7:1"),
        (3, [3], "src:x1.1:0"),  # a source's own IDs: not numbered, never passed over
        (4, [99], "up.a:7:1"),  # replayed after the window: passed over
        (5, [98], "up.a:6:5"),  # older still
        (6, [4], "up.b:1:0"),  # another producer
        (7, [5], "up.a:8:0"),
    ]
    for seq, items, msg_id in sent:
        await r._take(cast(Any, FakeMsg(seq, items, msg_id=msg_id)))
    got = [m for m in _handed_out(r) if type(m) is int]
    assert got == [1, 2, 3, 4, 5]
    assert r.replays == 2
    assert r.watermarks == {"up.a": (8, 0), "up.b": (1, 0)}


@pytest.mark.parametrize("commits", [True, False], ids=["change commits", "change refused"])
async def test_a_hold_keeps_later_messages_undecoded_until_the_change_is_decided(
    commits: bool,
) -> None:
    """A change that alters the channel's type holds what follows it, in
    whatever order it is delivered; released, those messages are decoded
    with the new type if the change committed, the old one if not."""
    from arrowloop.distributed._frames import Frame
    from arrowloop.runtime import Reply
    from arrowloop.typesys import STR

    r = NatsReceiveChannel(
        cast(Any, None), ChannelName("p", "c"), FrameCodec(INT), ChannelConfig(), cuts=True
    )
    decided = Reply()

    def on_change(frame: Frame, position: int, raw: bytes) -> tuple[list[Any], bytes | None]:
        r.hold(decided, FrameCodec(STR))
        return [], None

    r.on_change = on_change
    after = [b'{"i":["a"]}', b'{"i":[1]}'][0 if commits else 1]
    await r._take(cast(Any, FakeMsg(1, [5])))
    await r._take(cast(Any, FakeMsg(4, [], data=after)))
    await r._take(cast(Any, FakeMsg(2, [], data=b'{"u":{},"r":null}')))
    await r._take(cast(Any, FakeMsg(3, [], data=after)))
    assert _handed_out(r) == [5, ("cut", 1), ("cut", 2)]
    if commits:
        decided.set({})
        assert _handed_out(r) == ["a", ("cut", 3), "a", ("cut", 4)]
    else:
        decided.fail(RuntimeError("refused"))
        assert _handed_out(r) == [1, ("cut", 3), 1, ("cut", 4)]
    assert r.malformed == 0
