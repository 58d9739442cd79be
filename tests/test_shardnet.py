"""Sharded stages across processes, without a broker: the source into a
sharded first stage (each item to its key's shard, numbered per shard,
changes and end to every shard), the reader after
the shards (a change aligned: held streams, applied once at the last copy;
the end at the last shard's end; a restart resumes each stream and its
holds), the sending half (each item to its key's shard,
every shard's part of an input numbered by that input, changes and end of
stream to every shard; after the shards, per input stream), and changes in
shard segments (the same outcome on every shard)."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any, cast

import anyio
import nats.js.errors
import orjson
import pytest

from arrowloop import arrow, statemachine
from arrowloop.distributed import (
    ChannelConfig,
    ChannelName,
    FrameCodec,
    InputPosition,
    NatsSendChannel,
)
from arrowloop.distributed._changes import SegmentChanges, request_change
from arrowloop.distributed._decisions import Decisions, tally_votes
from arrowloop.distributed._frames import END, Frame, change_frame
from arrowloop.distributed._merge import ChangeCopy, MergedPosition, MergeReceiver
from arrowloop.distributed._shardnet import (
    ShardChanges,
    ShardRouter,
    replica_spec,
)
from arrowloop.distributed._shardsource import ShardSource, check_key, named_change
from arrowloop.errors import ArrowloopError, UpgradeError
from arrowloop.runtime import (
    ChannelStatistics,
    CutMsg,
    DeadLetters,
    EndMsg,
    Reply,
    StageActor,
    UpgradeMsg,
    open_channel,
)
from arrowloop.runtime._shards import shard_of
from arrowloop.supervisor import CodeChange, code_change
from arrowloop.upgrade import encode_change
from arrowloop.wire import decode_type, encode_type
from tests.nats_shards_pipeline import (
    SPEC,
    by_key,
    mark,
    number_wide,
    per_key,
    per_key_twice,
    per_key_wide,
    tally_v2,
    tally_wide,
)

pytestmark = pytest.mark.anyio


def _merge(shards: int = 2) -> tuple[MergeReceiver, list[int]]:
    """A reader after ``shards`` shards, in a segment, its streams fed by hand."""
    m = MergeReceiver(
        cast(Any, None),
        ChannelName("p", "tally"),
        FrameCodec(None),
        ChannelConfig(),
        shards,
        cuts=True,
    )
    applied: list[int] = []

    def on_change(frame: Frame, position: int, raw: bytes) -> tuple[list[Any], bytes | None]:
        applied.append(position)
        return [("upgrade", raw)], b"forward"

    m.on_change = on_change
    m.watermarks = {}
    m.start_at(0)
    return m, applied


def _cut(seq: int, end: bool = False) -> CutMsg:
    return CutMsg(InputPosition(seq, end))


def _copy(seq: int) -> ChangeCopy:
    return ChangeCopy(Frame([], {"stages": []}, None), seq, b"change")


def _merged(m: MergeReceiver) -> list[Any]:
    """What the reader hands out, cuts as (counter, stream, seq, forward, end)."""
    out: list[Any] = []
    while m.queued:
        for x in m.receive_nowait(1 << 20):
            if type(x) is CutMsg:
                at = x.reply
                assert isinstance(at, MergedPosition)
                out.append((at.position, at.stream, at.seq, at.forward, at.end))
            else:
                out.append(x)
    return out


def test_a_change_after_the_shards_waits_for_every_shards_copy() -> None:
    m, applied = _merge()
    m._take(0, [1, 2])
    m._take(0, _cut(1))
    m._take(0, _copy(2))
    assert not m._held(0)  # until its cut is through
    m._take(0, _cut(2))
    assert m._held(0)  # shard 0 is past the change, shard 1 is not
    m._take(1, [3])
    m._take(1, _cut(1))
    assert applied == []
    m._take(1, _copy(2))  # the last copy: the change takes its place here
    m._take(1, _cut(2))
    assert applied == [4]
    assert not m._held(0)
    assert not m._held(1)
    m._take(0, [4])
    m._take(0, _cut(3))
    assert _merged(m) == [
        [1, 2],
        (1, 0, 1, None, False),
        (2, 0, 2, None, False),
        [3],
        (3, 1, 1, None, False),
        ("upgrade", b"change"),
        (4, 1, 2, b"forward", False),  # passed on once, at the last copy
        [4],
        (5, 0, 3, None, False),
    ]


async def test_the_reader_ends_at_the_last_shards_end_and_acks_by_stream() -> None:
    m, _ = _merge()
    m._take(1, _cut(1, end=True))
    m._take(1, EndMsg())
    m._take(0, [5])
    m._take(0, _cut(1, end=True))
    m._take(0, EndMsg())
    out = m.receive_nowait(100)
    assert [type(x) for x in out] == [CutMsg, list, CutMsg, EndMsg]
    assert out[0].reply.end is False  # one shard's end
    assert out[2].reply.end is True
    assert ("~end:1", 1, 0) in out[0].reply.notes
    assert ("~in:0", 1, 0) in out[2].reply.notes
    await m.commit(out[2].reply.position)
    assert (m.subs[0].committed, m.subs[1].committed) == (1, 0)


def test_a_restarted_reader_resumes_each_stream_and_its_holds_from_its_notes() -> None:
    m, _ = _merge(3)
    m.watermarks = {"~in:0": (7, 0), "~copies:0": (1, 0), "~in:1": (4, 0), "~end:2": (1, 0)}
    m.start_at(12)
    assert [s.committed for s in m.subs] == [7, 4, 0]
    assert m.ended == [False, False, True]
    assert m._held(0)
    assert not m._held(1)


class FakeSender:
    """What the router asks of a shard's sending half."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, list[Any], list[bytes]]] = []
        self.published = self.duplicates = self.waits = 0
        self.codec: FrameCodec | None = None

    def use_codec(self, codec: FrameCodec) -> None:
        self.codec = codec

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
        [cast(list[NatsSendChannel], senders)],
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


