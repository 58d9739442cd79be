"""The supervisor actor: restarts, code changes, rollback, introspection.

A :class:`Supervisor` runs the stages of one pipeline (its stage children)
and any nested supervisors on its own task group, and acts on one message
at a time from a bounded mailbox: child-exit notices, and control requests
(code change, rollback, status, history, state, stop). Its public methods
post a request with a reply slot and await the reply. Layer 9: it builds on
the runtime (``Pipeline.restart_stage``, ``check_upgrade``,
``upgrade_many``) and on the machine layer; nothing below imports it.

Two adaptations of OTP, both because a pipeline's channels belong to the
pipeline, not to its actors (see docs/supervision.md):

* restarting a stage that did not crash (a sibling under one-for-all or
  rest-for-one) resets its state in place between two batches instead of
  killing its task, since killing it mid-batch would lose the items it
  holds;
* a code change is in flight while it travels down the pipeline, and it may
  wait behind a crashed stage, so exit notices are still handled while it
  is in flight; other control requests that change code wait their turn.
"""

from __future__ import annotations

import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import attrs
from anyio.abc import TaskGroup, TaskStatus

from arrowloop.errors import (
    ChildSpecError,
    EscalationError,
    InternalError,
    PipelineClosed,
    SupervisorError,
    UpgradeError,
)
from arrowloop.runtime import (
    DEFAULT_OUTPUT_CAPACITY,
    ClientView,
    DeadLetterSink,
    Pipeline,
    PipelineSpec,
    StageSpec,
    Ticket,
    open_pipeline,
)
from arrowloop.supervisor._adapters import Edge
from arrowloop.supervisor._changes import ChangeBook
from arrowloop.supervisor._codechange import CodeChange, UpgradeRecord
from arrowloop.supervisor._intensity import Clock, Window
from arrowloop.supervisor._messages import (
    SERIAL,
    ChildRecord,
    Done,
    Exit,
    Plan,
    Refused,
    Reply,
    Request,
    RequestKind,
    Wake,
)
from arrowloop.supervisor._spec import Restart, Strategy, SupervisorSpec
from arrowloop.supervisor._status import ChildStatus, SupervisorStatus
from arrowloop.typesys import Type

__all__ = ["Supervisor", "open_supervisor"]

log = logging.getLogger("arrowloop.supervisor")


def _no_stages(name: str) -> SupervisorError:
    return SupervisorError(
        f"supervisor {name!r} has no stage children, so no pipeline",
        path=name,
        expected="a supervisor with stages",
        found="none",
    )


