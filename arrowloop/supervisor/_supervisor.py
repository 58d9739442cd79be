"""The supervisor actor: its mailbox, requests, life cycle and introspection.

A :class:`Supervisor` runs the stages of one pipeline (its stage children)
and any nested supervisors on its own task group, and acts on one message
at a time from a bounded mailbox: child-exit notices, and control requests
(code change, rollback, status, history, state, stop). Its public methods
post a request with a reply slot and await the reply. What it does on a
child's exit is in ``_restarts.py`` (OTP's restarts); how a change goes
from request to record, and the client views, in ``_orchestration.py``.
Layer 9: it builds on the runtime and on the machine layer; nothing below
imports it.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from arrowloop.errors import (
    ChildSpecError,
    EscalationError,
    SupervisorError,
)
from arrowloop.runtime import (
    DEFAULT_OUTPUT_CAPACITY,
    DeadLetterSink,
    Pipeline,
    PipelineSpec,
    Ticket,
    open_pipeline,
)
from arrowloop.supervisor._changes import ChangeBook
from arrowloop.supervisor._codechange import CodeChange, UpgradeRecord
from arrowloop.supervisor._intensity import Clock, Window
from arrowloop.supervisor._messages import (
    SERIAL,
    ChildRecord,
    Done,
    Exit,
    Refused,
    Reply,
    Request,
    RequestKind,
    Wake,
)
from arrowloop.supervisor._orchestration import Orchestration
from arrowloop.supervisor._restarts import Restarts
from arrowloop.supervisor._spec import SupervisorSpec
from arrowloop.supervisor._status import ChildStatus, SupervisorStatus

__all__ = ["Supervisor", "open_supervisor"]

log = logging.getLogger("arrowloop.supervisor")


def _no_stages(name: str) -> SupervisorError:
    return SupervisorError(
        f"supervisor {name!r} has no stage children, so no pipeline",
        path=name,
        expected="a supervisor with stages",
        found="none",
    )


class Supervisor(Restarts, Orchestration):
    """A running supervisor (made by :func:`open_supervisor`).

    Items go straight to :attr:`pipeline` (the supervisor is not on the data
    path), or through :meth:`call` for clients of an older version. Control
    goes through the mailbox: :meth:`code_change`, :meth:`rollback`,
    :meth:`status`, :meth:`history`, :meth:`get_state`, :meth:`stop`.
    Upgrade the pipeline only through the supervisor, so that its specs
    and history stay true.
    """

    def __init__(
        self,
        spec: SupervisorSpec,
        *,
        clock: Clock | None = None,
        dead_letters: DeadLetterSink | None = None,
        validate_inputs: bool = True,
        output_capacity: int = DEFAULT_OUTPUT_CAPACITY,
    ) -> None:
        if not isinstance(spec, SupervisorSpec):
            raise ChildSpecError(
                f"expected a SupervisorSpec (supervisor(...)), found {type(spec).__name__}",
                expected="SupervisorSpec",
                found=type(spec).__name__,
            )
        self.spec = spec
        self.name = spec.name
        self._clock: Clock = anyio.current_time if clock is None else clock
        self._dead_letters = dead_letters
        self._validate_inputs = validate_inputs
        self._output_capacity = output_capacity
        self._children = {c.name: ChildRecord(c, i) for i, c in enumerate(spec.children)}
        self._order = list(self._children.values())
        self._intensity = Window(spec.intensity, spec.period)
        # Room for every control request (a semaphore keeps callers to their
        # share) plus every notice the supervisor posts to itself: each child
        # incarnation exits at most once and is replaced only after its
        # notice is handled (stale notices of terminated nested supervisors
        # at most double that), and at most one change is in flight.
        # Auto-rollback wakes: at most one per stage until its rollback runs.
        room = spec.mailbox + 3 * len(self._order) + 2
        self._send, self._recv = anyio.create_memory_object_stream[Any](room)
        self._slots = anyio.Semaphore(spec.mailbox)
        self._deferred: deque[Request] = deque()
        self._inflight = False
        self._pipeline: Pipeline | None = None
        self._tg: TaskGroup | None = None
        self._book = ChangeBook(spec.history_limit)
        self._adapters = self._book.adapters
        self._accepting = True
        self._stopping = False
        self._stopped = anyio.Event()
        self._pending: set[Reply] = set()
        #: Why the supervisor stopped: None for a normal stop, else the
        #: EscalationError it exited with.
        self.exit_reason: BaseException | None = None

    # -- the data path ----------------------------------------------------------

    @property
    def pipeline(self) -> Pipeline:
        """The supervised pipeline (send, call, receive).

        Raises:
            SupervisorError: the supervisor has no stage children.
        """
        if self._pipeline is None:
            raise _no_stages(self.name)
        return self._pipeline

    async def call(self, item: Any, *, version: str | None = None) -> Any:
        """Send ``item`` and wait for its output, as a client of ``version``.

        ``version`` is a version the pipeline's first stage (for the input)
        or last stage (for the output) ran before; the item is validated
        against that version's input type, adapted in along the recorded
        input adapters to the running version, and the reply adapted out
        along the output adapters. ``None`` (or the running version) calls
        the pipeline as it is.

        Raises:
            SupervisorError: ``version`` is unknown, or clients of it cannot
                be served (a change without the adapter it needed).
            ValidationError: ``item`` is not an input of ``version``.
            StepError, PipelineClosed: as :meth:`Pipeline.call`.
        """
        ticket = await self.submit(item, version=version)
        return await ticket.result()

    async def submit(
        self, item: Any, *, version: str | None = None, decode: bool = False
    ) -> Ticket:
        """Send ``item`` in as a client of ``version``; a ticket for its output.

        Like :meth:`call`, but returns once the item has entered the
        pipeline (see :meth:`Pipeline.submit`): the ticket's result is the
        output, adapted out for ``version``, and ``ticket.view`` the
        :class:`~arrowloop.runtime.ClientView` it was admitted through
        (``None`` for a plain item of the running version, which the
        pipeline admits as :meth:`Pipeline.submit` does). With
        ``decode=True``, ``item`` is the item's JSON form, built with the
        view's input type.

        Raises:
            SupervisorError, ValidationError, PipelineClosed: as :meth:`call`.
        """
        p = self.pipeline
        if version is None and not decode:
            return await p.submit(item)  # the pipeline's own types, as it validates them
        return await p.submit(item, view=lambda: self.view(version), decode=decode)

    # -- control requests -------------------------------------------------------

    async def _request(self, kind: RequestKind, arg: Any = None) -> Any:
        if not self._accepting:
            raise self._stopped_error()
        await self._slots.acquire()
        if not self._accepting:
            self._slots.release()
            raise self._stopped_error()
        reply = Reply()
        self._pending.add(reply)
        try:
            self._send.send_nowait(Request(kind, arg, reply))
            return await reply.wait()
        finally:
            self._pending.discard(reply)

    def _stopped_error(self) -> SupervisorError:
        why = "" if self.exit_reason is None else f" ({self.exit_reason})"
        return SupervisorError(
            f"supervisor {self.name!r} has stopped{why}",
            path=self.name,
            expected="a running supervisor",
            found="stopped",
        )

    async def code_change(self, change: CodeChange) -> dict[str, str]:
        """Apply a code change; returns the new version of each changed stage.

        Checked completely first (versions, machine and migration types,
        inverse and adapter types, compile); only then sent in-band. On
        success the new versions become the children's specs (a later
        restart runs them) and the history gets a record; a refused or
        failed change changes nothing and is recorded with its reason.

        Raises:
            UpgradeError: refused or failed (``reason`` says why).
            SupervisorError: the supervisor has stopped or has no stages.
        """
        result: dict[str, str] = await self._request("change", change)
        return result

    async def rollback(self, stage: str, *, requested_by: str = "unknown") -> dict[str, str]:
        """Undo the latest applied code change of ``stage`` (a downgrade).

        Applies the previous machine with the recorded inverse migration,
        in-band like any upgrade; if that change covered several stages,
        they are all rolled back together. Repeated rollbacks go further
        back. Returns the versions now running.

        Raises:
            UpgradeError: refused: nothing to roll back, the stage changed
                since, or no inverse migration was supplied although the
                state type changed; or failed in the stage.
        """
        result: dict[str, str] = await self._request("rollback", (stage, requested_by))
        return result

    async def status(self) -> SupervisorStatus:
        """Every child's status, nested supervisors included (plain data)."""
        result: SupervisorStatus = await self._request("status")
        return result

    async def history(self) -> tuple[UpgradeRecord, ...]:
        """The code-change history, oldest first (the latest ``history_limit``)."""
        result: tuple[UpgradeRecord, ...] = await self._request("history")
        return result

    async def get_state(self, stage: str) -> Any:
        """The current state of ``stage`` (like OTP's ``sys:get_state``).

        Raises:
            SupervisorError: no such stage.
        """
        return await self._request("state", stage)

    def child(self, name: str) -> Supervisor:
        """The running handle of the nested supervisor ``name`` (a restart
        makes a new one: ask again after restarts).

        Raises:
            SupervisorError: no such nested supervisor, or it is not running.
        """
        c = self._children.get(name)
        if c is None or not c.spec.is_supervisor or c.handle is None or not c.running:
            raise SupervisorError(
                f"supervisor {self.name!r} has no running nested supervisor {name!r}",
                path=f"{self.name}.{name}",
                expected="a running nested supervisor",
                found="none",
            )
        return c.handle

    async def stop(self) -> None:
        """Stop: nested supervisors in reverse order, then the pipeline,
        which drains what is in flight; each within its shutdown timeout,
        after which it is cancelled. Returns once stopped (at once if it
        already has, normally or by escalation)."""
        if self._accepting:
            with contextlib.suppress(SupervisorError):  # stopped meanwhile: as wanted
                await self._request("stop")
        await self._stopped.wait()

    async def wait(self) -> None:
        """Wait until the supervisor has stopped (normally or by escalation)."""
        await self._stopped.wait()

    @property
    def stopped(self) -> bool:
        """Whether the supervisor has stopped."""
        return self._stopped.is_set()

    # -- the actor --------------------------------------------------------------

    async def _serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            with anyio.CancelScope() as shutdown:
                async with AsyncExitStack() as stack:
                    stages = self.spec.stages
                    if stages:
                        pspec = PipelineSpec(tuple(c.start for c in stages))  # type: ignore[misc]
                        self._pipeline = await stack.enter_async_context(
                            open_pipeline(
                                pspec,
                                dead_letters=self._dead_letters,
                                validate_inputs=self._validate_inputs,
                                output_capacity=self._output_capacity,
                                on_exit=self._stage_exit,
                                on_failure=self._stage_failure,
                            )
                        )
                        for c in self._order[: len(stages)]:
                            c.running = True
                    escalation: EscalationError | None = None
                    async with anyio.create_task_group() as tg:
                        self._tg = tg
                        for c in self._order[len(stages) :]:
                            await self._start_nested(c)
                        task_status.started()
                        try:
                            await self._loop()
                        except EscalationError as exc:
                            escalation = exc
                            self.exit_reason = exc
                        self._stopping = True
                        self._accepting = False
                        await self._terminate_nested(reversed(self._order[len(stages) :]))
                        tg.cancel_scope.cancel()  # a change in flight when escalating
                    if escalation is not None:
                        raise escalation  # the pipeline is cancelled on the way out
                    shutdown.deadline = anyio.current_time() + self._pipeline_shutdown()
        finally:
            self._finish()

    def _pipeline_shutdown(self) -> float:
        # The stages drain together (end of stream follows the items through
        # every stage), so the pipeline gets the longest of their timeouts.
        p = self._pipeline
        if p is not None and not all(p.is_running(n) for n in p.stage_names):
            # A stage that was not restarted (temporary) can never pass the
            # end of stream on: nothing upstream of it can drain, so do not wait.
            return 0.0
        budgets = [c.shutdown for c in self.spec.stages]
        if not budgets or any(b is None for b in budgets):
            return float("inf")
        return max(b for b in budgets if b is not None)

    def _finish(self) -> None:
        self._accepting = False
        self._stopping = True
        for c in self._order:
            c.running = False
        err = self._stopped_error()
        for reply in list(self._pending):
            reply.fail(err)
        self._pending.clear()
        self._send.close()
        self._recv.close()
        self._stopped.set()

    async def _loop(self) -> None:
        while True:
            msg: Any
            if self._deferred and not self._inflight:
                msg = self._deferred.popleft()
            else:
                msg = await self._recv.receive()
            if isinstance(msg, Exit):
                await self._on_exit(msg)
            elif isinstance(msg, Wake):
                pass  # only there to get a deferred request looked at
            elif isinstance(msg, Done):
                self._finish_change(msg)
            elif msg.kind in SERIAL and self._inflight:
                self._deferred.append(msg)  # it keeps its mailbox slot while it waits
            else:
                if msg.holds_slot:
                    msg.holds_slot = False
                    self._slots.release()
                if msg.kind == "stop":
                    msg.reply.set(None)
                    return
                self._handle(msg)

    def _post(self, msg: Exit | Done | Wake) -> None:
        try:
            self._send.send_nowait(msg)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            pass  # the supervisor has stopped: nobody acts on notices any more
        except anyio.WouldBlock:  # pragma: no cover - the mailbox is sized for this
            raise RuntimeError(
                f"supervisor {self.name!r}: no room for a notice in its mailbox "
                f"(it is sized for every child exiting once; this is a bug)"
            ) from None

    def _handle(self, req: Request) -> None:
        try:
            if req.kind == "status":
                req.reply.set(self._snapshot())
            elif req.kind == "history":
                req.reply.set(tuple(self._book.history))
            elif req.kind == "state":
                req.reply.set(self._state_of(req.arg))
            elif req.kind == "change":
                self._begin_change(req.arg, req.reply)
            else:
                stage, who = req.arg
                self._begin(self._plan_rollback(stage, who, req.reply, auto=req.internal))
        except Refused as refused:
            req.reply.fail(refused.error)
            log.info(
                "%s: %s refused: %s",
                self.name,
                req.kind,
                refused.error,
                extra={"supervisor": self.name, "reason": str(refused.error)},
            )
        except SupervisorError as exc:
            req.reply.fail(exc)
        except Exception as exc:  # a bug: fail this request, keep supervising
            req.reply.fail(self._internal(f"handling a {req.kind} request", exc))

    def _state_of(self, stage: str) -> Any:
        c = self._children.get(stage)
        if c is None or c.spec.is_supervisor:
            raise SupervisorError(
                f"supervisor {self.name!r} has no stage named {stage!r}; its stages are "
                f"{[c.name for c in self._order if not c.spec.is_supervisor]}",
                path=f"{self.name}.{stage}",
                expected="a stage child",
                found=repr(stage),
            )
        return self.pipeline.state(stage)

    # -- introspection ----------------------------------------------------------

    def _snapshot(self) -> SupervisorStatus:
        p = self._pipeline
        stats = {s.name: s for s in p.statistics()} if p is not None else {}
        children = []
        for c in self._order:
            if c.spec.is_supervisor:
                nested = c.handle._snapshot() if c.running and c.handle is not None else None
                children.append(
                    ChildStatus(
                        c.name,
                        "supervisor",
                        c.spec.restart.value,
                        c.running,
                        c.restarts,
                        supervisor=nested,
                    )
                )
                continue
            s = stats[c.name]
            children.append(
                ChildStatus(
                    c.name,
                    "stage",
                    c.spec.restart.value,
                    p is not None and p.is_running(c.name),
                    c.restarts,
                    s.version,
                    s.state_type,
                    s.queue.items,
                    s.processed,
                    s.failed,
                    s.upgrades,
                )
            )
        return SupervisorStatus(
            self.name,
            self.spec.strategy.value,
            self.spec.intensity,
            self.spec.period,
            not self._stopping,
            tuple(children),
            len(self._book.history),
        )