async def test_after_the_shards_outputs_go_out_per_input_stream_at_its_position() -> None:
    rows = [[FakeSender(), FakeSender()], [FakeSender(), FakeSender()]]
    commits: list[int] = []

    async def commit(cut: CutMsg, at: InputPosition) -> None:
        commits.append(at.position)

    router = ShardRouter(
        ChannelName("p", "s"),
        cast(list[list[NatsSendChannel]], rows),
        by_key.function,
        deque([3]),
        commit,
    )
    items = [(x, 1) for x in range(4)]
    await router.send(items)
    await router.send(CutMsg(MergedPosition(3, False, None, None, (), 1, 9)))
    assert commits == [3]
    assert rows[0][0].sent == rows[0][1].sent == []
    for k, s in enumerate(rows[1]):
        assert s.sent == [(9, [x for x in items if shard_of(x[0] % 24, 2) == k], [])]


async def test_the_router_switches_every_shards_codec() -> None:
    """A change of the router's output type (at its cut) reaches every
    channel it publishes to, after the shards too."""
    rows = [[FakeSender(), FakeSender()], [FakeSender(), FakeSender()]]

    async def commit(cut: CutMsg, at: InputPosition) -> None:
        pass

    router = ShardRouter(
        ChannelName("p", "s"),
        cast(list[list[NatsSendChannel]], rows),
        by_key.function,
        deque([1]),
        commit,
    )
    codec = FrameCodec(None)
    router.use_codec(codec)
    assert all(s.codec is codec for row in rows for s in row)


def test_the_reader_after_the_shards_switches_every_streams_codec_if_the_change_commits() -> None:
    """hold() of the merged reader: every stream's half decodes with the new
    type once the change committed, with the old one if it was refused."""
    m, _ = _merge(3)
    old = [sub._codec for sub in m.subs]
    refused, new = Reply(), FrameCodec(None)
    m.hold(refused, new)
    refused.fail(UpgradeError("no", stage="tally", reason="version mismatch"))
    assert [sub._codec for sub in m.subs] == old
    committed = Reply()
    m.hold(committed, new)
    assert [sub._codec for sub in m.subs] == old  # not before it is decided
    committed.set({})
    assert all(sub._codec is new for sub in m.subs)


@arrow
def bad_key(item: tuple[int, int]) -> int:
    """A key that fails on some items."""
    return item[0] // item[1]


async def test_an_item_whose_key_raises_is_a_dead_letter() -> None:
    senders = [FakeSender(), FakeSender()]
    dead = DeadLetters()

    async def commit(cut: CutMsg, at: InputPosition) -> None:
        pass

    router = ShardRouter(
        ChannelName("p", "s"),
        [cast(list[NatsSendChannel], senders)],
        bad_key.function,
        deque([1]),
        commit,
        dead,
    )
    await router.send([(4, 2), (4, 0), (6, 3)])
    await router.send(CutMsg(InputPosition(1, False)))
    assert router.unroutable == 1
    [letter] = list(dead)
    assert (letter.stage, letter.item) == ("s", (4, 0))
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
    shard = ShardChanges([replica], False)
    # What open_segment's wire() gives it: the pipeline's stages, and why
    # it takes no part in a change across segments.
    shard._order = [s.name for s in SPEC.stages]
    shard._sharded = "runs shard 0 of sharded stage 'per_key'"
    yield shard
    for ch in (inbox, inbox_r, outbox, outbox_r):
        ch.close()


