"""A source that routes by key: the sending half into a sharded first stage.

A pipeline whose first stage is sharded (``shard_key`` and ``shards=N``)
has no segment before it to route (``_shardnet.py``'s router): the source
does it. Each item goes to the channel of its key's shard,
``<stage>.shard<k>`` (:func:`~arrowloop.distributed._shardnet.shard_channel`),
by the in-process hash (``shard_of`` of the stage's ``shard_key``), so a key
has the same shard in process, across processes and after every restart.

One sending half per shard, each a producer of its own, ``<producer>/<k>``
(the router's naming): a source with offsets of its own sends with
``send_at(offset, items)`` and every shard's part of it is published under
``<producer>/<k>:<offset>:<part>``, so a source that restarts and sends
again from its last offset is dropped per shard by the broker, or later
than its window by the shard's watermark for that producer. End of stream
and code-change frames go to every shard (after that shard's items); a
change frame without a name gets one, the same in every copy, so the
shards vote on a migration under one change id (``_decisions.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from arrowloop.distributed._channel import ChannelName, NatsSendChannel
from arrowloop.distributed._frames import FrameCodec
from arrowloop.errors import ArrowloopError
from arrowloop.runtime import ChannelStatistics, EndMsg
from arrowloop.runtime._shards import shard_of

__all__ = ["ShardSource", "check_key", "named_change"]


def named_change(payload: bytes) -> bytes:
    """``payload`` as it goes to every shard: a change frame without a name
    (``"k"``) gets one, anything else is as it was."""
    try:
        data = orjson.loads(payload)
    except ValueError:
        return payload
    if type(data) is not dict or "u" not in data or data.get("k") is not None:
        return payload
    return orjson.dumps({**data, "k": uuid.uuid4().hex})


class ShardSource:
    """Sends items into a sharded first stage: each to its key's shard.

    ``senders[k]`` publishes into shard ``k``'s channel; ``key`` is the
    stage's ``shard_key``. The methods are a source's
    (:class:`~arrowloop.distributed.NatsSendChannel` alone): ``send``,
    ``send_at``, ``flush``, ``publish_frame``.
    """

    def __init__(
        self, name: ChannelName, senders: list[NatsSendChannel], key: Callable[[Any], Any]
    ) -> None:
        self.name = name
        self.senders = senders
        self._key = key
        self.closed = False

    @property
    def shards(self) -> int:
        """How many shards the stage has."""
        return len(self.senders)

    def use_codec(self, codec: FrameCodec) -> None:
        """Encode the items sent from now on with ``codec`` (after a change
        of the pipeline's input type), on every shard; flush first."""
        for s in self.senders:
            s.use_codec(codec)

    def route(self, items: list[Any]) -> list[list[Any]]:
        """``items`` split by shard, each part in the order given.

        Raises:
            ArrowloopError: an item's key function raised, or gave no key
                (nothing of ``items`` is sent then).
        """
        parts: list[list[Any]] = [[] for _ in self.senders]
        key, n = self._key, len(parts)
        for i, x in enumerate(items):
            try:
                k = shard_of(key(x), n)
            except Exception as exc:
                raise ArrowloopError(
                    f"channel {self.name.channel}: the shard key of item {i} of the batch "
                    f"({x!r:.80}) raised: {exc}; nothing of the batch was sent"
                ) from exc
            parts[k].append(x)
        return parts

    async def send(self, message: Any) -> None:
        """Send items (each to its key's shard, in frames as they fill) or
        end of stream (to every shard, after what was sent before).

        Raises:
            ArrowloopError: an item's key raised (see :meth:`route`).
            TypeError: anything else.
        """
        if type(message) is list:
            for sender, part in zip(self.senders, self.route(message), strict=True):
                if part:
                    await sender.send(part)
        elif type(message) is EndMsg:
            for sender in self.senders:
                await sender.send(message)
            self.closed = True
        else:
            raise TypeError(f"a source sends lists of items and EndMsg, not {type(message)}")

    async def send_at(self, position: int, items: list[Any], then: Sequence[bytes] = ()) -> None:
        """Send ``items`` as this source's input at ``position`` (an offset of
        its own, increasing), each shard's part under that shard's producer,
        and after it on every shard the frames ``then`` (``END``, a change).

        Raises:
            ArrowloopError: an item's key raised (nothing sent).
            RuntimeError: items sent with :meth:`send` are still buffered.
        """
        self._unbuffered("send_at")
        then = [named_change(p) for p in then]
        for sender, part in zip(self.senders, self.route(items), strict=True):
            await sender.send_at(position, part, then)

    def _unbuffered(self, what: str) -> None:
        # Checked on every shard first: a frame must reach all or none.
        if any(s.statistics().items for s in self.senders):
            raise RuntimeError(f"flush() what send() buffered before {what}()")

    async def flush(self) -> None:
        """Publish what :meth:`send` buffered, on every shard."""
        for sender in self.senders:
            await sender.flush()

    async def publish_frame(self, payload: bytes) -> None:
        """Publish one frame made elsewhere (a code change) into every
        shard's channel, after what was sent there before.

        Raises:
            RuntimeError: :meth:`flush` first what send() buffered.
        """
        self._unbuffered("publish_frame")
        payload = named_change(payload)
        for sender in self.senders:
            await sender.publish_frame(payload)

    @property
    def published(self) -> int:
        """Broker messages published, to every shard."""
        return sum(s.published for s in self.senders)

    @property
    def duplicates(self) -> int:
        """Of those, the ones the broker had already (a source sending again)."""
        return sum(s.duplicates for s in self.senders)

    @property
    def waits(self) -> int:
        """Publishes that waited for room (a full channel)."""
        return sum(s.waits for s in self.senders)

    def close(self) -> None:
        """Send no more."""
        self.closed = True
        for s in self.senders:
            s.close()

    def statistics(self) -> ChannelStatistics:
        """Items buffered and not yet published, over every shard."""
        stats = [s.statistics() for s in self.senders]
        return ChannelStatistics(
            sum(s.items for s in stats), 0, sum(s.capacity for s in stats), self.closed
        )


def check_key(shards: int | None, key: Callable[[Any], Any] | None) -> None:
    """Refuse ``shards`` without ``shard_key`` or the other way round.

    Raises:
        ArrowloopError: one without the other, or ``shards`` below 1.
    """
    if (shards is None) != (key is None):
        raise ArrowloopError(
            "a source into a sharded first stage takes both shards=N and shard_key= "
            "(the stage's: spec.stages[0].shards and spec.stages[0].shard_key)"
        )
    if shards is not None and shards < 1:
        raise ArrowloopError(f"expected shards=N with N >= 1, found {shards}")
