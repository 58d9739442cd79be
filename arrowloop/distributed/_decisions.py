"""The decisions of changes across segments, kept on the broker.

A change whose stages run in several segments is decided by the segment
running its last changed stage (see _changes.py); the segments before it
hold their part prepared until they read the decision here. A decision is a
message on ``arrowloop.<pipeline>._decision.<change id>`` in a stream of
its own (file storage, limits retention): it outlives a crash of any
segment, so a segment that restarts with a change prepared (its input at
the change not yet committed) reads it again instead of waiting for a
message that went by. Published under the ID ``decision:<change id>``, so a
decider that replays the change after a crash publishes it once.

A migration of a sharded stage across processes is decided by a vote of
its N shards (_shardnet.py): each shard publishes its vote once, on
``<change id>_vote<k>`` in the same stream (a vote found there is reused,
never published again), and shard 0 decides from the N votes
(:func:`tally_votes`: commit iff every shard voted yes, abort at the first
no) and publishes the decision as above, unless one is there already. In
a change across segments with a part before and after the shards, the
shards vote the same way and the segment deciding after them reads their
votes (:meth:`Decisions.votes`) before its own stages commit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import anyio
import nats.errors
import nats.js.errors
import orjson
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from arrowloop.distributed._channel import ChannelName, _safe
from arrowloop.distributed._frames import MSG_ID

__all__ = ["Decisions", "tally_votes"]

log = logging.getLogger("arrowloop.distributed")

#: How long a prepared segment waits between looks at the stream.
_POLL_MIN: Final = 0.02
_POLL_MAX: Final = 0.5


def tally_votes(votes: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """The decision of a change from its shards' votes (``None``: a shard
    has not voted yet): abort at the first no, in shard order, with that
    shard's error; commit, with the versions, once every shard voted yes."""
    for k, vote in enumerate(votes):
        if vote is not None and vote.get("commit") is not True:
            error = dict(vote.get("error") or {})
            error["message"] = f"shard {k}: {error.get('message', 'refused')}"
            return {"commit": False, "error": error}
    if not votes or any(v is None for v in votes):
        return None
    first = votes[0]
    assert first is not None
    return {"commit": True, "versions": dict(first.get("versions") or {})}


class Decisions:
    """The decisions stream of one pipeline."""

    def __init__(self, js: JetStreamContext, pipeline: str) -> None:
        self._js = js
        names = ChannelName(pipeline, "_decisions")
        self.stream = names.stream
        self._prefix = f"arrowloop.{names.subject.split('.')[1]}._decision"

    def subject(self, change_id: str) -> str:
        """Where the decision of ``change_id`` is published."""
        return f"{self._prefix}.{_safe(change_id)}"  # one subject token

    async def ensure(self) -> None:
        """Create the stream unless it exists."""
        try:
            await self._js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            await self._js.add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[f"{self._prefix}.*"],
                    retention=RetentionPolicy.LIMITS,
                    storage=StorageType.FILE,
                    max_msgs_per_subject=1,
                )
            )

    async def publish(self, change_id: str, decision: dict[str, Any]) -> None:
        """Publish ``decision`` (``{"commit": true, "versions": ...}`` or
        ``{"commit": false, "error": ...}``), retried while the broker is away."""
        await self._publish(self.subject(change_id), f"decision:{change_id}", decision)

    async def _publish(self, subject: str, msg_id: str, doc: dict[str, Any]) -> None:
        delay = _POLL_MIN
        while True:
            try:
                await self._js.publish(subject, orjson.dumps(doc), headers={MSG_ID: msg_id})
                return
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
                log.debug("%s: publish waits: %s", msg_id, exc)
                await anyio.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)

    async def look(self, subject: str) -> dict[str, Any] | None:
        """The message on ``subject``, or ``None`` if there is none (one look;
        retried while the broker is away)."""
        delay = _POLL_MIN
        while True:
            try:
                msg = await self._js.get_last_msg(self.stream, subject)
            except nats.js.errors.NotFoundError:
                return None
            except nats.errors.Error as exc:
                log.debug("%s: read waits: %s", subject, exc)
            else:
                assert msg.data is not None
                doc: dict[str, Any] = orjson.loads(msg.data)
                return doc
            await anyio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    def vote_subject(self, change_id: str, shard: int) -> str:
        """Where shard ``shard`` publishes its vote on ``change_id``."""
        return self.subject(f"{change_id}.vote{shard}")

    async def vote(self, change_id: str, shard: int, vote: dict[str, Any]) -> dict[str, Any]:
        """Publish shard ``shard``'s ``vote`` (shaped as a decision), unless
        it voted before (a replay after a crash): the vote on the broker."""
        subject = self.vote_subject(change_id, shard)
        found = await self.look(subject)
        if found is not None:
            return found
        await self._publish(subject, f"vote:{change_id}:{shard}", vote)
        return vote

    async def decide(self, change_id: str, shards: int) -> dict[str, Any]:
        """The decision of ``change_id`` by the votes of ``shards`` shards
        (shard 0's part): the one on the broker if there is one, else
        :func:`tally_votes` once it decides, published."""
        delay = _POLL_MIN
        while True:
            found = await self.look(self.subject(change_id))
            if found is not None:
                return found
            votes = [await self.look(self.vote_subject(change_id, k)) for k in range(shards)]
            decision = tally_votes(votes)
            if decision is not None:
                await self.publish(change_id, decision)
                return await self.wait(change_id)  # what the broker kept
            await anyio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    async def votes(self, change_id: str, shards: int) -> dict[str, Any]:
        """What the votes of ``shards`` shards on ``change_id`` decide, once
        they do (:func:`tally_votes`), for the segment that decides the change
        after them (not published: that segment's decision also holds its own
        part)."""
        delay = _POLL_MIN
        while True:
            votes = [await self.look(self.vote_subject(change_id, k)) for k in range(shards)]
            decision = tally_votes(votes)
            if decision is not None:
                return decision
            await anyio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)

    async def wait(self, change_id: str) -> dict[str, Any]:
        """The decision of ``change_id``, once published (however long that takes:
        a prepared segment must not go on without it)."""
        delay = _POLL_MIN
        while True:
            found = await self.look(self.subject(change_id))
            if found is not None:
                return found
            await anyio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)
