"""A control port on a segment: the server's control protocol, for the whole pipeline.

A segment served with a control port answers the same protocol as a
supervisor's (``arrowloop.server``: one JSON request per line, the token
checked first, the same limits and refusals), so ``python -m arrowloop
upgrade/rollback/status/history`` work against it unchanged. What it does
with a request is the distributed pipeline's: a change or a rollback is
sent in-band into the pipeline's first channel (_changes.py, _rollback.py),
so it is a cut of the whole pipeline wherever its stages run; status and
history are gathered from every running segment (_status.py, _history.py)
and answered in the supervisor's shapes (one child per stage, in pipeline
order; one record per change). The port itself is the server's connection
code, given these handlers (``arrowloop.cli._segment_port``). A stage's state and savepoints are a
supervisor's, not a distributed pipeline's: refused, saying so.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
from nats.aio.client import Client

from arrowloop.distributed._changes import request_change
from arrowloop.distributed._history import gather_history, merge_history
from arrowloop.distributed._rollback import change_result, rollback_document
from arrowloop.distributed._status import pipeline_status
from arrowloop.errors import ProtocolError
from arrowloop.upgrade import decode_change

__all__ = [
    "SegmentControl",
    "CONTROL_HANDLERS",
    "status_as_supervisor",
    "history_as_records",
]

#: Seconds the segments' answers are gathered for (a segment answers in
#: milliseconds; a loaded machine may take longer).
GATHER: Final = 1.0


def status_as_supervisor(pipeline: str, segments: list[dict[str, Any]]) -> dict[str, Any]:
    """Every segment's status as one supervisor's status (its shape, so the
    CLI and the watch view read it): a child per stage, in pipeline order;
    ``segments`` keeps what each segment answered."""
    children = []
    upgrades = 0
    for seg in segments:
        state = "terminated" if seg["finished"] else "running"
        for st in seg["stages"]:
            upgrades += st["upgrades"]
            children.append(
                {
                    "name": st["name"],
                    "kind": "stage",
                    "restart": "permanent",
                    "running": not seg["finished"],
                    "restarts": 0,
                    "version": st["version"],
                    "state_type": st.get("state_type", "?"),
                    "queue_depth": st.get("queue_depth", 0),
                    "processed": st["processed"],
                    "failed": st["failed"],
                    "upgrades": st["upgrades"],
                    "supervisor": None,
                    "state": state,
                    "abandoned": 0,
                    "shutdown": None,
                    "significant": False,
                    "segment": {"pid": seg["pid"], "input": seg["input"]},
                }
            )
    return {
        "name": pipeline,
        "strategy": f"distributed, {len(segments)} segment(s)",
        "intensity": 0,
        "period": 0.0,
        "running": any(not s["finished"] for s in segments),
        "children": children,
        "history": upgrades,
        "segments": segments,
    }


def history_as_records(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The merged history of a distributed pipeline (_history.py) as
    supervisor history records (their shape: ``seq``, ``from_versions``, ...)."""
    out = []
    for seq, c in enumerate(changes, 1):
        stages = [s for s in c["stages"] if s in c["to"] or s in c["from"]] or c["stages"]
        out.append(
            {
                "seq": seq,
                "kind": c["kind"],
                "requested_by": c["requested_by"],
                "at": c["at"],
                "stages": stages,
                "from_versions": [c["from"].get(s, "") for s in stages],
                "to_versions": [c["to"].get(s, "") for s in stages],
                "result": c["result"],
                "reason": c["reason"],
                "id": c["id"],
            }
        )
    return out


