"""Clients of the two server protocols (docs/protocol.md), for the CLI,
scripts and tests.

:class:`ControlClient` sends one control request at a time and returns its
``result``; :class:`DataClient` sends items and reads replies, pipelining
as many as the caller likes. Both raise :class:`Unreachable` when the
server cannot be reached and :class:`RemoteError` when it answers with an
error.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any, Final, Self

import anyio
import orjson
from anyio.abc import SocketStream

from arrowloop.endpoints import LineReader
from arrowloop.errors import ArrowloopError

__all__ = ["ControlClient", "DataClient", "RemoteError", "Unreachable", "MAX_REPLY"]

#: Longest reply line a client accepts, in bytes.
MAX_REPLY: Final = 64 * 1024 * 1024
#: Requests up to this size go out without a separate ``auth`` first (a
#: server's limit before authentication is at least 4 KiB, 64 KiB by default).
_SMALL: Final = 2048


class Unreachable(ArrowloopError):
    """The server could not be reached, or closed the connection early."""


class RemoteError(ArrowloopError):
    """The server answered with an error (``error`` is its data: ``type``,
    ``message`` and, where known, ``path``, ``expected``, ``found``,
    ``stage``, ``reason``, ``cause``)."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(str(error.get("message", error)))
        self.error = error

    @property
    def type(self) -> str:
        """The error's type name as the server reported it."""
        return str(self.error.get("type", "Error"))


async def _connect(host: str, port: int, limit: float) -> SocketStream:
    try:
        with anyio.fail_after(limit):
            return await anyio.connect_tcp(host, port)
    except (OSError, TimeoutError) as exc:
        raise Unreachable(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from None


class _Lines:
    def __init__(self, stream: SocketStream, where: str) -> None:
        self.stream = stream
        self.where = where
        self.reader = LineReader(stream, MAX_REPLY)

    async def send(self, data: bytes) -> None:
        try:
            await self.stream.send(data)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise Unreachable(f"the connection to {self.where} broke: {exc}") from None

    async def receive(self) -> Any:
        line = await self.reader.receive_line()
        if line is None:
            raise Unreachable(f"{self.where} closed the connection before replying")
        try:
            return orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise Unreachable(f"{self.where} sent a reply that is not JSON: {exc}") from None


class _Connection:
    """One connection to a server port, opened by ``async with``."""

    _what = "port"

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._lines: _Lines | None = None

    async def __aenter__(self) -> Self:
        stream = await _connect(self.host, self.port, self.timeout)
        self._lines = _Lines(stream, f"the {self._what} {self.host}:{self.port}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._lines is not None:
            await self._lines.stream.aclose()

    def _open(self) -> _Lines:
        assert self._lines is not None, "use the client in 'async with'"
        return self._lines

    async def _reply(self, request: bytes | None = None) -> dict[str, Any]:
        """Send ``request`` (if any), then read one reply object, within the timeout."""
        lines = self._open()
        try:
            with anyio.fail_after(self.timeout):
                if request is not None:
                    await lines.send(request)
                reply = await lines.receive()
        except TimeoutError:
            raise Unreachable(
                f"no reply from {self.host}:{self.port} within {self.timeout} s"
            ) from None
        if type(reply) is not dict:
            raise Unreachable(f"unexpected reply {reply!r:.80}")
        return reply


class ControlClient(_Connection):
    """A connection to a control port (``async with ControlClient(...)``)."""

    _what = "control port"

    def __init__(self, host: str, port: int, token: str | None, *, timeout: float = 30.0) -> None:
        super().__init__(host, port, timeout=timeout)
        self.token = token
        self._next_id = 0
        self._authed = False

    async def request(self, op: str, **fields: Any) -> Any:
        """Send one request and return its ``result``.

        Raises:
            RemoteError: the server refused it (``error`` says why).
            Unreachable: the connection failed or timed out.
        """
        self._next_id += 1
        req: dict[str, Any] = {"id": self._next_id, "op": op, **fields}
        if self.token is not None:
            req["token"] = self.token
        line = orjson.dumps(req) + b"\n"
        if not self._authed and op != "auth" and len(line) > _SMALL:
            # The server reads only small requests before the token is
            # verified: authenticate with a small one first.
            await self.request("auth")
        reply = await self._reply(line)
        if not reply.get("ok"):
            raise RemoteError(reply.get("error") or {"message": "refused"})
        self._authed = True
        return reply.get("result")


class DataClient(_Connection):
    """A connection to a data port (``async with DataClient(...)``)."""

    _what = "data port"

    async def send(self, items: Iterable[Any], *, version: str | None = None) -> int:
        """Send items (their JSON value forms) without waiting; returns how many."""
        out = self._open()
        lines = []
        for item in items:
            req: dict[str, Any] = {"item": item}
            if version is not None:
                req["version"] = version
            lines.append(orjson.dumps(req) + b"\n")
        if lines:
            await out.send(b"".join(lines))
        return len(lines)

    async def send_raw(self, data: bytes) -> None:
        """Send bytes as they are (for clients that build their own lines)."""
        await self._open().send(data)

    async def reply(self) -> dict[str, Any]:
        """The next reply line: ``{"output": ...}`` or ``{"error": ...}``."""
        return await self._reply()

    async def call(self, item: Any, *, version: str | None = None) -> Any:
        """Send one item and return its output.

        Raises:
            RemoteError: the server replied with an error.
        """
        await self.send([item], version=version)
        reply = await self.reply()
        if "error" in reply:
            raise RemoteError(reply["error"])
        return reply.get("output")