def _frame(change: Any) -> Frame:
    return Frame([], encode_change(change), "reply.subject", "change-1")


def test_a_shard_applies_a_change_of_its_stage_that_keeps_the_state(
    changes: ShardChanges,
) -> None:
    version = per_key.machine.version
    messages, forward = changes(_frame(code_change("per_key", version, per_key_twice)), 3, b"")
    assert forward is None
    assert [type(m) for m in messages] == [UpgradeMsg]


def test_a_shard_checks_a_change_against_the_changes_before_it_not_yet_applied(
    changes: ShardChanges,
) -> None:
    """The second of two changes in a row meets the first's version, whether
    or not the replica has stepped to the first yet (alike on every shard)."""
    first = code_change("per_key", per_key.machine.version, per_key_twice)
    second = code_change("per_key", per_key_twice.machine.version, per_key)
    for change in (first, second):
        messages, _ = changes(_frame(change), 3, b"")
        assert [type(m) for m in messages] == [UpgradeMsg]
    stale = code_change("per_key", per_key_twice.machine.version, per_key)
    assert changes(_frame(stale), 4, b"") == ([], None)
    assert getattr(changes.replies[-1].reply.error, "reason", None) == "version mismatch"


def test_a_shard_passes_a_change_of_later_stages_on(changes: ShardChanges) -> None:
    tally = SPEC.stages[2].machine
    change = code_change("tally", tally.version, tally_v2)
    messages, forward = changes(_frame(change), 3, b"raw")
    assert (messages, forward) == ([], b"raw")
    assert changes.replies == []  # answered where it is applied


def test_a_shard_holds_a_migration_for_the_vote(changes: ShardChanges) -> None:
    """A migration is prepared and held (its ``last`` is no stage here, so
    the replica waits after preparing), undecided until the shards vote."""
    change = code_change("per_key", per_key.machine.version, per_key_new_state, to_counts)
    messages, forward = changes(_frame(change), 3, b"raw")
    assert forward is None
    [msg] = messages
    assert isinstance(msg, UpgradeMsg)
    assert msg.last == "~vote"
    assert msg.changes["per_key"].migrate is not None
    [rec] = changes.replies
    assert (rec.subject, rec.position, rec.reply.done) == ("reply.subject", 3, False)


def test_the_votes_decide_commit_iff_every_shard_voted_yes() -> None:
    yes = {"commit": True, "versions": {"per_key": "v2"}}
    no = {"commit": False, "error": {"message": "it raised", "reason": "migration failed"}}
    assert tally_votes([yes, None, yes]) is None  # shard 1 has not voted
    assert tally_votes([yes, yes, yes]) == yes
    for votes in ([yes, no, None], [None, no, yes], [yes, no, no]):
        decision = tally_votes(votes)
        assert decision is not None
        assert decision["commit"] is False
        assert decision["error"]["reason"] == "migration failed"
        assert decision["error"]["message"].startswith("shard 1: ")


class FakeJetStream:
    """The two calls Decisions makes, on a dict: one message per subject,
    a message ID published once (the broker's duplicate window)."""

    def __init__(self) -> None:
        self.last: dict[str, bytes] = {}
        self.ids: set[str] = set()
        self.published: list[str] = []

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        msg_id = headers["Nats-Msg-Id"]
        if msg_id in self.ids:
            return
        self.ids.add(msg_id)
        self.published.append(subject)
        self.last[subject] = data

    async def get_last_msg(self, stream: str, subject: str) -> Any:
        if subject not in self.last:
            raise nats.js.errors.NotFoundError
        return SimpleNamespace(data=self.last[subject])


async def test_a_vote_or_decision_on_the_broker_is_reused_not_recomputed() -> None:
    js = FakeJetStream()
    decisions = Decisions(cast(Any, js), "p")
    yes = {"commit": True, "versions": {"per_key": "v2"}}
    no = {"commit": False, "error": {"message": "raised", "reason": "migration failed"}}
    assert await decisions.vote("c1", 1, no) == no
    # Shard 1 replays after a crash and would vote otherwise: its vote stands.
    assert await decisions.vote("c1", 1, yes) == no
    for k in (0, 2):
        await decisions.vote("c1", k, yes)
    decision = await decisions.decide("c1", 3)
    assert decision["commit"] is False
    # Shard 0 replays: it reads the decision, publishes nothing more.
    published = list(js.published)
    assert await decisions.decide("c1", 3) == decision
    assert await decisions.wait("c1") == decision
    assert js.published == published