class SegmentControl:
    """What a segment's control port acts on: the pipeline, through the broker."""

    def __init__(
        self,
        nc: Client,
        pipeline: str,
        first: str,
        *,
        within: float = 30.0,
        shards: int | None = None,
    ) -> None:
        self.nc = nc
        self.pipeline = pipeline
        #: The pipeline's first stage (the channel changes are sent into).
        self.first = first
        self.within = within
        #: The first stage's shards, if it is sharded (a copy to each).
        self.shards = shards

    async def status(self) -> dict[str, Any]:
        """The pipeline's status, gathered from every running segment."""
        segments = await pipeline_status(self.nc, self.pipeline, within=GATHER)
        return status_as_supervisor(self.pipeline, segments)

    async def history(self) -> list[dict[str, Any]]:
        """The pipeline's change history, gathered from every running segment."""
        answers = await gather_history(self.nc, self.pipeline, within=GATHER)
        return history_as_records(merge_history(answers))

    async def change(self, doc: dict[str, Any]) -> dict[str, str]:
        """Send the change document ``doc`` in-band; the new versions.

        Raises:
            UpgradeError: refused (``reason`` says why) or no result.
        """
        stages = ",".join(str(s.get("stage")) for s in doc.get("stages", []) if type(s) is dict)
        result = await request_change(
            self.nc, self.pipeline, self.first, doc, within=self.within, shards=self.shards
        )
        return change_result(result, stages, self.within)

    async def rollback(self, stage: str, requested_by: str) -> dict[str, str]:
        """Undo the latest change of ``stage`` in every segment it touched.

        Raises:
            UpgradeError: nothing to roll back, refused, or no result.
        """
        answers = await gather_history(self.nc, self.pipeline, within=GATHER)
        doc = rollback_document(answers, stage, requested_by)
        result = await request_change(
            self.nc, self.pipeline, self.first, doc, within=self.within, shards=self.shards
        )
        return change_result(result, ",".join(doc["stages"]), self.within)


def _field(req: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = req.get(name)
    if type(value) is not kind:
        found = "nothing" if value is None else type(value).__name__
        raise ProtocolError(
            f"expected {what}, found {found}", path=f"$.{name}", expected=what, found=found
        )
    return value


def _requester(req: dict[str, Any], default: str) -> str:
    who = req.get("requested_by", default)
    if type(who) is not str or not who or len(who) > 200:
        raise ProtocolError(
            "expected a non-empty string of at most 200",
            path="$.requested_by",
            expected="a non-empty string of at most 200",
            found=repr(who)[:40],
        )
    return who


async def _upgrade(ctl: SegmentControl, req: dict[str, Any], limits: Any) -> Any:
    doc = _field(req, "change", dict, "a change document (an object)")
    # Decoded and checked here first (off the loop), so a malformed document
    # is refused with its path before anything is sent into the pipeline.
    decode = functools.partial(
        decode_change, doc, limits=limits.program, max_record_types=limits.max_record_types
    )
    await anyio.to_thread.run_sync(decode, abandon_on_cancel=True)
    if "requested_by" in req:  # the request's own word wins over the document's
        doc = {**doc, "requested_by": _requester(req, "control")}
    return {"versions": await ctl.change(doc)}


async def _rollback(ctl: SegmentControl, req: dict[str, Any], limits: Any) -> Any:
    stage = _field(req, "stage", str, "the stage to roll back (a string)")
    return {"versions": await ctl.rollback(stage, _requester(req, "control"))}


async def _status(ctl: SegmentControl, req: dict[str, Any], limits: Any) -> Any:
    return await ctl.status()


async def _history(ctl: SegmentControl, req: dict[str, Any], limits: Any) -> Any:
    return await ctl.history()


async def _not_here(ctl: SegmentControl, req: dict[str, Any], limits: Any) -> Any:
    op = req.get("op")
    raise ProtocolError(
        f"{op!r} is a supervisor's operation; a distributed pipeline's control port "
        "takes upgrade, rollback, status, history and auth",
        path="$.op",
        expected="upgrade, rollback, status, history or auth",
        found=repr(op),
    )


async def _auth(ctl: SegmentControl, req: dict[str, Any], limits: Any) -> Any:
    return {"authenticated": True, "max_request": limits.max_request}


#: The control protocol's operations, for a segment.
CONTROL_HANDLERS: Final[dict[str, Callable[[Any, dict[str, Any], Any], Awaitable[Any]]]] = {
    "auth": _auth,
    "upgrade": _upgrade,
    "rollback": _rollback,
    "status": _status,
    "history": _history,
    "get_state": _not_here,
    "savepoint": _not_here,
}
