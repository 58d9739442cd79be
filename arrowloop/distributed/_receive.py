"""The receiving half of a networked channel: a durable pull consumer, in order.

A fetch task pulls broker messages into a local buffer bounded in items; a
stage takes from that buffer through the runtime's
:class:`~arrowloop.runtime.ReceiveChannel` calls, as from an in-process
channel.

Messages are handed out strictly in stream order, each once. The broker can
deliver out of order: a message held unacked past ``ack_wait`` (a slow
reader) comes again after later ones. (A reader that starts makes the
consumer anew, so what an earlier reader held comes back at once, in
order.) So the half keeps the next position it expects (one past what was committed
or handed out) and holds later messages until it comes; a message at or
below the committed position is a redelivery of something applied already
and is acked and dropped. A gap that will never fill (messages deleted from
the stream) is noticed when a pull comes back empty and skipped.

Producers that number their messages (a segment: its input position and
part; a source's ``send_at``) put the numbers in the message ID. The half
remembers the last numbers handed out per producer (its *watermarks*, which
a segment commits with its state) and passes over a message numbered at or
before them: a replay after a crash that came later than the broker's
duplicate window.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import anyio
import nats.errors
import nats.js.errors
from anyio import WouldBlock
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from arrowloop.distributed._channel import ChannelConfig, ChannelName, InputPosition
from arrowloop.distributed._frames import MSG_ID, Frame, FrameCodec
from arrowloop.errors import ArrowloopError
from arrowloop.runtime import ChannelStatistics, CutMsg, EndMsg, Reply

__all__ = ["NatsReceiveChannel", "OnChange"]

#: Seconds a pull of many waits when nothing is there (see run()).
_FLOWING_WAIT = 0.02

OnChange = Callable[[Frame, int, bytes], tuple[list[Any], bytes | None]]


def _mark(msg: Msg) -> tuple[str, int, int] | None:
    """``(producer, position, part)`` from the message's ID, when its
    producer numbers what it sends (segments, and sources with ``send_at``)."""
    headers = msg.headers
    msg_id = headers.get(MSG_ID) if headers else None
    if msg_id is None:
        return None
    producer, _, rest = msg_id.rpartition(":")
    producer, _, position = producer.rpartition(":")
    if not producer or not position.isdigit() or not rest.isdigit():
        return None
    return producer, int(position), int(rest)


log = logging.getLogger("arrowloop.distributed")


def take_buffered(out: deque[Any], limit: int) -> tuple[list[Any], int]:
    """The messages at the front of ``out`` up to about ``limit`` items (a
    list counts its items, anything else one), taken off it, and their count."""
    taken: list[Any] = []
    n = 0
    while out and n < limit:
        m = out.popleft()
        n += len(m) if type(m) is list else 1
        taken.append(m)
    return taken, n


class NatsReceiveChannel:
    """The receiving half: broker messages in stream order, as runtime messages.

    With ``cuts`` (in a segment), each broker message's items are followed
    by a cut whose reply is an :class:`InputPosition`, its position is
    appended to ``positions``, and the message is acked by :meth:`commit`.
    Without (a sink), a message is acked as it is handed out.
    ``committed`` is the position applied before (from the segment's store).
    """

    def __init__(
        self,
        js: JetStreamContext,
        name: ChannelName,
        codec: FrameCodec,
        config: ChannelConfig,
        *,
        committed: int = 0,
        cuts: bool = False,
        positions: deque[int] | None = None,
        capacity: int = 4096,
    ) -> None:
        self._js = js
        self.name = name
        self._codec = codec
        self._config = config
        self._cuts = cuts
        self.positions: deque[int] = deque() if positions is None else positions
        self.committed = committed
        self._expected = committed + 1
        self._early: dict[int, Msg] = {}  # delivered ahead of the expected position
        self._inflight: dict[int, Msg] = {}  # handed out, not yet committed
        self._out: deque[Any] = deque()
        self._items = 0
        self._capacity = capacity
        self._ended = False
        self._closed = False
        self._readable: anyio.Event | None = None
        self._space: anyio.Event | None = None
        #: Redeliveries dropped because they were applied already.
        self.redelivered = 0
        #: Messages that were not frames of this channel's type, passed over.
        self.malformed = 0
        #: Per producer, the ``(position, part)`` of the last message handed
        #: out; a segment commits the ones of its committed inputs.
        self.watermarks: dict[str, tuple[int, int]] = {}
        #: Messages passed over as replays the broker had not deduplicated.
        self.replays = 0
        #: What a segment does with a code change frame: the runtime messages
        #: to hand out before its cut, and a frame to pass on at the cut.
        self.on_change: OnChange | None = None
        # Set while a change that alters this channel's item type is being
        # decided: later messages wait here undecoded (see hold()).
        self._holding = False

    def use_codec(self, codec: FrameCodec) -> None:
        """Decode the messages handed out from now on with ``codec``."""
        self._codec = codec

    def hold(self, until: Reply, codec: FrameCodec) -> None:
        """Hand out nothing after the message being handed out until ``until``
        is delivered; then go on, decoding with ``codec`` if it succeeded.

        For a change that alters the channel's item type: the frames after
        it are in the new type if (and only if) the change commits, which is
        known only once the segment's stages have taken it.
        """
        release = self.hold_release(codec)
        until.then = lambda: release(until.error is None)
        if until.done:
            until.then()

    def hold_release(self, codec: FrameCodec) -> Callable[[bool], None]:
        """Hold as :meth:`hold` does, until the function returned is called
        (with whether to decode with ``codec`` from then on)."""
        self._holding = True

        def release(switch: bool) -> None:
            self._holding = False
            if switch:
                self._codec = codec
            while self._expected in self._early and not self._holding:
                seq = self._expected
                self._hand_out(seq, self._early.pop(seq))

        return release

    def start_at(self, committed: int) -> None:
        """Begin after ``committed`` (the position a segment's store holds)."""
        self.committed = committed
        self._expected = committed + 1

    async def run(self) -> None:
        """Pull from the broker until closed or end of stream (a task's body)."""
        js, name, config = self._js, self.name, self._config
        # The consumer is made anew by each reader: what an earlier one held
        # unacked (it crashed, or stopped with a pull outstanding) comes back
        # at once and in stream order, not after ack_wait. Nothing is lost:
        # a work queue deletes only what was acked, and what was committed
        # but not acked is dropped here by its position. (So one reader per
        # channel at a time: a segment's lock, docs/distributed.md.)
        with suppress(nats.js.errors.NotFoundError):
            await js.delete_consumer(name.stream, name.consumer)
        sub = await js.pull_subscribe(
            name.subject,
            durable=name.consumer,
            stream=name.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                max_ack_pending=config.max_ack_pending,
                ack_wait=config.ack_wait,
                max_deliver=-1,
            ),
        )
        delay = 0.005
        flowing = False
        while not self._closed and not self._ended:
            while self._items >= self._capacity and not self._closed:
                self._space = anyio.Event()
                await self._space.wait()
            # nats-py's fetch of many returns at once with what is there, but
            # when nothing is, it waits for the whole batch or the timeout,
            # holding what trickles in. So: many while messages flow (and a
            # short wait when they stop), one at a time when idle (returns
            # on the first).
            try:
                if flowing:
                    msgs = await sub.fetch(config.max_ack_pending, timeout=_FLOWING_WAIT)
                else:
                    msgs = await sub.fetch(1, timeout=config.fetch_timeout)
            except TimeoutError:  # nats' own or asyncio's, by the path taken
                if not flowing and self._early and not self._holding:
                    await self._skip_gap()
                flowing = False
                continue
            except nats.errors.Error as exc:
                if isinstance(exc, nats.errors.ConnectionClosedError):
                    raise
                log.debug("channel %s: fetch waits: %s", name.stream, exc)
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.5)
                continue
            delay = 0.005
            flowing = True
            for msg in msgs:
                await self._take(msg)

    async def _take(self, msg: Msg) -> None:
        try:
            seq = msg.metadata.sequence.stream
        except (nats.errors.Error, ValueError, IndexError):  # a status message
            return
        if seq < self._expected:
            if seq <= self.committed:
                self.redelivered += 1
                await msg.ack()  # applied and committed already
            elif seq in self._inflight:
                self._inflight[seq] = msg  # ack the newest delivery
            return
        if seq > self._expected or self._holding:
            self._early[seq] = msg
            return
        self._hand_out(seq, msg)
        while self._expected in self._early and not self._holding:
            seq = self._expected
            self._hand_out(seq, self._early.pop(seq))
        if not self._cuts:
            for seq in list(self._inflight):
                await self.commit(seq)

    def _hand_out(self, seq: int, msg: Msg) -> None:
        mark = _mark(msg)
        try:
            if mark is not None and self._replayed(mark):
                # Its producer sent it before (a replay after a crash) and the
                # broker no longer remembered its ID: passed over, like a
                # message the broker had dropped, its position committed.
                frame = Frame([])
                self.replays += 1
            else:
                frame = self._codec.decode(msg.data)
        except (ValueError, ArrowloopError) as exc:
            # Not ours, or not of this channel's type: no stage could ever take
            # it, so it must not stop the channel (nor, replayed, every
            # restart). Passed over as an empty frame, its position committed.
            self.malformed += 1
            log.error("channel %s: message %d is not a frame: %s", self.name.stream, seq, exc)
            frame = Frame([])
        out = self._out
        if frame.items:
            out.append(frame.items)
            self._items += len(frame.items)
        forward = None
        if frame.change is not None and self.on_change is not None:
            # A code change in-band: what the segment makes of it (an
            # upgrade of its own stages) goes in here, in stream order.
            messages, forward = self.on_change(frame, seq, msg.data)
            out.extend(messages)
            self._items += len(messages)
        if self._cuts:
            self.positions.append(seq)
            out.append(CutMsg(InputPosition(seq, frame.end, forward, mark)))
            self._items += 1
        if frame.end:
            out.append(EndMsg())
            self._items += 1
            self._ended = True
        self._inflight[seq] = msg
        self._expected = seq + 1
        readable = self._readable
        if readable is not None:
            self._readable = None
            readable.set()

    def _replayed(self, mark: tuple[str, int, int]) -> bool:
        """Whether ``mark`` is at or before the last one handed out from its
        producer (which numbers its messages in the order it publishes
        them); if not, it is the producer's last from now on."""
        producer, position, part = mark
        last = self.watermarks.get(producer)
        if last is not None and (position, part) <= last:
            return True
        self.watermarks[producer] = (position, part)
        return False

    async def _skip_gap(self) -> None:
        """Move past positions the stream no longer has (deleted, never coming)."""
        js, stream = self._js, self.name.stream
        try:
            first = (await js.stream_info(stream)).state.first_seq
        except nats.errors.Error:
            return
        if first > self._expected:
            self._expected = first
        while self._early and self._expected < min(self._early):
            try:
                await js.get_msg(stream, self._expected)
                return  # it is there: it will be delivered
            except nats.js.errors.NotFoundError:
                self._expected += 1
            except nats.errors.Error:
                return
        while self._expected in self._early and not self._holding:
            seq = self._expected
            self._hand_out(seq, self._early.pop(seq))

    async def commit(self, position: int) -> None:
        """The input at ``position`` is applied for good: ack it."""
        msg = self._inflight.pop(position, None)
        self.committed = max(self.committed, position)
        if msg is not None:
            try:
                await msg.ack()
            except nats.errors.Error as exc:
                # Lost with the connection: it is redelivered and dropped then.
                log.debug("channel %s: ack lost: %s", self.name.stream, exc)

    # -- the runtime's ReceiveChannel -------------------------------------------

    @property
    def queued(self) -> int:
        """Items (and markers) buffered here now."""
        return self._items

    @property
    def senders_waiting(self) -> int:
        """Unknown across the network: 0."""
        return 0

    def receive_nowait(self, limit: int) -> list[Any]:
        """Take what is buffered, up to about ``limit`` items.

        Raises:
            anyio.WouldBlock: nothing is.
            anyio.EndOfStream: end of stream was taken, or the half was closed.
        """
        out = self._out
        if not out:
            if self._ended or self._closed:
                raise anyio.EndOfStream
            raise WouldBlock
        taken, n = take_buffered(out, limit)
        self._items -= n
        space = self._space
        if space is not None and self._items < self._capacity:
            self._space = None
            space.set()
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
        """Stop receiving; unacked messages go back to the broker (redelivered later)."""
        self._closed = True
        self._out.clear()
        self._items = 0
        for event in (self._readable, self._space):
            if event is not None:
                event.set()

    def statistics(self) -> ChannelStatistics:
        """Items buffered here, broker messages in flight, the local bound."""
        return ChannelStatistics(self._items, len(self._inflight), self._capacity, self._closed)
