"""JSON lines pushed in as they arrive: the framing of :class:`LineReader`,
for a connection driven by its transport's callbacks.

A reader pulls bytes from a stream and waits for them; a protocol is handed
them (``data_received``) and must not wait. :class:`LineFeed` takes each
chunk as it comes and keeps the complete lines ready to be taken in
batches, with the same framing as the reader: ``\\n`` ends a line and a
``\\r`` before it is dropped, blank lines are left out, a line longer than
the limit is reported once, in its place, as :class:`LineTooLong` with its
size, and skipped without being kept (its bytes are counted and dropped as
they arrive), and at the end a last line without a newline is a line.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Final

from arrowloop.endpoints._lines import BufferBudget, LineTooLong

__all__ = ["LineFeed"]

#: The bytes ``bytes.strip`` removes (``\r`` is looked for on its own).
_BLANK: Final = frozenset(b" \t\n\x0b\x0c")
#: A line starting with one of them, after a newline.
_STARTS_BLANK: Final = tuple(b"\n" + bytes([c]) for c in sorted(_BLANK))


class LineFeed:
    """Lines of at most ``max_line`` bytes, fed in chunks, taken in batches.

    What it holds (the partial last line and the lines not taken yet) is
    counted against ``budget``; when the budget evicts it, what it holds is
    dropped, nothing more is taken in, and ``on_evict`` is called.
    """

    __slots__ = (
        "_budget",
        "_held",
        "_max",
        "_on_evict",
        "_partial",
        "_ready",
        "_skipped",
        "ended",
        "evicted",
    )

    def __init__(
        self,
        max_line: int,
        *,
        budget: BufferBudget | None = None,
        on_evict: Callable[[], None] | None = None,
    ) -> None:
        if max_line < 1:
            raise ValueError(f"expected max_line >= 1, found {max_line}")
        self._max = max_line
        self._budget = budget
        self._on_evict = on_evict
        self._partial = b""  # after the last newline seen
        self._ready: deque[bytes | LineTooLong] = deque()
        self._held = 0  # bytes of the lines in _ready
        # Bytes of an over-long line seen so far (None: not in one).
        self._skipped: int | None = None
        #: Whether the end of the stream was fed (:meth:`end`).
        self.ended = False
        #: Whether the budget evicted this feed.
        self.evicted = False

    @property
    def ready(self) -> int:
        """How many lines (and over-long line reports) are ready to be taken."""
        return len(self._ready)

    def feed(self, data: bytes) -> None:
        """Take in the next bytes of the stream."""
        if self.ended or self.evicted or not data:
            return
        if self._skipped is not None:
            i = data.find(b"\n")
            if i < 0:
                self._skipped += len(data)
                return
            self._ready.append(LineTooLong(self._skipped + i, self._max))
            self._skipped = None
            data = data[i + 1 :]
        chunk = self._partial + data if self._partial else data
        end = chunk.rfind(b"\n")
        if end >= 0:
            self._split(chunk[:end])
            chunk = chunk[end + 1 :]
        if len(chunk) > self._max:
            self._skipped = len(chunk)  # dropped: only its size is kept
            chunk = b""
        self._partial = chunk
        self._count()

    def end(self) -> None:
        """The stream ended: a last line without a newline is a line."""
        if self.ended or self.evicted:
            return
        self.ended = True
        if self._skipped is not None:
            self._ready.append(LineTooLong(self._skipped, self._max))
            self._skipped = None
        elif self._partial.strip():
            # Unterminated, so a ``\r`` at its end is part of it, as for
            # the reader (only ``\r\n`` ends a line).
            self._ready.append(self._partial)
            self._held += len(self._partial)
        self._partial = b""
        self._count()

    def take(self, limit: int) -> list[bytes | LineTooLong]:
        """Up to ``limit`` lines ready now, in order (empty if none is)."""
        ready = self._ready
        if not ready or limit <= 0:
            return []
        if limit >= len(ready):
            out = list(ready)
            ready.clear()
            self._held = 0
        else:
            out = [ready.popleft() for _ in range(limit)]
            self._held -= sum(len(x) for x in out if type(x) is bytes)
        self._count()
        return out

    def evict(self) -> None:
        """Drop what is held and take nothing more (a budget's decision)."""
        self.evicted = True
        self._ready.clear()
        self._partial = b""
        self._held = 0
        self._skipped = None
        self.release()
        if self._on_evict is not None:
            self._on_evict()

    def release(self) -> None:
        """Stop counting against the budget (the connection is done)."""
        if self._budget is not None:
            self._budget.update(self, 0)

    def _split(self, block: bytes) -> None:
        """The complete lines of ``block`` (the bytes before its last newline)."""
        lines = block.split(b"\n")
        ready = self._ready
        if (
            block
            and b"\r" not in block
            and block[0] not in _BLANK
            and block[-1] != 10  # an empty last line (b"\n")
            and not any(b in block for b in _STARTS_BLANK)
            and max(map(len, lines)) <= self._max
        ):
            # The common case: one split, nothing to drop, no line to look
            # at closely. (A blank line starts with a blank: the scans for
            # those, a few per read, save a strip per line.)
            ready.extend(lines)
            self._held += len(block)
            return
        for line in lines:
            if len(line) > self._max:  # counted with its \r, as by the reader
                ready.append(LineTooLong(len(line), self._max))
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            if line.strip():
                ready.append(line)
                self._held += len(line)

    def _count(self) -> None:
        if self._budget is not None:
            self._budget.update(self, len(self._partial) + self._held)
