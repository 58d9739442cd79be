"""Bounded channels between stages, on anyio memory object streams.

A channel moves *messages*: a list of plain items (a batch), or a single
envelope (a call with a reply route, an upgrade, end of stream). It is
bounded in *items*: ``send_nowait`` refuses (``WouldBlock``) while the items
already queued plus the new message would exceed ``capacity``, except into
an empty channel, so one oversized batch can never wedge a pipeline.
Receivers take what is waiting, up to a batch limit, in one go: with a
backlog a stage steps through many items per wake-up; without one, an item
still moves in one hop. Keeping plain items in lists of their own means the
stage's inner loop never has to ask what each item is.

The actor loop only uses :class:`Channel`'s five methods, so another
transport (a socket, a broker) can join two stages later without touching it.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import anyio
import attrs
from anyio import WouldBlock
from anyio.lowlevel import checkpoint_if_cancelled
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = [
    "Channel",
    "MemoryChannel",
    "ChannelStatistics",
    "open_channel",
    "DEFAULT_CAPACITY",
]

DEFAULT_CAPACITY: Final = 1024


@attrs.frozen
class ChannelStatistics:
    """A snapshot of a channel: queued items and messages, and its limit."""

    items: int
    messages: int
    capacity: int
    closed: bool


class Channel(Protocol):
    """What a stage needs from the channel feeding it and the one it feeds.

    A *message* is either a list of plain items or one envelope; a list
    counts for its length against the capacity, an envelope for one.
    """

    def send_nowait(self, message: Any) -> None:
        """Queue ``message`` or raise ``anyio.WouldBlock`` if it does not fit."""

    async def send(self, message: Any) -> None:
        """Queue ``message``, waiting for room."""

    async def receive(self, limit: int) -> list[Any]:
        """Wait for a message; return it and whatever else is waiting, up to
        about ``limit`` items, as a list of messages.

        Raises ``anyio.EndOfStream`` once the channel is closed and empty.
        """

    def close(self) -> None:
        """No more messages will be sent; receivers drain then see EndOfStream."""

    def statistics(self) -> ChannelStatistics:
        """A snapshot of the channel."""


class MemoryChannel:
    """An in-process :class:`Channel` bounded to ``capacity`` items.

    Any number of senders and receivers; each message goes to exactly one
    receiver.
    """

    __slots__ = ("_closed", "_items", "_low", "_recv", "_send", "_space", "capacity")

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if type(capacity) is not int or capacity < 1:
            raise ValueError(f"expected a channel capacity >= 1, found {capacity!r}")
        self.capacity = capacity
        self._low = capacity // 2
        # Each message counts for at least one item, so a buffer of
        # `capacity` messages never fills before the item bound does; one
        # more keeps room for the end of stream (`seal`).
        send, recv = anyio.create_memory_object_stream[Any](capacity + 1)
        self._send: MemoryObjectSendStream[Any] = send
        self._recv: MemoryObjectReceiveStream[Any] = recv
        self._items = 0
        self._space: anyio.Event | None = None
        self._closed = False

    @property
    def queued(self) -> int:
        """Items waiting in the channel now."""
        return self._items

    def send_nowait(self, message: Any) -> None:
        """Queue ``message`` now, or raise ``WouldBlock`` when it would not fit.

        Raises:
            anyio.WouldBlock: the channel holds too many items.
            anyio.ClosedResourceError: the channel was closed.
        """
        n = len(message) if type(message) is list else 1
        if self._items and self._items + n > self.capacity:
            raise WouldBlock
        self._send.send_nowait(message)
        self._items += n

    async def send(self, message: Any) -> None:
        """Queue ``message``, waiting while the channel is full."""
        # A sender that is always woken before anyio gets to deliver a
        # pending cancellation would never see it: check explicitly.
        await checkpoint_if_cancelled()
        while True:
            try:
                self.send_nowait(message)
                return
            except WouldBlock:
                if self._space is None:
                    self._space = anyio.Event()
                await self._space.wait()

    def receive_nowait(self, limit: int) -> list[Any]:
        """Take what is waiting (up to about ``limit`` items) without waiting.

        Raises:
            anyio.WouldBlock: nothing is waiting.
            anyio.EndOfStream: closed and drained.
        """
        return self._took(self._recv.receive_nowait(), limit)

    async def receive(self, limit: int) -> list[Any]:
        """Wait for a message, then take whatever else is waiting up to ``limit`` items."""
        if self._items:
            try:
                return self._took(self._recv.receive_nowait(), limit)
            except WouldBlock:
                pass
        return self._took(await self._recv.receive(), limit)

    def _took(self, first: Any, limit: int) -> list[Any]:
        # `_items` counts exactly what is buffered (plus a message handed
        # straight to this, the only, receiver), so the backlog is drained
        # without ever provoking a WouldBlock.
        taken = len(first) if type(first) is list else 1
        messages = [first]
        left = self._items - taken
        if left > 0 and taken < limit:
            recv = self._recv
            # Another receiver may have been handed a message straight from a
            # sender and not run yet, so what `_items` counts can be short of
            # what is buffered: stop there rather than lose what was taken.
            while left > 0 and taken < limit:
                try:
                    more = recv.receive_nowait()
                except WouldBlock:
                    break
                n = len(more) if type(more) is list else 1
                taken += n
                left -= n
                messages.append(more)
        self._items -= taken
        space = self._space
        # Wake blocked senders only once the channel is half empty: they then
        # refill it in one go instead of ping-ponging one message at a time.
        if space is not None and self._items <= self._low:
            self._space = None
            space.set()
        return messages

    def seal(self, last: Any) -> None:
        """Queue ``last`` whatever the room, then close the sending side.

        Senders still waiting for room then fail with
        ``anyio.ClosedResourceError`` instead of queueing behind ``last``:
        end of stream is the last message a channel carries.
        """
        self._send.send_nowait(last)
        self._items += len(last) if type(last) is list else 1
        self.close()

    def close(self) -> None:
        """Close the sending side; queued messages can still be received."""
        self._closed = True
        self._send.close()
        space = self._space
        if space is not None:
            self._space = None
            space.set()

    def dispose(self) -> None:
        """Close both sides and drop what is queued (the pipeline's teardown)."""
        self.close()
        self._recv.close()
        self._items = 0

    def statistics(self) -> ChannelStatistics:
        """Queued items and messages, capacity, and whether it is closed."""
        st = self._send.statistics()
        return ChannelStatistics(self._items, st.current_buffer_used, self.capacity, self._closed)


def open_channel(capacity: int = DEFAULT_CAPACITY) -> MemoryChannel:
    """A new in-process channel bounded to ``capacity`` items.

    Raises:
        ValueError: ``capacity`` is not a positive integer.
    """
    return MemoryChannel(capacity)
