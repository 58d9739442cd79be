"""Child administration: OTP's start, terminate, restart and delete of a child.

The requests behind :meth:`Supervisor.start_child`, ``terminate_child``,
``restart_child``, ``delete_child``, ``which_children`` and
``count_children``, handled by the supervisor's loop one at a time (after
any change in flight and any restart attempt). What needs waiting (a nested
supervisor starting or stopping, a restore hook) runs as an attempt, like a
restart, and answers the caller when it ends. A mixin of
:class:`~arrowloop.supervisor.Supervisor`. Part of layer 9.

For a nested supervisor these are OTP's semantics. A stage is part of one
typed pipeline, so for a stage: ``terminate_child`` pauses it (it
finishes the batch in hand, then its channel keeps what arrives, and
upstream waits once that is full: nothing is lost); ``restart_child``
resumes it from its machine's initial state (or its restore hook's);
``start_child`` and ``delete_child`` of a stage are refused, since adding
or removing one changes the pipeline's types (that is a code change).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from arrowloop.errors import ChildSpecError, SupervisorError
from arrowloop.runtime import Pipeline, StageSpec
from arrowloop.supervisor._messages import Attempt, ChildRecord, StartFailed
from arrowloop.supervisor._spec import ChildSpec, Restart, SupervisorSpec, child
from arrowloop.supervisor._status import ChildCounts, ChildInfo

if TYPE_CHECKING:
    from arrowloop.supervisor._supervisor import Supervisor

__all__ = ["Administration"]


class Administration:
    """Child administration requests (mixed into the supervisor)."""

    name: str
    _children: dict[str, ChildRecord]
    _order: list[ChildRecord]
    _pipeline: Pipeline | None

    if TYPE_CHECKING:

        @property
        def pipeline(self) -> Pipeline: ...

        def _begin_attempt(self, attempt: Attempt) -> None: ...

        def _drop(self, c: ChildRecord) -> None: ...

        async def _start_nested(self, c: ChildRecord, *, restoring: bool) -> None: ...

        async def _terminate_nested(self, children: Any) -> None: ...

        async def _restart_stage(self, c: ChildRecord) -> None: ...

    # -- errors that name the child ---------------------------------------------------

    def _child_error(self, name: str, found: str, expected: str, why: str) -> SupervisorError:
        return SupervisorError(
            f"supervisor {self.name!r}: child {name!r} {why}",
            path=f"{self.name}.{name}",
            expected=expected,
            found=found,
        )

    def _find(self, name: str) -> ChildRecord:
        c = self._children.get(name)
        if c is None:
            raise self._child_error(
                name,
                "not found",
                "an existing child",
                f"not found; the children are {[c.name for c in self._order]}",
            )
        return c

    def _stage_only(self, c: ChildRecord, what: str) -> SupervisorError:
        return self._child_error(
            c.name,
            "a stage",
            "a nested supervisor",
            f"is a stage: {what} would change the pipeline's types; "
            "make that a code change instead (terminate_child pauses a stage)",
        )

    # -- listings ----------------------------------------------------------------------

    def _which_children(self) -> tuple[ChildInfo, ...]:
        p = self._pipeline
        out = []
        for c in self._order:
            stage = not c.spec.is_supervisor
            out.append(
                ChildInfo(
                    c.name,
                    c.state,  # type: ignore[arg-type]
                    "stage" if stage else "supervisor",
                    c.spec.restart.value,
                    c.spec.shutdown,
                    p.version(c.name) if stage and p is not None else None,
                    c.spec.significant,
                )
            )
        return tuple(out)

    def _count_children(self) -> ChildCounts:
        sups = sum(1 for c in self._order if c.spec.is_supervisor)
        return ChildCounts(
            len(self._order),
            sum(1 for c in self._order if c.running),
            sups,
            len(self._order) - sups,
        )

    # -- requests ----------------------------------------------------------------------

    def _admin(self, kind: str, arg: Any) -> Attempt | None:
        """Handle an administrative request: None if answered already (the
        caller sets ``None``), else the attempt that will answer it."""
        if kind == "start_child":
            return self._start_child(arg)
        c = self._find(arg)
        if kind == "terminate_child":
            return self._terminate_child(c)
        if kind == "restart_child":
            return self._restart_child(c)
        self._delete_child(c)
        return None

    def _start_child(self, spec: Any) -> Attempt:
        if isinstance(spec, StageSpec | SupervisorSpec):
            spec = child(spec)
        if not isinstance(spec, ChildSpec):
            raise ChildSpecError(
                f"expected a ChildSpec (child(...)) or a SupervisorSpec, found {spec!r:.80}",
                path="start_child",
                expected="ChildSpec",
                found=type(spec).__name__,
            )
        old = self._children.get(spec.name)
        if old is not None:
            if old.running or old.restarting:
                raise self._child_error(spec.name, old.state, "a new name", "is already started")
            raise self._child_error(
                spec.name, "terminated", "a new name", "is already present (delete it first)"
            )
        if not spec.is_supervisor:
            raise self._child_error(
                spec.name,
                "a stage",
                "a nested supervisor",
                "is a stage: a stage joins the pipeline through a code change, not start_child",
            )
        c = ChildRecord(spec, len(self._order))
        self._children[c.name] = c
        self._order.append(c)

        async def start() -> Supervisor:
            try:
                await self._start_nested(c, restoring=False)
            except BaseException:
                self._drop(c)  # OTP: a child that fails to start is not added
                raise
            assert c.handle is not None
            return c.handle

        return self._attempt_for(start)

    def _terminate_child(self, c: ChildRecord) -> Attempt | None:
        c.restarting = False  # a pending retry of it is dropped
        if c.spec.is_supervisor:
            if not c.running:
                self._drop_if_temporary(c)
                return None

            async def terminate() -> None:
                await self._terminate_nested([c])
                self._drop_if_temporary(c)

            return self._attempt_for(terminate)
        if c.running:
            self.pipeline.pause_stage(c.name)
            c.running = False
        return None

    def _drop_if_temporary(self, c: ChildRecord) -> None:
        if c.spec.restart is Restart.TEMPORARY:
            self._drop(c)  # OTP: a terminated temporary child's spec is deleted

    def _restart_child(self, c: ChildRecord) -> Attempt:
        if c.running or c.restarting:
            raise self._child_error(c.name, c.state, "a terminated child", f"is {c.state}")

        async def restart() -> Supervisor | None:
            if c.spec.is_supervisor:
                await self._start_nested(c, restoring=True)
                c.restarts += 1
                return c.handle
            await self._restart_stage(c)
            return None

        return self._attempt_for(restart)

    def _delete_child(self, c: ChildRecord) -> None:
        if c.running or c.restarting:
            raise self._child_error(
                c.name, c.state, "a terminated child", f"is {c.state}: terminate it first"
            )
        if not c.spec.is_supervisor:
            raise self._stage_only(c, "deleting it")
        self._drop(c)

    def _attempt_for(self, work: Callable[[], Awaitable[Any]]) -> Attempt:
        return Attempt(work, None)

    def _admin_error(self, error: BaseException) -> BaseException:
        if isinstance(error, StartFailed):
            err = self._child_error(
                error.child,
                "a failed start",
                "a child that starts",
                f"could not be started: {error.what}",
            )
            err.__cause__ = error.error
            return err
        return error
