"""A hand-written counter server speaking the data protocol: the baseline of ``server.py``.

What a competent engineer would write for the counter service without
arrowloop: one ``asyncio.Protocol`` on uvloop, JSON lines parsed with orjson,
the count in a variable. It keeps the parts of the protocol a fair
comparison needs: every line parsed and checked (an object with ``item``,
an optional ``id`` echoed back), the two messages of counter v1
(``IncrCount`` -> ``Ack``, ``ReadCount`` -> ``Count``), an error reply for
anything else, a bounded line length, replies in request order, and
backpressure (a client that does not read its replies stops being read).
It has none of arrowloop's work: no types, no pipeline, no upgrades.

Run: ``python benchmarks/handwritten.py --ready-file F`` (ephemeral port on
127.0.0.1, written to ``F`` as ``{"data": {"host": ..., "port": ...}}``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any, Final, cast

import orjson

__all__ = ["CounterProtocol", "main"]

MAX_LINE: Final = 1 << 20

_ACK: Final[dict[str, Any]] = {"tag": "Ack", "value": {}}


class CounterProtocol(asyncio.Protocol):
    """One client connection of the hand-written counter."""

    count = 0  # one count for the whole server, as the service has one stage

    def __init__(self) -> None:
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)

    def pause_writing(self) -> None:
        # The client is not reading its replies: stop reading its requests.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        lines = buf.split(b"\n")
        self._buf = lines.pop()
        out = [self._answer(line) for line in lines if line.strip()]
        if len(self._buf) > MAX_LINE:
            self._buf = b""  # a real server would skip to the newline; enough here
            out.append(_error(None, f"expected a line of at most {MAX_LINE} bytes"))
        assert self._transport is not None
        self._transport.write(b"".join(out))

    def _answer(self, line: bytes) -> bytes:
        try:
            req = orjson.loads(line)
        except orjson.JSONDecodeError:
            return _error(None, "invalid JSON")
        if type(req) is not dict or "item" not in req:
            return _error(None, 'expected an object {"item": ...}')
        rid = req.get("id")
        item = req["item"]
        tag = item.get("tag") if type(item) is dict else None
        if tag == "IncrCount":
            CounterProtocol.count += 1
            body: dict[str, Any] = {"output": _ACK}
        elif tag == "ReadCount":
            body = {"output": {"tag": "Count", "value": {"n": CounterProtocol.count}}}
        else:
            return _error(rid, "expected IncrCount or ReadCount")
        if rid is not None:
            body = {"id": rid, **body}
        return orjson.dumps(body) + b"\n"


def _error(rid: Any, message: str) -> bytes:
    body: dict[str, Any] = {"error": {"kind": "ProtocolError", "message": message}}
    if rid is not None:
        body["id"] = rid
    return orjson.dumps(body) + b"\n"


def _write_ready(path: str, data: dict[str, Any]) -> None:
    tmp = Path(f"{path}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)  # readers never see a half-written file


async def serve(ready_file: str | None) -> None:
    """Serve on an ephemeral loopback port until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(CounterProtocol, "127.0.0.1", 0, backlog=1024)
    host, port = server.sockets[0].getsockname()[:2]
    if ready_file:
        _write_ready(ready_file, {"pid": os.getpid(), "data": {"host": host, "port": port}})
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    """Parse the command line and serve (on uvloop when it is installed)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--ready-file", help="write the bound port here (JSON) once listening")
    args = ap.parse_args()
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        asyncio.run(serve(args.ready_file))
    else:
        uvloop.run(serve(args.ready_file))


if __name__ == "__main__":
    main()