def _shards(js: FakeJetStream, n: int = 3) -> list[ShardChanges]:
    out = []
    for k in range(n):
        shard = ShardChanges([], False, k, n)
        shard._decisions = Decisions(cast(Any, js), "p")
        shard._order = [s.name for s in SPEC.stages]
        out.append(shard)
    return out


#: The in-process channels the tests' replicas were made with (closed after each).
_OPEN: list[Any] = []


@pytest.fixture(autouse=True)
def _close_channels() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _held(shard: ShardChanges, change: CodeChange, position: int = 3) -> UpgradeMsg:
    """What shard ``shard``'s replica sends on after preparing ``change``."""
    actor = StageActor(replica_spec(SPEC.stages[1]), *_channels(), DeadLetters())
    shard._actors = [actor]
    [msg], _ = shard(_frame(change), position, b"")
    assert isinstance(msg, UpgradeMsg)
    committed: list[int] = []
    msg.versions["per_key"] = per_key_new_state.machine.version
    msg.commits.append(lambda: committed.append(1))
    return msg


def _channels() -> tuple[Any, Any]:
    inbox_s, inbox = open_channel(4)
    outbox, outbox_r = open_channel(4)
    _OPEN.extend((inbox_s, inbox, outbox, outbox_r))
    return inbox, outbox


async def test_every_shard_commits_a_migration_when_every_shard_voted_yes() -> None:
    js = FakeJetStream()
    shards = _shards(js)
    change = code_change("per_key", per_key.machine.version, per_key_new_state, to_counts)
    held = [_held(s, change) for s in shards]
    async with anyio.create_task_group() as tg:
        for s, msg in zip(shards[:2], held, strict=False):
            tg.start_soon(s.at_sender, msg)
        await anyio.sleep(0.1)
        # Shards 0 and 1 voted and hold it (``status`` shows it), until shard 2 votes.
        assert [s.awaiting() for s in shards] == [["change-1"], ["change-1"], []]
        assert not held[0].decided.is_set()
        tg.start_soon(shards[2].at_sender, held[2])
    assert [s.awaiting() for s in shards] == [[], [], []]
    new = per_key_new_state.machine.version
    for s, msg in zip(shards, held, strict=True):
        assert msg.decided.is_set()
        assert msg.reply.value == {"per_key": new}
        await s.at_cut(3)
    decision = orjson.loads(js.last["arrowloop.p._decision.change-1"])
    assert decision == {"commit": True, "versions": {"per_key": new}}
    # One answer for the change: shard 0's.
    answers = [s.results(3) for s in shards]
    assert [len(a) for a in answers] == [1, 0, 0]
    assert orjson.loads(answers[0][0][1]) == {"versions": {"per_key": new}}
    # The next change is checked against the migrated version, on every shard.
    stale = code_change("per_key", per_key.machine.version, per_key_twice)
    for s in shards:
        assert s(_frame(stale), 4, b"") == ([], None)
        assert getattr(s.replies[-1].reply.error, "reason", None) == "version mismatch"


async def test_a_migration_raising_on_one_shard_is_refused_by_every_shard() -> None:
    js = FakeJetStream()
    shards = _shards(js)
    change = code_change("per_key", per_key.machine.version, per_key_new_state, to_counts)
    held = [_held(s, change) for s in shards]
    # Shard 1's replica: the migration raised on its state (the runtime
    # fails the reply and sends nothing on).
    err = UpgradeError("the migration raised", stage="per_key", reason="migration failed")
    held[1].reply.fail(err)
    async with anyio.create_task_group() as tg:
        tg.start_soon(shards[0].at_sender, held[0])
        tg.start_soon(shards[2].at_sender, held[2])
        await shards[1].at_cut(3)
    for msg in held:
        assert msg.decided.is_set() or msg is held[1]
        assert getattr(msg.reply.error, "reason", None) == "migration failed"
    assert held[0].failure is not None  # keeps its code
    assert held[2].failure is not None
    answers = [s.results(3) for s in shards]
    assert [len(a) for a in answers] == [1, 0, 0]
    result = orjson.loads(answers[0][0][1])
    assert result["error"]["reason"] == "migration failed"
    assert "shard 1" in result["error"]["message"]
    # A restarted shard 2 prepares again: it reuses its vote and the decision.
    published = list(js.published)
    [again] = _shards(js)[2:]
    msg = _held(again, change)
    await again.at_sender(msg)
    assert getattr(msg.reply.error, "reason", None) == "migration failed"
    assert js.published == published


