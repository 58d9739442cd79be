"""A segment: some consecutive stages of a pipeline, run in this process
between two networked channels, with an exactly-once effect across crashes.

The stages are the runtime's own actors on in-process channels; the first
reads the channel named after it, the last writes the channel of the stage
after it (or ``out``). The protocol, per input broker message at stream
sequence *p* (its position):

1. its items go through the stages, followed by a cut (the runtime's
   consistent-cut marker), so every stage notes its state after exactly
   the items up to *p*;
2. the outputs before the cut are published in frames whose message IDs
   are derived from (segment, *p*, frame number), and each is confirmed by
   the broker;
3. the stages' states are committed with *p* in one store transaction;
4. only then is the input acked.

A crash before 3 replays *p* from the state committed at the position
before it: the same outputs under the same IDs, which the broker drops as
duplicates (or, later than its duplicate window, the next segment does by
its watermark for this one: see _receive.py). A crash between 3 and 4
redelivers *p*, which is at or below the committed position: it is acked
and dropped. So every input is applied once and every output enters the
next channel once. Steps 3 and 4 are grouped while more input is waiting
(group commit: see :meth:`Segment.commit`); code changes arriving in-band
are handled in _changes.py.
"""

from __future__ import annotations

import fcntl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import IO, Any, Literal

import anyio
import attrs

from arrowloop.distributed._changes import SegmentChanges
from arrowloop.distributed._channel import (
    ChannelConfig,
    ChannelName,
    InputPosition,
    NatsSendChannel,
    ensure_stream,
)
from arrowloop.distributed._decisions import Decisions
from arrowloop.distributed._ends import connect
from arrowloop.distributed._frames import FrameCodec
from arrowloop.distributed._history import answer_history
from arrowloop.distributed._kvstore import open_kv_store
from arrowloop.distributed._merge import MergeReceiver, merged_channel
from arrowloop.distributed._receive import NatsReceiveChannel
from arrowloop.distributed._shardnet import (
    ShardChanges,
    ShardRouter,
    check_shards,
    replica_spec,
    shard_channel,
    shard_producer,
)
from arrowloop.distributed._status import answer_status
from arrowloop.errors import ArrowloopError
from arrowloop.machine import AnyMachine, Machine
from arrowloop.runtime import (
    CutMsg,
    DeadLetters,
    PipelineSpec,
    ReceiveChannel,
    SendChannel,
    StageActor,
    StageSpec,
    open_channel,
)
from arrowloop.store import MemoryStore, SqliteStore, StageRecord, StateStore
from arrowloop.wire import decode_value, encode_value

__all__ = ["Segment", "open_segment", "segment_stages"]

_END_EVENT = "end of stream"
#: The store row holding the producers' watermarks (see _receive.py),
#: written in the same transaction as the states.
_MARKS = "~watermarks"

#: Publishes a payload on a subject (core NATS: a change's result).
Publish = Callable[[str, bytes], Awaitable[None]]


def segment_stages(spec: PipelineSpec, names: Sequence[str]) -> tuple[list[StageSpec], str]:
    """The stages ``names`` name, in pipeline order, and the channel after them.

    Raises:
        ArrowloopError: a name is unknown, the stages are not consecutive, or
            a sharded stage is not a segment of its own (see _shardnet.py).
    """
    order = [s.name for s in spec.stages]
    missing = [n for n in names if n not in order]
    if missing or not names:
        raise ArrowloopError(f"no stages {missing} in the pipeline; its stages are {order}")
    first = order.index(names[0])
    chosen = list(spec.stages[first : first + len(names)])
    if [s.name for s in chosen] != list(names):
        raise ArrowloopError(
            f"a segment is consecutive stages in pipeline order ({order}), found {list(names)}"
        )
    check_shards(list(spec.stages), first, len(chosen))
    after = first + len(names)
    return chosen, order[after] if after < len(order) else "out"


