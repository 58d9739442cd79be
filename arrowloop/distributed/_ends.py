"""Connecting to the broker, and the two ends of a distributed pipeline.

A *source* publishes items into a channel (the one feeding a pipeline's
first stage); a *sink* reads a channel (``out``, what the last stage
produces). Both are plain channel halves on a connection of their own.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

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


@asynccontextmanager
async def open_source(
    url: str,
    pipeline: str,
    channel: str,
    item_type: Type | None = None,
    *,
    producer: str = "source",
    config: ChannelConfig | None = None,
) -> AsyncIterator[NatsSendChannel]:
    """A sending half into ``channel`` of ``pipeline`` (its stream made if missing).

    ``item_type`` checks and encodes items (``None``: plain JSON values).
    Send items with ``await ch.send([...])``, then ``await ch.flush()``;
    ``await ch.send(EndMsg())`` ends the stream.
    """
    config = ChannelConfig() if config is None else config
    name = ChannelName(pipeline, channel)
    async with connect(url) as nc:
        js = nc.jetstream()
        await ensure_stream(js, name, config)
        codec = FrameCodec(item_type)
        yield NatsSendChannel(js, name, codec, producer, config, max_payload=nc.max_payload)


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
