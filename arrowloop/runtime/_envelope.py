"""The message envelope: what travels down a pipeline's channels.

A batch is a list whose elements are either *plain items* (the user's values,
unwrapped, the common case and the cheapest) or envelopes:

* a ticket (``_ticket.py``) - an item that is its own reply route: it
  carries the item while it travels, and whoever is waiting for it gets
  exactly this item's output (or its error), however many callers are
  concurrently waiting;
* :class:`Calls` - several tickets admitted together, in order;
* :class:`KeyedCalls` - the same, some of them with a request key:
  stages step them on a path of their own, so items without a key pay
  nothing for keys;
* :class:`UpgradeMsg` - an in-band code change for one or more stages;
* :class:`SpliceMsg` - re-route the last stage's output through a new stage;
* :class:`CutMsg` - a marker each stage notes its machine and state at
  (a consistent cut: every stage after the same prefix of items);
* :class:`EndMsg` - end of stream: drain and stop.

User values can never be instances of these classes (arrowloop types are
scalars, tuples, lists, maps and the user's own records), so a stage tells
them apart by the class alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel

from arrowloop.machine import AnyMachine

__all__ = [
    "Reply",
    "CutMsg",
    "Calls",
    "KeyedCalls",
    "Control",
    "UpgradeMsg",
    "StageChange",
    "SpliceMsg",
    "EndMsg",
]


class Reply:
    """A one-shot reply slot that one caller awaits.

    ``then``, if given, is called once, synchronously, with the first
    delivery (whoever delivers it: a stage, or the pipeline's teardown).
    """

    # The event is made only by a waiter that finds nothing delivered yet:
    # one reply per request is the data path's hot spot, and most replies of
    # a pipelined batch are in before anyone looks at them.
    __slots__ = ("done", "error", "then", "value", "waiter")

    def __init__(self, then: Callable[[], None] | None = None) -> None:
        #: Whether a value or error was delivered.
        self.done = False
        #: The event a waiter made (None: nobody has waited yet).
        self.waiter: anyio.Event | None = None
        self.value: Any = None
        self.error: BaseException | None = None
        self.then = then

    def _deliver(self) -> None:
        self.done = True
        if self.waiter is not None:
            self.waiter.set()
        if self.then is not None:
            self.then()

    def set(self, value: Any) -> None:
        """Deliver the value (first delivery wins)."""
        if not self.done:
            self.value = value
            self._deliver()

    def fail(self, error: BaseException) -> None:
        """Deliver an error instead of a value (first delivery wins)."""
        if not self.done:
            self.error = error
            self._deliver()

    def get(self) -> Any:
        """The delivered value, or raise the delivered error (only once ``done``)."""
        if self.error is not None:
            raise self.error
        return self.value

    async def wait(self) -> Any:
        """Wait for the delivery; return the value or raise the error."""
        if not self.done:
            if self.waiter is None:
                self.waiter = anyio.Event()
            await self.waiter.wait()
        else:
            # Even when the reply is in: a waiter must stay cancellable and
            # must not starve the loop when every reply is ready at once.
            await anyio.lowlevel.checkpoint()
        if self.error is not None:
            raise self.error
        return self.value


class Calls(list[Any]):
    """Tickets (``_ticket.py``) admitted together: a connection's batch of requests.

    One message for many calls: a stage steps them in order in one go and
    passes them on as one message, and the pipeline's end delivers each
    reply; a channel counts each call as an item.
    """

    __slots__ = ()


class KeyedCalls(Calls):
    """Calls of which some carry a request key (``Ticket.key``).

    A stage steps an item whose key it has not applied and remembers its
    output; it passes on the remembered output of one it has applied
    without stepping it again.
    """

    __slots__ = ()


class Control:
    """Base class of the control envelopes."""

    __slots__ = ()


class StageChange:
    """One stage's part of an upgrade: the machine to run and the migration.

    ``from_version`` is the version the change was checked against; a stage
    running anything else refuses it (another upgrade got there first).
    ``migrate`` maps the old state to the new one; its result is validated
    against ``machine.state`` before it is committed.
    """

    __slots__ = ("from_version", "machine", "migrate", "stage")

    def __init__(
        self,
        stage: str,
        machine: AnyMachine,
        migrate: Callable[[Any], Any] | None,
        from_version: str,
    ) -> None:
        self.stage = stage
        self.machine = machine
        self.migrate = migrate
        self.from_version = from_version


class UpgradeMsg(Control):
    """An in-band upgrade of one or several stages.

    Stages named in ``changes`` prepare (migrate and validate) when the
    message reaches them. A single-stage upgrade commits at once. For
    several stages, each prepared stage holds its input until the last
    changed stage has prepared, then all commit or all keep the old code:
    every item sees either all old or all new code.
    """

    __slots__ = (
        "changes",
        "commits",
        "decided",
        "durable",
        "failure",
        "last",
        "on_commit",
        "reply",
        "versions",
    )

    def __init__(
        self,
        changes: dict[str, StageChange],
        last: str,
        reply: Reply,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.changes = changes
        self.last = last
        self.reply = reply
        #: Called by the last stage right after every stage has committed.
        self.on_commit = on_commit
        self.failure: tuple[str, str, BaseException] | None = None
        self.decided = anyio.Event()
        self.versions: dict[str, str] = {}
        self.commits: list[Callable[[], None]] = []
        #: ``(stage, machine, migrated state, items applied)`` of each
        #: prepared stage: made durable together before any commits.
        self.durable: list[tuple[str, Any, Any, int]] = []


class SpliceMsg(Control):
    """Re-route the receiving stage's output into ``channel`` (append a stage)."""

    __slots__ = ("channel", "reply", "stage")

    def __init__(self, stage: str, channel: Any, reply: Reply) -> None:
        self.stage = stage
        self.channel = channel
        self.reply = reply


class CutMsg(Control):
    """A consistent-cut marker: each stage adds ``(stage, machine, state,
    items applied)`` as it passes, once everything admitted before it is
    applied and nothing after it; the end of the pipeline replies with them.
    A sharded stage adds itself once, its state the list of its replicas'
    states, or with ``per_shard`` once per replica, as a store records it
    (``_shards.replica_name``)."""

    __slots__ = ("per_shard", "reply", "stages")

    def __init__(self, reply: Reply, *, per_shard: bool = False) -> None:
        self.reply = reply
        self.stages: list[tuple[str, AnyMachine, Any, int]] = []
        self.per_shard = per_shard


class EndMsg(Control):
    """End of stream: every stage drains what is ahead of it, forwards this, stops."""

    __slots__ = ()
