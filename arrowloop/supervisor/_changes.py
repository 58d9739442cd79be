"""A supervisor's book of code changes: planning, history, undo and adapters.

The supervisor's actor asks the book to plan a change or a rollback (the one
check, :func:`~arrowloop.runtime.check_change` or
:func:`~arrowloop.runtime.check_rollback`, made before anything enters the
pipeline; a refusal is recorded and raised as :class:`Refused`), and sends
the plan in-band. Checking a change builds its loops and arrows (check and
compile, within the supervisor's change budget), which can take a while, so
it runs in a worker thread on a snapshot of what runs; the event loop, and
with it every client, goes on meanwhile. Everything else happens on the
loop. When the pipeline commits it, :meth:`ChangeBook.applied`
records it in that same step (the history, how to undo it, which adapters
serve clients of the version it replaced), so what runs and what the book
says never differ; :meth:`ChangeBook.failed` records a change the pipeline
refused. Part of layer 9 (the supervisor).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import anyio

from arrowloop.arrows import Arrow, ChangeBudget, Loop
from arrowloop.errors import PipelineClosed, UpgradeError
from arrowloop.runtime import CheckedChange, Pipeline, check_change, check_rollback
from arrowloop.supervisor._adapters import AdapterTable, Edge
from arrowloop.supervisor._codechange import (
    CodeChange,
    RecordKind,
    RecordResult,
    UpgradeRecord,
)
from arrowloop.supervisor._messages import Plan, Refused, Reply
from arrowloop.supervisor._undo import encode_undo

__all__ = ["ChangeBook"]

# Failures the stage reports after the change entered the pipeline; every
# other UpgradeError reason is a refusal by a check made before sending.
_IN_STAGE: Final = frozenset({"stale", "migration failed", "invalid migrated state"})


def running_versions(pipeline: Pipeline, stages: tuple[str, ...]) -> tuple[str, ...]:
    names = set(pipeline.stage_names)
    return tuple(pipeline.version(s) if s in names else "" for s in stages)


#: Most program nodes a change may still have to check and compile for it to
#: be checked on the event loop itself; bigger ones go to a worker thread.
SMALL_PROGRAM: Final = 2000


def _small(change: CodeChange) -> bool:
    """Whether the programs of ``change`` not yet built (bare loops and
    arrows) have at most ``SMALL_PROGRAM`` distinct nodes in all (0: no
    change is small; tests use it to hold checks in their thread)."""
    limit = SMALL_PROGRAM
    if limit <= 0:
        return False
    stack: list[Arrow] = []
    for u in change.upgrades:
        for part in (u.machine, u.migrate, u.inverse, u.input_adapter, u.output_adapter):
            if isinstance(part, Loop):
                stack.append(part.body)
            elif isinstance(part, Arrow):
                stack.append(part)
    seen: set[int] = set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if len(seen) > limit:
            return False
        stack.extend(child for _, child in node.children())
    return True


class ChangeBook:
    """History, undo stack and adapter table of one supervisor, each bounded
    by ``limit`` entries."""

    def __init__(self, limit: int) -> None:
        self.history: deque[UpgradeRecord] = deque(maxlen=limit)
        self.undo: deque[CheckedChange] = deque(maxlen=limit)
        #: Each undo entry's wire document (None: it has none), in step with ``undo``.
        self.undo_docs: deque[dict[str, Any] | None] = deque(maxlen=limit)
        self.adapters = AdapterTable(limit)
        self._seq = 0
        #: Told of every new history record (a supervisor's store keeps them).
        self.on_record: Callable[[UpgradeRecord], None] | None = None

    def restore_history(self, records: list[dict[str, Any]]) -> None:
        """Take back the history a store kept (records as JSON data, oldest
        first); numbering goes on after the last."""
        for d in records:
            r = UpgradeRecord(
                d["seq"],
                d["kind"],
                d["requested_by"],
                d["at"],
                tuple(d["stages"]),
                tuple(d["from_versions"]),
                tuple(d["to_versions"]),
                d["result"],
                d.get("reason", ""),
            )
            self.history.append(r)
            self._seq = max(self._seq, r.seq)

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
        r = UpgradeRecord(self._seq, kind, who, time.time(), stages, before, to, result, reason)
        self.history.append(r)
        if self.on_record is not None:
            self.on_record(r)

    def _refuse(
        self,
        kind: RecordKind,
        who: str,
        pipeline: Pipeline,
        stages: tuple[str, ...],
        to: tuple[str, ...],
        error: Exception,
    ) -> Refused:
        before = running_versions(pipeline, stages)
        self.record(kind, who, stages, before, to, "refused", str(error))
        return Refused(error)

    async def plan_change(
        self, change: CodeChange, pipeline: Pipeline, reply: Reply, budget: ChangeBudget | None
    ) -> Plan:
        """Check ``change`` completely against what runs (in a worker thread,
        within ``budget``); the plan to send.

        The caller makes sure no other change is planned or applied
        meanwhile, so what runs when the check ends is what it checked
        against.

        Raises:
            Refused: a check failed (recorded as refused).
        """
        if not isinstance(change, CodeChange) or not change.upgrades:
            err = UpgradeError(
                f"expected a CodeChange naming at least one stage, found {change!r:.80}",
                stage="",
                reason="empty",
            )
            raise self._refuse("upgrade", "unknown", pipeline, (), (), err)
        stages = change.stages
        # A Loop has no version before it is built with the stage's types.
        to = tuple(str(getattr(u.machine, "version", "")) for u in change.upgrades)
        try:
            if pipeline.closing:
                raise PipelineClosed("the pipeline is closing: no more upgrades are accepted")
            check = functools.partial(
                check_change,
                pipeline.running(),
                change.upgrades,
                change_interface=change.change_interface,
                budget=budget,
            )
            if _small(change):
                # Parts already built, or programs of a few hundred nodes:
                # checking them on the loop takes about a millisecond, less
                # than a thread hop costs the loop under load (it waits for
                # the GIL at every switch).
                checked = check()
            else:
                # Abandoned if the supervisor is cancelled (escalation):
                # nobody would use the result; the thread finishes on its own.
                checked = await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
        except (UpgradeError, PipelineClosed) as exc:
            raise self._refuse("upgrade", change.requested_by, pipeline, stages, to, exc) from exc
        doc = encode_undo(change.upgrades, checked)
        return Plan("upgrade", change.requested_by, checked, None, reply, doc)

    def plan_rollback(
        self, stage: str, who: str, reply: Reply, pipeline: Pipeline, *, auto: bool
    ) -> Plan:
        """The plan undoing the latest applied change of ``stage``.

        Raises:
            Refused: nothing to undo, the stages changed since, no inverse
                although the state type changed, or the restored machines no
                longer fit (recorded as refused).
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
        to = tuple(p.old.version for p in undo.plans)
        try:
            checked = check_rollback(pipeline.running(), undo)
        except UpgradeError as exc:
            raise self._refuse(kind, who, pipeline, undo.stages, to, exc) from exc
        return Plan(kind, who, checked, undo, reply)

    def applied(self, plan: Plan) -> None:
        """Record an applied plan (called in the step that commits it).

        For an upgrade, the book keeps the undo step and the adapter edges;
        for a rollback, it drops the step it undid.
        """
        change = plan.change
        stages = change.stages
        before = tuple(p.old.version for p in change.plans)
        to = tuple(p.new.version for p in change.plans)
        if plan.undoes is None:
            self._push_undo(change, plan.undo_doc)
        else:
            i = self._undo_index(plan.undoes)
            if i is not None:
                del self.undo[i]
                del self.undo_docs[i]
        self.record(plan.kind, plan.requested_by, stages, before, to, "succeeded")

    def _push_undo(self, change: CheckedChange, doc: dict[str, Any] | None) -> None:
        self.undo.append(change)
        self.undo_docs.append(doc)
        for p in change.plans:
            self.adapters.add(
                p.stage,
                Edge(
                    p.old.version,
                    p.new.version,
                    p.old.input,
                    p.old.output,
                    p.adapt_in,
                    p.adapt_out,
                    p.serves_in,
                    p.serves_out,
                ),
            )

    def _undo_index(self, step: CheckedChange) -> int | None:
        # By identity: a change made twice (A -> B, back, A -> B again)
        # leaves equal steps, and only the one undone must go.
        return next((i for i, u in enumerate(self.undo) if u is step), None)

    def undo_after(self, plan: Plan) -> list[dict[str, Any]]:
        """The undo stack's documents as they will be once ``plan`` is
        applied (what a store writes with the change itself); entries
        without a document are left out."""
        docs = list(self.undo_docs)
        if plan.undoes is None:
            docs.append(plan.undo_doc)
            if self.undo_docs.maxlen is not None:
                docs = docs[-self.undo_docs.maxlen :]
        else:
            i = self._undo_index(plan.undoes)
            if i is not None:
                del docs[i]
        return [d for d in docs if d is not None]

    def undo_data(self) -> list[dict[str, Any]]:
        """The undo stack's documents, oldest first (entries without one left out)."""
        return [d for d in self.undo_docs if d is not None]

    def restore_undo(self, entries: list[tuple[CheckedChange, dict[str, Any]]]) -> None:
        """Take back the undo stack a store kept (oldest first), with the
        adapters its changes recorded."""
        for change, doc in entries:
            self._push_undo(change, doc)

    def failed(self, plan: Plan, error: BaseException) -> None:
        """Record a plan the pipeline refused or failed to apply."""
        change = plan.change
        reason = getattr(error, "reason", "")
        result: RecordResult = "failed" if reason in _IN_STAGE else "refused"
        self.record(
            plan.kind,
            plan.requested_by,
            change.stages,
            tuple(p.old.version for p in change.plans),
            tuple(p.new.version for p in change.plans),
            result,
            str(error),
        )
