"""The end of a pipeline: replies go to their callers, other outputs to readers.

The last stage's outbox is an :class:`OutputPort`. It delivers each
:class:`~arrowloop.runtime._ticket.Ticket`'s output to the caller
waiting for it and queues plain outputs on a bounded channel that
:meth:`Pipeline.receive` reads. End of stream closes that channel.
"""

from __future__ import annotations

from typing import Any

import anyio

from arrowloop.errors import UpgradeError
from arrowloop.runtime._channel import ChannelStatistics, open_channel
from arrowloop.runtime._envelope import Calls, CutMsg, EndMsg, KeyedCalls, SpliceMsg
from arrowloop.runtime._ticket import Ticket

__all__ = ["OutputPort"]


class OutputPort:
    """A :class:`~arrowloop.runtime._channel.SendChannel` that ends a pipeline.

    ``outputs`` is the receiving half of the channel of plain outputs.
    """

    def __init__(self, capacity: int, pending: set[Any]) -> None:
        self._queue, self.outputs = open_channel(capacity)
        # The pipeline's undelivered replies: a batch of calls leaves it
        # here, in one call, rather than one ticket at a time as its
        # outputs are collected.
        self._pending = pending
        self.finished = anyio.Event()
        self.discard = False
        self.discarded = 0

    def _deliver(self, message: Any) -> list[Any] | None:
        """Handle an envelope, or return the plain outputs to queue."""
        tm = type(message)
        if tm is list:
            if self.discard:
                self.discarded += len(message)
                return None
            plain: list[Any] = message
            return plain
        if tm is Calls or tm is KeyedCalls:
            self._pending.difference_update(message)
            for r in message:
                if r.done:
                    continue
                if r.then is None and r.waiter is None:
                    # Reply.set without its calls: nobody waits on this one
                    # yet (a pipelining connection collects most replies
                    # this way), and the output is in place already.
                    r.done = True
                else:
                    r.set(r.value)
        elif tm is Ticket:
            message.set(message.value)
        elif tm is EndMsg:
            self._queue.close()
            self.finished.set()
        elif tm is SpliceMsg:
            message.reply.fail(_no_stage(message.stage))
        elif tm is CutMsg:
            message.reply.set(message.stages)  # every stage has added its part
        return None

    def send_nowait(self, message: Any) -> None:
        """Deliver a reply, or queue plain outputs (``WouldBlock`` when full)."""
        if type(message) is list and not self.discard:
            self._queue.send_nowait(message)
            return
        plain = self._deliver(message)
        if plain is not None:
            self._queue.send_nowait(plain)

    async def send(self, message: Any) -> None:
        """Deliver a reply, or queue plain outputs, waiting for room."""
        plain = self._deliver(message)
        if plain is None:
            return
        try:
            await self._queue.send(plain)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            self.discarded += len(plain)

    def close(self) -> None:
        """Close the outputs channel (readers drain it, then see the end)."""
        self._queue.close()

    def dispose(self) -> None:
        """Close the outputs channel on both sides, dropping what it holds."""
        self.outputs.close()

    def statistics(self) -> ChannelStatistics:
        """Statistics of the outputs channel."""
        return self._queue.statistics()

    def start_discarding(self) -> None:
        """Drop plain outputs from now on, and those queued (nobody will read them).

        The outputs channel is closed too: a stage waiting for room in it
        wakes up and counts what it held as discarded, and a reader still
        waiting sees the end of the stream.
        """
        self.discard = True
        self._queue.close()
        while True:
            try:
                dropped = self.outputs.receive_nowait(1 << 30)
            except (anyio.WouldBlock, anyio.EndOfStream):
                return
            self.discarded += sum(len(m) for m in dropped)


def _no_stage(name: str) -> UpgradeError:
    return UpgradeError(f"no stage named {name!r}", stage=name, reason="unknown stage")
