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

A change whose stages run in several segments commits in two phases: the
segments before the last prepare and hold their part, the last decides and
publishes the decision on the broker (_decisions.py), and the others apply
or discard theirs. A change that alters the item type of a channel between
segments switches the codec at the change's own position: the sending half
at its cut, the receiving half holds what follows until the change is
decided here.

A sharded stage's segments (its shards, the segment routing to them, the
one reading them merged: _shardnet.py, _merge.py) take changes of their own
stages and pass others on (a migration of a sharded stage is voted on by
its shards: _shardnet.py). In a change across segments the router passes
its prepared part to every shard; each shard prepares, votes on the
decisions stream and passes a copy on (a refusing shard too, so the merge
aligns the copies), and the decider after the shards reads their votes
before its own stages commit (commit iff every shard voted yes). A change
that the reader of merged shards would have to pass on prepared is still
refused there (``across segments``).
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import orjson
from nats.aio.client import Client

from arrowloop.check import is_subtype
from arrowloop.distributed._channel import (
    ChannelConfig,
    ChannelName,
    NatsSendChannel,
    ensure_stream,
)
from arrowloop.distributed._decisions import Decisions
from arrowloop.distributed._frames import MSG_ID, Frame, FrameCodec, change_frame
from arrowloop.distributed._history import (
    ROLLBACK,
    SegmentHistory,
    change_record,
    finish_record,
)
from arrowloop.distributed._merge import MergeReceiver
from arrowloop.distributed._receive import NatsReceiveChannel
from arrowloop.errors import ArrowloopError, UpgradeError
from arrowloop.machine import AnyMachine
from arrowloop.runtime import Reply, StageActor, StageChange, UpgradeMsg, check_change
from arrowloop.supervisor import CodeChange
from arrowloop.supervisor._undo import encode_undo
from arrowloop.upgrade import decode_change, encode_change
from arrowloop.wire import decode_type, encode_type

__all__ = ["Codecs", "SegmentChanges", "send_change", "request_change"]


class Codecs(Protocol):
    """A segment's sending half other than one stream's (the router to a
    sharded stage's shards, _shardnet.py): what a change here asks of it."""

    #: What to do with an upgrade message that reaches the sending half.
    on_control: Callable[[Any], Awaitable[None]] | None

    def use_codec(self, codec: FrameCodec) -> None:
        """Encode the items sent from now on with ``codec``."""

    async def publish_frame(self, payload: bytes) -> None:
        """Publish a change frame made here at the input's place, into every channel."""


#: The ``last`` of a change held by the segment that decides it after a
#: sharded stage: no stage of the segment, so its changed stages hold after
#: preparing and the message reaches the sending half, which reads the
#: shards' votes (SegmentChanges.at_sender) before they commit.
_TALLY: Final = "~tally"


class _Change:
    """One change frame that reached this segment, until its result is out."""

    __slots__ = (
        "answers",
        "decided",
        "forwarded",
        "id",
        "output",
        "position",
        "record",
        "reply",
        "subject",
        "upstream",
        "verdict",
        "versions",
        "voters",
    )

    def __init__(self, change_id: str, position: int, subject: str | None, reply: Reply) -> None:
        self.id = change_id
        self.position = position
        self.subject = subject
        self.reply = reply
        #: Whether this segment answers the change's sender: it runs the
        #: last changed stage, or none of them, or refused the change before
        #: finding its part (a segment holding its part prepared answers
        #: only if it refused it itself: see refused_here).
        self.answers = True
        #: A segment before holds its part prepared: a decision is owed.
        self.upstream = False
        #: Passed on prepared: the decision comes from further on.
        self.forwarded = False
        #: Whether the decision owed was published.
        self.decided = False
        #: The sending half's codec after the change, if it alters its type.
        self.output: FrameCodec | None = None
        #: The new versions of the stages prepared before.
        self.versions: dict[str, str] = {}
        #: Its change-history record here (_history.py), once its part is known.
        self.record: dict[str, Any] | None = None
        #: The shards that voted on it before this segment (it decides), or 0.
        self.voters = 0
        #: The shards' abort, which the decision and the answer give instead
        #: of this segment's own refusal.
        self.verdict: dict[str, Any] | None = None

    @property
    def refused_here(self) -> bool:
        """Whether it was refused in this segment (not passed on, or decided here)."""
        return self.reply.error is not None and not self.forwarded

    @property
    def owes_decision(self) -> bool:
        """Whether this segment must publish the decision (segments before
        hold their part prepared, and it decided, or refused it)."""
        return self.upstream and self.reply.done and (self.answers or self.refused_here)


