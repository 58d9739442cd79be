"""A supervisor's book of code changes: planning, history, undo and adapters.

The supervisor's actor asks the book to plan a change or a rollback (every
check made before anything enters the pipeline; a refusal is recorded and
raised as :class:`Refused`), sends the plan in-band, and hands the outcome
back to :meth:`ChangeBook.settle`, which records it and, for an applied
change, remembers how to undo it and which adapters serve clients of the
version it replaced. Part of layer 9 (the supervisor).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Final

from arrowloop.errors import PipelineClosed, UpgradeError
from arrowloop.machine import AnyMachine
from arrowloop.runtime import Change, Pipeline
from arrowloop.supervisor._adapters import AdapterTable, Edge
from arrowloop.supervisor._codechange import (
    CodeChange,
    RecordKind,
    RecordResult,
    UpgradeRecord,
    check_change,
)
from arrowloop.supervisor._messages import Done, Plan, Refused, Reply, Undo

__all__ = ["ChangeBook"]

# Failures the stage reports after the change entered the pipeline; every
# other UpgradeError reason is a refusal by a check made before sending.
_IN_STAGE: Final = frozenset({"stale", "migration failed", "invalid migrated state"})

#: The machine a stage runs, as the supervisor's child spec says.
Running = Callable[[str], AnyMachine]


def _versions(pipeline: Pipeline, stages: tuple[str, ...]) -> tuple[str, ...]:
    names = set(pipeline.stage_names)
    return tuple(pipeline.version(s) if s in names else "" for s in stages)


class ChangeBook:
    """History, undo stack and adapter table of one supervisor, each bounded
    by ``limit`` entries."""

    def __init__(self, limit: int) -> None:
        self.history: deque[UpgradeRecord] = deque(maxlen=limit)
        self.undo: deque[Undo] = deque(maxlen=limit)
        self.adapters = AdapterTable(limit)
        self._seq = 0

    def record(
        self,
        kind: RecordKind,
        who: str,
        stages: tuple[str, ...],
        before: tuple[str, ...],
        to: tuple[str, ...],
        result: RecordResult,
        reason: str = "",
    ) -> None:
        """Append one record to the history."""
        self._seq += 1
        self.history.append(
            UpgradeRecord(self._seq, kind, who, time.time(), stages, before, to, result, reason)
        )

    def _refuse(
        self,
        kind: RecordKind,
        who: str,
        pipeline: Pipeline,
        stages: tuple[str, ...],
        to: tuple[str, ...],
        error: Exception,
    ) -> Refused:
        self.record(kind, who, stages, _versions(pipeline, stages), to, "refused", str(error))
        return Refused(error)

    def plan_change(
        self, change: CodeChange, pipeline: Pipeline, running: Running, reply: Reply
    ) -> Plan:
        """Check ``change`` completely against what runs; the plan to send.

        Raises:
            Refused: a check failed (recorded as refused).
        """
        names = pipeline.stage_names
        who = change.requested_by if isinstance(change, CodeChange) else "unknown"
        stages = change.stages if isinstance(change, CodeChange) else ()
        machines = {n: running(n) for n in names}
        to = ("",) * len(stages)
        try:
            checked = check_change(change, machines, names[0], names[-1])
            to = tuple(u.new.version for u in checked)
            changes: dict[str, Change] = {u.stage: (u.new, u.migrate) for u in checked}
            expect = {u.stage: u.old.version for u in checked}
            pipeline.check_upgrade(
                changes, expect_versions=expect, change_interface=change.change_interface
            )
        except (UpgradeError, PipelineClosed) as exc:
            raise self._refuse("upgrade", who, pipeline, stages, to, exc) from exc
        return Plan(
            "upgrade",
            who,
            changes,
            {u.stage: u.new for u in checked},
            expect,
            change.change_interface,
            checked,
            None,
            reply,
        )

    def plan_rollback(
        self,
        stage: str,
        who: str,
        reply: Reply,
        pipeline: Pipeline,
        running: Running,
        *,
        auto: bool,
    ) -> Plan:
        """The plan undoing the latest applied change of ``stage``.

        Raises:
            Refused: nothing to undo, the stages changed since, no inverse
                although the state type changed, or the pipeline's own
                checks failed (recorded as refused).
        """
        kind: RecordKind = "auto-rollback" if auto else "rollback"
        undo = next((u for u in reversed(self.undo) if stage in u.stages), None)
        if undo is None:
            err = UpgradeError(
                f"refused: stage {stage!r} has no recorded code change to roll back",
                stage=stage,
                reason="nothing to roll back",
            )
            raise self._refuse(kind, who, pipeline, (stage,), ("",), err)
        to = tuple(undo.previous[s].version for s in undo.stages)
        for s in undo.stages:
            if pipeline.version(s) != undo.installed[s]:
                err = UpgradeError(
                    f"refused: stage {s!r} runs {pipeline.version(s)[:12]}, not "
                    f"{undo.installed[s][:12]} which the change being rolled back installed",
                    stage=s,
                    reason="changed since",
                )
                raise self._refuse(kind, who, pipeline, undo.stages, to, err)
        changes: dict[str, Change] = {}
        for s in undo.stages:
            prev, inv = undo.previous[s], undo.inverse[s]
            now = running(s)
            if inv is None and now.state != prev.state:
                err = UpgradeError(
                    f"refused: stage {s!r} cannot be rolled back from {now.version[:12]} to "
                    f"{prev.version[:12]}: the state type changed from {prev.state!r} to "
                    f"{now.state!r} and no inverse migration was supplied with that change",
                    stage=s,
                    reason="no inverse",
                )
                raise self._refuse(kind, who, pipeline, undo.stages, to, err)
            changes[s] = (prev, inv)
        expect = dict(undo.installed)
        try:
            # A downgrade may narrow the pipeline's interface back: allowed.
            pipeline.check_upgrade(changes, expect_versions=expect, change_interface=True)
        except (UpgradeError, PipelineClosed) as exc:
            raise self._refuse(kind, who, pipeline, undo.stages, to, exc) from exc
        machines = {s: undo.previous[s] for s in undo.stages}
        return Plan(kind, who, changes, machines, expect, True, [], undo, reply)

    def settle(self, done: Done) -> bool:
        """Record how a sent plan ended; whether it was applied.

        A failed or refused plan's requester gets its error here. For an
        applied upgrade, the book keeps the undo step and the adapter edges;
        for an applied rollback, it drops the step it undid. The caller
        updates its child specs and then replies.
        """
        plan = done.plan
        stages = tuple(plan.changes)
        before = tuple(plan.expect[s] for s in stages)
        to = tuple(plan.machines[s].version for s in stages)
        if done.error is not None:
            reason = getattr(done.error, "reason", "")
            result: RecordResult = "failed" if reason in _IN_STAGE else "refused"
            self.record(plan.kind, plan.requested_by, stages, before, to, result, str(done.error))
            plan.reply.fail(done.error)
            return False
        assert done.versions is not None
        if plan.kind == "upgrade":
            self.undo.append(
                Undo(
                    stages,
                    {u.stage: u.old for u in plan.checked},
                    {u.stage: u.inverse for u in plan.checked},
                    dict(done.versions),
                )
            )
            for u in plan.checked:
                self.adapters.add(
                    u.stage,
                    Edge(
                        u.old.version,
                        u.new.version,
                        u.old.input,
                        u.old.output,
                        u.adapt_in,
                        u.adapt_out,
                        u.serves_in,
                        u.serves_out,
                    ),
                )
        elif plan.undo is not None:
            self.undo.remove(plan.undo)
        self.record(plan.kind, plan.requested_by, stages, before, to, "succeeded")
        return True
