"""Savepoints: a consistent cut of a supervisor's stages, with its records.

The cut is taken in-band (:meth:`~arrowloop.runtime.Pipeline.cut`): a
marker enters the pipeline behind every item admitted so far and each
stage notes its machine and state as the marker passes, so every state is
the state after exactly the same prefix of items, and traffic goes on
meanwhile. A savepoint waits for a code change in flight and code changes
wait for it (it is a serial request), so the history and undo stack it
records are those of the code the cut saw. The result is a
:class:`~arrowloop.store.Savepoint` (plain JSON data); writing it is the
store layer's :func:`~arrowloop.store.write_savepoint`. A mixin of
:class:`~arrowloop.supervisor.Supervisor`; part of layer 9.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import attrs
from anyio.abc import TaskGroup

from arrowloop.errors import PipelineClosed, SupervisorError
from arrowloop.runtime import Pipeline
from arrowloop.store import Savepoint, check_savepoint_name, default_savepoint_name
from arrowloop.supervisor._changes import ChangeBook
from arrowloop.supervisor._durability import stage_record
from arrowloop.supervisor._messages import Done, Reply, RequestKind

__all__ = ["Savepoints"]


class Savepoints:
    """Taking savepoints (mixed into the supervisor)."""

    name: str
    _tg: TaskGroup | None
    _book: ChangeBook
    _inflight: bool

    if TYPE_CHECKING:

        @property
        def pipeline(self) -> Pipeline: ...

        def _post(self, msg: Done) -> None: ...

        async def _request(self, kind: RequestKind, arg: Any = None) -> Any: ...

    async def savepoint(self, name: str | None = None) -> Savepoint:
        """A consistent cut of the stages: every stage's machine and state
        after the same prefix of items, with the change history and the
        undo stack, named ``name`` (by default from the time). Write it with
        :func:`~arrowloop.store.write_savepoint`.

        Raises:
            SupervisorError: ``name`` cannot name a savepoint file, the
                supervisor has stopped or has no stages, or the pipeline
                closed before the cut was taken.
        """
        result: Savepoint = await self._request("savepoint", name)
        return result

    def _begin_savepoint(self, name: str | None, reply: Reply) -> None:
        assert self._tg is not None
        pipeline = self.pipeline  # no stages: SupervisorError to the caller, now
        at = time.time()
        if name is None:
            name = default_savepoint_name(at)
        try:
            check_savepoint_name(name)
        except ValueError as exc:
            raise SupervisorError(
                str(exc), path=f"{self.name}.savepoint", expected="a savepoint name", found=name
            ) from None
        # Taken now, while no change is in flight; changes wait for the cut.
        # As JSON has them (lists), so the savepoint reads back equal.
        history = tuple(
            {k: list(v) if isinstance(v, tuple) else v for k, v in attrs.asdict(r).items()}
            for r in self._book.history
        )
        undo = tuple(self._book.undo_data())
        self._inflight = True
        self._tg.start_soon(
            self._take_cut,
            pipeline,
            Savepoint(name, self.name, at, (), history, undo),
            reply,
            name=f"arrowloop {self.name} savepoint",
        )

    async def _take_cut(self, pipeline: Pipeline, savepoint: Savepoint, reply: Reply) -> None:
        try:
            cut = await pipeline.cut(per_shard=True)  # a sharded stage: a record per replica
            stages = tuple(stage_record(*part) for part in cut)
            reply.set(attrs.evolve(savepoint, stages=stages))
        except PipelineClosed as exc:
            reply.fail(
                SupervisorError(
                    f"supervisor {self.name!r}: no savepoint: {exc}",
                    path=f"{self.name}.savepoint",
                    expected="a running pipeline",
                    found="closing",
                )
            )
        except Exception as exc:
            reply.fail(exc)
        finally:
            self._post(Done(None, None, None))  # code changes may go on
