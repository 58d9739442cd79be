"""Layer 11 (beside endpoints), distributed: pipelines across processes and machines.

The runtime's channel halves on NATS JetStream (``_channel.py``,
``_receive.py``: one work-queue stream per channel, bounded with discard-new,
read by one durable pull consumer with an explicit ack per message), the
frames they carry (``_frames.py``), sources and sinks (``_ends.py``), and
segments: stages run in this process with an exactly-once effect across
crashes (``_segment.py``; without a state directory their state is in
the broker's key-value store, ``_kvstore.py``), code changes travelling
in-band across them (``_changes.py``; those across segments decided on the
broker, ``_decisions.py``), their history and rollback (``_history.py``,
``_rollback.py``), sharded stages across processes (``_shardnet.py``
routing to a stream per shard, ``_shardsource.py`` a source routing by
key into a sharded first stage, ``_merge.py`` merging them after the
shards, changes aligned), and status gathered from every segment
(``_status.py``). Needs the ``nats`` extra (``nats-py``);
docs/distributed.md describes the mechanism, the guarantees and operations.
"""

from __future__ import annotations

from arrowloop.distributed._changes import SegmentChanges, request_change, send_change
from arrowloop.distributed._channel import (
    ChannelConfig,
    ChannelName,
    InputPosition,
    NatsSendChannel,
    ensure_stream,
)
from arrowloop.distributed._ends import connect, open_sink, open_source
from arrowloop.distributed._frames import FrameCodec, change_frame, message_id
from arrowloop.distributed._history import gather_history, pipeline_history
from arrowloop.distributed._kvstore import KvStore, bucket_name, open_kv_store, owner_subject
from arrowloop.distributed._receive import NatsReceiveChannel
from arrowloop.distributed._rollback import send_rollback
from arrowloop.distributed._segment import Segment, open_segment, segment_stages
from arrowloop.distributed._shardsource import ShardSource
from arrowloop.distributed._status import pipeline_status, segment_status, status_subject

__all__ = [
    "ChannelConfig",
    "ChannelName",
    "NatsSendChannel",
    "NatsReceiveChannel",
    "InputPosition",
    "FrameCodec",
    "change_frame",
    "message_id",
    "ensure_stream",
    "connect",
    "open_source",
    "ShardSource",
    "open_sink",
    "Segment",
    "KvStore",
    "open_kv_store",
    "bucket_name",
    "owner_subject",
    "open_segment",
    "segment_stages",
    "SegmentChanges",
    "send_change",
    "request_change",
    "send_rollback",
    "pipeline_history",
    "gather_history",
    "pipeline_status",
    "segment_status",
    "status_subject",
]
