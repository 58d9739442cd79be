"""The change history of a segment, kept in its store, and gathered across segments.

Each segment records every change it took part in (its part: the stages it
runs) in its store's history, at the change's cut and before its states
there are written: a crash in between replays the change, which decides the
same, and writes the record again (readers keep the last record of each
change). A record of an applied upgrade keeps the undo entry of its part
(``arrowloop.supervisor``'s undo document: old and new machines, migration
and inverse), so the segment's undo stack is its history: the upgrades
applied and not rolled back since, in order.

A rollback is a change like any other, in-band: ``{"kind": "rollback",
"undo": <change id>, "stages": [...]}``; each segment with a part of that
change turns it into the change restoring its old machines through the
inverses (the runtime's ``check_rollback``), and the two phases of a change
across segments apply (_changes.py).

Every running segment answers history requests on
``arrowloop.<pipeline>._history`` (as status, _status.py); :func:`pipeline_history`
gathers them and merges the records of each change.
"""

from __future__ import annotations

import time
from typing import Any, Final

import anyio
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg

from arrowloop.distributed._channel import _safe
from arrowloop.errors import UpgradeError
from arrowloop.machine import AnyMachine
from arrowloop.runtime import CheckedChange, Reply, check_rollback
from arrowloop.store import StateStore
from arrowloop.supervisor._undo import decode_undo

__all__ = [
    "ROLLBACK",
    "SegmentHistory",
    "change_record",
    "finish_record",
    "history_subject",
    "answer_history",
    "pipeline_history",
]

#: The ``kind`` of a rollback's document.
ROLLBACK: Final = "rollback"
#: The ``event`` of a change's record in a store's history.
CHANGE_EVENT: Final = "change"


def change_record(
    doc: dict[str, Any],
    change_id: str,
    position: int,
    checked: CheckedChange | None,
    undo: dict[str, Any] | None,
    names: list[Any],
) -> dict[str, Any]:
    """The history record of a change (``doc``, its document) here, before
    its result is known (see :func:`finish_record`); ``checked`` is this
    segment's part (``None``: refused before it was known)."""
    rollback = doc.get("kind") == ROLLBACK
    who = doc.get("requested_by")
    plans = () if checked is None else checked.plans
    return {
        "event": CHANGE_EVENT,
        "id": change_id,
        "seq": position,
        "kind": ROLLBACK if rollback else "upgrade",
        "requested_by": who if type(who) is str else "unknown",
        "stages": [str(n) for n in names],
        "part": [p.stage for p in plans],
        "from": {p.stage: p.old.version for p in plans},
        "to": {p.stage: p.new.version for p in plans},
        "undo": undo,
        "undoes": doc.get("undo") if rollback else None,
    }


def finish_record(record: dict[str, Any], reply: Reply) -> dict[str, Any]:
    """``record`` with the change's result (``reply`` is delivered)."""
    err = reply.error
    return {
        **record,
        "result": "succeeded" if err is None else "refused",
        "reason": "" if err is None else str(getattr(err, "reason", "") or err),
        "at": time.time(),
    }


