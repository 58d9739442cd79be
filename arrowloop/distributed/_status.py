"""Status across processes: every segment of a pipeline answers on one subject.

Each running segment subscribes (core NATS, no stream) to
``arrowloop.<pipeline>._status`` and answers a request there with what it
runs: its stages (version, items applied and failed, upgrades), its
channels, its committed position and counts. :func:`pipeline_status`
publishes one request and gathers the answers that come within a short
time, in pipeline order: so any process (or the CLI) sees the whole
pipeline without knowing where its segments run.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg

from arrowloop.distributed._channel import _safe

if TYPE_CHECKING:
    from arrowloop.distributed._segment import Segment

__all__ = ["status_subject", "segment_status", "answer_status", "pipeline_status"]


def status_subject(pipeline: str) -> str:
    """The subject a pipeline's segments answer status requests on."""
    return f"arrowloop.{_safe(pipeline)}._status"


def segment_status(seg: Segment, index: int) -> dict[str, Any]:
    """What a segment answers: ``index`` is its first stage's place in the pipeline."""
    stages = []
    for a in seg.actors:
        st = a.statistics()
        stages.append(
            {
                "name": st.name,
                "version": st.version,
                "processed": st.processed,
                "failed": st.failed,
                "upgrades": st.upgrades,
                "state_type": st.state_type,
                "queue_depth": st.queue.items,
            }
        )
    return {
        "index": index,
        "pid": os.getpid(),
        "input": seg.receiver.name.stream,
        "output": None if seg.sender is None else seg.sender.name.stream,
        "finished": seg.finished.is_set(),
        "stages": stages,
        "counts": seg.statistics(),
        # Changes across segments this one holds prepared, waiting for the
        # decision (its stages wait meanwhile: docs/distributed.md).
        "awaiting": seg.changes.awaiting(),
    }


async def answer_status(nc: Client, pipeline: str, seg: Segment, index: int) -> Any:
    """Answer status requests for ``seg`` until the subscription is
    dropped (the returned subscription, or the connection closing)."""

    async def answer(msg: Msg) -> None:
        if msg.reply:
            await nc.publish(msg.reply, orjson.dumps(segment_status(seg, index)))

    sub = await nc.subscribe(status_subject(pipeline), cb=answer)
    # Round trip to the broker: once this returns, a request from any
    # connection reaches this segment (the subscription is not in transit).
    await nc.flush()
    return sub


async def pipeline_status(
    nc: Client, pipeline: str, *, within: float = 0.5, expect: int | None = None
) -> list[dict[str, Any]]:
    """Every running segment's status, in pipeline order: those that
    answered within ``within`` seconds (an empty list: none is running), or
    as soon as ``expect`` segments have answered, for a caller that knows
    how many run (a busy process may answer after a short window)."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    answers: list[dict[str, Any]] = []
    try:
        await nc.publish(status_subject(pipeline), b"", reply=inbox)
        with anyio.move_on_after(within):
            while True:
                msg = await sub.next_msg(timeout=within + 1)
                if not msg.data:  # the server's "no responders": nobody runs
                    break
                answers.append(orjson.loads(msg.data))
                if expect is not None and len(answers) >= expect:
                    break
    except TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return sorted(answers, key=lambda a: (a["index"], a["pid"]))
