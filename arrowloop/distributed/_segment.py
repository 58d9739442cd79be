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
duplicates. A crash between 3 and 4 redelivers *p*, which is at or below
the committed position: it is acked and dropped. So every input is applied
once and every output enters the next channel once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from arrowloop.distributed._channel import (
    ChannelConfig,
    ChannelName,
    InputPosition,
    NatsSendChannel,
    ensure_stream,
)
from arrowloop.distributed._ends import connect
from arrowloop.distributed._frames import FrameCodec
from arrowloop.distributed._receive import NatsReceiveChannel
from arrowloop.errors import ArrowloopError
from arrowloop.machine import Machine
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


def segment_stages(spec: PipelineSpec, names: Sequence[str]) -> tuple[list[StageSpec], str]:
    """The stages ``names`` name, in pipeline order, and the channel after them.

    Raises:
        ArrowloopError: a name is unknown, or the stages are not consecutive.
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
    after = first + len(names)
    return chosen, order[after] if after < len(order) else "out"


class Segment:
    """Running stages of a pipeline in this process (made by :func:`open_segment`)."""

    def __init__(
        self,
        stages: list[StageSpec],
        store: StateStore,
        receiver: NatsReceiveChannel,
        group: int = 1,
    ) -> None:
        self.store = store
        self.receiver = receiver
        self.sender: NatsSendChannel | None = None
        self.dead_letters = DeadLetters()
        self.actors: list[StageActor] = []
        #: Set once end of stream has passed through every stage.
        self.finished = anyio.Event()
        #: Whether end of stream was committed (by this process or before).
        self.ended = False
        #: Writes to the store, and the inputs (broker messages) they committed.
        self.commits = 0
        self.inputs = 0
        self._uncommitted: list[int] = []
        self._group = group
        self._stages = stages

    @property
    def committed(self) -> int:
        """The input position committed last."""
        return self.receiver.committed

    def build(self, sender: NatsSendChannel) -> None:
        """The actors, chained by in-process channels from the receiver to ``sender``."""
        self.sender = sender
        inbox: ReceiveChannel = self.receiver
        for i, spec in enumerate(self._stages):
            outbox: SendChannel
            if i + 1 < len(self._stages):
                outbox, nxt = open_channel(spec.capacity)
            else:
                outbox, nxt = sender, None
            self.actors.append(StageActor(spec, inbox, outbox, self.dead_letters))
            if nxt is not None:
                inbox = nxt

    def resume(self) -> int:
        """Seed the actors from the store; the committed position (0 if new).

        A segment that committed end of stream before is :attr:`ended`.

        Raises:
            ArrowloopError: the store holds another version of a stage's
                machine (changes across processes are not built yet).
        """
        stored = self.store.load()
        records = {} if stored is None else stored.stages
        if not all(a.name in records for a in self.actors):
            self.store.save_stages([_record(a, a.state, 0) for a in self.actors])
            return 0
        position = min(records[a.name].seq for a in self.actors)
        assert stored is not None
        self.ended = any(r.get("event") == _END_EVENT for r in stored.history)
        for a in self.actors:
            rec = records[a.name]
            if rec.version != a.machine.version:
                raise ArrowloopError(
                    f"stage {a.name!r}: the store at {self.store.location} holds version "
                    f"{rec.version[:12]}, this process runs {a.machine.version[:12]}"
                )
            a.seed(decode_value(a.machine.state, rec.state, f"$.{a.name}"), 0)
        return position

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
        self._uncommitted.append(at.position)
        later = len(self.receiver.positions) > 1  # this cut's position is still first
        if later and not at.end and len(self._uncommitted) < self._group:
            return
        save = self.store.save_states
        states = [(name, encode_value(m.state, s), at.position) for name, m, s, _ in cut.stages]
        if at.end:
            # End of stream carries no items: the states at it are those at
            # the input before it. Saved there first, then the end is noted,
            # so a crash in between leaves either the input before it to
            # replay, or a segment that stops at once when run again (not
            # one waiting for input that will never come).
            if len(self._uncommitted) > 1:
                before = self._uncommitted[-2]
                await anyio.to_thread.run_sync(save, [(n, s, before) for n, s, _ in states])
            record = {"seq": at.position, "event": _END_EVENT}
            await anyio.to_thread.run_sync(self.store.append_history, record)
        await anyio.to_thread.run_sync(save, states)
        for position in self._uncommitted:
            await self.receiver.commit(position)
        self.inputs += len(self._uncommitted)
        self._uncommitted.clear()
        self.commits += 1

    async def _run_last(self, actor: StageActor) -> None:
        await actor.run()
        self.finished.set()


def _record(actor: StageActor, state: Any, seq: int) -> StageRecord:
    m = actor.machine
    doc = m.to_wire_data() if isinstance(m, Machine) else None
    return StageRecord(actor.name, m.version, doc, encode_value(m.state, state), seq)


@asynccontextmanager
async def _running(seg: Segment) -> AsyncIterator[None]:
    """Resume ``seg`` from its store and run it for the duration of the block."""
    try:
        position = await anyio.to_thread.run_sync(seg.resume)
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


def _sqlite_store(path: Path) -> SqliteStore:
    path.parent.mkdir(parents=True, exist_ok=True)
    return SqliteStore(path)


@asynccontextmanager
async def open_segment(
    spec: PipelineSpec,
    stages: Sequence[str],
    url: str,
    *,
    pipeline: str = "arrowloop",
    state_dir: Path | None = None,
    config: ChannelConfig | None = None,
) -> AsyncIterator[Segment]:
    """Run ``stages`` of ``spec`` here, between networked channels on the broker at ``url``.

    With ``state_dir`` the stages' states and input position are committed
    to a state store file there, and a segment restarted on it (after a
    crash, kill -9 included) goes on with nothing lost or duplicated.
    Without it they are kept in memory only. Wait for
    ``segment.finished`` to run until end of stream; leaving the block
    earlier stops the stages (what was not committed is redelivered to
    the next process that runs them).
    """
    config = ChannelConfig() if config is None else config
    chosen, after = segment_stages(spec, stages)
    names = [s.name for s in chosen]
    store: StateStore
    if state_dir is None:
        store = MemoryStore()
    else:
        path = state_dir / f"{pipeline}.{'-'.join(names)}.sqlite"
        store = await anyio.to_thread.run_sync(_sqlite_store, path)
    try:
        async with connect(url) as nc:
            js = nc.jetstream()
            inp, out = ChannelName(pipeline, names[0]), ChannelName(pipeline, after)
            await ensure_stream(js, inp, config)
            await ensure_stream(js, out, config)
            positions: deque[int] = deque()
            codec_in = FrameCodec(chosen[0].machine.input)
            receiver = NatsReceiveChannel(js, inp, codec_in, config, cuts=True, positions=positions)
            seg = Segment(chosen, store, receiver, max(1, config.max_ack_pending // 2))
            sender = NatsSendChannel(
                js,
                out,
                FrameCodec(chosen[-1].machine.output),
                f"{pipeline}.{'-'.join(names)}",
                config,
                positions=positions,
                commit=seg.commit,
            )
            seg.build(sender)
            async with _running(seg):
                yield seg
    finally:
        store.close()
