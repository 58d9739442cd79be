"""OTP restarts: what a supervisor does when a child exits.

The restart types (permanent, transient, temporary), the strategies
(one-for-one, one-for-all, rest-for-one), the restart intensity with
escalation, restore hooks, nested supervisors started and terminated in
order, and the counting of a fresh change's failures for auto-rollback.
A mixin of :class:`~arrowloop.supervisor.Supervisor`, which owns the state
it works on; the change orchestration is in ``_orchestration.py``. Part of
layer 9.

A restart is not done inside the supervisor's loop: it is an *attempt*
run by a task of its own (restore hooks may be slow, nested supervisors
take time to stop and start), while the loop goes on answering status,
data and stop. A failed attempt counts as another restart and is tried
again by a message posted behind whatever is in the mailbox (OTP's
``try_again_restart``); meanwhile the children concerned are listed as
``restarting``. Attempts run one at a time, and exit notices wait for the
one in progress, as OTP's supervisor handles one message at a time.

One adaptation of OTP, because a pipeline's channels belong to the
pipeline, not to its actors (see docs/supervision.md): restarting a stage
that did not crash (a sibling under one-for-all or rest-for-one) resets
its state in place between two batches instead of killing its task, since
killing it mid-batch would lose the items it holds.
"""

from __future__ import annotations

import inspect
import logging
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from anyio.abc import TaskGroup, TaskStatus

from arrowloop.errors import EscalationError
from arrowloop.machine import AnyMachine
from arrowloop.runtime import NO_STATE, DeadLetterSink, Pipeline
from arrowloop.supervisor._intensity import Clock, Window
from arrowloop.supervisor._messages import (
    Attempt,
    ChildRecord,
    Done,
    Exit,
    Lineage,
    Reply,
    Request,
    Retry,
    Started,
    StartFailed,
    Wake,
)
from arrowloop.supervisor._spec import (
    AutoShutdown,
    Restart,
    RestoreHook,
    Strategy,
    SupervisorSpec,
)

if TYPE_CHECKING:
    from arrowloop.supervisor._supervisor import Supervisor

__all__ = ["Restarts", "AutoShutdownDue", "call_restore"]

log = logging.getLogger("arrowloop.supervisor")


def _nested_runner() -> tuple[type[Supervisor], Callable[..., AbstractAsyncContextManager[Any]]]:
    # A nested supervisor is a Supervisor: imported late, the module that
    # defines it imports this one.
    from arrowloop.supervisor._supervisor import Supervisor, running

    return Supervisor, running


async def call_restore(hook: RestoreHook, machine: AnyMachine) -> Any:
    """The state a restore hook gives for ``machine``.

    An ``async`` hook is awaited on the event loop; a plain function runs in
    a worker thread (it may block on a snapshot store without freezing the
    supervisor), abandoned if the restart is cancelled.
    """
    if inspect.iscoroutinefunction(hook):
        return await hook(machine)
    result = await anyio.to_thread.run_sync(hook, machine, abandon_on_cancel=True)
    if inspect.isawaitable(result):
        result = await result
    return result


class AutoShutdownDue(Exception):
    """Internal: a significant child ended and the supervisor's
    ``auto_shutdown`` says to stop."""


def _describe(exc: BaseException) -> str:
    # A failed start surfaces through task groups: name what actually failed.
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, StartFailed):
        return exc.what
    return f"{type(exc).__name__}: {exc}"


