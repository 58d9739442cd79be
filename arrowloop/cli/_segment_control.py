"""The control port of a segment served with ``serve --nats ... --control-port N``:
its own connection to the broker, the server's token handling (the token
file, made on first start if missing), and the control protocol for the
whole pipeline (``arrowloop.distributed._control``)."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from arrowloop.server import ControlLimits, server_token
from arrowloop.wire import Limits

__all__ = ["open_segment_control"]


@asynccontextmanager
async def open_segment_control(
    args: argparse.Namespace, url: str, first: str, pipeline: str, shards: int | None = None
) -> AsyncIterator[tuple[tuple[str, int], str] | None]:
    """Serve the control port ``args.control_port`` asks for (``None`` and
    nothing served without it) for the block; yields the bound address and
    where the token comes from. ``shards``: the first stage's, if sharded
    (changes go to each shard's channel).

    Raises:
        OSError: the port cannot be bound.
    """
    if args.control_port is None:
        yield None
        return
    from arrowloop.cli._segment_port import open_control_port
    from arrowloop.distributed import connect
    from arrowloop.distributed._control import SegmentControl

    token = server_token(Path(args.token_file) if args.token_file else None)
    limits = ControlLimits(
        max_request=args.max_request_bytes,
        program=Limits(max_bytes=args.max_request_bytes, max_nodes=args.max_program_nodes),
    )
    async with (
        connect(url) as nc,
        open_control_port(
            SegmentControl(nc, pipeline, first, shards=shards),
            token,
            host=args.control_host,
            port=args.control_port,
            limits=limits,
            auth_timeout=args.auth_timeout if args.auth_timeout > 0 else None,
            idle_timeout=args.idle_timeout if args.idle_timeout > 0 else None,
            connections=args.control_connections,
        ) as address,
    ):
        yield address, token.source
