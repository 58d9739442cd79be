"""The JSON-lines framing: LineReader over chunked byte streams.

A fake stream hands out given chunks, so every split of the bytes into
reads can be tried; one test reads from a real TCP socket on 127.0.0.1.
The property tests compare the reader with a model of the framing: lines
end at ``\\n``, a ``\\r`` before it is dropped, a last line without a
newline is still a line, and a line longer than the limit (counted up to
its ``\\n``, a ``\\r`` included) is reported once, by size, and skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import anyio
import pytest
from anyio.abc import ByteReceiveStream, SocketAttribute, SocketStream
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop.endpoints import (
    DEFAULT_MAX_LINE,
    READ_CHUNK,
    BufferBudget,
    LineFeed,
    LineReader,
    LineTooLong,
)
from tests.profiles import examples

SETTINGS = settings(max_examples=examples(300), derandomize=True, deadline=None)

#: What a read of the model gives: a line, or ``("too long", size)``.
Event = bytes | tuple[str, int]


class ChunkStream(ByteReceiveStream):
    """A byte stream that returns ``chunks`` one per receive, then ends with ``end``."""

    def __init__(self, chunks: Iterable[bytes], end: type[Exception] = anyio.EndOfStream) -> None:
        self.chunks = [c for c in chunks if c]  # a real stream never returns b""
        self.end = end
        self.receives = 0
        self.asked: list[int] = []

    async def receive(self, max_bytes: int = 65536) -> bytes:
        self.receives += 1
        self.asked.append(max_bytes)
        if not self.chunks:
            raise self.end
        return self.chunks.pop(0)

    async def aclose(self) -> None:
        self.chunks.clear()


async def _read_all(reader: LineReader, max_line: int) -> list[Event]:
    """Every line until the end of the stream, over-long lines as events."""
    out: list[Event] = []
    while True:
        try:
            line = await reader.receive_line()
        except LineTooLong as exc:
            # A wrong limit shows up as a different event, failing the comparison.
            out.append(("too long", exc.size) if exc.limit == max_line else ("limit", exc.limit))
            continue
        if line is None:
            return out
        out.append(line)


def read_chunks(chunks: Iterable[bytes], max_line: int, use_uvloop: bool = False) -> list[Event]:
    """Run a reader over ``chunks`` to the end (in a fresh event loop)."""
    reader = LineReader(ChunkStream(chunks), max_line)
    return anyio.run(
        _read_all, reader, max_line, backend="asyncio", backend_options={"use_uvloop": use_uvloop}
    )


def model(data: bytes, max_line: int) -> list[Event]:
    """What the framing says ``data`` holds."""
    pieces = data.split(b"\n")
    last = pieces.pop()  # after the final newline: a last unterminated line, or nothing
    out: list[Event] = []
    for line in pieces:
        if len(line) > max_line:
            out.append(("too long", len(line)))
        else:
            out.append(line[:-1] if line.endswith(b"\r") else line)
    if last:
        out.append(("too long", len(last)) if len(last) > max_line else last)
    return out


def _split(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


# -- specific cases ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"a\nbb\n"], [b"a", b"bb"]),
        ([b"a", b"b", b"\n", b"c\n"], [b"ab", b"c"]),
        ([b"one\r\ntwo\r\n"], [b"one", b"two"]),
        ([b"one\ntwo"], [b"one", b"two"]),
        ([b"\n\n"], [b"", b""]),
        ([b"x\r\r\n"], [b"x\r"]),
        ([b"\r\n"], [b""]),
        ([], []),
        ([b'{"a": 1}\n', b'{"b"', b": 2}"], [b'{"a": 1}', b'{"b": 2}']),
    ],
)
def test_lines_come_back_without_their_newline(chunks: list[bytes], expected: list[bytes]) -> None:
    """Lines end at ``\\n`` (one ``\\r`` before it is dropped); a last line needs no newline."""
    assert read_chunks(chunks, 100) == expected


def test_a_last_line_keeps_a_carriage_return_without_a_newline() -> None:
    """Only ``\\r\\n`` is a line end: a ``\\r`` ending the unterminated last line stays."""
    assert read_chunks([b"a\r\nb\r"], 100) == [b"a", b"b\r"]


@pytest.mark.anyio
async def test_end_of_stream_is_reported_again_and_again() -> None:
    """After the end, every further read returns None without reading the stream again."""
    stream = ChunkStream([b"only"])
    reader = LineReader(stream, 10)
    assert await reader.receive_line() == b"only"
    assert await reader.receive_line() is None
    reads = stream.receives
    assert await reader.receive_line() is None
    assert await reader.receive_line() is None
    assert stream.receives == reads


@pytest.mark.anyio
@pytest.mark.parametrize("end", [anyio.BrokenResourceError, anyio.ClosedResourceError])
async def test_a_broken_or_closed_stream_ends_like_eof(end: type[Exception]) -> None:
    """A stream that breaks or is closed ends the lines; a partial last line is kept."""
    reader = LineReader(ChunkStream([b"a\nhalf"], end=end), 10)
    assert await reader.receive_line() == b"a"
    assert await reader.receive_line() == b"half"
    assert await reader.receive_line() is None


@pytest.mark.anyio
async def test_lines_already_received_are_returned_without_reading() -> None:
    """One read holding three lines serves three calls; ``buffered_line`` never reads."""
    stream = ChunkStream([b"a\nb\nc\npart", b"ial\n"])
    reader = LineReader(stream, 10)
    assert reader.buffered_line() is None
    assert await reader.receive_line() == b"a"
    assert stream.receives == 1
    assert reader.buffered_line() == b"b"
    assert await reader.receive_line() == b"c"
    assert stream.receives == 1
    assert reader.buffered_line() is None
    assert await reader.receive_line() == b"partial"
    assert stream.receives == 2
    assert stream.asked == [READ_CHUNK, READ_CHUNK]


@pytest.mark.anyio
async def test_buffered_line_reports_an_over_long_line_and_drops_it() -> None:
    """``buffered_line`` raises LineTooLong for a complete over-long line, then moves on."""
    reader = LineReader(ChunkStream([b"toolong\nok\n"]), 3)
    with pytest.raises(LineTooLong):
        await reader.receive_line()
    assert reader.buffered_line() == b"ok"
    assert reader.buffered_line() is None


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        # The whole over-long line arrives in one read.
        ([b"abcdefgh\nok\n"], [("too long", 8), b"ok"]),
        # It grows past the limit over several reads, then ends.
        ([b"abcd", b"efgh", b"ij\nok\n"], [("too long", 10), b"ok"]),
        # Past the limit before its newline is seen: skipped read by read.
        ([b"abcdef", b"ghij", b"klm", b"n\nok"], [("too long", 14), b"ok"]),
        # The newline is the first byte of the next read.
        ([b"abcdef", b"\nok\n"], [("too long", 6), b"ok"]),
        # Exactly the limit is fine; one more byte is not.
        ([b"abcd\nabcde\nabcd"], [b"abcd", ("too long", 5), b"abcd"]),
        # An over-long last line without a newline.
        ([b"ok\nabcdefgh"], [b"ok", ("too long", 8)]),
        ([b"ok\nabcdef", b"gh"], [b"ok", ("too long", 8)]),
        # Two in a row, and a \r counts towards the limit.
        ([b"abcdefg\nabcdefg\n", b"\n"], [("too long", 7), ("too long", 7), b""]),
        ([b"abcd\r\n"], [("too long", 5)]),
    ],
)
def test_an_over_long_line_is_reported_once_and_skipped(
    chunks: list[bytes], expected: list[Event]
) -> None:
    """An over-long line raises LineTooLong with its size, once; the next line reads normally."""
    assert read_chunks(chunks, 4) == expected


def test_line_too_long_says_size_and_limit() -> None:
    """The error carries the size and the limit, and says both."""
    exc = LineTooLong(70, 64)
    assert (exc.size, exc.limit) == (70, 64)
    assert str(exc) == "line of 70 bytes exceeds the limit of 64 bytes"


def test_a_huge_line_is_skipped_in_bounded_reads() -> None:
    """A line of many reads is skipped as it arrives and the following lines survive."""
    chunks = [b"x" * 1000] * 200 + [b"x\n{}\n"]
    assert read_chunks(chunks, 100) == [("too long", 200_001), b"{}"]


def test_limit_must_be_positive() -> None:
    """A limit below one byte is refused with the value found."""
    with pytest.raises(ValueError, match="expected max_line >= 1, found 0"):
        LineReader(ChunkStream([]), 0)


def test_default_limit_is_one_mebibyte() -> None:
    """By default a line of 1 MiB is read and one byte more is refused."""
    line = b"x" * DEFAULT_MAX_LINE
    reader = LineReader(ChunkStream([line + b"\n" + line + b"y\nok\n"]))
    assert anyio.run(_read_all, reader, DEFAULT_MAX_LINE) == [
        line,
        ("too long", DEFAULT_MAX_LINE + 1),
        b"ok",
    ]


@pytest.mark.anyio
async def test_lines_over_a_real_socket() -> None:
    """Lines written in odd pieces to a TCP socket on 127.0.0.1 come back whole."""
    payload = [b'{"n": 1}\r\n{"n"', b": 2}\n" + b"z" * 50, b"\nlast"]
    async with (
        await anyio.create_tcp_listener(local_host="127.0.0.1") as listener,
        anyio.create_task_group() as tg,
    ):
        port = listener.extra(SocketAttribute.local_port)
        got: list[Event] = []
        done = anyio.Event()

        async def serve(conn: SocketStream) -> None:
            async with conn:
                got.extend(await _read_all(LineReader(conn, 32), 32))
            done.set()

        tg.start_soon(listener.serve, serve)
        async with await anyio.connect_tcp("127.0.0.1", port) as client:
            for piece in payload:
                await client.send(piece)
        await done.wait()
        tg.cancel_scope.cancel()
    assert got == [b'{"n": 1}', b'{"n": 2}', ("too long", 50), b"last"]


# -- properties -------------------------------------------------------------------------

_lines = st.lists(
    st.binary(max_size=24).map(lambda b: b.replace(b"\n", b"")) | st.sampled_from([b"", b"\r"]),
    max_size=8,
)


@st.composite
def framed(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """Bytes made of lines (the last maybe unterminated), cut into random reads."""
    lines = draw(_lines)
    terminated = draw(st.booleans())
    data = b"\n".join(lines) + (b"\n" if lines and terminated else b"")
    cuts = draw(st.lists(st.integers(1, max(1, len(data) - 1)), max_size=len(data)))
    return data, _split(data, cuts)


@SETTINGS
@given(lines=st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b""))), data=st.data())
def test_lines_survive_any_chunking(lines: list[bytes], data: st.DataObject) -> None:
    """Lines within the limit, joined and cut anywhere, come back identical."""
    raw = b"".join(line + b"\n" for line in lines)
    cuts = data.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=len(raw)))
    expected = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    assert read_chunks(_split(raw, cuts), 30) == expected


@SETTINGS
@given(framed(), st.integers(1, 20), st.booleans())
def test_reader_agrees_with_the_model(
    case: tuple[bytes, list[bytes]], max_line: int, use_uvloop: bool
) -> None:
    """Any lines, any reads, any limit: the reader gives exactly what the model says."""
    data, chunks = case
    assert b"".join(chunks) == data
    assert read_chunks(chunks, max_line, use_uvloop) == model(data, max_line)


def _no_newline(b: bytes) -> bytes:
    return b.replace(b"\n", b"").replace(b"\r", b"")


@SETTINGS
@given(st.integers(1, 12), st.integers(1, 60), st.lists(st.integers(1, 80)), st.data())
def test_each_over_long_line_is_reported_exactly_once(
    max_line: int, extra: int, cuts: list[int], data: st.DataObject
) -> None:
    """An over-long line among short ones: one LineTooLong of its size; the rest arrive."""
    before = data.draw(st.lists(st.binary(max_size=max_line).map(_no_newline), max_size=3))
    after = data.draw(st.lists(st.binary(max_size=max_line).map(_no_newline), max_size=3))
    long_line = b"L" * (max_line + extra)
    raw = b"".join(line + b"\n" for line in [*before, long_line, *after])
    got = read_chunks(_split(raw, [c for c in cuts if c < len(raw)]), max_line)
    assert [e for e in got if isinstance(e, tuple)] == [("too long", max_line + extra)]
    assert got == [*before, ("too long", max_line + extra), *after]


async def _read_batches(reader: LineReader, max_line: int, limits: list[int]) -> list[Event]:
    out: list[Event] = []
    for i in itertools.count():
        limit = limits[i % len(limits)]
        lines = await reader.receive_lines(limit)
        if lines is None:
            return out
        assert 1 <= len(lines) <= limit
        for line in lines:
            if isinstance(line, LineTooLong):
                out.append(("too long", line.size) if line.limit == max_line else ("limit", 0))
            else:
                out.append(line)
    raise AssertionError("unreachable")  # pragma: no cover


@SETTINGS
@given(framed(), st.integers(1, 20), st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_receive_lines_agrees_with_the_model(
    case: tuple[bytes, list[bytes]], max_line: int, limits: list[int]
) -> None:
    """Batches of at most ``limit`` lines, any reads: the model's lines, blank ones left out."""
    data, chunks = case
    reader = LineReader(ChunkStream(chunks), max_line)
    got = anyio.run(_read_batches, reader, max_line, limits, backend="asyncio")
    expected = [e for e in model(data, max_line) if isinstance(e, tuple) or e.strip()]
    assert got == expected


