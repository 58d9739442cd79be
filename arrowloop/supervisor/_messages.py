"""The supervisor's messages and its records of children and changes.

Private to the supervisor (layer 9): the reply slot callers await, the
requests and notices that go through its mailbox, a checked change ready to
send, and the running record of one child.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal

import anyio
import attrs

from arrowloop.runtime import CheckedChange
from arrowloop.supervisor._codechange import RecordKind
from arrowloop.supervisor._intensity import Window
from arrowloop.supervisor._spec import ChildSpec

if TYPE_CHECKING:  # the running supervisor refers to these records, not the reverse
    from arrowloop.supervisor._changes import ChangeBook
    from arrowloop.supervisor._supervisor import Supervisor

__all__ = [
    "Reply",
    "RequestKind",
    "SERIAL",
    "Request",
    "Exit",
    "Done",
    "Wake",
    "Retry",
    "Attempt",
    "Started",
    "StartFailed",
    "Plan",
    "Lineage",
    "ChildRecord",
    "Refused",
]


class Reply:
    """A one-shot reply slot one caller awaits."""

    __slots__ = ("_done", "error", "value")

    def __init__(self) -> None:
        self._done = anyio.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def set(self, value: Any) -> None:
        """Deliver the value (first delivery wins)."""
        if not self._done.is_set():
            self.value = value
            self._done.set()

    def fail(self, error: BaseException) -> None:
        """Deliver an error instead (first delivery wins)."""
        if not self._done.is_set():
            self.error = error
            self._done.set()

    async def wait(self) -> Any:
        """Wait for the delivery; return the value or raise the error."""
        await self._done.wait()
        if self.error is not None:
            raise self.error
        return self.value


RequestKind = Literal[
    "change",
    "rollback",
    "status",
    "history",
    "state",
    "stop",
    "which_children",
    "count_children",
    "start_child",
    "terminate_child",
    "restart_child",
    "delete_child",
    "savepoint",
]
# Requests that change code, children or stop run one at a time: after any
# change in flight and any restart attempt (stop cancels the attempt). A
# savepoint too: its cut and the history and undo stack it records must
# belong together.
SERIAL: frozenset[str] = frozenset(
    {
        "change",
        "rollback",
        "stop",
        "start_child",
        "terminate_child",
        "restart_child",
        "delete_child",
        "savepoint",
    }
)


@attrs.define
class Request:
    kind: RequestKind
    arg: Any
    reply: Reply
    holds_slot: bool = True  # until handled; internal requests never hold one
    internal: bool = False  # posted by the supervisor itself (auto-rollback)


@attrs.define
class Exit:
    child: str
    incarnation: int
    error: BaseException | None


class Wake:
    """Wakes the actor to look at its deferred requests (an auto-rollback
    decided outside its loop)."""


@attrs.define
class Retry:
    """Try a failed restart again (OTP's ``try_again_restart``): posted
    behind whatever is in the mailbox, so other messages go first."""

    child: str
    error: BaseException | None = None


@attrs.define(eq=False)
class Attempt:
    """One restart (or start) of a group of children, run by a task of its
    own so the supervisor's loop goes on meanwhile.

    ``work`` is what the task runs; it raises :class:`StartFailed` naming
    the child that failed. ``reply`` is set for an administrative request
    (``start_child`` and friends), answered when it ends; a restart has
    none, and is retried if it fails.
    """

    work: Callable[[], Awaitable[Any]]
    reply: Reply | None
    failed: str = ""
    scope: anyio.CancelScope | None = None
    ended: anyio.Event = attrs.Factory(anyio.Event)


@attrs.define
class Started:
    """An attempt ended (posted by its task): its value, or the error and the
    child whose start failed."""

    attempt: Attempt
    value: Any
    error: BaseException | None
    child: str


class StartFailed(Exception):
    """Internal: starting ``child`` failed with ``error`` (its ``__cause__``);
    ``what`` says how, for messages."""

    def __init__(self, child: str, error: BaseException, what: str) -> None:
        super().__init__(f"child {child!r} could not be started: {what}")
        self.child = child
        self.error = error
        self.what = what


@attrs.define
class Done:
    """A code change came back from the pipeline (posted by its sending
    task); ``plan`` is ``None`` for a change refused while it was planned."""

    plan: Plan | None
    versions: dict[str, str] | None
    error: BaseException | None


@attrs.define
class Plan:
    """A checked code change or rollback, ready to send.

    ``change`` is the one checked value the pipeline applies; ``undoes`` is,
    for a rollback, the applied change it undoes (an entry of the undo stack).
    ``undo_doc`` is, for an upgrade, its undo entry as a wire document
    (``None`` if a part is plain Python), which a store keeps.
    """

    kind: RecordKind
    requested_by: str
    change: CheckedChange
    undoes: CheckedChange | None
    reply: Reply
    undo_doc: dict[str, Any] | None = None


class Lineage:
    """What outlives the incarnations of one supervisor: its change book (the
    history, undo stack and adapters) and its nested children's lineages."""

    def __init__(self) -> None:
        self.book: ChangeBook | None = None
        self.children: dict[str, Lineage] = {}


class ChildRecord:
    """The supervisor's running record of one child."""

    def __init__(self, spec: ChildSpec, index: int) -> None:
        self.spec = spec
        self.index = index
        self.name = spec.name
        self.incarnation = 0
        self.running = False
        # Between a crash and the end of its restart (OTP lists the child as
        # `restarting`); neither running nor terminated.
        self.restarting = False
        self.restarts = 0
        # Nested supervisors: what every incarnation shares (its history,
        # and its own nested children's), so a restart keeps them.
        self.lineage: Lineage | None = None
        # Nested supervisors: the running handle, its cancel scope, and an
        # event set when its task has ended.
        self.handle: Supervisor | None = None
        self.scope: anyio.CancelScope | None = None
        self.ended = anyio.Event()
        # Stages: when the latest code change was applied (supervisor clock)
        # and the crashes since, for auto-rollback.
        self.upgraded_at: float | None = None
        self.crashes: Window | None = None
        self.rollback_pending = False

    @property
    def state(self) -> str:
        """``running``, ``restarting`` or ``terminated`` (OTP's pid, ``restarting``
        or ``undefined``)."""
        if self.running:
            return "running"
        return "restarting" if self.restarting else "terminated"


class Refused(Exception):
    """Internal: a request refused (already recorded); carries the error."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error
