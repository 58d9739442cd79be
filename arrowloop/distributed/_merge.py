"""The receiving half after a sharded stage: N streams, one per shard, merged.

Shard ``k`` publishes into a stream of its own (:func:`merged_channel`), so
the reader after the shards reads N streams, each through its own receiving
half (:class:`~arrowloop.distributed._receive.NatsReceiveChannel`: in order,
each message once, acked at the reader's commit), and a pump task per
stream moves their messages into one queue. A held stream stops only its
own pump, and so, once its window is full, only its shard: the others go
on (one stream for all would fill with the held shard's frames and stall
every shard).

**Code changes are aligned** (as Flink aligns barriers): each shard passes
a change for stages further on in its own stream, at its cut. The pump
that takes a stream's copy of change *i* holds that stream after the
copy's cut until every stream has passed its copy *i*; the last copy
applies the change, once, in the reader's segment (or passes it on), and
every stream is released. So every item before the change in its shard
meets the old code further on, and every item after it the new one. A
change that alters the channel's item type (a change across segments
through the shards) holds every stream's half from the last copy until it
is decided (:meth:`MergeReceiver.hold`).

**End of stream** is handed out at the end of the last stream.

**Positions.** A cut here is numbered by a counter of the reader's own
(what the segment commits as its position); it carries the stream and the
stream's position of its input (:class:`MergedPosition`), which the
sending half uses for message IDs (``producer<k`` at the stream position:
the same on every replay, increasing per producer) and :meth:`commit` to
ack. Per stream, its committed position, the copies it has passed and
whether it ended are committed as watermark notes with the states, in one
transaction (``~in:k``, ``~copies:k``, ``~end:k``); a reader restarted
resumes each stream there, with the streams that had passed more copies
held as they were.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import anyio
from anyio import WouldBlock

from arrowloop.distributed._channel import ChannelConfig, ChannelName, InputPosition
from arrowloop.distributed._frames import Frame, FrameCodec
from arrowloop.distributed._receive import NatsReceiveChannel, OnChange, take_buffered
from arrowloop.runtime import ChannelStatistics, CutMsg, EndMsg, Reply

__all__ = ["ChangeCopy", "MergeReceiver", "MergedPosition", "merged_channel"]


def merged_channel(channel: str, shard: int) -> str:
    """The channel from shard ``shard`` into ``channel`` (a stage's, or ``out``)."""
    return f"{channel}.from{shard}"


class MergedPosition(InputPosition):
    """A cut's position after the shards: the reader's own counter
    (``position``), and the input's stream and position in it."""

    __slots__ = ("seq", "stream")

    def __init__(
        self,
        position: int,
        end: bool,
        forward: bytes | None,
        mark: tuple[str, int, int] | None,
        notes: tuple[tuple[str, int, int], ...],
        stream: int,
        seq: int,
    ) -> None:
        super().__init__(position, end, forward, mark, notes)
        self.stream = stream
        self.seq = seq


class ChangeCopy:
    """A stream's copy of a code change, as its receiving half hands it out
    (the merge decides what it becomes)."""

    __slots__ = ("frame", "raw", "seq")

    def __init__(self, frame: Frame, seq: int, raw: bytes) -> None:
        self.frame = frame
        self.seq = seq
        self.raw = raw


def _copy(frame: Frame, seq: int, raw: bytes) -> tuple[list[Any], bytes | None]:
    return [ChangeCopy(frame, seq, raw)], None


class MergeReceiver:
    """The receiving half of a channel after a sharded stage of ``shards``
    shards: their streams merged, changes aligned (see the module).

    With ``cuts`` (in a segment) it hands out cuts with a
    :class:`MergedPosition`; without (a sink), items and the last end.
    """

    def __init__(
        self,
        js: Any,
        name: ChannelName,
        codec: FrameCodec,
        config: ChannelConfig,
        shards: int,
        *,
        cuts: bool = False,
        positions: deque[int] | None = None,
        capacity: int = 4096,
    ) -> None:
        self.name = name
        self._cuts = cuts
        self.subs = [
            NatsReceiveChannel(
                js,
                ChannelName(name.pipeline, merged_channel(name.channel, k)),
                codec,
                config,
                cuts=cuts,
                positions=deque(),
            )
            for k in range(shards)
        ]
        self.positions: deque[int] = deque() if positions is None else positions
        self._marks: dict[str, tuple[int, int]] = {}
        self._counter = 0
        self._inputs: dict[int, tuple[int, int]] = {}  # counter -> (stream, position)
        self.copies = [0] * shards
        self.ended = [False] * shards
        self._forward: dict[int, bytes] = {}
        self._notes: dict[int, list[tuple[str, int, int]]] = {k: [] for k in range(shards)}
        self._awaiting_cut: set[int] = set()  # a copy taken, its cut not yet
        self._out: deque[Any] = deque()
        self._items = 0
        self._capacity = capacity
        self._done = False
        self._closed = False
        self._changed = anyio.Event()
        self._readable: anyio.Event | None = None
        self.on_change: OnChange | None = None
        #: The committed position (this reader's counter).
        self.committed = 0
        self.watermarks = {}  # one dict, shared with the streams' halves

    # -- what a segment asks of its receiver -----------------------------------

    @property
    def watermarks(self) -> dict[str, tuple[int, int]]:
        """Per producer the last numbers handed out, and the streams' notes."""
        return self._marks

    @watermarks.setter
    def watermarks(self, marks: dict[str, tuple[int, int]]) -> None:
        self._marks = marks
        for sub in self.subs:
            sub.watermarks = marks  # producers differ per stream: one dict

    @property
    def redelivered(self) -> int:
        """Redeliveries dropped, over all streams."""
        return sum(s.redelivered for s in self.subs)

    @property
    def malformed(self) -> int:
        """Messages that were not frames, over all streams."""
        return sum(s.malformed for s in self.subs)

    @property
    def replays(self) -> int:
        """Replays passed over, over all streams."""
        return sum(s.replays for s in self.subs)

    def use_codec(self, codec: FrameCodec) -> None:
        """Decode what every stream hands out from now on with ``codec``."""
        for sub in self.subs:
            sub.use_codec(codec)

    def hold(self, until: Reply, codec: FrameCodec) -> None:
        """Hand out nothing after what every stream has handed out until
        ``until`` is delivered; then go on, decoding with ``codec`` if it
        succeeded.

        Called as the last copy of a change that alters this channel's type
        is taken: every shard has passed its copy, and the shards write the
        new type after it only if the change commits (a shard that refused
        it writes the old type, and then the change aborts), so each
        stream's half holds what follows, undecoded, until it is decided.
        """
        releases = [sub.hold_release(codec) for sub in self.subs]

        def release() -> None:
            for r in releases:
                r(until.error is None)

        until.then = release
        if until.done:
            release()

    def start_at(self, committed: int) -> None:
        """Resume every stream where its notes say (``committed`` is this
        reader's counter)."""
        self.committed = self._counter = committed
        marks = self._marks
        for k, sub in enumerate(self.subs):
            sub.start_at(marks.get(f"~in:{k}", (0, 0))[0])
            self.copies[k] = marks.get(f"~copies:{k}", (0, 0))[0]
            self.ended[k] = f"~end:{k}" in marks

    def _held(self, k: int) -> bool:
        """Whether stream ``k`` has passed a copy (and its cut) that another
        stream has not reached yet."""
        return self.copies[k] > min(self.copies) and k not in self._awaiting_cut

    async def run(self) -> None:
        """Read every stream not ended, until end of stream or closed."""
        if all(self.ended):
            self._finish()
            return
        if self._cuts:
            for sub in self.subs:
                sub.on_change = _copy
        async with anyio.create_task_group() as tg:
            for k, sub in enumerate(self.subs):
                if not self.ended[k]:
                    tg.start_soon(sub.run)
                    tg.start_soon(self._pump, k)
            while not self._done and not self._closed:
                await self._wait()
            tg.cancel_scope.cancel()

    async def _wait(self) -> None:
        await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def _pump(self, k: int) -> None:
        sub = self.subs[k]
        while not self._closed:
            if self._held(k) or self._items >= self._capacity:
                await self._wait()
                continue
            try:
                messages = await sub.receive(1)
            except anyio.EndOfStream:
                return
            for m in messages:
                self._take(k, m)
            readable = self._readable
            if readable is not None:
                self._readable = None
                readable.set()

    def _take(self, k: int, m: Any) -> None:
        """Move message ``m`` of stream ``k`` into the merged queue."""
        out = self._out
        t = type(m)
        if t is list:
            out.append(m)
            self._items += len(m)
        elif t is ChangeCopy:
            self.copies[k] += 1
            self._notes[k].append((f"~copies:{k}", self.copies[k], 0))
            if self.copies[k] == min(self.copies):
                # The last copy: the change takes its place here, once.
                self._apply(k, m)
                self._wake()  # every stream held for it goes on
            else:
                self._awaiting_cut.add(k)
        elif t is CutMsg and isinstance(m.reply, InputPosition):
            at = m.reply
            self.subs[k].positions.clear()  # the merge numbers its own cuts
            notes = [*at.notes, *self._notes[k], (f"~in:{k}", at.position, 0)]
            self._notes[k].clear()
            end = False
            if at.end:
                self.ended[k] = True
                notes.append((f"~end:{k}", 1, 0))
                end = all(self.ended)
            self._counter += 1
            counter = self._counter
            self._inputs[counter] = (k, at.position)
            forward = self._forward.pop(k, None)
            cut = MergedPosition(counter, end, forward, at.mark, tuple(notes), k, at.position)
            self.positions.append(counter)
            out.append(CutMsg(cut))
            self._items += 1
            self._awaiting_cut.discard(k)  # held from now on, if a copy is ahead
        elif t is EndMsg:
            self.ended[k] = True
            if all(self.ended):
                self._finish()
        else:
            out.append(m)
            self._items += 1

    def _apply(self, k: int, copy: ChangeCopy) -> None:
        if self.on_change is None:
            return
        messages, forward = self.on_change(copy.frame, self._counter + 1, copy.raw)
        self._out.extend(messages)
        self._items += len(messages)
        if forward is not None:
            self._forward[k] = forward

    def _finish(self) -> None:
        self._out.append(EndMsg())
        self._items += 1
        self._done = True
        self._wake()

    async def commit(self, position: int) -> None:
        """The input at ``position`` (this reader's counter) is applied for good: ack it."""
        at = self._inputs.pop(position, None)
        self.committed = max(self.committed, position)
        if at is not None:
            await self.subs[at[0]].commit(at[1])

    # -- the runtime's ReceiveChannel ---------------------------------------------

    @property
    def queued(self) -> int:
        """Items (and markers) merged and not yet taken."""
        return self._items

    @property
    def senders_waiting(self) -> int:
        """Unknown across the network: 0."""
        return 0

    def receive_nowait(self, limit: int) -> list[Any]:
        """Take what is merged, up to about ``limit`` items.

        Raises:
            anyio.WouldBlock: nothing is.
            anyio.EndOfStream: end of stream was taken, or the half was closed.
        """
        out = self._out
        if not out:
            if self._done or self._closed:
                raise anyio.EndOfStream
            raise WouldBlock
        taken, n = take_buffered(out, limit)
        self._items -= n
        self._wake()  # room for the pumps
        return taken

    async def receive(self, limit: int) -> list[Any]:
        """Wait for something to take, then take up to about ``limit`` items."""
        while True:
            try:
                return self.receive_nowait(limit)
            except WouldBlock:
                pass
            if self._readable is None:
                self._readable = anyio.Event()
            await self._readable.wait()

    def close(self) -> None:
        """Stop receiving; unacked messages go back to the broker."""
        self._closed = True
        for sub in self.subs:
            sub.close()
        self._out.clear()
        self._items = 0
        self._wake()
        if self._readable is not None:
            self._readable.set()

    def statistics(self) -> ChannelStatistics:
        """Items merged here, broker messages in flight over all streams, the bound."""
        inflight = sum(s.statistics().messages for s in self.subs)
        return ChannelStatistics(self._items, inflight, self._capacity, self._closed)
