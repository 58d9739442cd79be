"""Tickets: the pending output of one item, collected later.

The pipeline delivers every routed item's output (or error) to its
:class:`~arrowloop.runtime._envelope.Reply`; a :class:`Ticket` is the
caller's handle on it, with the client view the item was admitted through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from arrowloop.runtime._envelope import Reply
from arrowloop.runtime._view import ClientView

__all__ = ["Ticket"]


class Ticket:
    """The pending output of an item sent with :meth:`Pipeline.submit`.

    Await :meth:`result` once; call :meth:`forget` instead if the output is
    no longer wanted (the item is processed either way).
    """

    __slots__ = ("_after", "_pending", "_reply", "view")

    def __init__(
        self,
        reply: Reply,
        pending: set[Reply],
        view: ClientView | None = None,
        after: Callable[[Any], Any] | None = None,
    ) -> None:
        self._reply = reply
        self._pending = pending
        #: The client view the item was admitted through (its output has
        #: ``view.output``'s type once :meth:`result` returns it).
        self.view = view
        self._after = after

    @property
    def done(self) -> bool:
        """Whether the output (or the error) has arrived."""
        return self._reply.done

    async def result(self) -> Any:
        """Wait for the item's output (adapted out through the ticket's view).

        Raises:
            StepError: a stage failed on this item (it is in the dead letters).
            PipelineClosed: the pipeline closed before the item got through.
        """
        try:
            value = await self._reply.wait()
        finally:
            self._pending.discard(self._reply)
        return value if self._after is None else self._after(value)

    def get(self) -> Any:
        """The output of a ticket that is :attr:`done`, without waiting (as
        :meth:`result`, for a caller collecting many outputs at once).

        Raises:
            StepError, PipelineClosed: as :meth:`result`.
        """
        assert self._reply.done, "Ticket.get before the output arrived"
        self._pending.discard(self._reply)
        value = self._reply.get()
        return value if self._after is None else self._after(value)

    def forget(self) -> None:
        """Give up on the output (the pipeline stops tracking it)."""
        self._pending.discard(self._reply)
