"""Connecting to the broker, and the two ends of a distributed pipeline.

A *source* publishes items into a channel (the one feeding a pipeline's
first stage); a *sink* reads a channel (``out``, what the last stage
produces). Both are plain channel halves on a connection of their own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any, overload

import anyio
import nats
import nats.errors
from nats.aio.client import Client

from arrowloop.distributed._channel import (
    ChannelConfig,
    ChannelName,
    NatsSendChannel,
    ensure_stream,
)
from arrowloop.distributed._frames import FrameCodec
from arrowloop.distributed._merge import MergeReceiver, merged_channel
from arrowloop.distributed._receive import NatsReceiveChannel
from arrowloop.distributed._shardnet import shard_channel
from arrowloop.distributed._shardsource import ShardSource, check_key
from arrowloop.typesys import Type

__all__ = ["connect", "open_source", "open_sink"]

log = logging.getLogger("arrowloop.distributed")


async def _error(exc: Exception) -> None:
    # The client's own default logs a traceback per failed reconnect; while
    # the broker is away that is one every reconnect_time_wait.
    log.debug("broker: %s: %s", type(exc).__name__, exc)


@asynccontextmanager
async def connect(url: str) -> AsyncIterator[Client]:
    """A connection to the broker at ``url`` that reconnects for ever.

    A broker that restarts stalls its clients (publishes wait, pulls come
    back empty) instead of failing them; what was published and not yet
    acked is still there afterwards, in the stream's files. Failing to
    connect at first is an error.

    Raises:
        nats.errors.NoServersError: the broker could not be reached.
    """
    closing = False

    async def disconnected() -> None:
        if not closing:
            log.warning("broker: disconnected from %s; channels wait until it is back", url)

    async def reconnected() -> None:
        log.warning("broker: reconnected to %s", url)

    nc = await nats.connect(
        url,
        # Two tries at first: a wrong URL is an error to report, not to wait out.
        max_reconnect_attempts=1,
        reconnect_time_wait=0.25,
        allow_reconnect=True,
        error_cb=_error,
        disconnected_cb=disconnected,
        reconnected_cb=reconnected,
    )
    # Connected once: from now on a lost broker is waited for, however long.
    nc.options["max_reconnect_attempts"] = -1
    try:
        yield nc
    finally:
        closing = True
        # Acks are fire-and-forget: push the last ones out before closing.
        with anyio.move_on_after(5):
            with suppress(nats.errors.Error):
                await nc.flush()
        await nc.close()


@overload
def open_source(
    url: str,
    pipeline: str,
    channel: str,
    item_type: Type | None = None,
    *,
    producer: str = "source",
    config: ChannelConfig | None = None,
    shards: None = None,
    shard_key: None = None,
) -> AbstractAsyncContextManager[NatsSendChannel]: ...


@overload
def open_source(
    url: str,
    pipeline: str,
    channel: str,
    item_type: Type | None = None,
    *,
    producer: str = "source",
    config: ChannelConfig | None = None,
    shards: int,
    shard_key: Callable[[Any], Any] | None,
) -> AbstractAsyncContextManager[ShardSource]: ...


def open_source(
    url: str,
    pipeline: str,
    channel: str,
    item_type: Type | None = None,
    *,
    producer: str = "source",
    config: ChannelConfig | None = None,
    shards: int | None = None,
    shard_key: Callable[[Any], Any] | None = None,
) -> AbstractAsyncContextManager[NatsSendChannel | ShardSource]:
    """A sending half into ``channel`` of ``pipeline`` (its stream made if missing).

    ``item_type`` checks and encodes items (``None``: plain JSON values).
    Send items with ``await ch.send([...])``, then ``await ch.flush()``;
    ``await ch.send(EndMsg())`` ends the stream.

    Into a sharded first stage, give its ``shards=N`` and ``shard_key``
    (``spec.stages[0].shard_key``): each item goes to its key's shard's
    channel, end of stream and change frames to every shard
    (:class:`~arrowloop.distributed._shardsource.ShardSource`).

    Raises:
        ArrowloopError: ``shards`` without ``shard_key``, or the other way round.
    """
    check_key(shards, shard_key)
    return _open_source(url, pipeline, channel, item_type, producer, config, shards, shard_key)


@asynccontextmanager
async def _open_source(
    url: str,
    pipeline: str,
    channel: str,
    item_type: Type | None,
    producer: str,
    config: ChannelConfig | None,
    shards: int | None,
    shard_key: Callable[[Any], Any] | None,
) -> AsyncIterator[NatsSendChannel | ShardSource]:
    config = ChannelConfig() if config is None else config
    name = ChannelName(pipeline, channel)
    async with connect(url) as nc:
        js = nc.jetstream()
        codec = FrameCodec(item_type)
        if shards is None or shard_key is None:
            await ensure_stream(js, name, config)
            yield NatsSendChannel(js, name, codec, producer, config, max_payload=nc.max_payload)
            return
        senders = []
        for k in range(shards):
            out = ChannelName(pipeline, shard_channel(channel, k))
            await ensure_stream(js, out, config)
            senders.append(
                NatsSendChannel(
                    js, out, codec, f"{producer}/{k}", config, max_payload=nc.max_payload
                )
            )
        yield ShardSource(name, senders, shard_key)


@asynccontextmanager
async def open_sink(
    url: str,
    pipeline: str,
    channel: str = "out",
    item_type: Type | None = None,
    *,
    config: ChannelConfig | None = None,
    shards: int | None = None,
) -> AsyncIterator[NatsReceiveChannel | MergeReceiver]:
    """A receiving half of ``channel`` of ``pipeline``: take with ``await ch.receive(n)``.

    Each broker message is acked as it is handed out (a sink keeps no
    state to commit); ``anyio.EndOfStream`` after end of stream. After a
    sharded stage of N shards (the pipeline's last), give ``shards=N``: the
    shards' N streams are read, merged (see _merge.py).
    """
    config = ChannelConfig() if config is None else config
    name = ChannelName(pipeline, channel)
    async with connect(url) as nc:
        js = nc.jetstream()
        recv: NatsReceiveChannel | MergeReceiver
        if shards is None:
            await ensure_stream(js, name, config)
            recv = NatsReceiveChannel(js, name, FrameCodec(item_type), config)
        else:
            for k in range(shards):
                await ensure_stream(js, ChannelName(pipeline, merged_channel(channel, k)), config)
            recv = MergeReceiver(js, name, FrameCodec(item_type), config, shards)
        async with anyio.create_task_group() as tg:
            tg.start_soon(recv.run)
            try:
                yield recv
            finally:
                recv.close()
                tg.cancel_scope.cancel()