class SegmentChanges:
    """What a segment does with the change frames that reach it (the
    receiving half's ``on_change``); the results wait in :attr:`replies`
    until the input they came with is committed.

    A change whose stages run in several segments commits in two phases
    (docs/distributed.md, "Changes across segments"): each segment before
    the one running the last changed stage prepares its part at its cut
    (the runtime's in-band upgrade, held undecided: its stages wait, so
    nothing after the cut is applied), passes the change on and waits for
    the decision; the last one decides, publishes the decision
    (_decisions.py) and answers.
    """

    def __init__(self, actors: list[StageActor], last: bool) -> None:
        self._actors = actors
        self._last = last  # its output is the pipeline's: nothing further on
        #: Each change seen, until its result is published.
        self.replies: list[_Change] = []
        self._order: list[str] = []
        self._channel = ""
        self._receiver: NatsReceiveChannel | MergeReceiver | None = None
        self._sender: NatsSendChannel | Codecs | None = None
        # Why this segment cannot pass a prepared change on (it reads the
        # merged shards of the stage before), or "".
        self._sharded = ""
        # The sharded stages of the pipeline and their number of shards.
        self._sharded_stages: dict[str, int] = {}
        # Held for the shards' votes (the message's id), to tally at the sending half.
        self._tallies: dict[int, _Change] = {}
        self._decisions: Decisions | None = None
        # Prepared here, to pass on when they reach the sending half.
        self._prepared: dict[int, tuple[UpgradeMsg, _Change, Frame]] = {}
        #: The changes this segment took part in (its store's history).
        self.history = SegmentHistory()

    def wire(
        self,
        order: list[str],
        receiver: NatsReceiveChannel | MergeReceiver,
        sender: NatsSendChannel | Codecs,
        decisions: Decisions,
        *,
        sharded: str = "",
        shards: dict[str, int] | None = None,
    ) -> None:
        """Join the segment's channels: ``order`` is every stage of the
        pipeline, in order (to tell the stages before from those after);
        ``shards`` the sharded stages and their number of shards.

        ``sharded`` says why this segment cannot pass a change across
        segments on prepared (it reads the merged shards of the stage
        before it: not built yet), or is empty; such a change is then
        refused here with reason ``across segments``, and the segments
        before it that prepared it abort.
        """
        self._order = order
        self._channel = receiver.name.stream
        self._receiver = receiver
        self._sender = sender
        self._decisions = decisions
        self._sharded = sharded
        self._sharded_stages = dict(shards or {})
        sender.on_control = self.at_sender

    def __call__(self, frame: Frame, position: int, raw: bytes) -> tuple[list[Any], bytes | None]:
        """The runtime messages ``frame`` becomes here, and what to pass on."""
        change_id = frame.change_id or f"{self._channel}-{position}"
        rec = _Change(change_id, position, frame.reply, Reply())
        rec.versions = dict(frame.versions)
        self.replies.append(rec)
        try:
            return self._take(frame, rec, raw)
        except ArrowloopError as exc:
            if rec.record is None and frame.change is not None:
                _, _, names = _names(frame.change)
                rec.record = change_record(frame.change, rec.id, position, None, None, names)
            rec.reply.fail(exc)
            return [], None

    def _take(self, frame: Frame, rec: _Change, raw: bytes) -> tuple[list[Any], bytes | None]:
        doc = frame.change
        assert doc is not None
        rollback, parts, names = _names(doc)
        mine = [a.name for a in self._actors]
        order = self._order or mine
        unknown = [n for n in names if n not in order]
        if unknown or not names:
            raise UpgradeError(
                f"no stage {unknown or names} runs in the pipeline; its stages are {order}",
                stage=",".join(map(str, names)),
                reason="unknown stage",
            )
        first, end = order.index(mine[0]), order.index(mine[-1]) + 1
        where = [order.index(str(n)) for n in names]
        rec.upstream = any(i < first for i in where)
        downstream = any(i >= end for i in where)
        boundary = None if frame.boundary is None else decode_type(frame.boundary, "$.t")
        running = self._running()
        here = [n for n in names if n in mine]
        if not here:
            if boundary is not None and boundary != running[0][1].input:
                raise UpgradeError(
                    f"the change alters the items stage {mine[0]!r} reads to {boundary!r}, "
                    f"and it runs {running[0][1].input!r}; a stage between changed ones must "
                    "read the same type (change it too)",
                    stage=mine[0],
                    reason="interface change",
                )
            self.replies.pop()  # not ours to answer
            if frame.change_id is None:
                return [], change_frame(doc, frame.reply, rec.id, frame.boundary, frame.versions)
            return [], raw
        sharded = [n for n in names if n in self._sharded_stages]
        if (self._sharded and downstream) or (len(sharded) > 1 and (rec.upstream or downstream)):
            why = (
                f"this segment ({', '.join(mine)}) {self._sharded}: it cannot pass a prepared "
                "change on yet"
                if self._sharded and downstream
                else f"it names sharded stages {sharded}: one sharded stage per change across "
                "segments"
            )
            raise UpgradeError(
                f"the change names stages {names} of more than one segment, and {why}; "
                "change these stages in separate changes",
                stage=",".join(here),
                reason="across segments",
            )
        before_us = [n for n in sharded if order.index(n) < first]
        if before_us and not downstream:
            rec.voters = self._sharded_stages[before_us[0]]
        if rollback:
            # A downgrade may narrow the pipeline's interface back (as in process).
            checked, undo = self.history.rollback_part(doc, running), None
            interface = True
        else:
            sub = {**doc, "stages": [s for s in parts if s.get("stage") in mine]}
            change = decode_change(sub, running={n: m.version for n, m in running})
            checked = check_change(running, change.upgrades, change_interface=True)
            undo = encode_undo(change.upgrades, checked)
            interface = change.change_interface
        rec.record = change_record(doc, rec.id, rec.position, checked, undo, names)
        before, after = checked.input_before, checked.input_after
        if boundary is not None:
            fits = is_subtype(boundary, after)
        else:
            fits = is_subtype(before, after) or (first == 0 and interface)
        if not fits:
            raise UpgradeError(
                f"the change makes stage {mine[0]!r} read {after!r}, and the channel into it "
                f"carries {boundary or before!r}; change what writes it in the same change"
                + ("" if first else " (or pass change_interface for the pipeline's input)"),
                stage=mine[0],
                reason="interface change",
            )
        before, after = checked.output_before, checked.output_after
        widens = self._last and interface  # the pipeline's clients are ready
        if not downstream and not is_subtype(after, before) and not widens:
            raise UpgradeError(
                f"the change makes stage {mine[-1]!r} write {after!r} where {before!r} was "
                "written; change what reads it in the same change"
                + (" (or pass change_interface for the pipeline's output)" if self._last else ""),
                stage=mine[-1],
                reason="interface change",
            )
        if after != before:
            rec.output = FrameCodec(after)
        prepared = {
            p.stage: StageChange(p.stage, p.new, p.migrate, p.old.version) for p in checked.plans
        }
        if downstream:
            # Prepared here and held undecided: ``last`` names a stage further
            # on, so every stage here waits after preparing, and the message
            # reaches the sending half (at_sender), which passes it on.
            rec.answers = False
            later = max(where)
            msg = UpgradeMsg(prepared, order[later], rec.reply)
            bound = None if after == before else encode_type(after)
            self._prepared[id(msg)] = (msg, rec, Frame([], doc, frame.reply, rec.id, bound))
        elif rec.voters:
            # Decided here, once the shards' votes are read (at_sender).
            msg = UpgradeMsg(prepared, _TALLY, rec.reply)
            self._tallies[id(msg)] = rec
        else:
            msg = UpgradeMsg(prepared, checked.last, rec.reply)
        if checked.input_after != checked.input_before:
            # The frames after this one are in the new type if the change
            # commits, in the old one if not: decoded once that is known.
            assert self._receiver is not None
            self._receiver.hold(rec.reply, FrameCodec(checked.input_after))
        return [msg], None

    async def at_sender(self, msg: UpgradeMsg) -> None:
        """A change prepared by every stage here reached the sending half
        (after every output before it): pass it on and wait for the decision.

        A change this segment decides after a sharded stage reaches it too:
        its stages commit only if every shard voted yes."""
        sender, decisions = self._sender, self._decisions
        tally = self._tallies.pop(id(msg), None)
        if tally is not None and decisions is not None:
            votes = await decisions.votes(tally.id, tally.voters)
            apply_decision(msg, votes, ",".join(msg.changes), "refused by a shard")
            return
        entry = self._prepared.pop(id(msg), None)
        if entry is None or sender is None or decisions is None:
            raise TypeError("an upgrade message that no change of this segment prepared")
        _, rec, frame = entry
        rec.forwarded = True
        assert frame.change is not None
        versions = {**rec.versions, **msg.versions}
        payload = change_frame(frame.change, frame.reply, rec.id, frame.boundary, versions)
        await sender.publish_frame(payload)
        decision = await decisions.wait(rec.id)
        apply_decision(msg, decision, msg.last, "refused further on")

    def awaiting(self) -> list[str]:
        """The changes held prepared here, waiting for their decision."""
        return [r.id for r in self.replies if r.forwarded and not r.reply.done]

    async def at_cut(self, position: int) -> None:
        """At the segment's cut of ``position``, before its states are written:
        the codec after a change there, and the decision this segment owes."""
        for key, (_, rec, _) in list(self._prepared.items()):
            if rec.reply.done:  # refused here before it reached the sending half
                del self._prepared[key]
        for rec in self.replies:
            if rec.position != position or not rec.reply.done:
                continue
            if rec.output is not None and rec.reply.error is None and self._sender is not None:
                self._sender.use_codec(rec.output)
                rec.output = None
            if rec.owes_decision and not rec.decided and self._decisions is not None:
                if rec.voters and rec.reply.error is not None:
                    # Refused here after the shards voted (every copy came):
                    # a shard's no is the reason to give, if there is one.
                    votes = await self._decisions.votes(rec.id, rec.voters)
                    rec.verdict = None if votes.get("commit") is True else votes
                # Published before the states are written: a crash in between
                # replays the change, which decides the same (the stages are
                # deterministic) and publishes under the same ID.
                await self._decisions.publish(rec.id, rec.verdict or _decision(rec))
                rec.decided = True
            if rec.record is not None:
                record, rec.record = rec.record, None
                await self.history.append(finish_record(record, rec.reply))

    def _running(self) -> list[tuple[str, AnyMachine]]:
        """What a change is checked against: each stage's machine."""
        return [(a.name, a.machine) for a in self._actors]

    def results(self, committed: int) -> list[tuple[str, bytes]]:
        """The results to publish now: those of changes at or before ``committed``."""
        out: list[tuple[str, bytes]] = []
        kept = []
        for rec in self.replies:
            if rec.position > committed or not rec.reply.done:
                kept.append(rec)
            elif rec.subject is not None and (rec.answers or rec.refused_here):
                verdict = rec.verdict
                result = (
                    _result(rec.reply, rec.versions)
                    if verdict is None
                    else orjson.dumps({"error": verdict.get("error") or {}})
                )
                out.append((rec.subject, result))
        self.replies = kept
        return out