class FakeOut:
    """What a segment's changes ask of its sending half (a shard's stream)."""

    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []
        self.codec: FrameCodec | None = None
        self.on_control: Any = None

    def use_codec(self, codec: FrameCodec) -> None:
        self.codec = codec

    async def publish_frame(self, payload: bytes) -> None:
        self.frames.append(orjson.loads(payload))


class FakeIn:
    """What a segment's changes ask of its receiving half: holds."""

    def __init__(self) -> None:
        self.holds: list[Reply] = []

    def hold(self, until: Reply, codec: FrameCodec) -> None:
        self.holds.append(until)


V1 = [s.machine.version for s in SPEC.stages]
#: Every stage changed, with a migration of the sharded stage and new item
#: types of the channels into and out of the shards.
WIDE = CodeChange(
    (
        *code_change("number", V1[0], number_wide).upgrades,
        *code_change("per_key", V1[1], per_key_wide, mark).upgrades,
        *code_change("tally", V1[2], tally_wide).upgrades,
    )
)


def _wide_frame() -> Frame:
    """The change as the router passes it on prepared (the channel's new type)."""
    versions = {"number": number_wide.machine.version}
    boundary = encode_type(number_wide.machine.output)
    return Frame([], encode_change(WIDE), "reply.subject", "change-1", boundary, versions)


def _wide_shard(js: FakeJetStream, k: int) -> tuple[ShardChanges, FakeOut]:
    shard = ShardChanges([], False, k, 3)
    shard._actors = [StageActor(replica_spec(SPEC.stages[1]), *_channels(), DeadLetters())]
    out = FakeOut()
    shard._decisions = Decisions(cast(Any, js), "p")
    shard._order = [s.name for s in SPEC.stages]
    shard._sharded_stages = {"per_key": 3}
    shard._sender = cast(Any, out)
    shard._receiver = cast(Any, FakeIn())
    return shard, out


async def test_a_shard_votes_on_a_change_across_segments_and_passes_it_on_prepared() -> None:
    """A change of the stages before, of and after the sharded stage: the
    shard prepares its part and holds, votes yes at its sending half, passes
    the change on with the new type of its output channel, and applies the
    decision made further on; only the decider answers."""
    js = FakeJetStream()
    shard, out = _wide_shard(js, 1)
    [msg], forward = shard(_wide_frame(), 3, b"raw")
    assert isinstance(msg, UpgradeMsg)
    assert (msg.last, forward) == ("tally", None)  # held: decided further on
    new = per_key_wide.machine.version
    msg.versions["per_key"] = new
    committed: list[int] = []
    msg.commits.append(lambda: committed.append(1))
    async with anyio.create_task_group() as tg:
        tg.start_soon(shard.at_sender, msg)
        await anyio.sleep(0.05)
        assert orjson.loads(js.last["arrowloop.p._decision.change-1_vote1"])["commit"] is True
        [passed] = out.frames
        assert passed["v"] == {"number": number_wide.machine.version, "per_key": new}
        assert decode_type(passed["t"], "$.t") == per_key_wide.machine.output
        assert shard.awaiting() == ["change-1"]
        decisions = Decisions(cast(Any, js), "p")
        await decisions.publish("change-1", {"commit": True, "versions": {}})
    assert committed == [1]
    assert msg.reply.value == {"per_key": new}
    await shard.at_cut(3)
    assert out.codec is not None  # its output channel switched at the cut
    assert shard.results(3) == []  # the decider answers


async def test_a_shard_refusing_a_change_across_segments_votes_no_and_passes_a_copy() -> None:
    """A shard whose migration raises votes no at its cut and passes a copy
    of the change on all the same (the merge after the shards aligns every
    copy); it publishes no decision and no answer of its own."""
    js = FakeJetStream()
    shard, out = _wide_shard(js, 2)
    [msg], _ = shard(_wide_frame(), 3, b"raw")
    assert isinstance(msg, UpgradeMsg)
    msg.reply.fail(UpgradeError("it raised", stage="per_key", reason="migration failed"))
    await shard.at_cut(3)
    vote = orjson.loads(js.last["arrowloop.p._decision.change-1_vote2"])
    assert (vote["commit"], vote["error"]["reason"]) == (False, "migration failed")
    [copy] = out.frames
    assert copy["k"] == "change-1"
    assert "arrowloop.p._decision.change-1" not in js.last
    assert shard.results(3) == []
    assert out.codec is None


