"""Sharded stages across processes: the channels of the shards, the
sending half that routes to them, and changes in shard segments.

A stage made with ``shard_key`` and ``shards=N`` runs across processes as N
*shard segments*, each a segment (``_segment.py``) of one replica of the
stage with its own store. Shard ``k`` reads a channel of its own,
:func:`shard_channel` (a stream per shard, so its positions are contiguous
and its exactly-once commit is the segment's, unchanged), and writes one of
its own into the next stage (``_merge.py``: the reader after the shards
merges the N streams and aligns code changes).

The segment before the stage sends through a :class:`ShardRouter`: each
output goes to the shard its key hashes to (the in-process hash,
``arrowloop.runtime._shards.shard_of``, so a key has the same shard in and
across processes), and at each cut the outputs of the input there are
published to every shard's stream under IDs that add the shard to
(producer, position, part): a replay after a crash republishes every
shard's frames under the IDs they had. A code change passed on and end of
stream go to every shard, numbered after the items. Per key the order
holds: one key is one shard, each shard's input is a stream in order, and
its outputs are published in order into a stream of its own.

The same sending half serves a segment whose input is merged from shards
(with or without routing to shards after it): the outputs of an input from
stream ``j`` are published under the producer ``<producer><j`` at the
input's position in that stream, so IDs are the same on every replay and
increase per producer, whatever order the streams were merged in.

A change of the sharded stage that migrates its state is voted on
(:class:`ShardChanges`): every shard prepares it at its copy and holds,
votes on the decisions stream (_decisions.py), shard 0 decides (commit iff
every shard voted yes), and every shard commits or keeps its code; only
shard 0 answers the change's sender. A change across segments with a part
here is voted on alike: the router publishes its prepared part to every
shard (:meth:`ShardRouter.publish_frame`), and if stages after the shards
change too, each shard passes the change on after its vote (a refusing
shard a copy), for the segment deciding after them (_changes.py).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
from anyio import WouldBlock

from arrowloop.distributed._changes import (
    SegmentChanges,
    _Change,
    _decision,
    _names,
    apply_decision,
)
from arrowloop.distributed._channel import (
    ChannelName,
    Commit,
    InputPosition,
    NatsSendChannel,
)
from arrowloop.distributed._frames import END, Frame, FrameCodec, change_frame
from arrowloop.distributed._merge import MergedPosition
from arrowloop.errors import ArrowloopError
from arrowloop.machine import AnyMachine, Function
from arrowloop.runtime import (
    ChannelStatistics,
    CutMsg,
    DeadLetter,
    DeadLetters,
    EndMsg,
    StageActor,
    StageSpec,
    UpgradeMsg,
)
from arrowloop.runtime._shards import shard_of

__all__ = [
    "ShardChanges",
    "ShardRouter",
    "check_shards",
    "replica_spec",
    "shard_channel",
    "shard_producer",
]

log = logging.getLogger("arrowloop.distributed")


def shard_channel(stage: str, shard: int) -> str:
    """The channel (and so stream) feeding shard ``shard`` of ``stage``."""
    return f"{stage}.shard{shard}"


def shard_producer(producer: str, shard: int, shards: int) -> str:
    """The producer name of shard ``shard`` of ``shards`` in message IDs."""
    return f"{producer}~{shard}of{shards}"


def replica_spec(spec: StageSpec) -> StageSpec:
    """One replica of the sharded stage ``spec``: the stage a shard segment runs."""
    return attrs.evolve(spec, shards=1, shard_key=None)


class ShardRouter:
    """A segment's sending half that publishes each input's outputs at its
    cut: routed by key to one of N shards' channels (``key`` given), and/or
    per input stream when the input is merged from shards.

    ``senders[j][k]`` publishes the outputs of inputs from stream ``j``
    (0 when the input is one stream) into channel ``k`` (the shard's, or
    the one next channel when ``key`` is ``None``). Outputs are held until
    the cut (they are what one input produced, so about a frame's worth),
    then published in frames under IDs derived from the input's position;
    an item whose key function raises is dropped, counted (``unroutable``)
    and put in ``dead_letters``, alike on every replay.
    """

    def __init__(
        self,
        name: ChannelName,
        senders: list[list[NatsSendChannel]],
        key: Function | None,
        positions: deque[int],
        commit: Commit,
        dead_letters: DeadLetters | None = None,
    ) -> None:
        self.name = name
        self.senders = senders
        self._key = key
        self._dead_letters = dead_letters
        self._positions = positions
        self._commit = commit
        self._bufs: list[list[Any]] = [[] for _ in senders[0]]
        self.closed = False
        #: Items whose key function raised (dropped).
        self.unroutable = 0
        #: What the segment does with an upgrade message that reaches the
        #: router (a change prepared here, decided further on: _changes.py).
        self.on_control: Callable[[Any], Awaitable[None]] | None = None

    def use_codec(self, codec: FrameCodec) -> None:
        """Encode the items published from now on with ``codec`` (a change
        of the segment's output type, at its cut), on every channel."""
        for s in self._all():
            s.use_codec(codec)

    def _all(self) -> list[NatsSendChannel]:
        return [s for row in self.senders for s in row]

    @property
    def published(self) -> int:
        """Broker messages published, to every channel."""
        return sum(s.published for s in self._all())

    @property
    def duplicates(self) -> int:
        """Of those, the ones the broker had already (replays)."""
        return sum(s.duplicates for s in self._all())

    @property
    def waits(self) -> int:
        """Publishes that waited for room (a full channel)."""
        return sum(s.waits for s in self._all())

    def _route(self, items: list[Any]) -> None:
        bufs, key, n = self._bufs, self._key, len(self._bufs)
        if key is None:
            bufs[0].extend(items)
            return
        for x in items:
            try:
                k = shard_of(key(x), n)
            except Exception as exc:
                # As in process: the item fails as a raising step does (to
                # the dead letters, under the sharded stage and its key).
                self.unroutable += 1
                log.error("channel %s: the shard key of an item raised: %s", self.name.stream, exc)
                if self._dead_letters is not None:
                    letter = DeadLetter(self.name.channel, key.version, x, exc)
                    self._dead_letters.put(letter)
                continue
            bufs[k].append(x)

    def send_nowait(self, message: Any) -> None:
        """Take a batch (published at the cut); anything else needs :meth:`send`."""
        if type(message) is list:
            self._route(message)
            return
        raise WouldBlock

    async def send(self, message: Any) -> None:
        """Take items, publish at a cut, or note end of stream (sent at its cut).

        Raises:
            TypeError: anything else (an envelope with a reply route).
        """
        t = type(message)
        if t is list:
            self._route(message)
        elif t is CutMsg and isinstance(message.reply, InputPosition):
            await self._cut(message, message.reply)
        elif t is EndMsg:
            self.closed = True
        elif t is UpgradeMsg and self.on_control is not None:
            await self.on_control(message)
        else:
            raise TypeError(
                f"a networked channel carries plain items, cuts and end of stream, "
                f"not {t.__name__} (not yet: see docs/distributed.md)"
            )

    async def _cut(self, cut: CutMsg, at: InputPosition) -> None:
        then = [f for f in (at.forward, END if at.end else None) if f is not None]
        row, position = self.senders[0], at.position
        if isinstance(at, MergedPosition):
            row, position = self.senders[at.stream], at.seq
        for k, sender in enumerate(row):
            items, self._bufs[k] = self._bufs[k], []
            await sender.send_at(position, items, then)
        # Everything this input produced is confirmed: commit there.
        await self._commit(cut, at)
        self._positions.popleft()

    async def publish_frame(self, payload: bytes) -> None:
        """Publish a change frame prepared here (``change_frame``) into every
        channel, at the place of the input being cut, under IDs derived from
        its position (part 0: the change's input has no items, so its cut
        publishes nothing else): a replay publishes it under the same IDs.

        Raises:
            RuntimeError: the input is merged from shards (not built: its
                streams' producers would need the input's stream).
        """
        if len(self.senders) != 1:
            raise RuntimeError("a change prepared after a merge of shards is not passed on")
        position = self._positions[0]
        for sender in self.senders[0]:
            await sender.send_at(position, [], [payload])

    async def flush(self) -> None:
        """Nothing to do: items are published at their input's cut."""

    def close(self) -> None:
        """Send no more."""
        self.closed = True

    def statistics(self) -> ChannelStatistics:
        """Items taken and not yet published."""
        held = sum(len(b) for b in self._bufs)
        frame = sum(s.statistics().capacity for s in self.senders[0])
        return ChannelStatistics(held, 0, frame, self.closed)


def check_shards(stages: list[StageSpec], first: int, count: int) -> None:
    """Refuse a segment of ``count`` stages from ``first`` whose sharding is
    not built across processes.

    Raises:
        ArrowloopError: a sharded stage with other stages in its segment.
            (First in the pipeline, its source routes by key: _shardsource.py;
            before another sharded stage, each shard routes to the next
            stage's shards, each of which merges them: _segment.py.)
    """
    for i in range(first, first + count):
        s = stages[i]
        if not s.sharded:
            continue
        if count != 1:
            raise ArrowloopError(
                f"stage {s.name!r} is sharded: across processes it is a segment of its own "
                "(--segment NAME --shards 0,1,...)"
            )


#: The ``last`` of a migration held on a shard: no stage of the segment, so
#: the changed stage holds after preparing and the message reaches the
#: sending half (ShardChanges.at_sender), which votes and waits.
_VOTE = "~vote"


class ShardChanges(SegmentChanges):
    """What a shard segment does with code changes: what any segment does,
    with the same outcome on every shard.

    Every shard gets a copy of a change at the same place of the router's
    output (one cut), checks it against the same machine version and
    applies it there; a change of stages further on is passed on by every
    shard and aligned after them (``_merge.py``).

    A change that migrates the stage's state could fail on some shards'
    states only, so it is voted on (docs/distributed.md, "Migrations of a
    sharded stage"): each shard prepares it at its copy and holds (nothing
    after the change is applied), then votes yes on the decisions stream
    (_decisions.py); a shard whose migration raises votes no at its cut.
    Shard ``0`` decides from the votes (commit iff all ``shards`` voted
    yes) and publishes the decision; every shard applies it or keeps its
    code. Only shard 0 answers the change's sender (every shard's answer
    would be the same): one answer per change.

    A change across segments with a part here is voted on the same way
    (docs/distributed.md, "Changes across segments with shards"). If its
    last changed stage is this one, shard 0 decides as above (the segments
    before read its decision). If stages further on change too, each shard
    votes yes when its prepared part reaches the sending half and passes the
    change on prepared; a shard that refuses votes no at its cut and passes
    a copy on all the same, so the reader after the shards aligns every
    copy; the segment deciding after the shards reads the votes before its
    own stages commit, and only it answers.
    """

    def __init__(
        self, actors: list[StageActor], last: bool, shard: int = 0, shards: int = 1
    ) -> None:
        super().__init__(actors, last)
        # The machine each stage runs once the changes handed out so far are
        # applied: a change is checked against it, not against what the
        # stage runs now (a change before it may still be queued there, for
        # longer on one shard than on another).
        self._after: dict[str, AnyMachine] = {}
        self._shard = shard
        self._shards = shards
        # Migrations prepared here (the upgrade message's id), to vote on
        # when they reach the sending half; the ids of every change voted on.
        self._voting: dict[int, _Change] = {}
        self._ballots: set[str] = set()
        self._voted: set[str] = set()
        # The copies a refusing shard passes on (by change id): the frame
        # the change would have been passed on as.
        self._copies: dict[str, bytes] = {}

    def _running(self) -> list[tuple[str, AnyMachine]]:
        return [(a.name, self._after.get(a.name, a.machine)) for a in self._actors]

    def __call__(self, frame: Frame, position: int, raw: bytes) -> tuple[list[Any], bytes | None]:
        """The runtime messages ``frame`` becomes here, and what to pass on."""
        count = len(self.replies)
        messages, forward = super().__call__(frame, position, raw)
        if len(self.replies) == count:
            return messages, forward  # not ours: passed on
        rec = self.replies[-1]
        assert frame.change is not None
        if not any(a.name in _names(frame.change)[2] for a in self._actors):
            # A change this shard has no part in, refused here (the type it
            # reads): alike on every shard, decided as in any segment.
            return messages, forward
        upstream, downstream = self._across(frame)
        upgrades = [m for m in messages if isinstance(m, UpgradeMsg)]
        migrates = any(c.migrate is not None for m in upgrades for c in m.changes.values())
        if not (upstream or downstream or migrates):
            # Applied for sure: without a migration nothing can fail on a state.
            for m in upgrades:
                self._after.update({name: c.machine for name, c in m.changes.items()})
            return messages, forward
        # Voted on by every shard: prepared and held here (or refused already).
        self._ballots.add(rec.id)
        rec.decided = True  # decided from the votes, never by one shard alone
        if downstream:
            # Decided after the shards: the decider answers, and a copy goes
            # on even from a shard that refuses (the merge aligns them).
            rec.subject = None
            bound = next((f.boundary for _, r, f in self._prepared.values() if r is rec), None)
            assert frame.change is not None
            self._copies[rec.id] = change_frame(
                frame.change, frame.reply, rec.id, bound, rec.versions
            )
        if not upgrades:
            return messages, forward  # refused: a no at the cut
        [msg] = upgrades
        held = msg
        if not downstream:
            held = UpgradeMsg(msg.changes, _VOTE, msg.reply)
            self._voting[id(held)] = rec
        if self._receiver is not None:
            # Nothing after the change is handed out (nor checked against
            # the machine it runs) before the decision.
            new = next(iter(msg.changes.values())).machine
            self._receiver.hold(rec.reply, FrameCodec(new.input))
        return [held], forward

    def _across(self, frame: Frame) -> tuple[bool, bool]:
        """Whether ``frame``'s change names stages before this one, and after."""
        assert frame.change is not None
        _, _, names = _names(frame.change)
        order = self._order
        mine = [a.name for a in self._actors]
        if not mine or mine[0] not in order:
            return False, False
        first, last = order.index(mine[0]), order.index(mine[-1])
        where = [order.index(n) for n in names if n in order]
        return any(i < first for i in where), any(i > last for i in where)

    async def at_sender(self, msg: UpgradeMsg) -> None:
        """A migration prepared here reached the sending half: vote yes, and
        apply the decision (shard 0 makes it from every shard's vote)."""
        decisions = self._decisions
        assert decisions is not None
        yes = {"commit": True, "versions": msg.versions}
        rec = self._voting.pop(id(msg), None)
        if rec is None:
            entry = self._prepared.get(id(msg))
            if entry is not None and entry[1].id in self._ballots:
                # Decided after the shards: vote, then pass it on and wait.
                self._voted.add(entry[1].id)
                self._copies.pop(entry[1].id, None)
                await decisions.vote(entry[1].id, self._shard, yes)
            await super().at_sender(msg)
            if msg.reply.error is None:
                self._after.update({name: c.machine for name, c in msg.changes.items()})
            return
        self._voted.add(rec.id)
        await decisions.vote(rec.id, self._shard, yes)
        if self._shard == 0:
            decision = await decisions.decide(rec.id, self._shards)
        else:
            decision = await decisions.wait(rec.id)
        if decision.get("commit") is True:
            self._after.update({name: c.machine for name, c in msg.changes.items()})
        apply_decision(msg, decision, ",".join(msg.changes), "refused by a shard")

    async def at_cut(self, position: int) -> None:
        """At the cut of ``position``: a migration refused here (it raised on
        this shard's state) is a no vote, published before the states are
        written (and shard 0 decides: abort)."""
        for key, rec in list(self._voting.items()):
            if rec.reply.done:  # refused before it reached the sending half
                del self._voting[key]
        for rec in self.replies:
            if (
                rec.position != position
                or rec.id not in self._ballots
                or rec.id in self._voted
                or rec.reply.error is None
                or self._decisions is None
            ):
                continue
            self._voted.add(rec.id)
            vote = await self._decisions.vote(rec.id, self._shard, _decision(rec))
            if vote.get("commit") is True:
                # Voted yes before a crash, refused on the replay: the
                # migration is not deterministic. Stop rather than diverge.
                raise ArrowloopError(
                    f"change {rec.id}: shard {self._shard} voted to commit it before a crash "
                    f"and its replay refuses it ({rec.reply.error}); a migration must give "
                    "the same result on the same state"
                )
            copy = self._copies.pop(rec.id, None)
            if copy is not None and self._sender is not None:
                # After the vote: the decider after the shards reads it once
                # every copy has come (this one included).
                await self._sender.publish_frame(copy)
            elif self._shard == 0:
                await self._decisions.decide(rec.id, self._shards)
        await super().at_cut(position)

    def awaiting(self) -> list[str]:
        """The changes held prepared here, waiting for their decision."""
        return [
            r.id for r in self.replies if (r.forwarded or r.id in self._voted) and not r.reply.done
        ]

    def results(self, committed: int) -> list[tuple[str, bytes]]:
        """The results to publish now: shard 0's only (one answer per change)."""
        out = super().results(committed)
        done = {r.id for r in self.replies}
        self._ballots &= done
        self._voted &= done
        return out if self._shard == 0 else []
