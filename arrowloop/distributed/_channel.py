"""The runtime's channel halves on NATS JetStream: one work-queue stream per channel.

A channel is a stream of file storage with a message and byte limit and
*discard new*: at the bound the broker refuses a publish, and the sender
waits and tries again with backoff (a full channel slows its producer, it
never drops). It is read through one durable pull consumer with explicit
acks, one per broker message (never ack-all: after a crash that would ack
what was never applied), and ``max_ack_pending`` as the window of broker
messages in flight.

Both halves implement the runtime's :class:`~arrowloop.runtime.SendChannel`
and :class:`~arrowloop.runtime.ReceiveChannel`, so a
:class:`~arrowloop.runtime.StageActor` reads and writes them as it does
in-process channels. A receiving half used by a segment (``_segment.py``)
follows each broker message's items with a cut marked with that message's
stream sequence, its *position*; the segment's sending half publishes the
outputs before the cut under IDs derived from that position, and acks the
input only once the segment has committed its state at it.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Final

import anyio
import attrs
import nats.errors
import nats.js.errors
from anyio import WouldBlock
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from arrowloop.distributed._frames import END, MSG_ID, FrameCodec, message_id
from arrowloop.runtime import ChannelStatistics, CutMsg, EndMsg, Reply, UpgradeMsg

__all__ = [
    "ChannelConfig",
    "ChannelName",
    "InputPosition",
    "NatsSendChannel",
    "ensure_stream",
]

log = logging.getLogger("arrowloop.distributed")

_BACKOFF_MIN: Final = 0.005
_BACKOFF_MAX: Final = 0.5


@attrs.frozen
class ChannelConfig:
    """The limits of networked channels (see docs/distributed.md, Operations).

    Attributes:
        max_msgs: broker messages a channel's stream holds before it refuses
            publishes (the bound: discard new, so producers wait).
        max_bytes: bytes it holds before it refuses them.
        frame_items: most items per broker message.
        max_ack_pending: broker messages delivered to a consumer and not
            yet acked (the in-flight window).
        ack_wait: seconds before the broker redelivers a message a reader
            holds unacked (a reader that starts gets what an earlier one held
            at once: it makes the consumer anew).
        duplicate_window: seconds the broker remembers message IDs (later
            replays are dropped by the reader's watermarks, see _receive.py).
        fetch_timeout: seconds one pull waits for messages.
    """

    max_msgs: int = 1024
    max_bytes: int = 64 << 20
    frame_items: int = 256
    max_ack_pending: int = 64
    ack_wait: float = 30.0
    duplicate_window: float = 120.0
    fetch_timeout: float = 1.0


@attrs.frozen
class ChannelName:
    """Where a channel lives: its stream, subject and consumer names.

    Every name is derived from the pipeline's name and the channel's (the
    stage it feeds, or ``out``), with what NATS does not allow in names
    replaced by ``_``.
    """

    pipeline: str
    channel: str

    @property
    def stream(self) -> str:
        """The stream's name."""
        return _safe(f"arrowloop_{self.pipeline}_{self.channel}")

    @property
    def subject(self) -> str:
        """The subject its messages are published on."""
        return f"arrowloop.{_safe(self.pipeline)}.{_safe(self.channel)}"

    @property
    def consumer(self) -> str:
        """The durable consumer that reads it."""
        return _safe(f"{self.pipeline}_{self.channel}")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)


async def ensure_stream(js: JetStreamContext, name: ChannelName, config: ChannelConfig) -> None:
    """Create the channel's stream unless it exists (its limits are then kept)."""
    try:
        await js.stream_info(name.stream)
        return
    except nats.js.errors.NotFoundError:
        pass
    await js.add_stream(
        StreamConfig(
            name=name.stream,
            subjects=[name.subject],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            max_msgs=config.max_msgs,
            max_bytes=config.max_bytes,
            duplicate_window=config.duplicate_window,
        )
    )


