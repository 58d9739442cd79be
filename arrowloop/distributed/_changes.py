"""Code changes across processes: in-band, in the channels, like items.

A change (the control protocol's change document, ``arrowloop.upgrade``) is
published into a pipeline's first channel as a frame of its own, so it takes
its place in the stream: every item before it meets the old code, every item
after it the new, in every segment (the stream's order is the cut). Each
segment passes it on at its cut until it reaches the segment that runs the
stages it names; that one checks it against the machines it runs (the
runtime's one checker), applies it with the runtime's in-band upgrade
(several stages commit together or not at all), commits the new machines
with the states at that input, and only then publishes the result on the
change's reply subject.

Not yet: a change whose stages are in different segments (refused), and one
that changes a segment's input or output type (refused: the neighbouring
segments would not read its frames).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from nats.aio.client import Client

from arrowloop.distributed._channel import ChannelConfig, ChannelName, ensure_stream
from arrowloop.distributed._frames import MSG_ID, Frame, change_frame
from arrowloop.errors import ArrowloopError, UpgradeError
from arrowloop.machine import AnyMachine
from arrowloop.runtime import Reply, StageActor, StageChange, UpgradeMsg, check_change
from arrowloop.supervisor import CodeChange
from arrowloop.upgrade import decode_change, encode_change

__all__ = ["SegmentChanges", "send_change", "request_change"]


class SegmentChanges:
    """What a segment does with the change frames that reach it (the
    receiving half's ``on_change``); the results wait in :attr:`replies`
    until the input they came with is committed."""

    def __init__(self, actors: list[StageActor], last: bool) -> None:
        self._actors = actors
        self._last = last  # its output is the pipeline's: nothing further on
        #: ``(reply subject, input position, reply)`` of each change seen.
        self.replies: list[tuple[str | None, int, Reply]] = []

    def __call__(self, frame: Frame, position: int, raw: bytes) -> tuple[list[Any], bytes | None]:
        """The runtime messages ``frame`` becomes here, and what to pass on."""
        reply = Reply()
        self.replies.append((frame.reply, position, reply))
        try:
            return self._take(frame, reply, raw)
        except ArrowloopError as exc:
            reply.fail(exc)
            return [], None

    def _take(self, frame: Frame, reply: Reply, raw: bytes) -> tuple[list[Any], bytes | None]:
        doc = frame.change
        assert doc is not None
        stages = doc.get("stages")
        names = [s.get("stage") for s in stages if type(s) is dict] if type(stages) is list else []
        mine = {a.name for a in self._actors}
        here = [n for n in names if n in mine]
        if not here:
            if self._last:
                raise UpgradeError(
                    f"no stage {names} runs in the pipeline",
                    stage=",".join(map(str, names)),
                    reason="unknown stage",
                )
            self.replies.pop()  # not ours to answer
            return [], raw
        if len(here) != len(names):
            raise UpgradeError(
                f"the stages {names} run in different segments; a change across segments "
                "is not built yet",
                stage=here[0],
                reason="across segments",
            )
        running = self._running()
        change = decode_change(doc, running={n: m.version for n, m in running})
        checked = check_change(running, change.upgrades)
        if checked.input_after != checked.input_before or (
            checked.output_after != checked.output_before
        ):
            raise UpgradeError(
                "the change alters what this segment reads or writes on the broker; not built yet",
                stage=checked.last,
                reason="interface change",
            )
        prepared = {
            p.stage: StageChange(p.stage, p.new, p.migrate, p.old.version) for p in checked.plans
        }
        return [UpgradeMsg(prepared, checked.last, reply)], None

    def _running(self) -> list[tuple[str, AnyMachine]]:
        """What a change is checked against: each stage's machine."""
        return [(a.name, a.machine) for a in self._actors]

    def results(self, committed: int) -> list[tuple[str, bytes]]:
        """The results to publish now: those of changes at or before ``committed``."""
        out: list[tuple[str, bytes]] = []
        kept = []
        for subject, position, reply in self.replies:
            if position > committed or not reply.done:
                kept.append((subject, position, reply))
            elif subject is not None:
                out.append((subject, _result(reply)))
        self.replies = kept
        return out


def _result(reply: Reply) -> bytes:
    err = reply.error
    if err is None:
        return orjson.dumps({"versions": reply.value})
    data: dict[str, Any] = {"type": type(err).__name__, "message": str(err)}
    reason = getattr(err, "reason", None)
    if reason is not None:
        data["reason"] = reason
    return orjson.dumps({"error": data})


async def request_change(
    nc: Client,
    pipeline: str,
    channel: str,
    doc: dict[str, Any],
    *,
    within: float = 30.0,
    config: ChannelConfig | None = None,
) -> dict[str, Any] | None:
    """Publish the change document ``doc`` into ``channel`` (the pipeline's
    first stage's) and wait for its result: ``{"versions": {...}}`` or
    ``{"error": {"type", "message", "reason"}}``; ``None`` if none came
    within ``within`` seconds."""
    config = ChannelConfig() if config is None else config
    name = ChannelName(pipeline, channel)
    js = nc.jetstream()
    await ensure_stream(js, name, config)
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, max_msgs=1)
    try:
        headers = {MSG_ID: f"change:{uuid.uuid4().hex}"}
        await js.publish(name.subject, change_frame(doc, inbox), headers=headers)
        try:
            msg = await sub.next_msg(timeout=within)
        except TimeoutError:
            return None
    finally:
        await sub.unsubscribe()
    result: dict[str, Any] = orjson.loads(msg.data)
    return result


async def send_change(
    nc: Client,
    pipeline: str,
    channel: str,
    change: CodeChange,
    *,
    within: float = 30.0,
    config: ChannelConfig | None = None,
) -> dict[str, str]:
    """Send ``change`` into ``channel`` (the pipeline's first stage's) and
    wait until the segment running its stages has committed it.

    Returns the new version of each changed stage.

    Raises:
        UpgradeError: refused (``reason`` says why), or no result came
            within ``within`` seconds (``reason`` ``no reply``).
        TypeError: a part of the change has no wire form (a native machine).
    """
    doc = encode_change(change)
    result = await request_change(nc, pipeline, channel, doc, within=within, config=config)
    stages = ",".join(change.stages)
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
