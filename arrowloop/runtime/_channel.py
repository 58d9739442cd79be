"""Bounded channels between stages, in two halves, on anyio memory object streams.

A channel moves *messages*: a list of plain items (a batch), or a single
envelope (a call with a reply route, an upgrade, end of stream). It is
bounded in *items*: ``send_nowait`` refuses (``WouldBlock``) while the items
already queued plus the new message would exceed ``capacity``, except into
an empty channel, so one oversized batch can never wedge a pipeline.
Receivers take what is waiting, up to a batch limit, in one go: with a
backlog a stage steps through many items per wake-up; without one, an item
still moves in one hop. Keeping plain items in lists of their own means the
stage's inner loop never has to ask what each item is.

As with anyio's and trio's memory channels, a channel is two objects: a
:class:`SendChannel` for whoever feeds it and a :class:`ReceiveChannel` for
the stage it feeds. A stage sees only those two protocols, so another
transport (a socket, a broker) can join two stages by implementing them.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import anyio
import attrs
from anyio import WouldBlock
from anyio.lowlevel import checkpoint_if_cancelled
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from arrowloop.runtime._envelope import Calls, KeyedCalls

__all__ = [
    "SendChannel",
    "ReceiveChannel",
    "MemorySendChannel",
    "MemoryReceiveChannel",
    "ChannelStatistics",
    "open_channel",
    "size",
    "DEFAULT_CAPACITY",
]

DEFAULT_CAPACITY: Final = 1024


def size(message: Any) -> int:
    """How many items ``message`` counts for: a batch's length, an envelope 1."""
    t = type(message)
    return len(message) if t is list or t is Calls or t is KeyedCalls else 1


@attrs.frozen
class ChannelStatistics:
    """A snapshot of a channel: queued items and messages, and its limit."""

    items: int
    messages: int
    capacity: int
    closed: bool


class SendChannel(Protocol):
    """What a stage needs from the channel it feeds.

    A *message* is either a list of plain items, a :class:`Calls` batch or
    one envelope; a batch counts for its length against the capacity, an
    envelope for one (see :func:`size`).
    """

    def send_nowait(self, message: Any) -> None:
        """Queue ``message`` or raise ``anyio.WouldBlock`` if it does not fit."""

    async def send(self, message: Any) -> None:
        """Queue ``message``, waiting for room."""

    def close(self) -> None:
        """No more messages will be sent; the receiver drains, then sees EndOfStream."""

    def statistics(self) -> ChannelStatistics:
        """A snapshot of the channel."""


class ReceiveChannel(Protocol):
    """What a stage needs from the channel feeding it."""

    @property
    def queued(self) -> int:
        """Items waiting now (a hint: 0 means a receive would wait)."""

    @property
    def senders_waiting(self) -> int:
        """Senders waiting for room now (a hint for fairness; 0 if unknown)."""

    def receive_nowait(self, limit: int) -> list[Any]:
        """Take what is waiting, up to about ``limit`` items, as a list of messages.

        Raises ``anyio.WouldBlock`` if nothing is, ``anyio.EndOfStream``
        once the channel is closed and empty.
        """

    async def receive(self, limit: int) -> list[Any]:
        """Wait for a message; return it and whatever else is waiting, up to
        about ``limit`` items, as a list of messages.

        Raises ``anyio.EndOfStream`` once the channel is closed and empty.
        """

    def close(self) -> None:
        """Stop receiving and drop what is queued (a pipeline's teardown)."""

    def statistics(self) -> ChannelStatistics:
        """A snapshot of the channel."""


class _Shared:
    """What the two halves of one memory channel share."""

    __slots__ = (
        "capacity",
        "closed",
        "items",
        "low",
        "readable",
        "recv",
        "send",
        "space",
        "waiting",
    )

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.low = capacity // 2
        # Each message counts for at least one item, so a buffer of
        # `capacity` messages never fills before the item bound does; one
        # more keeps room for the end of stream (`seal`).
        send, recv = anyio.create_memory_object_stream[Any](capacity + 1)
        self.send: MemoryObjectSendStream[Any] = send
        self.recv: MemoryObjectReceiveStream[Any] = recv
        # Exactly what is buffered, plus messages handed straight to a
        # waiting receiver that has not run yet.
        self.items = 0
        self.space: anyio.Event | None = None
        # Senders waiting for room. While there are any, a sender that did
        # not wait is refused: room goes to those who waited first, so a
        # producer that never yields cannot starve an upgrade (or another
        # client) queued behind it.
        self.waiting = 0
        # Receivers wait on this, never inside the stream: a receiver
        # cancelled while waiting (a stage stopped at shutdown) must not
        # take a message with it.
        self.readable: anyio.Event | None = None
        self.closed = False

    def statistics(self) -> ChannelStatistics:
        st = self.send.statistics()
        return ChannelStatistics(self.items, st.current_buffer_used, self.capacity, self.closed)

    def wake_senders(self) -> None:
        space = self.space
        if space is not None:
            self.space = None
            space.set()

    def wake_receivers(self) -> None:
        readable = self.readable
        if readable is not None:
            self.readable = None
            readable.set()


