"""The control port of a segment (``serve --nats ... --control-port N``): the
server's control connections (token first, limits, throttled refusals,
timeouts) with the distributed pipeline's handlers
(``arrowloop.distributed._control``). Imported only with the nats extra."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import SocketAttribute, SocketStream

from arrowloop.distributed._control import CONTROL_HANDLERS, SegmentControl
from arrowloop.server import ControlLimits, Token
from arrowloop.server._control import serve_control_connection
from arrowloop.server._guards import AuthThrottle

__all__ = ["open_control_port"]


@asynccontextmanager
async def open_control_port(
    control: SegmentControl,
    token: Token,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    limits: ControlLimits | None = None,
    auth_timeout: float | None = 10.0,
    idle_timeout: float | None = 300.0,
    connections: int = 16,
) -> AsyncIterator[tuple[str, int]]:
    """Serve the control protocol for ``control`` on ``host:port`` for the
    block's duration; yields the bound address.

    The server's own connection code (token first, limits, throttled
    refusals of wrong tokens, timeouts); at most ``connections`` at a time,
    those over it closed at once.

    Raises:
        OSError: the port cannot be bound.
    """
    limits = ControlLimits() if limits is None else limits
    throttle = AuthThrottle()
    slots = anyio.CapacityLimiter(connections)
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)

    async def serve(stream: SocketStream) -> None:
        async with stream:
            try:
                slots.acquire_nowait()
            except anyio.WouldBlock:
                return  # over the limit: closed
            try:
                peer = stream.extra(SocketAttribute.remote_address)
                await serve_control_connection(
                    control,
                    stream,
                    token,
                    limits,
                    auth_timeout=auth_timeout,
                    idle_timeout=idle_timeout,
                    throttle=throttle,
                    address=str(peer[0]) if isinstance(peer, tuple) else None,
                    handlers=CONTROL_HANDLERS,
                )
            finally:
                slots.release()

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, serve)
        sock = listener.listeners[0].extra(SocketAttribute.local_address)
        assert isinstance(sock, tuple)
        try:
            yield str(sock[0]), int(sock[1])
        finally:
            tg.cancel_scope.cancel()