def _decider(js: FakeJetStream) -> SegmentChanges:
    actor = StageActor(SPEC.stages[2], *_channels(), DeadLetters())
    seg = SegmentChanges([actor], True)
    seg._decisions = Decisions(cast(Any, js), "p")
    seg._order = [s.name for s in SPEC.stages]
    seg._sharded_stages = {"per_key": 3}
    seg._receiver = cast(Any, FakeIn())
    return seg


def _copy_frame() -> Frame:
    versions = {"number": number_wide.machine.version, "per_key": per_key_wide.machine.version}
    boundary = encode_type(per_key_wide.machine.output)
    return Frame([], encode_change(WIDE), "reply.subject", "change-1", boundary, versions)


@pytest.mark.parametrize("refused_by", [None, 1])
async def test_the_decider_after_the_shards_reads_their_votes_before_it_commits(
    refused_by: int | None,
) -> None:
    """The segment running the last changed stage, after the shards, holds
    its prepared part until it has read every shard's vote: it commits iff
    all voted yes; a no refuses it with that shard's reason, in the
    decision and in its one answer."""
    js = FakeJetStream()
    decisions = Decisions(cast(Any, js), "p")
    for k in range(3):
        if k == refused_by:
            no = {"commit": False, "error": {"message": "raised", "reason": "migration failed"}}
            await decisions.vote("change-1", k, no)
        else:
            await decisions.vote("change-1", k, {"commit": True, "versions": {}})
    seg = _decider(js)
    [msg], _ = seg(_copy_frame(), 9, b"raw")
    assert isinstance(msg, UpgradeMsg)
    assert msg.last == "~tally"  # held for the votes
    msg.versions["tally"] = tally_wide.machine.version
    await seg.at_sender(msg)
    assert msg.decided.is_set()
    await seg.at_cut(9)
    decision = orjson.loads(js.last["arrowloop.p._decision.change-1"])
    [(subject, answer)] = seg.results(9)
    assert subject == "reply.subject"
    if refused_by is None:
        assert decision["commit"] is True
        assert set(decision["versions"]) == {"number", "per_key", "tally"}
        assert orjson.loads(answer) == {"versions": decision["versions"]}
    else:
        assert decision["commit"] is False
        assert decision["error"]["reason"] == "migration failed"
        assert "shard 1" in orjson.loads(answer)["error"]["message"]


def test_a_change_across_segments_naming_two_sharded_stages_is_refused() -> None:
    """Votes are per shard of one stage: a change across segments naming two
    sharded stages is refused (``across segments``)."""
    seg = _decider(FakeJetStream())
    seg._sharded_stages = {"per_key": 3, "number": 2}
    assert seg(_copy_frame(), 9, b"raw") == ([], None)
    [rec] = seg.replies
    assert getattr(rec.reply.error, "reason", None) == "across segments"


async def test_the_router_publishes_a_prepared_change_to_every_shard() -> None:
    """Under the IDs of the change's input position, in every shard's stream;
    a router after a merge of shards refuses to (not built)."""
    senders = [FakeSender() for _ in range(3)]
    positions: deque[int] = deque([5])

    async def commit(cut: CutMsg, at: InputPosition) -> None:
        pass

    rows = cast(list[list[NatsSendChannel]], [senders])
    router = ShardRouter(ChannelName("p", "s"), rows, by_key.function, positions, commit)
    seen: list[Any] = []

    async def control(m: Any) -> None:
        seen.append(m)

    router.on_control = control
    msg = UpgradeMsg({}, "tally", Reply())
    await router.send(msg)
    assert seen == [msg]
    await router.publish_frame(b"change")
    assert [s.sent for s in senders] == [[(5, [], [b"change"])]] * 3
    merged = ShardRouter(ChannelName("p", "s"), rows * 2, None, positions, commit)
    with pytest.raises(RuntimeError):
        await merged.publish_frame(b"change")


def test_the_merge_holds_every_stream_for_a_change_of_its_input_type() -> None:
    """Handing out the last copy of a change that alters the channel's type,
    the reader after the shards holds every stream until it is decided."""
    m, _ = _merge(3)
    reply = Reply()
    m.hold(reply, FrameCodec(per_key_wide.machine.output))
    assert all(sub._holding for sub in m.subs)
    reply.set({})
    assert not any(sub._holding for sub in m.subs)
    assert all(sub._codec._read is not None for sub in m.subs)  # the new type's


