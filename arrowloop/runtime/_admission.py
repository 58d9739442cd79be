"""The door of a pipeline: what enters its first channel, and when.

The admission rule: an item is checked against the types it will meet. A
change that is not interface-compatible pauses the door from the moment it
is sent until it is applied or refused: items admitted before it (checked
and waiting for room) enter before it does; later ones wait, then are
checked against the types that won. This is OTP's suspend, change_code,
resume, but only for the changes that need it: compatible changes travel
in-band and never pause anything. Closing lets the admitted items in, then
seals the channel with the end of stream, so nothing can queue behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import anyio

from arrowloop.errors import PipelineClosed
from arrowloop.runtime._channel import MemorySendChannel

__all__ = ["Door", "GONE", "closed"]

#: What a channel closed under a sender raises.
GONE: Final = (anyio.ClosedResourceError, anyio.BrokenResourceError)


def closed() -> PipelineClosed:
    """The error of an item that did not enter because the pipeline closes."""
    return PipelineClosed("the pipeline is closing: no more items are accepted")


class Door:
    """The admission state of one pipeline, in front of its ``entry`` channel."""

    __slots__ = ("_entered", "_entering", "_gate", "_pauses", "closing", "entry", "shut")

    def __init__(self, entry: MemorySendChannel) -> None:
        self.entry = entry
        #: Set once the pipeline closes: nothing more is admitted.
        self.closing = False
        #: Whether admitting now would have to wait or fail: paused or
        #: closing (a plain attribute, tested on every send).
        self.shut = False
        # An event to wait on while incompatible changes (counted in
        # `_pauses`) are in flight; `_entering` counts admitted messages
        # still waiting for room.
        self._gate: anyio.Event | None = None
        self._pauses = 0
        self._entering = 0
        self._entered: anyio.Event | None = None

    @property
    def paused(self) -> bool:
        """Whether an incompatible change in flight holds new items back."""
        return self._gate is not None

    async def wait_open(self) -> None:
        """Wait until no incompatible change is in flight; admit at once after.

        Raises:
            PipelineClosed: the pipeline is closing.
        """
        while self._gate is not None:
            await self._gate.wait()
        if self.closing:
            raise closed()

    def check_open(self) -> None:
        """For ``_nowait`` senders: raise instead of waiting.

        Raises:
            PipelineClosed: the pipeline is closing.
            anyio.WouldBlock: admission is paused.
        """
        if self.closing:
            raise closed()
        if self._gate is not None:
            raise anyio.WouldBlock

    def can_enter(self, n: int) -> bool:
        """Whether a message of ``n`` items would be admitted and queued now,
        without waiting: no change holds the door, the pipeline is not
        closing, and the entry has room for it."""
        return not self.shut and self.entry.would_take(n)

    def put_nowait(self, message: Any) -> None:
        """Queue an admitted message now, or raise ``anyio.WouldBlock``.

        Raises:
            PipelineClosed: the channel was sealed or torn down.
        """
        try:
            self.entry.send_nowait(message)
        except GONE:
            raise closed() from None

    async def put(self, message: Any) -> None:
        """Queue an admitted message, waiting for room as an admitted one.

        Raises:
            PipelineClosed: the channel was sealed or torn down first.
        """
        try:
            self.put_nowait(message)
            return
        except anyio.WouldBlock:
            pass
        self._entering += 1
        try:
            await self.entry.send(message)
        except GONE:
            raise closed() from None
        finally:
            self._entering -= 1
            if not self._entering and self._entered is not None:
                self._entered.set()
                self._entered = None

    async def admitted_in(self) -> None:
        """Wait until every admitted message waiting for room has entered."""
        while self._entering:
            if self._entered is None:
                self._entered = anyio.Event()
            await self._entered.wait()

    def pause(self) -> Callable[[], None]:
        """Hold new items back (an incompatible change is being sent).

        Returns the function that ends this pause; calling it again does
        nothing. The door opens when every pause has ended.
        """
        self._pauses += 1
        if self._gate is None:
            self._gate = anyio.Event()
            self.shut = True
        ended = False

        def resume() -> None:
            nonlocal ended
            if ended:
                return
            ended = True
            self._pauses -= 1
            gate = self._gate
            if not self._pauses and gate is not None:
                self._gate = None
                self.shut = self.closing
                gate.set()

        return resume

    def close_now(self) -> None:
        """Admit nothing more from now on (the channel is left as it is)."""
        self.closing = True
        self.shut = True

    async def seal(self, end: Any) -> None:
        """Close the door: admitted items go in, then ``end``, then nothing.

        Senders still waiting for room once ``end`` is queued (or if this is
        cancelled while waiting) fail with PipelineClosed instead of
        queueing behind it.
        """
        self.close_now()
        try:
            await self.admitted_in()
        finally:
            self.entry.seal(end)
