"""JSON lines over a byte stream: bounded line reading and batched writing.

The framing of both server protocols: one JSON document per line, ``\\n``
terminated. :class:`LineReader` never buffers more than its limit: a line
that grows past it is skipped up to its newline and reported as
:class:`LineTooLong`, so the connection stays usable and the next line is
read normally.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

import anyio
from anyio.abc import ByteReceiveStream

__all__ = [
    "LineReader",
    "LineTooLong",
    "BufferBudget",
    "BufferHolder",
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_BUFFERED",
    "READ_CHUNK",
    "describe_json",
]

#: Default longest line, in bytes (the newline excluded).
DEFAULT_MAX_LINE: Final = 1 << 20
#: How much one read asks the socket for.
READ_CHUNK: Final = 1 << 16
#: Default most bytes all the readers sharing a budget may hold together.
DEFAULT_MAX_BUFFERED: Final = 128 * 1024 * 1024


class LineTooLong(Exception):
    """A line was longer than the reader's limit; it has been skipped.

    ``size`` is how many bytes of it were seen (at least the limit + 1).
    """

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"line of {size} bytes exceeds the limit of {limit} bytes")
        self.size = size
        self.limit = limit


class BufferHolder(Protocol):
    """What a :class:`BufferBudget` counts: a reader of a connection's bytes."""

    def evict(self) -> None:
        """Drop what is held and read nothing more; tell the budget it holds 0."""


class BufferBudget:
    """A bound on the bytes held by many :class:`LineReader` s together.

    Each reader bounds its own buffer by its line limit, but a server with
    a thousand connections each holding most of a long partial line holds
    gigabytes. A reader tells its budget what it holds after each read;
    when the total goes over ``limit``, the readers holding the most are
    evicted (their buffers dropped, their ``on_evict`` called, their next
    read an end of stream) until the total is back under three quarters of
    the limit, so a flood is cut back in one go rather than one victim per
    read. ``evicted`` counts them.
    """

    def __init__(self, limit: int = DEFAULT_MAX_BUFFERED) -> None:
        if limit < 1:
            raise ValueError(f"expected a buffer budget >= 1 byte, found {limit}")
        self.limit = limit
        self.total = 0
        self.evicted = 0
        self._held: dict[BufferHolder, int] = {}

    def update(self, reader: BufferHolder, held: int) -> None:
        """``reader`` now holds ``held`` bytes; evict if that is too much."""
        old = self._held.get(reader, 0)
        if held == old:
            return
        self.total += held - old
        if held:
            self._held[reader] = held
        else:
            del self._held[reader]
        if self.total > self.limit:
            self._evict()

    def _evict(self) -> None:
        target = self.limit * 3 // 4
        for victim in sorted(self._held, key=self._held.__getitem__, reverse=True):
            if self.total <= target:
                break
            self.evicted += 1
            victim.evict()  # calls update(victim, 0)


class LineReader:
    """Reads ``\\n``-terminated lines of at most ``max_line`` bytes from a stream."""

    __slots__ = ("_budget", "_buf", "_eof", "_max", "_on_evict", "_scan", "_stream", "evicted")

    def __init__(
        self,
        stream: ByteReceiveStream,
        max_line: int = DEFAULT_MAX_LINE,
        *,
        budget: BufferBudget | None = None,
        on_evict: Callable[[], None] | None = None,
    ) -> None:
        if max_line < 1:
            raise ValueError(f"expected max_line >= 1, found {max_line}")
        self._stream = stream
        self._max = max_line
        self._buf = bytearray()
        self._scan = 0  # bytes of _buf known to hold no newline
        self._eof = False
        self._budget = budget
        self._on_evict = on_evict
        #: Whether the budget evicted this reader (it then reads nothing more).
        self.evicted = False

    def evict(self) -> None:
        """Drop what is buffered and end the stream here (a budget's decision)."""
        self.evicted = True
        self._eof = True
        self._buf = bytearray()
        self._scan = 0
        self.release()
        if self._on_evict is not None:
            self._on_evict()

    def release(self) -> None:
        """Stop counting against the budget (the connection is done)."""
        if self._budget is not None:
            self._budget.update(self, 0)

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
        buf = self._buf
        end = buf.rfind(b"\n", self._scan)
        if end < 0:
            self._scan = len(buf)
            return []
        # Every complete line at once (one split, not a search and a copy
        # per line), unless one of them needs a closer look.
        chunk = bytes(buf[:end])
        lines = chunk.split(b"\n")
        if len(lines) <= limit and b"\r" not in chunk and max(map(len, lines)) <= self._max:
            del buf[: end + 1]
            self._scan = 0
            return [line for line in lines if line.strip()]
        return self._take_lines_one_by_one(limit)

    def _take_lines_one_by_one(self, limit: int) -> list[bytes | LineTooLong]:
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
        if self._eof:
            return False
        budget = self._budget
        if budget is not None:
            budget.update(self, len(self._buf))  # what it holds while it waits
        try:
            chunk = await self._stream.receive(READ_CHUNK)
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._eof = True
            return False
        if self._eof:  # evicted while waiting
            return False
        self._buf += chunk
        if budget is not None:
            budget.update(self, len(self._buf))
            if self._eof:
                return False
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

    async def receive_lines(self, limit: int) -> list[bytes | LineTooLong] | None:
        """Up to ``limit`` lines, at least one, as :meth:`take_lines` gives
        them, reading only while none is buffered; ``None`` at the end of
        the stream (a last line without a newline is a line, as with
        :meth:`receive_line`)."""
        while True:
            lines = self.take_lines(limit)
            if lines:
                return lines
            if len(self._buf) <= self._max and not self._eof and await self._fill():
                continue  # more bytes: look again
            # An over-long partial line, or the end: receive_line knows both.
            try:
                line = await self.receive_line()
            except LineTooLong as exc:
                return [exc, *self.take_lines(limit - 1)]
            if line is None:
                return None
            if line.strip():
                return [line, *self.take_lines(limit - 1)]

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


def describe_json(value: object) -> str:
    """What a parsed JSON value is, in JSON's own terms (``an array``, ``the
    number 7``), for the ``found`` of an error about a request: clients in
    other languages know JSON's names, not Python's (``list``, ``int``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"the number {value!r:.40}"
    if isinstance(value, str):
        return f"the string {value!r:.60}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__  # pragma: no cover - a JSON parser makes nothing else
