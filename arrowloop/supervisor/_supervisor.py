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
import math
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import attrs
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream

from arrowloop.errors import (
    ChildSpecError,
    EscalationError,
    SupervisorError,
)
from arrowloop.runtime import (
    DEFAULT_OUTPUT_CAPACITY,
    DEFAULT_REQUEST_KEYS,
    DeadLetterSink,
    Pipeline,
    PipelineSpec,
    StageSpec,
    Ticket,
    check_window,
    open_pipeline,
)
from arrowloop.store import StateStore
from arrowloop.supervisor._admin import Administration
from arrowloop.supervisor._changes import ChangeBook
from arrowloop.supervisor._codechange import CodeChange, UpgradeRecord
from arrowloop.supervisor._durability import Durability, Resumed
from arrowloop.supervisor._intensity import Clock, Window
from arrowloop.supervisor._messages import (
    SERIAL,
    Attempt,
    ChildRecord,
    Done,
    Exit,
    Lineage,
    Refused,
    Reply,
    Request,
    RequestKind,
    Retry,
    Started,
    Wake,
)
from arrowloop.supervisor._orchestration import Orchestration
from arrowloop.supervisor._restarts import AutoShutdownDue, Restarts, call_restore
from arrowloop.supervisor._savepoints import Savepoints
from arrowloop.supervisor._spec import ChildSpec, SupervisorSpec
from arrowloop.supervisor._status import ChildCounts, ChildInfo, ChildStatus, SupervisorStatus

__all__ = ["Supervisor", "open_supervisor", "running"]

log = logging.getLogger("arrowloop.supervisor")


def _no_stages(name: str) -> SupervisorError:
    return SupervisorError(
        f"supervisor {name!r} has no stage children, so no pipeline",
        path=name,
        expected="a supervisor with stages",
        found="none",
    )