def apply_decision(msg: UpgradeMsg, decision: dict[str, Any], stage: str, why: str) -> None:
    """Commit the stages holding ``msg`` prepared, or wake them keeping their
    code, as ``decision`` says (``stage`` and ``why`` name the refusal)."""
    if decision.get("commit") is True:
        for commit in msg.commits:
            commit()
        msg.decided.set()
        msg.reply.set(dict(msg.versions))
        return
    error = decision.get("error") or {}
    reason = str(error.get("reason", "refused"))
    err = UpgradeError(f"{why}: {error.get('message')}", stage=stage, reason=reason)
    msg.failure = (stage, reason, err)
    msg.decided.set()  # the stages here wake up and keep their code
    msg.reply.fail(err)


def _names(doc: dict[str, Any]) -> tuple[bool, list[dict[str, Any]], list[Any]]:
    """Whether ``doc`` is a rollback, its stage changes, and the stages it names."""
    stages = doc.get("stages")
    listed = stages if type(stages) is list else []
    if doc.get("kind") == ROLLBACK:
        return True, [], [s for s in listed if type(s) is str]
    parts = [s for s in listed if type(s) is dict]
    return False, parts, [s.get("stage") for s in parts]


def _decision(rec: _Change) -> dict[str, Any]:
    result = orjson.loads(_result(rec.reply, rec.versions))
    return {"commit": "versions" in result, **result}


