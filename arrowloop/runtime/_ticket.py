"""Tickets: the pending output of one item, collected later.

A :class:`Ticket` is an item on its way through the pipeline and the reply
slot its caller holds, in one object: it carries the item (stages replace
:attr:`~arrowloop.runtime._envelope.Reply.value` as it moves on, so once
delivered it holds the output), its request key, and the client view it was
admitted through. (One object per item, not an envelope, a reply and a
handle on it: a server pipelining hundreds of thousands of requests a
second makes one per request, and each object made is measured there.)
"""

from __future__ import annotations

from typing import Any

from arrowloop.runtime._envelope import Reply
from arrowloop.runtime._view import ClientView

__all__ = ["Ticket"]


class Ticket(Reply):
    """The pending output of an item sent with :meth:`Pipeline.submit`.

    Await :meth:`result` once; call :meth:`forget` instead if the output is
    no longer wanted (the item is processed either way). :attr:`done` says
    whether the output (or the error) has arrived.
    """

    __slots__ = ("_pending", "key", "view")

    def __init__(
        self,
        item: Any,
        pending: set[Reply],
        view: ClientView | None = None,
        key: str | None = None,
    ) -> None:
        # Reply's fields set here rather than through super().__init__: one
        # call less per request.
        self.done = False
        self.waiter = None
        #: The item while it travels; the output once delivered.
        self.value = item
        self.error = None
        self.then = None
        #: The client's request key (see ``_keys.py``), or None.
        self.key = key
        self._pending = pending
        #: The client view the item was admitted through (its output has
        #: ``view.output``'s type once :meth:`result` returns it).
        self.view = view

    async def result(self) -> Any:
        """Wait for the item's output (adapted out through the ticket's view).

        Raises:
            StepError: a stage failed on this item (it is in the dead letters).
            PipelineClosed: the pipeline closed before the item got through.
        """
        try:
            value = await self.wait()
        finally:
            self._pending.discard(self)
        view = self.view
        return value if view is None or not view.adapt_out else view.emit(value)

    def get(self) -> Any:
        """The output of a ticket that is :attr:`done`, without waiting (as
        :meth:`result`, for a caller collecting many outputs at once).

        Raises:
            StepError, PipelineClosed: as :meth:`result`.
        """
        assert self.done, "Ticket.get before the output arrived"
        self._pending.discard(self)
        if self.error is not None:
            raise self.error
        value = self.value
        view = self.view
        return value if view is None or not view.adapt_out else view.emit(value)

    def forget(self) -> None:
        """Give up on the output (the pipeline stops tracking it)."""
        self._pending.discard(self)