class Supervisor(Administration, Restarts, Orchestration, Savepoints):
    """A running supervisor (made by :func:`open_supervisor`).

    Items go straight to :attr:`pipeline` (the supervisor is not on the data
    path), or through :meth:`call` for clients of an older version. Control
    goes through the mailbox: :meth:`code_change`, :meth:`rollback`,
    :meth:`savepoint`, :meth:`status`, :meth:`history`, :meth:`get_state`, :meth:`stop`, and
    child administration (:meth:`start_child`, :meth:`terminate_child`,
    :meth:`restart_child`, :meth:`delete_child`, :meth:`which_children`,
    :meth:`count_children`). Upgrade the pipeline only through the
    supervisor, so that its specs and history stay true.

    ``lineage`` is what a parent keeps for every incarnation of a nested
    supervisor (its history, and its own children's): internal, by
    default a new one.
    """

    def __init__(
        self,
        spec: SupervisorSpec,
        *,
        clock: Clock | None = None,
        dead_letters: DeadLetterSink | None = None,
        validate_inputs: bool = True,
        output_capacity: int = DEFAULT_OUTPUT_CAPACITY,
        lineage: Lineage | None = None,
        store: StateStore | None = None,
        request_keys: int = DEFAULT_REQUEST_KEYS,
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
        self._request_keys = check_window(request_keys)
        self._children = {c.name: ChildRecord(c, i) for i, c in enumerate(spec.children)}
        self._order = list(self._children.values())
        self._intensity = Window(spec.intensity, spec.period)
        # Control requests are bounded by a semaphore (callers wait for their
        # share); the notices the supervisor posts to itself must never
        # block a stage's task or a restart, and are bounded by what they
        # report (each child incarnation exits once, one attempt and one
        # change at a time, one retry per failed attempt), which
        # start_child can grow: so the mailbox itself is unbounded.
        self._send, self._recv = anyio.create_memory_object_stream[Any](math.inf)
        self._slots = anyio.Semaphore(spec.mailbox)
        self._deferred: deque[Request | Exit | Retry] = deque()
        self._inflight = False
        self._attempt: Attempt | None = None
        # Whether to start the stages from their restore hooks (a restart
        # of this supervisor by its parent, or restart_child).
        self._restoring = False
        self._pipeline: Pipeline | None = None
        self._tg: TaskGroup | None = None
        self._lineage = Lineage() if lineage is None else lineage
        if self._lineage.book is None:
            self._lineage.book = ChangeBook(spec.history_limit)
        self._book = self._lineage.book
        self._adapters = self._book.adapters
        # With a store: stages resume from it and make their states durable
        # before replying; the history is kept there too.
        self._durability = None if store is None else Durability(store)
        self._history: MemoryObjectReceiveStream[dict[str, Any]] | None = None
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

    async def call(self, item: Any, *, version: str | None = None, key: str | None = None) -> Any:
        """Send ``item`` and wait for its output, as a client of ``version``.

        ``version`` is a version the pipeline's first stage (for the input)
        or last stage (for the output) ran before; the item is validated
        against that version's input type, adapted in along the recorded
        input adapters to the running version, and the reply adapted out
        along the output adapters. ``None`` (or the running version) calls
        the pipeline as it is. ``key``: a request key (see :meth:`submit`).

        Raises:
            SupervisorError: ``version`` is unknown, or clients of it cannot
                be served (a change without the adapter it needed).
            ValidationError: ``item`` is not an input of ``version``.
            StepError, PipelineClosed: as :meth:`Pipeline.call`.
        """
        ticket = await self.submit(item, version=version, key=key)
        return await ticket.result()

    async def submit(
        self,
        item: Any,
        *,
        version: str | None = None,
        decode: bool = False,
        key: str | None = None,
    ) -> Ticket:
        """Send ``item`` in as a client of ``version``; a ticket for its output.

        Like :meth:`call`, but returns once the item has entered the
        pipeline (see :meth:`Pipeline.submit`): the ticket's result is the
        output, adapted out for ``version``, and ``ticket.view`` the
        :class:`~arrowloop.runtime.ClientView` it was admitted through
        (``None`` for a plain item of the running version, which the
        pipeline admits as :meth:`Pipeline.submit` does). With
        ``decode=True``, ``item`` is the item's JSON form, built with the
        view's input type. ``key`` is the client's request key: an item
        whose key the stages applied already is not applied again, and gets
        the first application's output (see :meth:`Pipeline.submit`).

        Raises:
            SupervisorError, ValidationError, PipelineClosed: as :meth:`call`.
        """
        p = self.pipeline
        if version is None and not decode:
            return await p.submit(item, key=key)  # the pipeline's own types
        return await p.submit(item, view=lambda: self.view(version), decode=decode, key=key)

    async def submit_many(
        self,
        items: Sequence[Any],
        *,
        version: str | None = None,
        decode: bool = False,
        keys: Sequence[str | None] | None = None,
    ) -> list[Ticket | Exception]:
        """Send several items in as clients of ``version``; a ticket or an
        error for each, in order (see :meth:`Pipeline.submit_many`; ``keys``:
        a request key or ``None`` per item).

        Raises:
            PipelineClosed: the pipeline is closing (no item entered).
        """
        return await self.pipeline.submit_many(
            items, view=lambda: self.view(version), decode=decode, keys=keys
        )

    def submit_many_nowait(
        self,
        items: Sequence[Any],
        *,
        version: str | None = None,
        decode: bool = False,
        keys: Sequence[str | None] | None = None,
    ) -> list[Ticket | Exception] | None:
        """:meth:`submit_many` without waiting: ``None``, with nothing done,
        when the items cannot enter at once (see
        :meth:`Pipeline.submit_many_nowait`)."""
        return self.pipeline.submit_many_nowait(
            items, view=lambda: self.view(version), decode=decode, keys=keys
        )

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

    async def which_children(self) -> tuple[ChildInfo, ...]:
        """Every child in start order, with its state (``running``,
        ``restarting``, ``terminated``), kind, restart type, shutdown and,
        for stages, version (OTP's ``which_children``)."""
        result: tuple[ChildInfo, ...] = await self._request("which_children")
        return result

    async def count_children(self) -> ChildCounts:
        """How many child specs, running children, nested supervisors and
        stages (OTP's ``count_children``)."""
        result: ChildCounts = await self._request("count_children")
        return result

    async def start_child(self, spec: ChildSpec | SupervisorSpec) -> Supervisor:
        """Add a nested supervisor and start it (OTP's ``start_child``);
        returns its running handle. A child that fails to start is not added.

        Raises:
            SupervisorError: a child of that name is already started, or
                already present (terminated: delete it first); ``spec`` is
                a stage (a stage joins the pipeline by a code change); or it
                failed to start (the error is the ``__cause__``).
            ChildSpecError: ``spec`` is not a child spec.
        """
        result: Supervisor = await self._request("start_child", spec)
        return result

    async def terminate_child(self, name: str) -> None:
        """Stop child ``name`` and keep its spec (OTP's ``terminate_child``);
        it is not restarted until :meth:`restart_child`.

        A nested supervisor is stopped by its shutdown spec (a temporary
        one's spec is then dropped, as in OTP). A stage is paused: it
        finishes the batch in hand, then what reaches it waits in its
        channel (upstream waits once that is full). A child that was
        restarting is left terminated. Terminating a terminated child does
        nothing.

        Raises:
            SupervisorError: no child of that name.
        """
        await self._request("terminate_child", name)

    async def restart_child(self, name: str) -> Supervisor | None:
        """Start the terminated child ``name`` again from its spec (OTP's
        ``restart_child``), with the latest code recorded for it and the
        state from its restore hooks. Returns the nested supervisor's new
        handle, or ``None`` for a stage (resumed on its channel).

        Raises:
            SupervisorError: no child of that name; it is running or
                restarting; or it failed to start (the error is the
                ``__cause__``).
        """
        result: Supervisor | None = await self._request("restart_child", name)
        return result

    async def delete_child(self, name: str) -> None:
        """Forget the terminated nested supervisor ``name`` (OTP's
        ``delete_child``).

        Raises:
            SupervisorError: no child of that name; it is still running or
                restarting; or it is a stage (removing one changes the
                pipeline's types).
        """
        await self._request("delete_child", name)

    def current_spec(self) -> SupervisorSpec:
        """The supervisor's spec as it is now: every code change applied to
        its stages and to nested supervisors' stages, and the children
        added or deleted since it started. A restart by a parent starts
        from this."""
        kids = []
        for c in self._order:
            spec = c.spec
            if spec.is_supervisor and c.handle is not None:
                spec = attrs.evolve(spec, start=c.handle.current_spec())
            kids.append(spec)
        return attrs.evolve(self.spec, children=tuple(kids))

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
        """Stop: a restart in progress is cancelled; nested supervisors stop
        in reverse start order, each by its shutdown spec; then the
        pipeline drains what is in flight, each stage within its own
        shutdown spec (``0``: stopped at once; ``N``: after N seconds;
        ``None``: as long as it takes). A stage stopped so, or crashing
        meanwhile, is done: what was queued behind it is answered with
        PipelineClosed and counted in its ``abandoned``. Returns once
        stopped (at once if it already has, normally or by escalation)."""
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
            async with AsyncExitStack() as stack:
                stages = self.spec.stages
                resumed = await self._resume(stages, stack)
                if stages:
                    pspec = PipelineSpec(
                        tuple(self._children[c.name].spec.start for c in stages)  # type: ignore[misc]
                    )
                    durable = self._durability
                    self._pipeline = await stack.enter_async_context(
                        open_pipeline(
                            pspec,
                            dead_letters=self._dead_letters,
                            validate_inputs=self._validate_inputs,
                            output_capacity=self._output_capacity,
                            on_exit=self._stage_exit,
                            on_failure=self._stage_failure,
                            persist=None if durable is None else durable.persist,
                            request_keys=self._request_keys,
                        )
                    )
                    for name, r in resumed.items():
                        if r.replicas is not None:
                            self._pipeline.seed_shards(name, r.replicas)
                        else:
                            self._pipeline.seed(name, r.state, r.seq, r.keys)
                    if self._restoring:
                        await self._restore_stages()
                    for c in self._order[: len(stages)]:
                        c.running = True
                escalation: EscalationError | None = None
                async with anyio.create_task_group() as tg:
                    self._tg = tg
                    if self._history is not None:
                        tg.start_soon(self._write_history, self._history)
                    for c in self._order[len(stages) :]:
                        await self._start_nested(c, restoring=self._restoring)
                    task_status.started()
                    try:
                        await self._loop()
                    except EscalationError as exc:
                        escalation = exc
                        self.exit_reason = exc
                    self._stopping = True
                    self._accepting = False
                    await self._cancel_attempt()
                    nested = [c for c in self._order if c.spec.is_supervisor]
                    await self._terminate_nested(reversed(nested))
                    tg.cancel_scope.cancel()  # a change in flight when escalating
                if escalation is not None:
                    raise escalation  # the pipeline is cancelled on the way out
                await self._close_pipeline()
        finally:
            self._finish()

    async def _resume(self, stages: Any, stack: AsyncExitStack) -> dict[str, Resumed]:
        """Resume from the store, if there is one: what each stage starts
        with, its recorded machine put in its spec (what restarts run)."""
        self._history = None
        if self._durability is None:
            return {}
        resumed = await self._durability.resume([c.start for c in stages])
        for name, r in resumed.items():
            c = self._children[name]
            start = c.spec.start
            assert isinstance(start, StageSpec)
            if r.machine is not start.machine:
                c.spec = attrs.evolve(c.spec, start=attrs.evolve(start, machine=r.machine))
        self._book.restore_history(self._durability.history)
        if not self._book.undo:  # a fresh book (not a nested incarnation's)
            self._book.restore_undo(
                self._durability.undo_entries([c.start for c in stages], self.spec.history_limit)
            )
        out, into = anyio.create_memory_object_stream[dict[str, Any]](math.inf)
        stack.enter_context(out)
        self._history = stack.enter_context(into)
        durable = self._durability

        def on_record(r: UpgradeRecord) -> None:
            durable.recorded += 1
            out.send_nowait(attrs.asdict(r))

        self._book.on_record = on_record
        return resumed

    async def _write_history(self, records: MemoryObjectReceiveStream[dict[str, Any]]) -> None:
        # Written in order, shortly after each record is made (see
        # docs/durability.md for the window this leaves).
        assert self._durability is not None
        async for record in records:
            try:
                await self._durability.append_history(record)
            except Exception:
                log.exception("%s: the store refused a history record", self.name)

    async def _restore_stages(self) -> None:
        # A restarted supervisor's stages start from their restore hooks, as
        # a restarted stage does; a failing hook fails the start.
        p = self.pipeline
        for c in self.spec.stages:
            if c.restore is not None:
                p.restart_stage(c.name, state=await call_restore(c.restore, p.machine(c.name)))

    async def _close_pipeline(self) -> None:
        p = self._pipeline
        if p is None:
            return
        # A stage that is not running (crashed and not restarted, restarting,
        # or terminated) will never pass end of stream on: it is done, and
        # what is queued for it is answered now rather than waited for.
        for name in p.stage_names:
            if not p.is_running(name) or p.is_paused(name):
                p.abandon(name)
        budgets = {c.name: c.spec.shutdown for c in self._order if not c.spec.is_supervisor}
        await p.close(shutdown=budgets, discard_outputs=True)

    def _finish(self) -> None:
        self._accepting = False
        self._stopping = True
        for c in self._order:
            c.running = False
            c.restarting = False
        err = self._stopped_error()
        for reply in list(self._pending):
            reply.fail(err)
        self._pending.clear()
        self._send.close()
        self._recv.close()
        self._stopped.set()

    async def _loop(self) -> None:
        while True:
            msg: Any = self._take_deferred()
            if msg is None:
                msg = await self._recv.receive()
            if isinstance(msg, Started):
                self._end_attempt(msg)
            elif isinstance(msg, Done):
                self._finish_change(msg)
            elif isinstance(msg, Wake):
                pass  # only there to get a deferred request looked at
            elif self._must_wait(msg):
                self._deferred.append(msg)  # a request keeps its mailbox slot while it waits
            elif isinstance(msg, Exit | Retry):
                try:
                    if isinstance(msg, Exit):
                        self._on_exit(msg)
                    else:
                        self._on_retry(msg)
                except AutoShutdownDue as due:
                    log.info(
                        "%s: significant child %s ended: shutting down (auto_shutdown %s)",
                        self.name,
                        due,
                        self.spec.auto_shutdown.value,
                        extra={"supervisor": self.name, "stage": str(due)},
                    )
                    return
            else:
                if msg.holds_slot:
                    msg.holds_slot = False
                    self._slots.release()
                if msg.kind == "stop":
                    msg.reply.set(None)
                    return
                self._handle(msg)

    def _must_wait(self, msg: Request | Exit | Retry) -> bool:
        # One restart attempt at a time, as OTP handles one message at a
        # time; stop does not wait for one (it cancels it), only for a
        # change in flight.
        if isinstance(msg, Exit | Retry):
            return self._attempt is not None
        if msg.kind == "stop":
            return self._inflight
        if msg.kind in SERIAL:
            return self._inflight or self._attempt is not None
        return False

    def _take_deferred(self) -> Request | Exit | Retry | None:
        for i, msg in enumerate(self._deferred):
            if not self._must_wait(msg):
                del self._deferred[i]
                return msg
        return None

    def _post(self, msg: Exit | Done | Wake | Started | Retry) -> None:
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
            elif req.kind == "which_children":
                req.reply.set(self._which_children())
            elif req.kind == "count_children":
                req.reply.set(self._count_children())
            elif req.kind.endswith("_child"):
                attempt = self._admin(req.kind, req.arg)
                if attempt is None:
                    req.reply.set(None)
                else:
                    attempt.reply = req.reply
                    self._begin_attempt(attempt)
            elif req.kind == "change":
                self._begin_change(req.arg, req.reply)
            elif req.kind == "savepoint":
                self._begin_savepoint(req.arg, req.reply)
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
        except (SupervisorError, ChildSpecError) as exc:
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
            common: dict[str, Any] = {
                "state": c.state,
                "shutdown": c.spec.shutdown,
                "significant": c.spec.significant,
            }
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
                        **common,
                    )
                )
                continue
            s = stats[c.name]
            children.append(
                ChildStatus(
                    c.name,
                    "stage",
                    c.spec.restart.value,
                    c.running and p is not None and p.is_running(c.name),
                    c.restarts,
                    s.version,
                    s.state_type,
                    s.queue.items + s.held,
                    s.processed,
                    s.failed,
                    s.upgrades,
                    abandoned=s.abandoned,
                    **common,
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
    store: StateStore | None = None,
    request_keys: int = DEFAULT_REQUEST_KEYS,
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
        store: where the stages' machines and states and the change history
            are kept (:class:`~arrowloop.store.SqliteStore`): the stages
            resume from it, and each makes its state durable before its
            outputs are released (docs/durability.md).
        request_keys: how many request keys each stage remembers, the most
            recent (kept in the store with the states; see
            :meth:`Supervisor.submit`).

    Raises:
        EscalationError: the supervisor gave up.
        StoreError: the store cannot be used.
    """
    sup = Supervisor(
        spec,
        clock=clock,
        dead_letters=dead_letters,
        validate_inputs=validate_inputs,
        output_capacity=output_capacity,
        store=store,
        request_keys=request_keys,
    )
    async with running(sup):
        yield sup


@asynccontextmanager
async def running(sup: Supervisor) -> AsyncIterator[Supervisor]:
    """Run a supervisor made already (see :func:`open_supervisor`, which
    this is the body of; a parent runs its nested supervisors with it).

    Raises:
        EscalationError: the supervisor gave up.
    """
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