def test_serve_shards_names_shards_of_a_sharded_stage() -> None:
    from arrowloop.cli._commands import UsageError
    from arrowloop.cli._segment import _shards

    assert _shards(SPEC, ["per_key"], None) == [0, 1, 2]
    assert _shards(SPEC, ["per_key"], "2,0") == [2, 0]
    assert _shards(SPEC, ["number"], None) == [None]
    for wrong, stages in (("3", ["per_key"]), ("1,1", ["per_key"]), ("a", ["per_key"])):
        with pytest.raises(UsageError, match="shards"):
            _shards(SPEC, stages, wrong)
    with pytest.raises(UsageError, match="goes with --segment naming a sharded stage"):
        _shards(SPEC, ["number"], "0")


async def test_a_replay_refusing_what_the_shard_voted_for_stops_the_shard() -> None:
    """Votes stay on the broker: a shard that voted yes before a crash and
    whose replay's migration raises (it would not, being a function of the
    state) must not vote again or go on with its old code: it stops."""
    js = FakeJetStream()
    [shard] = _shards(js, 1)
    decisions = Decisions(cast(Any, js), "p")
    await decisions.vote("change-1", 0, {"commit": True, "versions": {"per_key": "v2"}})
    change = code_change("per_key", per_key.machine.version, per_key_new_state, to_counts)
    msg = _held(shard, change)
    msg.reply.fail(UpgradeError("it raised", stage="per_key", reason="migration failed"))
    with pytest.raises(ArrowloopError, match="voted to commit it before a crash"):
        await shard.at_cut(3)


class FakeSourceSender:
    """What a source into a sharded first stage asks of a shard's sending half."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.published = self.duplicates = self.waits = 0
        self.buffered = 0

    async def send(self, message: Any) -> None:
        self.calls.append(("send", message))

    async def send_at(self, position: int, items: list[Any], then: Any = ()) -> None:
        self.calls.append(("send_at", position, items, list(then)))

    async def flush(self) -> None:
        self.calls.append(("flush",))

    async def publish_frame(self, payload: bytes) -> None:
        self.calls.append(("frame", payload))

    def statistics(self) -> ChannelStatistics:
        return ChannelStatistics(self.buffered, 0, 16, False)

    def use_codec(self, codec: FrameCodec) -> None:
        self.calls.append(("codec", codec))


def _source(shards: int = 3) -> tuple[ShardSource, list[FakeSourceSender]]:
    senders = [FakeSourceSender() for _ in range(shards)]
    src = ShardSource(
        ChannelName("p", "per_key"), cast(list[NatsSendChannel], senders), by_key.function
    )
    return src, senders


async def test_a_source_sends_each_item_to_its_keys_shard_in_order() -> None:
    """A sharded first stage's source routes as the router does (the
    in-process hash of the stage's key), end of stream to every shard."""
    src, senders = _source()
    items = [(x, n) for n, x in enumerate(range(0, 90, 7), 1)]
    await src.send(items)
    await src.send(EndMsg())
    for k, s in enumerate(senders):
        mine = [x for x in items if shard_of(x[0] % 24, 3) == k]
        assert s.calls[:-1] == ([("send", mine)] if mine else [])
        assert s.calls[-1][0] == "send"
        assert type(s.calls[-1][1]) is EndMsg
    assert src.closed


async def test_a_source_with_offsets_numbers_every_shards_part_by_the_offset() -> None:
    """``send_at``: each shard's part under the offset (IDs ``<producer>/<k>:
    <offset>:<part>``: a source sending again is dropped per shard), then the
    frames ``then`` on every shard."""
    src, senders = _source()
    items = [(x, 1) for x in range(24)]
    await src.send_at(40, items, [END])
    for k, s in enumerate(senders):
        assert s.calls == [("send_at", 40, [x for x in items if shard_of(x[0], 3) == k], [END])]


async def test_a_source_refuses_a_batch_whose_key_raises_sending_none_of_it() -> None:
    senders = [FakeSourceSender(), FakeSourceSender()]
    src = ShardSource(ChannelName("p", "s"), cast(list[NatsSendChannel], senders), bad_key.function)
    with pytest.raises(ArrowloopError, match=r"the shard key of item 1 .* raised"):
        await src.send([(4, 2), (4, 0), (6, 3)])
    assert all(s.calls == [] for s in senders)