def _result(reply: Reply, before: dict[str, str] | None = None) -> bytes:
    err = reply.error
    if err is None:
        return orjson.dumps({"versions": {**(before or {}), **reply.value}})
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
    shards: int | None = None,
) -> dict[str, Any] | None:
    """Publish the change document ``doc`` into ``channel`` (the pipeline's
    first stage's) and wait for its result: ``{"versions": {...}}`` or
    ``{"error": {"type", "message", "reason"}}``; ``None`` if none came
    within ``within`` seconds.

    A sharded first stage of ``shards`` shards gets a copy in every shard's
    channel (``<channel>.shard<k>``, _shardnet.shard_channel), under one
    change id: shard 0 answers (see _shardnet.ShardChanges)."""
    config = ChannelConfig() if config is None else config
    channels = [channel] if shards is None else [f"{channel}.shard{k}" for k in range(shards)]
    names = [ChannelName(pipeline, c) for c in channels]
    js = nc.jetstream()
    for name in names:
        await ensure_stream(js, name, config)
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, max_msgs=1)
    try:
        change_id = uuid.uuid4().hex
        headers = {MSG_ID: f"change:{change_id}"}
        for name in names:
            await js.publish(name.subject, change_frame(doc, inbox, change_id), headers=headers)
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
    shards: int | None = None,
) -> dict[str, str]:
    """Send ``change`` into ``channel`` (the pipeline's first stage's) and
    wait until the segment running its stages has committed it (a sharded
    first stage: give its ``shards``, and every shard gets a copy).

    Returns the new version of each changed stage.

    Raises:
        UpgradeError: refused (``reason`` says why), or no result came
            within ``within`` seconds (``reason`` ``no reply``).
        TypeError: a part of the change has no wire form (a native machine).
    """
    doc = encode_change(change)
    result = await request_change(
        nc, pipeline, channel, doc, within=within, config=config, shards=shards
    )
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