# -- the same framing pushed in (LineFeed) --------------------------------------------


def _fed(chunks: list[bytes], max_line: int, limits: list[int]) -> list[Event]:
    feed = LineFeed(max_line)
    out: list[Event] = []
    turns = itertools.count()

    def take() -> None:
        while lines := feed.take(limits[next(turns) % len(limits)]):
            for line in lines:
                if isinstance(line, LineTooLong):
                    out.append(("too long", line.size) if line.limit == max_line else ("limit", 0))
                else:
                    out.append(line)

    for chunk in chunks:
        feed.feed(chunk)
        take()
    feed.end()
    take()
    return out


@SETTINGS
@given(framed(), st.integers(1, 20), st.lists(st.integers(1, 5), min_size=1, max_size=4))
def test_a_line_feed_agrees_with_the_model(
    case: tuple[bytes, list[bytes]], max_line: int, limits: list[int]
) -> None:
    """Chunks pushed in as they come, lines taken in batches of at most
    ``limit``: the model's lines, blank ones left out, as the reader gives."""
    data, chunks = case
    expected = [e for e in model(data, max_line) if isinstance(e, tuple) or e.strip()]
    assert _fed(chunks, max_line, limits) == expected


def test_a_line_feed_keeps_no_more_than_its_limit_of_an_over_long_line() -> None:
    """An over-long line is counted and dropped as it arrives: the budget
    sees at most the limit held, and the line is reported once, by size."""
    budget = BufferBudget(10**9)
    feed = LineFeed(100, budget=budget)
    feed.feed(b"ok\n" + b"x" * 150)
    assert budget.total <= 100 + len(b"ok")
    for _ in range(100):
        feed.feed(b"x" * 1000)
    assert budget.total <= 100 + len(b"ok")
    feed.feed(b"\nnext\n")
    got = feed.take(10)
    assert got[0] == b"ok"
    assert isinstance(got[1], LineTooLong)
    assert got[1].size == 150 + 100 * 1000
    assert got[2:] == [b"next"]
    assert budget.total == 0


def test_a_line_feed_evicted_by_its_budget_drops_what_it_holds() -> None:
    evicted: list[bool] = []
    budget = BufferBudget(50)
    feed = LineFeed(100, budget=budget, on_evict=lambda: evicted.append(True))
    feed.feed(b"a" * 60)
    assert evicted == [True]
    assert feed.evicted
    assert budget.total == 0
    feed.feed(b"more\n")
    assert feed.take(10) == []