async def test_a_source_sends_a_change_to_every_shard_under_one_name() -> None:
    """A change frame goes into every shard's channel; one without a name
    gets one, the same in every copy (the shards vote under it)."""
    src, senders = _source()
    unnamed = change_frame({"stages": []}, None)
    await src.publish_frame(unnamed)
    payloads = [s.calls[0][1] for s in senders]
    assert len(set(payloads)) == 1
    frame = FrameCodec(None).decode(payloads[0])
    assert frame.change == {"stages": []}
    assert frame.change_id is not None
    named = change_frame({"stages": []}, "reply", "c-7")
    assert named_change(named) == named
    assert named_change(END) == END
    await src.send_at(3, [], [unnamed])
    [ids] = {FrameCodec(None).decode(s.calls[1][3][0]).change_id for s in senders}
    assert ids is not None


def test_a_source_takes_shards_and_shard_key_together() -> None:
    with pytest.raises(ArrowloopError, match="both shards=N and shard_key="):
        check_key(2, None)
    with pytest.raises(ArrowloopError, match="both shards=N and shard_key="):
        check_key(None, by_key.function)
    with pytest.raises(ArrowloopError, match="N >= 1"):
        check_key(0, by_key.function)
    check_key(None, None)
    check_key(2, by_key.function)


class FakeChangeClient:
    """The calls request_change makes of a connection, on lists."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, dict[str, str]]] = []
        self.streams: list[str] = []

    def jetstream(self) -> FakeChangeClient:
        return self

    async def stream_info(self, stream: str) -> None:
        self.streams.append(stream)

    def new_inbox(self) -> str:
        return "_INBOX.1"

    async def subscribe(self, subject: str, max_msgs: int) -> FakeChangeClient:
        return self

    async def publish(self, subject: str, data: bytes, headers: dict[str, str]) -> None:
        self.published.append((subject, data, headers))

    async def next_msg(self, timeout: float) -> Any:  # noqa: ASYNC109 (nats-py's signature)
        return SimpleNamespace(data=b'{"versions": {"per_key": "v2"}}')

    async def unsubscribe(self) -> None:
        pass


async def test_a_change_into_a_sharded_first_stage_goes_to_every_shard() -> None:
    """request_change(shards=N): one copy per shard's channel, one change id
    and reply subject (shard 0 answers)."""
    nc = FakeChangeClient()
    result = await request_change(cast(Any, nc), "p", "per_key", {"stages": []}, shards=3)
    assert result == {"versions": {"per_key": "v2"}}
    assert nc.streams == [f"arrowloop_p_per_key_shard{k}" for k in range(3)]
    assert [subject for subject, _, _ in nc.published] == [
        f"arrowloop.p.per_key_shard{k}" for k in range(3)
    ]
    frames = [FrameCodec(None).decode(data) for _, data, _ in nc.published]
    assert {(f.change_id, f.reply) for f in frames} == {(frames[0].change_id, "_INBOX.1")}


async def test_a_segments_control_port_sends_a_change_to_every_shard_of_a_sharded_first_stage() -> (
    None
):
    """The control port of a pipeline whose first stage is sharded (``serve``
    gives it the stage's shards) sends a copy of a change into each shard."""
    from arrowloop.distributed._control import SegmentControl

    nc = FakeChangeClient()
    ctl = SegmentControl(cast(Any, nc), "p", "per_key", shards=2)
    assert await ctl.change({"stages": [{"stage": "per_key"}]}) == {"per_key": "v2"}
    assert [subject for subject, _, _ in nc.published] == [
        "arrowloop.p.per_key_shard0",
        "arrowloop.p.per_key_shard1",
    ]


async def test_a_source_sends_a_frame_to_no_shard_while_one_holds_items_unsent() -> None:
    """A change or numbered input must reach every shard or none: refused
    before anything is published while a shard's half buffers items."""
    src, senders = _source()
    senders[2].buffered = 3
    with pytest.raises(RuntimeError, match="flush"):
        await src.publish_frame(END)
    with pytest.raises(RuntimeError, match="flush"):
        await src.send_at(1, [(1, 1)])
    assert all(s.calls == [] for s in senders)


def test_a_source_switches_every_shards_codec() -> None:
    """After a change of the pipeline's input type the source sends the new
    type, into every shard."""
    src, senders = _source()
    codec = FrameCodec(None)
    src.use_codec(codec)
    assert all(s.calls == [("codec", codec)] for s in senders)
