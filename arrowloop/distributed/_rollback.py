"""Rollback of a distributed pipeline: the latest change of a stage undone, in-band.

The requester gathers the segments' histories (_history.py), takes the
latest upgrade of the stage that the segment running it applied and has
not rolled back, and sends ``{"kind": "rollback", "undo": <its id>,
"stages": <its stages>}`` into the pipeline's first channel, as a change:
each segment with a part of that change turns it into the change restoring
its old machines, and the change commits in all of them or none (_changes.py).
Repeated rollbacks go further back, as in process.
"""

from __future__ import annotations

from typing import Any

from nats.aio.client import Client

from arrowloop.distributed._changes import request_change
from arrowloop.distributed._channel import ChannelConfig
from arrowloop.distributed._history import ROLLBACK, gather_history
from arrowloop.errors import UpgradeError
from arrowloop.wire import FORMAT, FORMAT_VERSION

__all__ = ["rollback_document", "send_rollback", "change_result"]


def rollback_document(
    answers: list[dict[str, Any]], stage: str, requested_by: str = "unknown"
) -> dict[str, Any]:
    """The rollback of the latest change of ``stage`` applied and not rolled
    back, from the segments' history ``answers``.

    Raises:
        UpgradeError: no segment running ``stage`` answered (``unknown
            stage``), or it has nothing to roll back (``nothing to roll back``).
    """
    holder = next((a for a in answers if stage in a["stages"]), None)
    if holder is None:
        raise UpgradeError(
            f"no running segment runs stage {stage!r} (segments answering: "
            f"{[a['stages'] for a in answers]})",
            stage=stage,
            reason="unknown stage",
        )
    ok = [r for r in holder["changes"] if r.get("result") == "succeeded"]
    # Rollbacks any segment recorded: the one running ``stage`` may not have
    # applied a decided one yet (a prepared segment reads the decision after
    # the segment that decided has answered).
    undone = {
        r.get("undoes")
        for a in answers
        for r in a["changes"]
        if r["kind"] == ROLLBACK and r.get("result") == "succeeded"
    }
    target = next(
        (
            r
            for r in reversed(ok)
            if r["kind"] == "upgrade" and stage in r["part"] and r["id"] not in undone
        ),
        None,
    )
    if target is None:
        raise UpgradeError(
            f"refused: stage {stage!r} has no recorded code change to roll back",
            stage=stage,
            reason="nothing to roll back",
        )
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": ROLLBACK,
        "undo": target["id"],
        "stages": target["stages"],
        "requested_by": requested_by,
    }


def change_result(result: dict[str, Any] | None, stages: str, within: float) -> dict[str, str]:
    """The new versions a change's ``result`` reports.

    Raises:
        UpgradeError: refused (``reason`` says why), or no result came
            (``no reply``).
    """
    if result is None:
        raise UpgradeError(
            f"no result within {within} s (is every segment running?)",
            stage=stages,
            reason="no reply",
        )
    error = result.get("error")
    if error is not None:
        raise UpgradeError(
            f"refused: {error.get('message')}", stage=stages, reason=error.get("reason", "refused")
        )
    versions: dict[str, str] = result["versions"]
    return versions


async def send_rollback(
    nc: Client,
    pipeline: str,
    channel: str,
    stage: str,
    *,
    requested_by: str = "unknown",
    within: float = 30.0,
    gather: float = 1.0,
    expect: int | None = None,
    config: ChannelConfig | None = None,
    shards: int | None = None,
) -> dict[str, str]:
    """Roll back the latest change of ``stage`` in the pipeline whose first
    stage's channel is ``channel``; the versions the changed stages run now.

    The segments' histories are gathered for ``gather`` seconds (or until
    ``expect`` segments answered). A sharded first stage: give its
    ``shards`` (see :func:`~arrowloop.distributed.request_change`).

    Raises:
        UpgradeError: see :func:`rollback_document` and :func:`change_result`;
            and the refusals of a rollback (``changed since``, ``no inverse``).
    """
    answers = await gather_history(nc, pipeline, within=gather, expect=expect)
    doc = rollback_document(answers, stage, requested_by)
    result = await request_change(
        nc, pipeline, channel, doc, within=within, config=config, shards=shards
    )
    return change_result(result, ",".join(doc["stages"]), within)