class MemorySendChannel:
    """The sending half of an in-process channel (any number of senders)."""

    __slots__ = ("_s",)

    def __init__(self, shared: _Shared) -> None:
        self._s = shared

    @property
    def capacity(self) -> int:
        """Most items the channel holds (one oversized message excepted)."""
        return self._s.capacity

    def send_nowait(self, message: Any) -> None:
        """Queue ``message`` now, or raise ``WouldBlock`` when it would not fit.

        Raises:
            anyio.WouldBlock: the channel holds too many items.
            anyio.ClosedResourceError: this half was closed (or sealed).
            anyio.BrokenResourceError: the receiving half was closed.
        """
        s = self._s
        if s.waiting and not s.closed:
            raise WouldBlock  # others are queued for room first
        self._put(message)

    def would_take(self, n: int) -> bool:
        """Whether :meth:`send_nowait` of a message of ``n`` items would
        queue it now: open, nobody waiting for room, and room (an empty
        channel takes one message of any size)."""
        s = self._s
        return not s.waiting and not s.closed and (not s.items or s.items + n <= s.capacity)

    def _put(self, message: Any) -> None:
        s = self._s
        t = type(message)  # size(message), inlined: this is the per-message path
        n = len(message) if t is list or t is Calls or t is KeyedCalls else 1
        if s.items and s.items + n > s.capacity:
            if s.closed:  # no room will ever come: say so, do not wait
                raise anyio.ClosedResourceError
            raise WouldBlock
        s.send.send_nowait(message)
        s.items += n
        if s.readable is not None:
            s.wake_receivers()

    async def send(self, message: Any) -> None:
        """Queue ``message``, waiting while the channel is full."""
        # A sender that is always woken before anyio gets to deliver a
        # pending cancellation would never see it: check explicitly.
        await checkpoint_if_cancelled()
        s = self._s
        if not s.waiting:
            try:
                self._put(message)
                return
            except WouldBlock:
                pass
        s.waiting += 1
        try:
            while True:
                if s.space is None:
                    s.space = anyio.Event()
                await s.space.wait()
                try:
                    self._put(message)
                except WouldBlock:
                    continue
                if s.space is not None:
                    # Senders that queued behind this one while it was being
                    # woken try now, while there may be room, not at the next
                    # low-water mark.
                    s.wake_senders()
                return
        except BaseException:
            # Leaving without sending (cancelled, closed): whoever queued
            # behind this sender must not wait for a wake-up it would have
            # caused by sending.
            s.wake_senders()
            raise
        finally:
            s.waiting -= 1

    def seal(self, last: Any) -> None:
        """Queue ``last`` whatever the room, then close this half.

        Senders still waiting for room then fail with
        ``anyio.ClosedResourceError`` instead of queueing behind ``last``:
        end of stream is the last message a channel carries.
        """
        s = self._s
        s.send.send_nowait(last)
        s.items += size(last)
        self.close()  # wakes the receivers

    def close(self) -> None:
        """Close the sending side; queued messages can still be received."""
        s = self._s
        s.closed = True
        s.send.close()
        s.wake_senders()
        s.wake_receivers()

    def statistics(self) -> ChannelStatistics:
        """Queued items and messages, capacity, and whether it is closed."""
        return self._s.statistics()


class MemoryReceiveChannel:
    """The receiving half of an in-process channel.

    Any number of receivers may share it; each message goes to exactly one.
    """

    __slots__ = ("_s",)

    def __init__(self, shared: _Shared) -> None:
        self._s = shared

    @property
    def queued(self) -> int:
        """Items waiting in the channel now."""
        return self._s.items

    @property
    def senders_waiting(self) -> int:
        """Senders waiting for room now."""
        return self._s.waiting

    def receive_nowait(self, limit: int) -> list[Any]:
        """Take what is waiting (up to about ``limit`` items) without waiting.

        Raises:
            anyio.WouldBlock: nothing is waiting.
            anyio.EndOfStream: closed and drained.
        """
        return self._took(self._s.recv.receive_nowait(), limit)

    async def receive(self, limit: int) -> list[Any]:
        """Wait for a message, then take whatever else is waiting up to ``limit`` items."""
        s = self._s
        while True:
            try:
                return self._took(s.recv.receive_nowait(), limit)
            except WouldBlock:
                pass
            if s.readable is None:
                s.readable = anyio.Event()
            await s.readable.wait()

    def _took(self, first: Any, limit: int) -> list[Any]:
        s = self._s
        t = type(first)
        taken = len(first) if t is list or t is Calls or t is KeyedCalls else 1
        messages = [first]
        left = s.items - taken
        if left > 0 and taken < limit:
            recv = s.recv
            # `items` counts what is buffered (receivers never take messages
            # inside the stream's own wait); should it ever be short, stop
            # there rather than lose what was taken.
            while left > 0 and taken < limit:
                try:
                    more = recv.receive_nowait()
                except WouldBlock:
                    break
                t = type(more)
                n = len(more) if t is list or t is Calls or t is KeyedCalls else 1
                taken += n
                left -= n
                messages.append(more)
        s.items -= taken
        # Wake blocked senders only once the channel is half empty: they then
        # refill it in one go instead of ping-ponging one message at a time.
        if s.space is not None and s.items <= s.low:
            s.wake_senders()
        return messages

    def close(self) -> None:
        """Close both sides and drop what is queued (a pipeline's teardown).

        Senders then fail with ``anyio.ClosedResourceError`` or
        ``anyio.BrokenResourceError``; receivers with ``ClosedResourceError``.
        """
        s = self._s
        s.closed = True
        s.send.close()
        s.recv.close()
        s.items = 0
        s.wake_senders()
        s.wake_receivers()

    def statistics(self) -> ChannelStatistics:
        """Queued items and messages, capacity, and whether it is closed."""
        return self._s.statistics()


def open_channel(
    capacity: int = DEFAULT_CAPACITY,
) -> tuple[MemorySendChannel, MemoryReceiveChannel]:
    """A new in-process channel bounded to ``capacity`` items, as its two halves.

    Raises:
        ValueError: ``capacity`` is not a positive integer.
    """
    if type(capacity) is not int or capacity < 1:
        raise ValueError(f"expected a channel capacity >= 1, found {capacity!r}")
    shared = _Shared(capacity)
    return MemorySendChannel(shared), MemoryReceiveChannel(shared)