def _escalation(group: BaseExceptionGroup[Any]) -> EscalationError | None:
    for exc in group.exceptions:
        if isinstance(exc, EscalationError):
            return exc
        if isinstance(exc, BaseExceptionGroup):
            found = _escalation(exc)
            if found is not None:
                return found
    return None


@asynccontextmanager
async def open_supervisor(
    spec: SupervisorSpec,
    *,
    clock: Clock | None = None,
    dead_letters: DeadLetterSink | None = None,
    validate_inputs: bool = True,
    output_capacity: int = DEFAULT_OUTPUT_CAPACITY,
) -> AsyncIterator[Supervisor]:
    """Run a supervisor for the duration of an ``async with``.

    Its children are started (the pipeline, then nested supervisors in
    order) before the block runs. Leaving the block normally stops it
    gracefully (:meth:`Supervisor.stop`); leaving it by an exception cancels
    everything at once. If the supervisor escalates (its restart intensity
    is exceeded), its children are terminated, the block is cancelled and
    :class:`~arrowloop.errors.EscalationError` is raised from the ``async
    with``: a top-level supervisor has no parent to escalate to.

    Args:
        spec: what to supervise.
        clock: monotonic seconds for the intensity and auto-rollback windows
            (``anyio.current_time`` by default; tests pass a fake).
        dead_letters: the pipeline's dead-letter sink (a bounded ring by
            default).
        validate_inputs: validate items sent into the pipeline.
        output_capacity: most plain outputs queued for ``receive``.

    Raises:
        EscalationError: the supervisor gave up.
    """
    sup = Supervisor(
        spec,
        clock=clock,
        dead_letters=dead_letters,
        validate_inputs=validate_inputs,
        output_capacity=output_capacity,
    )
    body_error: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(sup._serve)
            try:
                yield sup
            except BaseException as exc:
                body_error = exc
                tg.cancel_scope.cancel()
            else:
                await sup.stop()
    except BaseExceptionGroup as group:
        esc = _escalation(group)
        if esc is None:
            raise
        raise esc from None
    if body_error is not None:
        raise body_error
