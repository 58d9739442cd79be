"""JSON lines over a byte stream: bounded line reading and batched writing.

The framing of both server protocols: one JSON document per line, ``\\n``
terminated. :class:`LineReader` never buffers more than its limit: a line
that grows past it is skipped up to its newline and reported as
:class:`LineTooLong`, so the connection stays usable and the next line is
read normally.
"""

from __future__ import annotations

from typing import Final

import anyio
from anyio.abc import ByteReceiveStream

__all__ = ["LineReader", "LineTooLong", "DEFAULT_MAX_LINE", "READ_CHUNK"]

#: Default longest line, in bytes (the newline excluded).
DEFAULT_MAX_LINE: Final = 1 << 20
#: How much one read asks the socket for.
READ_CHUNK: Final = 1 << 16


class LineTooLong(Exception):
    """A line was longer than the reader's limit; it has been skipped.

    ``size`` is how many bytes of it were seen (at least the limit + 1).
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"line of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class LineReader:
    """Reads ``\\n``-terminated lines of at most ``max_line`` bytes from a stream."""

    __slots__ = ("_buf", "_eof", "_max", "_scan", "_stream")

    def __init__(self, stream: ByteReceiveStream, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError(f"expected max_line >= 1, found {max_line}")
        self._stream = stream
        self._max = max_line
        self._buf = bytearray()
        self._scan = 0  # bytes of _buf known to hold no newline
        self._eof = False

    @property
    def max_line(self) -> int:
        """The longest line accepted now (a protocol may raise it once a
        client is trusted, as the control port does after the token)."""
        return self._max

    @max_line.setter
    def max_line(self, value: int) -> None:
        if value < 1:
            raise ValueError(f"expected max_line >= 1, found {value}")
        self._max = value

    def buffered_line(self) -> bytes | None:
        """The next complete line already received, without reading (or None)."""
        i = self._buf.find(b"\n", self._scan)
        if i < 0:
            self._scan = len(self._buf)
            return None
        line = bytes(self._buf[:i])
        del self._buf[: i + 1]
        self._scan = 0
        if len(line) > self._max:
            raise LineTooLong(len(line), self._max)
        return line

    def take_lines(self, limit: int) -> list[bytes | LineTooLong]:
        """Up to ``limit`` complete lines already received, without reading.

        Each is a line without its newline (``\\r\\n`` accepted), or, in its
        place, the :class:`LineTooLong` of a line over the limit (skipped):
        a server reading a batch answers each line in order. Blank lines are
        left out. Empty when no complete line is buffered.
        """
        out: list[bytes | LineTooLong] = []
        while len(out) < limit:
            try:
                line = self.buffered_line()
            except LineTooLong as exc:
                out.append(exc)
                continue
            if line is None:
                break
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.strip():
                out.append(line)
        return out

    async def _fill(self) -> bool:
        try:
            chunk = await self._stream.receive(READ_CHUNK)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._eof = True
            return False
        self._buf += chunk
        return True

    async def receive_line(self) -> bytes | None:
        """The next line without its newline (``\\r\\n`` is accepted too), or
        ``None`` at the end of the stream. A last line without a newline is
        returned as a line.

        Raises:
            LineTooLong: the next line exceeded the limit; it was skipped.
        """
        while True:
            line = self.buffered_line()
            if line is not None:
                return line[:-1] if line.endswith(b"\r") else line
            if len(self._buf) > self._max:
                await self._skip_rest()
            if self._eof or not await self._fill():
                if self._buf:
                    rest = bytes(self._buf)
                    self._buf.clear()
                    self._scan = 0
                    if len(rest) > self._max:
                        raise LineTooLong(len(rest), self._max)
                    return rest
                return None

    async def _skip_rest(self) -> None:
        """Drop an over-long line up to and including its newline, then raise."""
        size = len(self._buf)
        self._buf.clear()
        self._scan = 0
        while True:
            if not await self._fill():
                raise LineTooLong(size + len(self._buf), self._max)
            i = self._buf.find(b"\n")
            if i >= 0:
                size += i
                del self._buf[: i + 1]
                raise LineTooLong(size, self._max)
            size += len(self._buf)
            self._buf.clear()