class Restarts:
    """Child exits and restarts (mixed into the supervisor)."""

    name: str
    spec: SupervisorSpec
    _children: dict[str, ChildRecord]
    _order: list[ChildRecord]
    _intensity: Window
    _clock: Clock
    _stopping: bool
    _pipeline: Pipeline | None
    _tg: TaskGroup | None
    _dead_letters: DeadLetterSink | None
    _request_keys: int
    _deferred: deque[Request | Exit | Retry]
    _attempt: Attempt | None
    _lineage: Lineage

    if TYPE_CHECKING:

        @property
        def pipeline(self) -> Pipeline: ...

        def _post(self, msg: Exit | Done | Wake | Started | Retry) -> None: ...

        def _admin_error(self, error: BaseException) -> BaseException: ...

    # -- notices from the children ------------------------------------------------

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
            # OTP: a child exiting during shutdown is simply done. What is
            # queued behind it is answered (PipelineClosed) instead of
            # waiting for a stage that will not come back.
            p = self._pipeline
            if p is not None:
                p.abandon(name)
            return
        c = self._children.get(name)
        if c is not None:
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

    def _on_exit(self, msg: Exit) -> None:
        c = self._children.get(msg.child)
        if c is None or self._stopping or msg.incarnation != c.incarnation or not c.running:
            return  # terminated by us (or by terminate_child), or shutting down
        c.running = False
        abnormal = msg.error is not None
        restart = c.spec.restart
        if restart is Restart.TEMPORARY or (restart is Restart.TRANSIENT and not abnormal):
            # OTP: not restarted, and not counted towards the intensity; a
            # temporary child's spec is dropped.
            if restart is Restart.TEMPORARY and c.spec.is_supervisor:
                self._drop(c)
            if self._auto_shutdown_due(c):
                raise AutoShutdownDue(c.name)
            return
        if abnormal and not c.spec.is_supervisor:
            self._note_crash(c, self._clock())
        self._restart_from(c, msg.error)

    def _on_retry(self, msg: Retry) -> None:
        c = self._children.get(msg.child)
        if c is None or self._stopping or not c.restarting:
            return  # terminated meanwhile (terminate_child): nothing to retry
        self._restart_from(c, msg.error)

    def _auto_shutdown_due(self, c: ChildRecord) -> bool:
        mode = self.spec.auto_shutdown
        if not c.spec.significant or mode is AutoShutdown.NEVER:
            return False
        if mode is AutoShutdown.ANY_SIGNIFICANT:
            return True
        return not any(o.spec.significant and (o.running or o.restarting) for o in self._order)

    # -- restarts -------------------------------------------------------------------

    def _restart_from(self, c: ChildRecord, why: BaseException | None) -> None:
        """Count a restart attempt of ``c`` (escalating past the intensity)
        and start it, with the group its strategy concerns."""
        if self._intensity.add(self._clock()):
            if isinstance(why, StartFailed):
                what = f"child {c.name!r} could not be restarted: {why.what}"
            else:
                what = f"the latest for child {c.name!r}: {why}"
            raise self._escalation(
                c,
                f"more than {self.spec.intensity} restart(s) within {self.spec.period:g}s "
                f"({what}); it terminated its children and gave up",
            )
        targets = self._group(c)
        if all(not t.spec.is_supervisor and t.spec.restore is None for t in targets):
            # Nothing to wait for: restart at once, before the loop looks at
            # anything else (as OTP's supervisor does).
            for t in targets:
                if t is c or t.running or t.spec.restart is not Restart.TEMPORARY:
                    self._stage_restarted(t, NO_STATE)
            return
        c.restarting = True
        for t in targets:
            if t.spec.is_supervisor and t.running and t is not c:
                t.restarting = t.spec.restart is not Restart.TEMPORARY
        self._begin_attempt(Attempt(lambda: self._restart_group(c, targets), None))

    def _group(self, c: ChildRecord) -> list[ChildRecord]:
        strategy = self.spec.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            return [c]
        if strategy is Strategy.ONE_FOR_ALL:
            return list(self._order)
        return self._order[self._order.index(c) :]

    async def _restart_group(self, failed: ChildRecord, targets: list[ChildRecord]) -> None:
        # OTP terminates the siblings in reverse start order, then starts all
        # in start order. Nested supervisors are really terminated; stages
        # are reset in place instead (see the module docstring). A start
        # that fails ends the attempt: the retry starts the group again from
        # that child (one_for_all: all of it; rest_for_one: it and the rest).
        siblings = [t for t in targets if t is not failed and t.spec.is_supervisor]
        await self._terminate_nested(reversed(siblings))
        for t in targets:
            if t.spec.is_supervisor:
                if t is failed or t.spec.restart is not Restart.TEMPORARY:
                    await self._start_nested(t, restoring=True)
                    t.restarts += 1
                elif t.name in self._children:
                    self._drop(t)  # a temporary sibling is terminated for good, as in OTP
            elif t is failed or t.running or t.spec.restart is not Restart.TEMPORARY:
                await self._restart_stage(t)

    async def _restart_stage(self, c: ChildRecord) -> None:
        hook = c.spec.restore
        try:
            state = (
                NO_STATE
                if hook is None
                else await call_restore(hook, self.pipeline.machine(c.name))
            )
            self._stage_restarted(c, state)
        except Exception as exc:
            what = (
                f"its restore hook failed ({_describe(exc)})"
                if hook is not None
                else f"it failed to start ({_describe(exc)})"
            )
            raise StartFailed(c.name, exc, what) from exc

    def _stage_restarted(self, c: ChildRecord, state: Any) -> None:
        p = self.pipeline
        if state is NO_STATE:
            p.restart_stage(c.name)
        else:
            p.restart_stage(c.name, state=state)
        c.running = True
        c.restarting = False
        c.restarts += 1
        log.info(
            "%s: restarted stage %s",
            self.name,
            c.name,
            extra={"supervisor": self.name, "stage": c.name, "version": p.version(c.name)},
        )

    # -- attempts ---------------------------------------------------------------------

    def _begin_attempt(self, attempt: Attempt) -> None:
        assert self._tg is not None
        attempt.scope = anyio.CancelScope()
        self._attempt = attempt
        self._tg.start_soon(self._run_attempt, attempt, name=f"arrowloop {self.name} restart")

    async def _run_attempt(self, a: Attempt) -> None:
        assert a.scope is not None
        value: Any = None
        error: BaseException | None = None
        child = ""
        try:
            with a.scope:
                try:
                    value = await a.work()
                except StartFailed as exc:
                    error, child = exc, exc.child
                except Exception as exc:  # an administrative request refused
                    error = exc
        finally:
            a.ended.set()
        if not a.scope.cancel_called:
            self._post(Started(a, value, error, child))

    def _end_attempt(self, msg: Started) -> None:
        a = msg.attempt
        if self._attempt is a:
            self._attempt = None
        if a.reply is not None:
            if msg.error is None:
                a.reply.set(msg.value)
            else:
                a.reply.fail(self._admin_error(msg.error))
            return
        if msg.error is None or self._stopping:
            return
        assert isinstance(msg.error, StartFailed)
        log.warning(
            "%s: restarting %s failed: %s; trying again",
            self.name,
            msg.child,
            msg.error.what,
            extra={"supervisor": self.name, "stage": msg.child, "reason": msg.error.what},
        )
        # OTP: a child that fails to start counts as another restart, tried
        # again after whatever is already in the mailbox.
        self._post(Retry(msg.child, msg.error))

    async def _cancel_attempt(self) -> None:
        a = self._attempt
        if a is None:
            return
        self._attempt = None
        assert a.scope is not None
        a.scope.cancel()
        await a.ended.wait()

    def _escalation(self, c: ChildRecord, why: str) -> EscalationError:
        """The error this supervisor gives up with (logged here, once)."""
        log.error(
            "%s: giving up: %s",
            self.name,
            why,
            extra={"supervisor": self.name, "stage": c.name, "reason": why},
        )
        return EscalationError(
            f"supervisor {self.name!r}: {why}",
            supervisor=self.name,
            child=c.name,
            restarts=self.spec.intensity,
            period=self.spec.period,
        )

    # -- nested supervisors ---------------------------------------------------------

    def _drop(self, c: ChildRecord) -> None:
        """Forget a child's spec (OTP: temporary children, delete_child)."""
        self._children.pop(c.name, None)
        if c in self._order:
            self._order.remove(c)
        self._lineage.children.pop(c.name, None)  # a new child of that name starts afresh

    async def _start_nested(self, c: ChildRecord, *, restoring: bool) -> None:
        """Start a nested supervisor from its current spec (the one its
        latest incarnation ran, with every change made in it since).

        Raises:
            StartFailed: it did not start.
        """
        assert self._tg is not None
        if c.handle is not None:
            c.spec = attrs.evolve(c.spec, start=c.handle.current_spec())
        c.incarnation += 1
        c.ended = anyio.Event()
        try:
            await self._tg.start(self._run_nested, c, c.incarnation, restoring)
        except Exception as exc:
            raise StartFailed(c.name, exc, f"it failed to start ({_describe(exc)})") from exc
        c.running = True
        c.restarting = False

    async def _run_nested(
        self, c: ChildRecord, incarnation: int, restoring: bool, *, task_status: TaskStatus[None]
    ) -> None:
        error: BaseException | None = None
        spec = c.spec.start
        assert isinstance(spec, SupervisorSpec)
        if c.lineage is None:
            c.lineage = self._lineage.children.setdefault(c.name, Lineage())
        cls, run = _nested_runner()
        inner = cls(
            spec,
            clock=self._clock,
            dead_letters=self._dead_letters,
            lineage=c.lineage,
            request_keys=self._request_keys,  # a nested pipeline keeps as many keys
        )
        inner._restoring = restoring
        started = False
        try:
            with anyio.CancelScope() as scope:
                c.scope = scope
                try:
                    async with run(inner):
                        c.handle = inner
                        started = True
                        task_status.started()
                        await inner.wait()
                except EscalationError as exc:
                    if not started:
                        raise
                    error = exc  # an abnormal exit of this child
        finally:
            c.ended.set()
        if started:
            self._post(Exit(c.name, incarnation, error))

    async def _terminate_nested(self, children: Iterable[ChildRecord]) -> None:
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

    # -- auto-rollback --------------------------------------------------------------

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