class Segment:
    """Running stages of a pipeline in this process (made by :func:`open_segment`)."""

    def __init__(
        self,
        stages: list[StageSpec],
        store: StateStore,
        receiver: NatsReceiveChannel | MergeReceiver,
        *,
        group: int = 1,
        last: bool = True,
        publish: Publish | None = None,
    ) -> None:
        self.store = store
        self.receiver = receiver
        self.sender: NatsSendChannel | ShardRouter | None = None
        self.dead_letters = DeadLetters()
        self.actors: list[StageActor] = []
        #: Set once end of stream has passed through every stage.
        self.finished = anyio.Event()
        #: Whether end of stream was committed (by this process or before).
        self.ended = False
        #: Writes to the store, and the inputs (broker messages) they committed.
        self.commits = 0
        self.inputs = 0
        self._uncommitted: list[InputPosition] = []
        # Per producer, the last (position, part) among the inputs committed.
        self._marks: dict[str, tuple[int, int]] = {}
        self._group = group
        self._stages = stages
        self._last = last
        self._publish = publish
        self._versions: dict[str, str] = {}  # each stage's version in the store
        #: The code changes that reached this segment, and their results.
        self.changes = SegmentChanges(self.actors, last)

    @property
    def committed(self) -> int:
        """The input position committed last."""
        return self.receiver.committed

    def resume(self, sender: NatsSendChannel | ShardRouter) -> int:
        """Build the actors (from the receiver to ``sender``) with the machines
        and states the store holds; the committed position (0 if new).

        A stage the store holds another version of runs that version (a
        change committed before), built from its wire document. A segment
        that committed end of stream before is :attr:`ended`.

        Raises:
            ArrowloopError: the store holds another version of a native
                machine (one with no wire form), or it cannot be built.
        """
        stored = self.store.load()
        records = {} if stored is None else stored.stages
        fresh = not all(s.name in records for s in self._stages)
        specs = (
            self._stages if fresh else [self._machine_of(s, records[s.name]) for s in self._stages]
        )
        self._build(specs, sender)
        if fresh:
            records_new = [_record(a, a.state, 0) for a in self.actors]
            self.store.save_stages([*records_new, StageRecord(_MARKS, _MARKS, None, {}, 0)])
            self._versions = {a.name: a.machine.version for a in self.actors}
            return 0
        assert stored is not None
        marks = records.get(_MARKS)
        if marks is None:  # a store written before watermarks were kept
            self.store.save_stages([StageRecord(_MARKS, _MARKS, None, {}, 0)])
        else:
            self._marks = {p: (m[0], m[1]) for p, m in marks.state.items()}
            self.receiver.watermarks = dict(self._marks)
        self.ended = any(r.get("event") == _END_EVENT for r in stored.history)
        # A change committed before may have changed what the segment reads
        # or writes: its channels' codecs follow the machines it runs.
        self.receiver.use_codec(FrameCodec(self.actors[0].machine.input))
        sender.use_codec(FrameCodec(self.actors[-1].machine.output))
        for a in self.actors:
            a.seed(decode_value(a.machine.state, records[a.name].state, f"$.{a.name}"), 0)
        self._versions = {a.name: a.machine.version for a in self.actors}
        return min(records[a.name].seq for a in self.actors)

    def _machine_of(self, spec: StageSpec, rec: StageRecord) -> StageSpec:
        if rec.version == spec.machine.version:
            return spec
        if rec.machine is None:
            raise ArrowloopError(
                f"stage {spec.name!r}: the store at {self.store.location} holds version "
                f"{rec.version[:12]} of a native machine, this process runs "
                f"{spec.machine.version[:12]}"
            )
        machine = Machine.from_wire(rec.machine, budget=None)  # checked when it was stored
        return attrs.evolve(spec, machine=machine)

    def _build(self, specs: list[StageSpec], sender: NatsSendChannel | ShardRouter) -> None:
        self.sender = sender
        inbox: ReceiveChannel = self.receiver
        for i, spec in enumerate(specs):
            outbox: SendChannel
            if i + 1 < len(specs):
                outbox, nxt = open_channel(spec.capacity)
            else:
                outbox, nxt = sender, None
            self.actors.append(StageActor(spec, inbox, outbox, self.dead_letters))
            if nxt is not None:
                inbox = nxt
        self.receiver.on_change = self.changes

    def statistics(self) -> dict[str, int]:
        """Counts for operators: inputs committed, store writes, the position, redeliveries
        of committed inputs dropped, input messages that were not frames,
        outputs published and those the broker
        dropped as duplicates (replays after a crash), publishes that waited."""
        s = self.sender
        return {
            "inputs": self.inputs,
            "commits": self.commits,
            "committed": self.committed,
            "redelivered": self.receiver.redelivered,
            "malformed": self.receiver.malformed,
            "replays": self.receiver.replays,
            "published": 0 if s is None else s.published,
            "duplicates": 0 if s is None else s.duplicates,
            "waits": 0 if s is None else s.waits,
        }

    async def commit(self, cut: CutMsg, at: InputPosition) -> None:
        """At a cut whose outputs are confirmed: commit every stage's state
        there and ack the inputs up to it, now or at a later cut.

        Group commit: while later inputs are already in the segment, the
        write waits for the last of them, up to half the in-flight window
        (the acks it holds back keep the broker from delivering more). A
        crash replays from the last write; the outputs replayed carry the
        IDs they had, so the broker drops them whichever write was last.
        """
        await self.changes.at_cut(at.position)
        pending = self._uncommitted
        pending.append(at)
        later = len(self.receiver.positions) > 1  # this cut's position is still first
        if later and not at.end and len(pending) < self._group:
            return
        # End of stream carries no items: the states at it are those at the
        # input before it. Saved there first, then the end is noted, so a
        # crash in between leaves either the input before it to replay, or a
        # segment that stops at once when run again (not one waiting for
        # input that will never come).
        before = pending[-2].position if at.end and len(pending) > 1 else None
        if any(self._versions.get(name) != m.version for name, m, _, _ in cut.stages):
            # A change was applied since the last write: the new machines go
            # in with the states, in one transaction.
            seq = at.position if before is None else before
            records = [_stage_record(n, m, s, seq) for n, m, s, _ in cut.stages]
            await anyio.to_thread.run_sync(self.store.save_stages, records)
            self._versions = {name: m.version for name, m, _, _ in cut.stages}
        save = self.store.save_states
        states = [(name, encode_value(m.state, s)) for name, m, s, _ in cut.stages]
        if before is not None:
            self._note_marks(pending[:-1])
            rows = [(n, s, before) for n, s in states]
            await anyio.to_thread.run_sync(save, [*rows, self._marks_row(before)])
        if at.end:
            record = {"seq": at.position, "event": _END_EVENT}
            await anyio.to_thread.run_sync(self.store.append_history, record)
        self._note_marks(pending)
        rows = [(n, s, at.position) for n, s in states]
        await anyio.to_thread.run_sync(save, [*rows, self._marks_row(at.position)])
        for done in pending:
            await self.receiver.commit(done.position)
        self.inputs += len(pending)
        pending.clear()
        self.commits += 1
        if self.changes.replies and self._publish is not None:
            for subject, result in self.changes.results(at.position):
                await self._publish(subject, result)

    def _note_marks(self, done: list[InputPosition]) -> None:
        for d in done:
            if d.mark is not None:
                producer, position, part = d.mark
                self._marks[producer] = (position, part)
            for producer, position, part in d.notes:
                self._marks[producer] = (position, part)

    def _marks_row(self, seq: int) -> tuple[str, Any, int]:
        """The producers' watermarks as of the inputs committed, as a store row."""
        return _MARKS, {p: list(m) for p, m in self._marks.items()}, seq

    async def _run_last(self, actor: StageActor) -> None:
        await actor.run()
        self.finished.set()