class Supervisor:
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
        :class:`~arrowloop.runtime.ClientView` it was admitted through. With
        ``decode=True``, ``item`` is the item's JSON form, built with the
        view's input type.

        Raises:
            SupervisorError, ValidationError, PipelineClosed: as :meth:`call`.
        """
        p = self.pipeline
        return await p.submit(item, view=lambda: self.view(version), decode=decode)

    def view(self, version: str | None = None) -> ClientView:
        """The :class:`~arrowloop.runtime.ClientView` of clients of ``version``.

        ``None`` (or the running version) is the pipeline's own interface;
        a former version of the first or last stage gives the types that
        version had (on the side it was the first or last stage of) and the
        adapters leading to and from the running version.

        Raises:
            SupervisorError: as :meth:`call`.
        """
        p = self.pipeline
        if version is None:
            return p.view()
        names = p.stage_names
        first, last = names[0], names[-1]
        ins, outs = self._adapter_paths(first, last, version)
        old_in = self._adapters.old_types(first, version) if ins else None
        old_out = self._adapters.old_types(last, version) if outs else None
        return ClientView(
            version,
            p.input if old_in is None else old_in[0],
            p.output if old_out is None else old_out[1],
            tuple(e.adapt_in for e in ins or () if e.adapt_in is not None),
            tuple(e.adapt_out for e in reversed(outs or ()) if e.adapt_out is not None),
        )

    def interface(self, version: str | None = None) -> tuple[Type, Type]:
        """The input and output types clients of ``version`` use (see :meth:`view`).

        Raises:
            SupervisorError: as :meth:`call`.
        """
        v = self.view(version)
        return v.input, v.output

    def _adapter_paths(
        self, first: str, last: str, version: str
    ) -> tuple[list[Edge] | None, list[Edge] | None]:
        ins = self._adapter_path(first, version, "input")
        outs = self._adapter_path(last, version, "output")
        if ins is None and outs is None:
            raise SupervisorError(
                f"version {version[:12]} is neither a version the first stage {first!r} "
                f"nor one the last stage {last!r} ran",
                path=f"{self.name}.call",
                expected="a current or former version",
                found=version[:12],
            )
        return ins, outs

    def _adapter_path(self, stage: str, version: str, side: str) -> list[Edge] | None:
        current = self.pipeline.version(stage)
        if version == current:
            return []
        if not self._adapters.knows(stage, version):
            return None
        path = self._adapters.path(stage, version, current)
        ok = path is not None and all(
            (e.serves_in if side == "input" else e.serves_out) for e in path
        )
        if not ok or path is None:
            raise SupervisorError(
                f"clients of version {version[:12]} of stage {stage!r} cannot be served: "
                f"no chain of {side} adapters leads to the running version {current[:12]}",
                path=f"{self.name}.{stage}",
                expected=f"{side} adapters from {version[:12]}",
                found="none",
            )
        return path

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
                self._begin(self._plan_change(req.arg, req.reply))
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

    def _internal(self, doing: str, exc: Exception) -> InternalError:
        log.error(
            "%s: internal error while %s: %s: %s",
            self.name,
            doing,
            type(exc).__name__,
            exc,
            exc_info=exc,
            extra={"supervisor": self.name, "reason": f"{type(exc).__name__}: {exc}"},
        )
        err = InternalError(
            f"supervisor {self.name!r}: internal error while {doing} "
            f"({type(exc).__name__}: {exc}); nothing was changed, the supervisor goes on"
        )
        err.__cause__ = exc
        return err

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

    # -- exits and restarts -----------------------------------------------------

    def _stage_exit(self, name: str, error: BaseException | None) -> None:
        # Called synchronously from the stage's own task. A stage ends
        # normally only at end of stream, when its pipeline is closing (at
        # shutdown, or closed by its user): nothing to restart it for.
        if error is None:
            return
        log.warning(
            "%s: stage %s crashed: %s",
            self.name,
            name,
            error,
            extra={"supervisor": self.name, "stage": name, "reason": str(error)},
        )
        if self._stopping:
            # Draining at shutdown: the items behind the one that crashed it
            # still get through (OTP: a child exiting during shutdown is
            # simply done; here its queue is not, so it goes on at once).
            p = self._pipeline
            if p is not None and not p.is_running(name):
                p.restart_stage(name)
            return
        c = self._children[name]
        self._post(Exit(name, c.incarnation, error))

    def _stage_failure(self, name: str) -> None:
        # Called synchronously from the stage's task: a step failed on an
        # item and the stage went on. Not a restart, but a fresh change that
        # keeps failing is what auto-rollback is for.
        c = self._children.get(name)
        if c is None or self._stopping:
            return
        if self._note_crash(c, self._clock()):
            self._post(Wake())

    async def _on_exit(self, msg: Exit) -> None:
        c = self._children[msg.child]
        if self._stopping or msg.incarnation != c.incarnation:
            return  # a child we terminated ourselves, or shutting down
        c.running = False
        abnormal = msg.error is not None
        restart = c.spec.restart
        if restart is Restart.TEMPORARY or (restart is Restart.TRANSIENT and not abnormal):
            return  # OTP: not restarted, and not counted towards the intensity
        now = self._clock()
        if abnormal and not c.spec.is_supervisor:
            self._note_crash(c, now)
        if self._intensity.add(now):
            log.error(
                "%s: restart intensity exceeded (child %s: %s); giving up",
                self.name,
                c.name,
                msg.error,
                extra={"supervisor": self.name, "stage": c.name, "reason": str(msg.error)},
            )
            raise EscalationError(
                f"supervisor {self.name!r}: more than {self.spec.intensity} restart(s) within "
                f"{self.spec.period:g}s (the latest for child {c.name!r}: {msg.error}); "
                f"it terminated its children and gave up",
                supervisor=self.name,
                child=c.name,
                restarts=self.spec.intensity,
                period=self.spec.period,
            )
        await self._restart(c)

    async def _restart(self, failed: ChildRecord) -> None:
        strategy = self.spec.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            targets = [failed]
        elif strategy is Strategy.ONE_FOR_ALL:
            targets = list(self._order)
        else:
            targets = self._order[failed.index :]
        # OTP terminates the siblings in reverse start order, then starts all
        # in start order. Nested supervisors are really terminated; stages
        # are reset in place instead (see the module docstring).
        siblings = [t for t in targets if t is not failed and t.spec.is_supervisor]
        await self._terminate_nested(reversed(siblings))
        for t in targets:
            if t.spec.is_supervisor:
                if t is failed or t.spec.restart is not Restart.TEMPORARY:
                    await self._start_nested(t)
                    t.restarts += 1
                # a temporary sibling is terminated for good, as in OTP
            elif t is failed or t.running or t.spec.restart is not Restart.TEMPORARY:
                self._restart_stage(t)

    def _restart_stage(self, c: ChildRecord) -> None:
        p = self.pipeline
        hook = c.spec.restore
        while True:
            if hook is None:
                p.restart_stage(c.name)
                break
            try:
                state = hook(p.machine(c.name))
                p.restart_stage(c.name, state=state)
                break
            except Exception as exc:
                # OTP: a child that fails to start counts as another restart;
                # retry until it starts or the intensity gives out.
                if self._intensity.add(self._clock()):
                    raise EscalationError(
                        f"supervisor {self.name!r}: stage {c.name!r} could not be restarted: "
                        f"its restore hook failed ({type(exc).__name__}: {exc}) more than "
                        f"{self.spec.intensity} time(s) within {self.spec.period:g}s",
                        supervisor=self.name,
                        child=c.name,
                        restarts=self.spec.intensity,
                        period=self.spec.period,
                    ) from exc
        c.running = True
        c.restarts += 1
        log.info(
            "%s: restarted stage %s",
            self.name,
            c.name,
            extra={"supervisor": self.name, "stage": c.name, "version": p.version(c.name)},
        )

    async def _start_nested(self, c: ChildRecord) -> None:
        assert self._tg is not None
        c.incarnation += 1
        c.ended = anyio.Event()
        await self._tg.start(self._run_nested, c, c.incarnation)
        c.running = True

    async def _run_nested(
        self, c: ChildRecord, incarnation: int, *, task_status: TaskStatus[None]
    ) -> None:
        error: BaseException | None = None
        spec = c.spec.start
        assert isinstance(spec, SupervisorSpec)
        try:
            with anyio.CancelScope() as scope:
                c.scope = scope
                try:
                    async with open_supervisor(
                        spec, clock=self._clock, dead_letters=self._dead_letters
                    ) as inner:
                        c.handle = inner
                        task_status.started()
                        await inner.wait()
                except EscalationError as exc:
                    error = exc  # an abnormal exit of this child
        finally:
            c.ended.set()
        self._post(Exit(c.name, incarnation, error))

    async def _terminate_nested(self, children: Any) -> None:
        for c in children:
            if not c.running or c.handle is None:
                continue
            c.incarnation += 1  # its exit notice is now stale
            c.running = False
            timeout = c.spec.shutdown
            if timeout != 0:
                with anyio.move_on_after(float("inf") if timeout is None else timeout):
                    await c.handle.stop()
            if not c.ended.is_set() and c.scope is not None:
                c.scope.cancel()  # OTP's brutal_kill, or the timeout ran out
            await c.ended.wait()

    # -- code changes -----------------------------------------------------------

    def _plan_change(self, change: CodeChange, reply: Reply) -> Plan:
        return self._book.plan_change(change, self.pipeline, reply)

    def _plan_rollback(self, stage: str, who: str, reply: Reply, *, auto: bool) -> Plan:
        return self._book.plan_rollback(stage, who, reply, self.pipeline, auto=auto)

    def _begin(self, plan: Plan) -> None:
        assert self._tg is not None
        self._inflight = True
        self._tg.start_soon(self._send_change, plan, name=f"arrowloop {self.name} code change")

    async def _send_change(self, plan: Plan) -> None:
        try:
            versions = await self.pipeline.apply(
                plan.change, on_commit=lambda: self._committed(plan)
            )
        except (UpgradeError, PipelineClosed) as exc:
            self._post(Done(plan, None, exc))
            return
        except Exception as exc:  # a bug: fail this change, keep supervising
            self._post(Done(plan, None, self._internal(f"applying a {plan.kind}", exc)))
            return
        self._post(Done(plan, versions, None))

    def _committed(self, plan: Plan) -> None:
        # Runs in the stage's step that commits the change, so the specs
        # (what a restart runs), the history and the adapters (which clients
        # are served) never lag behind what runs.
        self._book.applied(plan)
        now = self._clock()
        for p in plan.change.plans:
            c = self._children[p.stage]
            start = c.spec.start
            assert isinstance(start, StageSpec)
            c.spec = attrs.evolve(c.spec, start=attrs.evolve(start, machine=p.new))
            c.rollback_pending = False
            policy = c.spec.auto_rollback
            fresh = plan.kind == "upgrade" and policy is not None
            c.upgraded_at = now if fresh else None
            c.crashes = Window(policy.crashes, policy.period) if fresh and policy else None
        log.info(
            "%s: %s applied to %s",
            self.name,
            plan.kind,
            ", ".join(
                f"{p.stage} {p.old.version[:12]} -> {p.new.version[:12]}" for p in plan.change.plans
            ),
            extra={
                "supervisor": self.name,
                "stage": ",".join(plan.change.stages),
                "from_versions": [p.old.version for p in plan.change.plans],
                "to_versions": [p.new.version for p in plan.change.plans],
                "requested_by": plan.requested_by,
            },
        )

    def _finish_change(self, done: Done) -> None:
        self._inflight = False
        plan = done.plan
        if done.error is not None:
            self._book.failed(plan, done.error)
            log.info(
                "%s: %s of %s failed: %s",
                self.name,
                plan.kind,
                ",".join(plan.change.stages),
                done.error,
                extra={
                    "supervisor": self.name,
                    "stage": ",".join(plan.change.stages),
                    "reason": str(done.error),
                },
            )
            plan.reply.fail(done.error)
            return
        assert done.versions is not None
        plan.reply.set(done.versions)

    def _note_crash(self, c: ChildRecord, now: float) -> bool:
        """Count a crash or failed item of a fresh change; whether it called
        for an auto-rollback."""
        policy = c.spec.auto_rollback
        if policy is None or c.crashes is None or c.upgraded_at is None:
            return False
        if now - c.upgraded_at > policy.period:
            c.crashes = None  # no longer fresh: auto-rollback no longer applies
            return False
        if c.crashes.add(now) and not c.rollback_pending:
            c.rollback_pending = True
            # Handled like a rollback request, after the restart and after
            # any change in flight; nobody waits for its reply.
            self._deferred.append(
                Request(
                    "rollback", (c.name, "supervisor"), Reply(), holds_slot=False, internal=True
                )
            )
            return True
        return False

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
