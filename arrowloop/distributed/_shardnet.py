"""Sharded stages across processes: the channels of the shards, the router
before them and the end of stream after them.

A stage made with ``shard_key`` and ``shards=N`` runs across processes as N
*shard segments*, each a segment (``_segment.py``) of one replica of the
stage with its own store. Shard ``k`` reads a channel of its own,
:func:`shard_channel` (a stream per shard, so its positions are contiguous
and its exactly-once commit is the segment's, unchanged).

The segment before the stage sends through a :class:`ShardRouter`: each
output goes to the shard its key hashes to (the in-process hash,
``arrowloop.runtime._shards.shard_of``, so a key has the same shard in and
across processes), and at each cut the outputs of the input there are
published to every shard's stream under IDs that add the shard to
(producer, position, part): a replay after a crash republishes every
shard's frames under the IDs they had. A code change passed on and end of
stream go to every shard, numbered after the items.

All shards publish into the stage's one next channel, each as a producer
named :func:`shard_producer` (``...~kofN``). Per key the order holds: one
key is one shard, each shard's input is a stream in order, and its outputs
are published in order. The receiving half of the next channel ends the
stream only at the end of stream of the Nth shard (:func:`merge_end`); the
ends seen before are committed with the reader's watermarks, so a reader
restarted after some shards ended still waits for the others only.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from typing import Any

import attrs
from anyio import WouldBlock

from arrowloop.distributed._changes import SegmentChanges
from arrowloop.distributed._channel import (
    ChannelName,
    Commit,
    InputPosition,
    NatsSendChannel,
)
from arrowloop.distributed._frames import END, Frame
from arrowloop.errors import ArrowloopError, UpgradeError
from arrowloop.machine import Function
from arrowloop.runtime import ChannelStatistics, CutMsg, EndMsg, Reply, StageSpec, UpgradeMsg
from arrowloop.runtime._shards import shard_of

__all__ = [
    "ShardChanges",
    "ShardRouter",
    "check_shards",
    "merge_end",
    "producer_shard",
    "replica_spec",
    "shard_channel",
    "shard_producer",
]

log = logging.getLogger("arrowloop.distributed")

_SHARD = re.compile(r"~(\d+)of(\d+)$")


def shard_channel(stage: str, shard: int) -> str:
    """The channel (and so stream) feeding shard ``shard`` of ``stage``."""
    return f"{stage}.shard{shard}"


def shard_producer(producer: str, shard: int, shards: int) -> str:
    """The producer name of shard ``shard`` of ``shards`` in message IDs
    (what tells the next channel's reader how many ends to wait for)."""
    return f"{producer}~{shard}of{shards}"


def producer_shard(producer: str) -> tuple[str, int, int] | None:
    """``(stage producer, shard, shards)`` of a shard's producer name, else ``None``."""
    m = _SHARD.search(producer)
    if m is None:
        return None
    shard, shards = int(m.group(1)), int(m.group(2))
    if not 0 <= shard < shards:
        return None
    return producer[: m.start()], shard, shards


def _end_note(producer: str) -> str:
    return f"~end:{producer}"


def merge_end(
    producer: str, watermarks: dict[str, tuple[int, int]]
) -> tuple[bool, tuple[tuple[str, int, int], ...]]:
    """Whether end of stream from ``producer`` ends the channel, and the
    watermark notes to commit with it.

    An end from a shard is noted in ``watermarks`` (committed with the
    reader's state, restored with it); the channel ends at the end of the
    last of the ``N`` shards. Any other producer's end ends the channel.
    """
    shard = producer_shard(producer)
    if shard is None:
        return True, ()
    base, _, shards = shard
    note = _end_note(producer)
    watermarks[note] = (1, 0)
    ended = sum(_end_note(shard_producer(base, i, shards)) in watermarks for i in range(shards))
    return ended == shards, ((note, 1, 0),)


def replica_spec(spec: StageSpec) -> StageSpec:
    """One replica of the sharded stage ``spec``: the stage a shard segment runs."""
    return attrs.evolve(spec, shards=1, shard_key=None)


class ShardRouter:
    """The sending half of a segment whose next stage is sharded across
    processes: routes each output by its key to one of ``senders`` (one per
    shard, in shard order) and publishes each input's outputs at its cut.

    Outputs are held until the cut (they are what one input produced, so
    about a frame's worth), then each shard's are published in frames under
    IDs derived from the input position; an item whose key function raises
    is dropped and counted (``unroutable``), alike on every replay.
    """

    def __init__(
        self,
        name: ChannelName,
        senders: list[NatsSendChannel],
        key: Function,
        positions: deque[int],
        commit: Commit,
    ) -> None:
        self.name = name
        self.senders = senders
        self._key = key
        self._positions = positions
        self._commit = commit
        self._bufs: list[list[Any]] = [[] for _ in senders]
        self.closed = False
        #: Items whose key function raised (dropped).
        self.unroutable = 0

    @property
    def published(self) -> int:
        """Broker messages published, to every shard."""
        return sum(s.published for s in self.senders)

    @property
    def duplicates(self) -> int:
        """Of those, the ones the broker had already (replays)."""
        return sum(s.duplicates for s in self.senders)

    @property
    def waits(self) -> int:
        """Publishes that waited for room (a full shard channel)."""
        return sum(s.waits for s in self.senders)

    def _route(self, items: list[Any]) -> None:
        bufs, key, n = self._bufs, self._key, len(self._bufs)
        for x in items:
            try:
                k = shard_of(key(x), n)
            except Exception as exc:
                self.unroutable += 1
                log.error("channel %s: the shard key of an item raised: %s", self.name.stream, exc)
                continue
            bufs[k].append(x)

    def send_nowait(self, message: Any) -> None:
        """Route a batch (published at the cut); anything else needs :meth:`send`."""
        if type(message) is list:
            self._route(message)
            return
        raise WouldBlock

    async def send(self, message: Any) -> None:
        """Route items, publish at a cut, or note end of stream (sent at its cut).

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
        else:
            raise TypeError(
                f"a networked channel carries plain items, cuts and end of stream, "
                f"not {t.__name__} (not yet: see docs/distributed.md)"
            )

    async def _cut(self, cut: CutMsg, at: InputPosition) -> None:
        then = [f for f in (at.forward, END if at.end else None) if f is not None]
        for k, sender in enumerate(self.senders):
            items, self._bufs[k] = self._bufs[k], []
            await sender.send_at(at.position, items, then)
        # Every shard's part of this input is confirmed: commit there.
        await self._commit(cut, at)
        self._positions.popleft()

    async def flush(self) -> None:
        """Nothing to do: items are published at their input's cut."""

    def close(self) -> None:
        """Send no more."""
        self.closed = True

    def statistics(self) -> ChannelStatistics:
        """Items routed and not yet published."""
        held = sum(len(b) for b in self._bufs)
        frame = sum(s.statistics().capacity for s in self.senders)
        return ChannelStatistics(held, 0, frame, self.closed)


def check_shards(stages: list[StageSpec], first: int, count: int) -> None:
    """Refuse a segment of ``count`` stages from ``first`` whose sharding is
    not built across processes.

    Raises:
        ArrowloopError: a sharded stage with other stages in its segment, as
            the pipeline's first stage (a source does not route by key), or
            followed by another sharded stage.
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
        if i == 0:
            raise ArrowloopError(
                f"stage {s.name!r} is sharded and first: a source does not route by key "
                "across processes yet; put a stage before it"
            )
        if i + 1 < len(stages) and stages[i + 1].sharded:
            raise ArrowloopError(
                f"stages {s.name!r} and {stages[i + 1].name!r} are both sharded: two sharded "
                "stages in a row do not run across processes yet"
            )


class ShardChanges(SegmentChanges):
    """What a shard segment does with code changes: what any segment does,
    with the same outcome on every shard.

    Every shard gets a copy of a change at the same place of the router's
    output (one cut), checks it against the same machine version and
    applies it there. So that no shard can refuse what another applies, a
    change of the sharded stage must keep its state as it is (no
    migration: one could fail on some shards' states only), and a change of
    stages further on is refused (passing it on needs the next channel's
    reader to align the shards' copies: not built yet).
    """

    def __call__(self, frame: Frame, position: int, raw: bytes) -> tuple[list[Any], bytes | None]:
        """The runtime messages ``frame`` becomes here (nothing is passed on)."""
        messages, forward = super().__call__(frame, position, raw)
        stage = ",".join(a.name for a in self._actors)
        refusal: UpgradeError | None = None
        if forward is not None:
            refusal = UpgradeError(
                f"a change of stages after the sharded stage {stage!r} is not built yet "
                "across processes",
                stage=stage,
                reason="after shards",
            )
            reply = Reply()
            self.replies.append((frame.reply, position, reply))
        elif any(
            isinstance(m, UpgradeMsg) and any(c.migrate is not None for c in m.changes.values())
            for m in messages
        ):
            refusal = UpgradeError(
                f"stage {stage!r} is sharded across processes: a change of it keeps the "
                "state as it is (a migration could fail on some shards only)",
                stage=stage,
                reason="sharded migration",
            )
            reply = self.replies[-1][2]
        if refusal is None:
            return messages, forward
        reply.fail(refusal)
        return [], None
