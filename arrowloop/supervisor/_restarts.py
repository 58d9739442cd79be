"""OTP restarts: what a supervisor does when a child exits.

The restart types (permanent, transient, temporary), the strategies
(one-for-one, one-for-all, rest-for-one), the restart intensity with
escalation, restore hooks, nested supervisors started and terminated in
order, and the counting of a fresh change's failures for auto-rollback.
A mixin of :class:`~arrowloop.supervisor.Supervisor`, which owns the state
it works on; the change orchestration is in ``_orchestration.py``. Part of
layer 9.

One adaptation of OTP, because a pipeline's channels belong to the
pipeline, not to its actors (see docs/supervision.md): restarting a stage
that did not crash (a sibling under one-for-all or rest-for-one) resets
its state in place between two batches instead of killing its task, since
killing it mid-batch would lose the items it holds.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from arrowloop.errors import EscalationError
from arrowloop.runtime import DeadLetterSink, Pipeline
from arrowloop.supervisor._intensity import Clock, Window
from arrowloop.supervisor._messages import ChildRecord, Done, Exit, Reply, Request, Wake
from arrowloop.supervisor._spec import Restart, Strategy, SupervisorSpec

if TYPE_CHECKING:
    from arrowloop.supervisor._supervisor import Supervisor

__all__ = ["Restarts"]

log = logging.getLogger("arrowloop.supervisor")


def _open_nested() -> Callable[..., AbstractAsyncContextManager[Supervisor]]:
    # A nested supervisor is a Supervisor: imported late, the module that
    # defines it imports this one.
    from arrowloop.supervisor._supervisor import open_supervisor

    return open_supervisor


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
    _deferred: deque[Request]

    if TYPE_CHECKING:

        @property
        def pipeline(self) -> Pipeline: ...

        def _post(self, msg: Exit | Done | Wake) -> None: ...

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
            raise self._escalation(
                c,
                f"more than {self.spec.intensity} restart(s) within {self.spec.period:g}s "
                f"(the latest for child {c.name!r}: {msg.error}); "
                f"it terminated its children and gave up",
            )
        await self._restart(c)

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
                    raise self._escalation(
                        c,
                        f"stage {c.name!r} could not be restarted: its restore hook failed "
                        f"({type(exc).__name__}: {exc}) more than {self.spec.intensity} "
                        f"time(s) within {self.spec.period:g}s",
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
                    async with _open_nested()(
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
