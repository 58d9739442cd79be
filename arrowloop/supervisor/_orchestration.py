"""Change orchestration and client views: code changes from request to record.

A change or rollback is planned by the supervisor's :class:`ChangeBook`
(the one check, made before anything enters the pipeline), sent in-band by
a task of its own (exit notices are still handled while it travels, since
it may wait behind a crashed stage; other code-changing requests wait
their turn), recorded in the very step the pipeline commits it, and
answered when it comes back. Client views (:meth:`view`) resolve what
clients of an older version send and receive, from the adapters those
records keep. A mixin of :class:`~arrowloop.supervisor.Supervisor`; the
restarts are in ``_restarts.py``. Part of layer 9.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio
import attrs
from anyio.abc import TaskGroup

from arrowloop.errors import InternalError, PipelineClosed, SupervisorError, UpgradeError
from arrowloop.runtime import ClientView, Pipeline, StageSpec
from arrowloop.supervisor._adapters import AdapterTable, Edge
from arrowloop.supervisor._changes import ChangeBook, running_versions
from arrowloop.supervisor._codechange import CodeChange
from arrowloop.supervisor._durability import Durability
from arrowloop.supervisor._intensity import Clock, Window
from arrowloop.supervisor._messages import ChildRecord, Done, Exit, Plan, Refused, Reply, Wake
from arrowloop.supervisor._spec import SupervisorSpec
from arrowloop.typesys import Type

__all__ = ["Orchestration"]

log = logging.getLogger("arrowloop.supervisor")


class Orchestration:
    """Code changes and client views (mixed into the supervisor)."""

    name: str
    spec: SupervisorSpec
    _children: dict[str, ChildRecord]
    _clock: Clock
    _tg: TaskGroup | None
    _book: ChangeBook
    _adapters: AdapterTable
    _inflight: bool
    _durability: Durability | None

    if TYPE_CHECKING:

        @property
        def pipeline(self) -> Pipeline: ...

        def _post(self, msg: Exit | Done | Wake) -> None: ...

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

    def record_refused(self, stages: tuple[str, ...], requested_by: str, error: Exception) -> None:
        """Record in the history a code change refused before it was sent
        to the supervisor (a server refuses a stale change before decoding
        its programs), as the supervisor records the changes it refuses."""
        self._book.record(
            "upgrade",
            requested_by,
            stages,
            running_versions(self.pipeline, stages),
            ("",) * len(stages),
            "refused",
            str(error),
        )
        log.info(
            "%s: change refused: %s",
            self.name,
            error,
            extra={"supervisor": self.name, "reason": str(error)},
        )

    def _begin_change(self, change: CodeChange, reply: Reply) -> None:
        # Planning builds the change's programs off the event loop; the
        # change counts as in flight from now on, so code-changing requests
        # wait their turn behind it as they do behind its sending.
        assert self._tg is not None
        pipeline = self.pipeline  # no stages: SupervisorError to the caller, now
        self._inflight = True
        self._tg.start_soon(
            self._plan_and_send,
            change,
            pipeline,
            reply,
            name=f"arrowloop {self.name} code change",
        )

    async def _plan_and_send(self, change: CodeChange, pipeline: Pipeline, reply: Reply) -> None:
        try:
            plan = await self._book.plan_change(change, pipeline, reply, self.spec.change_budget)
        except Refused as refused:
            reply.fail(refused.error)
            log.info(
                "%s: change refused: %s",
                self.name,
                refused.error,
                extra={"supervisor": self.name, "reason": str(refused.error)},
            )
            self._post(Done(None, None, refused.error))
            return
        except Exception as exc:  # a bug: fail this change, keep supervising
            reply.fail(self._internal("planning a change", exc))
            self._post(Done(None, None, exc))
            return
        await self._send_change(plan)

    def _plan_rollback(self, stage: str, who: str, reply: Reply, *, auto: bool) -> Plan:
        return self._book.plan_rollback(stage, who, reply, self.pipeline, auto=auto)

    def _begin(self, plan: Plan) -> None:
        assert self._tg is not None
        self._inflight = True
        self._tg.start_soon(self._send_change, plan, name=f"arrowloop {self.name} code change")

    async def _send_change(self, plan: Plan) -> None:
        if self._durability is not None:
            # The undo stack as it is once this change is applied goes into
            # the same transaction as the change's stages.
            self._durability.expect_change(
                {p.stage: p.new.version for p in plan.change.plans}, self._book.undo_after(plan)
            )
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
        if self._durability is not None:
            self._durability.expect_change({}, None)
        plan = done.plan
        if plan is None:
            return  # refused while planning: answered and recorded already
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
        durable = self._durability
        if durable is not None and self._tg is not None and durable.written < durable.recorded:
            # With a store, the requester hears of the change once its history
            # record is durable too, not only its machines and states.
            self._tg.start_soon(self._reply_when_recorded, plan, done.versions, durable.recorded)
            return
        plan.reply.set(done.versions)

    async def _reply_when_recorded(self, plan: Plan, versions: dict[str, str], upto: int) -> None:
        assert self._durability is not None
        # Shielded and bounded: a stopping supervisor still answers, and a
        # store that has stopped answering does not hold the reply for ever.
        with anyio.CancelScope(shield=True), anyio.move_on_after(30):
            await self._durability.flushed(upto)
        plan.reply.set(versions)

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
