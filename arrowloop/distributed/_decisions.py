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
"""

from __future__ import annotations

import logging
from typing import Any, Final

import anyio
import nats.errors
import nats.js.errors
import orjson
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig

from arrowloop.distributed._channel import ChannelName, _safe
from arrowloop.distributed._frames import MSG_ID

__all__ = ["Decisions"]

log = logging.getLogger("arrowloop.distributed")

#: How long a prepared segment waits between looks at the stream.
_POLL_MIN: Final = 0.02
_POLL_MAX: Final = 0.5


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
        delay = _POLL_MIN
        while True:
            try:
                await self._js.publish(
                    self.subject(change_id),
                    orjson.dumps(decision),
                    headers={MSG_ID: f"decision:{change_id}"},
                )
                return
            except (nats.errors.TimeoutError, nats.errors.NoRespondersError) as exc:
                log.debug("decision %s: publish waits: %s", change_id, exc)
                await anyio.sleep(delay)
                delay = min(delay * 2, _POLL_MAX)

    async def wait(self, change_id: str) -> dict[str, Any]:
        """The decision of ``change_id``, once published (however long that takes:
        a prepared segment must not go on without it)."""
        delay = _POLL_MIN
        while True:
            try:
                msg = await self._js.get_last_msg(self.stream, self.subject(change_id))
            except nats.js.errors.NotFoundError:
                pass
            except nats.errors.Error as exc:
                log.debug("decision %s: read waits: %s", change_id, exc)
            else:
                assert msg.data is not None
                decision: dict[str, Any] = orjson.loads(msg.data)
                return decision
            await anyio.sleep(delay)
            delay = min(delay * 2, _POLL_MAX)