class InputPosition(Reply):
    """The reply slot of a segment's cut: which input it follows.

    ``position`` is the stream sequence of the broker message whose items
    came before the cut; ``end`` says that message was end of stream;
    ``forward`` is a frame to pass on downstream at the cut (a code change
    for stages further on); ``mark`` is ``(producer, position, part)`` of
    that message as its producer numbered it, if it did (see _receive.py);
    ``notes`` are more watermarks to commit with it (the reader after a
    sharded stage notes there its streams' positions, the change copies
    they passed and their ends: see _merge.py).
    """

    __slots__ = ("end", "forward", "mark", "notes", "position")

    def __init__(
        self,
        position: int,
        end: bool,
        forward: bytes | None = None,
        mark: tuple[str, int, int] | None = None,
        notes: tuple[tuple[str, int, int], ...] = (),
    ) -> None:
        super().__init__()
        self.position = position
        self.end = end
        self.forward = forward
        self.mark = mark
        self.notes = notes


#: A publish failing so may succeed later: the broker is away (restarting,
#: reconnecting) or slow. Anything else (a payload over the broker's limit,
#: a closed connection, a refusal other than a full stream) is raised.
_AWAY = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
)


def _retryable(exc: Exception) -> bool:
    """Whether a failed publish may succeed later: the stream is full (503),
    or the broker is away."""
    if isinstance(exc, nats.js.errors.APIError):
        return exc.code is not None and exc.code >= 500
    return isinstance(exc, _AWAY)


#: Called at a segment's cut, once the outputs before it are confirmed.
Commit = Callable[[CutMsg, InputPosition], Awaitable[None]]