class SegmentHistory:
    """The changes a segment took part in, as its store holds them."""

    def __init__(self) -> None:
        #: The records, in the order written (a change may appear twice
        #: after a replay: the last one counts).
        self.records: list[dict[str, Any]] = []
        self._store: StateStore | None = None

    def load(self, store: StateStore) -> None:
        """Read the records ``store`` holds (blocking: run in a thread)."""
        self._store = store
        stored = store.load()
        history = [] if stored is None else stored.history
        self.records = [r for r in history if r.get("event") == CHANGE_EVENT]

    async def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` to the store and keep it."""
        if self._store is not None:
            await anyio.to_thread.run_sync(self._store.append_history, record)
        self.records.append(record)

    def changes(self) -> list[dict[str, Any]]:
        """Each change's last record, in the order the changes were first recorded."""
        latest: dict[str, dict[str, Any]] = {}
        for r in self.records:
            latest.pop(r["id"], None)  # a replay's record replaces, at its place
            latest[r["id"]] = r
        return list(latest.values())

    def undo_stack(self) -> list[dict[str, Any]]:
        """The upgrades applied here and not rolled back since, oldest first."""
        changes = self.changes()
        ok = [r for r in changes if r.get("result") == "succeeded"]
        undone = {r.get("undoes") for r in ok if r["kind"] == ROLLBACK}
        return [
            r
            for r in ok
            if r["kind"] == "upgrade" and r.get("undo") is not None and r["id"] not in undone
        ]

    def rollback_part(
        self, doc: dict[str, Any], running: list[tuple[str, AnyMachine]]
    ) -> CheckedChange:
        """This segment's part of the rollback ``doc``: the change restoring
        the machines its part of the change ``doc["undo"]`` replaced.

        Raises:
            UpgradeError: ``nothing to roll back`` (not applied here, or
                rolled back already), or the runtime's refusals of a
                rollback (``changed since``, ``no inverse``, ``types``).
        """
        target = doc.get("undo")
        entry = next((r for r in reversed(self.undo_stack()) if r["id"] == target), None)
        if entry is None:
            raise UpgradeError(
                f"refused: the change {str(target)[:40]!r} was not applied to "
                f"{[n for n, _ in running]} or was rolled back already",
                stage=",".join(n for n, _ in running),
                reason="nothing to roll back",
            )
        try:
            applied = decode_undo(entry["undo"], {m.version: m for _, m in running})
        except Exception as exc:  # a record this arrowloop cannot use
            raise UpgradeError(
                f"refused: the recorded change {target!r} cannot be undone: {exc}",
                stage=",".join(entry["part"]),
                reason="unusable record",
            ) from exc
        return check_rollback(running, applied)

    def public(self) -> list[dict[str, Any]]:
        """The records as a segment answers them (without the undo documents)."""
        return [{k: v for k, v in r.items() if k != "undo"} for r in self.changes()]


def history_subject(pipeline: str) -> str:
    """The subject a pipeline's segments answer history requests on."""
    return f"arrowloop.{_safe(pipeline)}._history"


async def answer_history(
    nc: Client, pipeline: str, history: SegmentHistory, stages: list[str], index: int
) -> Any:
    """Answer history requests with ``history`` until the subscription is
    dropped (the returned one, or the connection closing)."""

    async def answer(msg: Msg) -> None:
        if msg.reply:
            data = {"index": index, "stages": stages, "changes": history.public()}
            await nc.publish(msg.reply, orjson.dumps(data))

    sub = await nc.subscribe(history_subject(pipeline), cb=answer)
    await nc.flush()
    return sub


async def gather_history(
    nc: Client, pipeline: str, *, within: float = 0.5, expect: int | None = None
) -> list[dict[str, Any]]:
    """Every running segment's answer (``index``, ``stages``, ``changes``), in
    pipeline order: those that answered within ``within`` seconds, or as
    soon as ``expect`` have."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    answers: list[dict[str, Any]] = []
    try:
        await nc.publish(history_subject(pipeline), b"", reply=inbox)
        with anyio.move_on_after(within):
            while True:
                msg = await sub.next_msg(timeout=within + 1)
                if not msg.data:  # no responders: nobody runs
                    break
                answers.append(orjson.loads(msg.data))
                if expect is not None and len(answers) >= expect:
                    break
    except TimeoutError:
        pass
    finally:
        await sub.unsubscribe()
    return sorted(answers, key=lambda a: a["index"])


def merge_history(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The changes of a pipeline from its segments' answers, one entry per
    change (its parts' versions merged), in the order they were decided."""
    merged: dict[str, dict[str, Any]] = {}
    for answer in answers:
        for r in answer["changes"]:
            m = merged.setdefault(
                r["id"],
                {
                    "id": r["id"],
                    "kind": r["kind"],
                    "requested_by": r["requested_by"],
                    "stages": r["stages"],
                    "from": {},
                    "to": {},
                    "result": "succeeded",
                    "reason": "",
                    "at": r["at"],
                    "undoes": r.get("undoes"),
                },
            )
            m["from"].update(r["from"])
            m["to"].update(r["to"])
            m["at"] = max(m["at"], r["at"])
            if r["result"] != "succeeded" and m["result"] == "succeeded":
                m["result"], m["reason"] = r["result"], r["reason"]
    return sorted(merged.values(), key=lambda m: m["at"])


async def pipeline_history(
    nc: Client, pipeline: str, *, within: float = 0.5, expect: int | None = None
) -> list[dict[str, Any]]:
    """The change history of a distributed pipeline, gathered from its
    running segments (see :func:`gather_history`, :func:`merge_history`)."""
    return merge_history(await gather_history(nc, pipeline, within=within, expect=expect))