def _record(actor: StageActor, state: Any, seq: int) -> StageRecord:
    return _stage_record(actor.name, actor.machine, state, seq)


def _stage_record(name: str, m: AnyMachine, state: Any, seq: int) -> StageRecord:
    doc = m.to_wire_data() if isinstance(m, Machine) else None
    return StageRecord(name, m.version, doc, encode_value(m.state, state), seq)


@asynccontextmanager
async def _running(seg: Segment) -> AsyncIterator[None]:
    """Resume ``seg`` from its store and run it for the duration of the block."""
    try:
        assert seg.sender is not None
        position = await anyio.to_thread.run_sync(seg.resume, seg.sender)
        seg.receiver.start_at(position)
        if seg.ended:
            seg.finished.set()
            yield
            return
        async with anyio.create_task_group() as tg:
            tg.start_soon(seg.receiver.run)
            for a in seg.actors[:-1]:
                tg.start_soon(a.run)
            tg.start_soon(seg._run_last, seg.actors[-1])
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
    finally:
        for a in seg.actors:
            a.inbox.close()  # the in-process channels between them


def _sqlite_store(path: Path, fsync: Literal["full", "normal"]) -> tuple[SqliteStore, IO[bytes]]:
    """The segment's store, and the lock that makes it this process's alone.

    Two processes running one segment would read one durable consumer and
    interleave their states: the second is refused. The kernel drops the
    lock with the process, however it ends, so a restart after kill -9
    takes it at once.

    Raises:
        ArrowloopError: another process holds it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = path.with_suffix(".lock").open("ab")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ArrowloopError(
            f"another process runs this segment on {path} (each segment runs in one "
            "process at a time)"
        ) from None
    try:
        return SqliteStore(path, synchronous=fsync), lock
    except BaseException:
        lock.close()
        raise


@asynccontextmanager
async def open_segment(
    spec: PipelineSpec,
    stages: Sequence[str],
    url: str,
    *,
    pipeline: str = "arrowloop",
    state_dir: Path | None = None,
    fsync: Literal["full", "normal"] = "full",
    config: ChannelConfig | None = None,
    memory: bool = False,
    shard: int | None = None,
) -> AsyncIterator[Segment]:
    """Run ``stages`` of ``spec`` here, between networked channels on the broker at ``url``.

    With ``state_dir`` the stages' states and input position are committed
    to a state store file there, and a segment restarted on it (after a
    crash, kill -9 included) goes on with nothing lost or duplicated.
    Without it they are committed the same way to the broker's key-value
    store (_kvstore.py: one value per segment, revision-checked, so a
    second process running the segment is refused), or with ``memory``
    kept in this process only (a crash loses them). ``fsync="normal"`` makes
    commits cheaper and survives a crash of the process (kill -9 included)
    but not of the machine (see docs/durability.md). Wait for
    ``segment.finished`` to run until end of stream; leaving the block
    earlier stops the stages (what was not committed is redelivered to
    the next process that runs them).

    A sharded stage runs alone, one shard per segment: ``shard`` says which
    (its own channel and store; see _shardnet.py).

    Raises:
        ArrowloopError: the stages are no segment (see :func:`segment_stages`),
            ``shard`` is missing or out of range for a sharded stage, or given
            for another.
    """
    config = ChannelConfig() if config is None else config
    chosen, after = segment_stages(spec, stages)
    names = [s.name for s in chosen]
    label, channel, producer = "-".join(names), names[0], f"{pipeline}.{'-'.join(names)}"
    if chosen[0].sharded:
        n = chosen[0].shards
        if shard is None or not 0 <= shard < n:
            raise ArrowloopError(f"stage {names[0]!r} has {n} shards: run shard 0 to {n - 1}")
        chosen = [replica_spec(chosen[0])]
        label = f"{label}.shard{shard}"
        channel = shard_channel(names[0], shard)
        producer = shard_producer(producer, shard, n)
    elif shard is not None:
        raise ArrowloopError(f"stage {names[0]!r} is not sharded: no shard to run")
    store: StateStore | None = None
    lock: IO[bytes] | None = None
    if state_dir is not None:
        path = state_dir / f"{pipeline}.{label}.sqlite"
        store, lock = await anyio.to_thread.run_sync(_sqlite_store, path, fsync)
    elif memory:
        store = MemoryStore()
    try:
        async with connect(url) as nc:
            if store is None:
                store = await open_kv_store(nc, pipeline, label)
            js = nc.jetstream()
            positions: deque[int] = deque()
            codec_in = FrameCodec(chosen[0].machine.input)
            order = [s.name for s in spec.stages]
            index = order.index(names[0])
            before = spec.stages[index - 1] if index > 0 else None
            merged = before.shards if before is not None and before.sharded else None
            receiver: NatsReceiveChannel | MergeReceiver
            if merged is None:
                inp = ChannelName(pipeline, channel)
                await ensure_stream(js, inp, config)
                receiver = NatsReceiveChannel(
                    js, inp, codec_in, config, cuts=True, positions=positions
                )
            else:
                for k in range(merged):
                    name = ChannelName(pipeline, merged_channel(channel, k))
                    await ensure_stream(js, name, config)
                receiver = MergeReceiver(
                    js,
                    ChannelName(pipeline, channel),
                    codec_in,
                    config,
                    merged,
                    cuts=True,
                    positions=positions,
                )
            seg = Segment(
                chosen,
                store,
                receiver,
                group=max(1, config.max_ack_pending // 2),
                last=after == "out",
                publish=nc.publish,
            )
            if shard is not None:
                seg.changes = ShardChanges(
                    seg.actors, after == "out", shard, spec.stages[index].shards
                )
            codec_out = FrameCodec(chosen[-1].machine.output)
            nxt = spec.stages[index + 1] if after != "out" else None
            routed = nxt is not None and nxt.shard_key is not None
            # Why a change across segments cannot pass through here prepared
            # (SegmentChanges: not built after a merge of shards yet).
            sharded = (
                f"reads the merged shards of the stage before {names[0]!r}"
                if merged is not None
                else ""
            )
            if merged is None and not routed:
                # One input stream, one output stream: frames published as
                # they fill (a shard's output goes to a stream of its own).
                out = ChannelName(
                    pipeline, after if shard is None else merged_channel(after, shard)
                )
                await ensure_stream(js, out, config)
                seg.sender = NatsSendChannel(
                    js,
                    out,
                    codec_out,
                    producer,
                    config,
                    positions=positions,
                    commit=seg.commit,
                    max_payload=nc.max_payload,
                )
            else:
                # A shard writes streams of its own (``.from<shard>``): after
                # two sharded stages in a row, shard k of the first routes
                # into ``<next>.shard<j>.from<k>``, which shard j merges.
                def own(channel: str) -> str:
                    return channel if shard is None else merged_channel(channel, shard)

                outs = [ChannelName(pipeline, own(after))]
                key = None
                if nxt is not None and nxt.shard_key is not None:
                    outs = [
                        ChannelName(pipeline, own(shard_channel(after, k)))
                        for k in range(nxt.shards)
                    ]
                    key = nxt.shard_key
                for out in outs:
                    await ensure_stream(js, out, config)
                streams = [""] if merged is None else [f"<{j}" for j in range(merged)]
                senders = [
                    [
                        NatsSendChannel(
                            js,
                            out,
                            codec_out,
                            f"{producer}{j}/{k}" if key is not None else f"{producer}{j}",
                            config,
                            max_payload=nc.max_payload,
                        )
                        for k, out in enumerate(outs)
                    ]
                    for j in streams
                ]
                name = ChannelName(pipeline, after)
                seg.sender = ShardRouter(
                    name, senders, key, positions, seg.commit, seg.dead_letters
                )
            decisions = Decisions(js, pipeline)
            await decisions.ensure()
            shards = {s.name: s.shards for s in spec.stages if s.sharded}
            seg.changes.wire(order, receiver, seg.sender, decisions, sharded=sharded, shards=shards)
            await anyio.to_thread.run_sync(seg.changes.history.load, store)
            async with _running(seg):
                await answer_status(nc, pipeline, seg, index)  # until the connection closes
                await answer_history(nc, pipeline, seg.changes.history, names, index)
                yield seg
    finally:
        if store is not None:
            store.close()
        if lock is not None:
            lock.close()  # and with it the lock