class NatsSendChannel:
    """The sending half: publishes frames of items, waiting while the channel is full.

    Alone (a source), each broker message gets an ID of this sender's own.
    In a segment (``positions`` and ``commit`` given), the outputs of each
    input position are cut into frames of ``frame_items`` in order, so a
    replay after a crash yields the same frames under the same IDs, and
    the broker drops them.
    """

    def __init__(
        self,
        js: JetStreamContext,
        name: ChannelName,
        codec: FrameCodec,
        producer: str,
        config: ChannelConfig,
        *,
        positions: deque[int] | None = None,
        commit: Commit | None = None,
        max_payload: int = 1 << 20,
    ) -> None:
        self._js = js
        self._max_payload = max_payload  # the broker's (the connection knows it)
        self.name = name
        self._codec = codec
        self._producer = producer
        self._frame = config.frame_items
        self._positions = positions
        self._commit = commit
        # Alone, IDs only need to tell this sender's messages apart (a resend
        # after a timeout is the same message); a new sender starts afresh.
        self._nonce = uuid.uuid4().hex[:12]
        self._sent = 0
        self._part = 0
        self._buf: list[Any] = []
        self.closed = False
        #: Publishes refused (full channel, broker away) and tried again.
        self.waits = 0
        #: Broker messages published (and confirmed).
        self.published = 0
        #: Of those, the ones the broker had already (a replay after a crash).
        self.duplicates = 0
        #: What a segment does with an upgrade message that
        #: reaches its end (a change prepared here, decided further on:
        #: _changes.py), after what came before it is published.
        self.on_control: Callable[[Any], Awaitable[None]] | None = None

    def use_codec(self, codec: FrameCodec) -> None:
        """Encode the items sent from now on with ``codec`` (flush first)."""
        self._codec = codec

    def send_nowait(self, message: Any) -> None:
        """Buffer a batch that does not fill a frame; anything else needs :meth:`send`."""
        if type(message) is list and len(self._buf) + len(message) < self._frame:
            self._buf.extend(message)
            return
        raise WouldBlock

    async def send(self, message: Any) -> None:
        """Publish ``message``: items in frames, a cut or end of stream.

        Raises:
            TypeError: an envelope with a reply route (a caller waiting in
                this process) or a control message not carried yet.
        """
        t = type(message)
        if t is list:
            buf = self._buf
            buf.extend(message)
            while len(buf) >= self._frame:
                await self._publish_items(buf[: self._frame])
                del buf[: self._frame]
        elif t is CutMsg and isinstance(message.reply, InputPosition):
            await self._cut(message, message.reply)
        elif t is EndMsg:
            await self.flush()
            if self._positions is None:
                await self._publish(END)
            self.closed = True
        elif self.on_control is not None and t is UpgradeMsg:
            await self.flush()
            await self.on_control(message)
        else:
            raise TypeError(
                f"a networked channel carries plain items, cuts and end of stream, "
                f"not {t.__name__} (not yet: see docs/distributed.md)"
            )

    async def flush(self) -> None:
        """Publish the items buffered so far."""
        if self._buf:
            items, self._buf = self._buf, []
            await self._publish_items(items)

    async def _cut(self, cut: CutMsg, at: InputPosition) -> None:
        assert self._positions is not None
        assert self._commit is not None
        await self.flush()
        if at.forward is not None:
            await self._publish(at.forward)
        if at.end:
            await self._publish(END)
        # Everything the input at this position produced is confirmed by
        # the broker: the segment may commit there (and then ack it).
        await self._commit(cut, at)
        self._positions.popleft()
        self._part = 0

    async def publish_frame(self, payload: bytes) -> None:
        """Publish one frame made elsewhere (a code change, ``change_frame``)
        after what was sent before it; :meth:`flush` first what is buffered."""
        if self._buf:
            raise RuntimeError("flush() what send() buffered before publish_frame()")
        await self._publish(payload)

    async def send_at(self, position: int, items: list[Any], then: Sequence[bytes] = ()) -> None:
        """Publish ``items`` as this producer's input at ``position``, and
        after them the frames ``then`` (made elsewhere), numbered on.

        For a source with offsets of its own (a line of a file, an offset in
        a log): frames get IDs derived from the producer's name and
        ``position``, so a source that restarts and sends again from its
        last known offset is deduplicated by the broker (within the
        duplicate window), as a segment's replay is. Give each source its
        own ``producer`` name; ``position`` is any integer it never reuses.

        Raises:
            RuntimeError: items sent with :meth:`send` are still buffered.
        """
        if self._buf:
            raise RuntimeError("flush() what send() buffered before send_at()")
        frame = self._frame
        parts = iter(range(1 << 62))
        for start in range(0, len(items), frame):
            await self._publish_items(items[start : start + frame], (position, parts))
        for payload in then:
            await self._publish(payload, message_id(self._producer, position, next(parts)))

    async def _publish_items(
        self, items: list[Any], at: tuple[int, Iterator[int]] | None = None
    ) -> None:
        """Publish ``items`` as one frame, or as halves (and so on) while it
        is over the broker's payload limit: the split depends only on the
        items, so a replay splits alike and keeps its IDs."""
        payload = self._codec.encode(items)
        if len(payload) > self._max_payload and len(items) > 1:
            half = len(items) // 2
            await self._publish_items(items[:half], at)
            await self._publish_items(items[half:], at)
            return
        if at is None:
            await self._publish(payload)
        else:
            await self._publish(payload, message_id(self._producer, at[0], next(at[1])))

    async def _publish(self, payload: bytes, msg_id: str | None = None) -> None:
        if msg_id is None and self._positions is None:
            self._sent += 1
            msg_id = message_id(self._producer, f"{self._nonce}.{self._sent}", 0)
        elif msg_id is None:
            assert self._positions is not None
            msg_id = message_id(self._producer, self._positions[0], self._part)
            self._part += 1
        delay = _BACKOFF_MIN
        while True:
            try:
                ack = await self._js.publish(self.name.subject, payload, headers={MSG_ID: msg_id})
                break
            except Exception as exc:
                if not _retryable(exc):
                    raise
                self.waits += 1
                log.debug("channel %s: publish waits: %s", self.name.stream, exc)
                await anyio.sleep(delay)
                delay = min(delay * 2, _BACKOFF_MAX)
        self.published += 1
        if ack.duplicate:
            self.duplicates += 1

    def close(self) -> None:
        """Send no more (what is buffered and unpublished is dropped)."""
        self.closed = True

    def statistics(self) -> ChannelStatistics:
        """Items buffered and not yet published; the capacity is one frame."""
        return ChannelStatistics(len(self._buf), 0, self._frame, self.closed)
