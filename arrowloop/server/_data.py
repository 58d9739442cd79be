"""The data port: items in, outputs out, one JSON document per line.

A request line is ``{"item": <value>}`` with optional ``"id"`` (echoed in
the reply), ``"version"`` (the machine version the client was written
for; its items and outputs are adapted) and ``"key"`` (a request key: a
resent key is answered with the first application's reply, see
docs/durability.md). Each request gets exactly one
reply line, in request order: ``{"output": <value>}`` or
``{"error": {...}}``. A connection pipelines: its reader submits items as
they arrive (in order, waiting while the pipeline is full, which is how
backpressure reaches the client), and its writer sends replies as they
complete, at most ``window`` requests apart. A slow reader therefore only
stalls its own connection: the pipeline delivers replies to tickets, never
to sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Coroutine, Iterable
from itertools import islice, repeat
from typing import Any, Final

import anyio
import orjson
from anyio.abc import ByteStream

from arrowloop.endpoints import BufferBudget, LineReader, LineTooLong, describe_json
from arrowloop.errors import ProtocolError, error_data
from arrowloop.runtime import LATENCY_SECONDS, MAX_KEY, ClientView, Histogram, Ticket
from arrowloop.supervisor import Supervisor

__all__ = ["serve_data_connection", "Drain", "DataStats", "DEFAULT_WINDOW", "MAX_ID"]

#: Default most requests of one connection in flight at once.
DEFAULT_WINDOW: Final = 256
#: Longest request ``id`` string.
MAX_ID: Final = 256

_REQUEST_FIELDS: Final = ("item", "id", "version", "key")
#: Most replies written in one send.
_BATCH: Final = 64
#: What sending to a client that went away raises.
_GONE: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


#: A request's place in a connection's reply order: ``(id, ticket, error,
#: read at)``: its ticket, or (no ticket) the error it is answered with,
#: and when its batch was read (time.monotonic()). A tuple, not an object:
#: one is made per request.
_Pending = tuple[Any, Ticket | None, dict[str, Any] | None, float]


class DataStats:
    """What a server's data connections have done, counted per batch.

    Attributes:
        requests: request lines read.
        replies: replies written.
        errors: error replies written, by error type.
        latency: seconds from reading a batch of requests to writing the
            reply of its first request, one observation per write.
    """

    __slots__ = ("errors", "latency", "replies", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.replies = 0
        self.errors: dict[str, int] = {}
        self.latency = Histogram(LATENCY_SECONDS)

    def error(self, data: dict[str, Any]) -> None:
        """Count an error reply."""
        kind = str(data.get("type", "InternalError"))
        self.errors[kind] = self.errors.get(kind, 0) + 1


def _protocol_error(path: str, expected: str, found: str) -> ProtocolError:
    return ProtocolError(
        f"expected {expected}, found {found}", path=path, expected=expected, found=found
    )


def _parse(line: bytes) -> tuple[Any, Any, str | None, str | None]:
    """``(id, raw item, version, key)`` of a request line.

    Raises:
        ProtocolError: not JSON, not an object, unknown or ill-typed fields.
    """
    try:
        req = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise _invalid_json(exc) from None
    return _fields(req)


def _invalid_json(exc: orjson.JSONDecodeError) -> ProtocolError:
    return _protocol_error("$", "a JSON object per line", f"invalid JSON ({exc})")


def _fields(req: Any) -> tuple[Any, Any, str | None, str | None]:
    """``(id, raw item, version, key)`` of a parsed request (see :func:`_parse`)."""
    if type(req) is not dict:
        raise _protocol_error("$", 'an object {"item": ...}', describe_json(req))
    rid = req.get("id")
    if not (
        rid is None or type(rid) is int or (type(rid) is str and len(rid) <= MAX_ID)
    ):  # an id is echoed back: keep it a small scalar
        raise _protocol_error(
            "$.id", f"an integer or a string of at most {MAX_ID}", describe_json(rid)
        )
    for key in req:
        if key not in _REQUEST_FIELDS:
            raise _protocol_error(
                f"$.{key[:40]}",
                f"only the fields {list(_REQUEST_FIELDS)}",
                f"the field {key!r:.40}",
            )
    if "item" not in req:
        raise _protocol_error("$.item", "the item to send", "nothing")
    version = req.get("version")
    if version is not None and type(version) is not str:
        raise _protocol_error(
            "$.version", "a machine version (a hex string)", describe_json(version)
        )
    rkey = req.get("key")
    if rkey is not None and not (type(rkey) is str and 0 < len(rkey) <= MAX_KEY):
        raise _protocol_error(
            "$.key",
            f"a request key (a string of 1 to {MAX_KEY} characters)",
            f"a string of {len(rkey)} characters" if type(rkey) is str else describe_json(rkey),
        )
    return rid, req["item"], version, rkey


#: orjson's option ending a reply with its newline (no copy to add it).
_LINE: Final = orjson.OPT_APPEND_NEWLINE


def _reply(rid: Any, output: Any = None, error: dict[str, Any] | None = None) -> bytes:
    if error is not None:
        return orjson.dumps(
            {"error": error} if rid is None else {"id": rid, "error": error}, option=_LINE
        )
    return orjson.dumps(
        {"output": output} if rid is None else {"id": rid, "output": output}, option=_LINE
    )


def _id_of(line: bytes) -> Any:
    """The request's id if the line has a usable one (for error replies)."""
    try:
        req = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    rid = req.get("id") if type(req) is dict else None
    return rid if type(rid) is int or (type(rid) is str and len(rid) <= MAX_ID) else None


def _encode_output(p: _Pending, out: Any, stats: DataStats) -> bytes:
    t = p[1]
    assert t is not None
    assert t.view is not None
    try:
        return _reply(p[0], t.view.encode(out))
    except Exception as exc:
        data = error_data(exc)
        stats.error(data)
        return _reply(p[0], error=data)


class _Replies:
    """A connection's requests in reply order: what the reader has admitted
    and the writer has not written yet, at most ``window`` of them.

    The reader appends and the writer pops only once a reply is written, so
    the window bounds exactly the replies a client owes the server a read
    of. Handing a request over never waits: the reader waits for room
    before it reads (and admits) more.
    """

    __slots__ = (
        "_reader",
        "_writer",
        "last_written",
        "queue",
        "reading",
        "waiting_since",
        "window",
    )

    def __init__(self, window: int) -> None:
        self.window = window
        self.queue: deque[_Pending] = deque()
        self.reading = True
        #: Since when the reader has been waiting on the socket (None: it is not).
        self.waiting_since: float | None = None
        #: When the writer last made room (time.monotonic()).
        self.last_written = time.monotonic()
        self._writer: anyio.Event | None = None
        self._reader: anyio.Event | None = None

    @property
    def room(self) -> int:
        """How many more requests the reader may admit now."""
        return self.window - len(self.queue)

    def add(self, ps: list[_Pending]) -> None:
        """Hand admitted requests to the writer, in order."""
        self.queue.extend(ps)
        if self._writer is not None:
            self._writer.set()
            self._writer = None

    def done_reading(self) -> None:
        """No more requests will come; the writer ends once the queue is empty."""
        self.reading = False
        if self._writer is not None:
            self._writer.set()
            self._writer = None

    def written(self, n: int) -> None:
        """The first ``n`` replies are written: make room for the reader."""
        if n == len(self.queue):
            self.queue.clear()
        else:
            popleft = self.queue.popleft
            for _ in range(n):
                popleft()
        self.last_written = time.monotonic()
        if self._reader is not None:
            self._reader.set()
            self._reader = None

    async def wait_room(self) -> None:
        """Wait until the writer has made room."""
        while self.room <= 0:
            if self._reader is None:
                self._reader = anyio.Event()
            await self._reader.wait()

    async def wait_work(self) -> None:
        """Wait until there is a request to answer or reading has ended."""
        while not self.queue and self.reading:
            if self._writer is None:
                self._writer = anyio.Event()
            await self._writer.wait()

    def forget_all(self) -> None:
        """Stop tracking the outputs of requests that will get no reply."""
        for p in self.queue:
            if p[1] is not None:
                p[1].forget()
        self.queue.clear()
        self.reading = False


async def _admit(
    sup: Supervisor, lines: list[bytes | LineTooLong], replies: _Replies, stats: DataStats
) -> None:
    """Parse a batch of request lines and admit them, handing them to the
    writer in order as soon as their fate is known.

    Consecutive requests for the same client version enter the pipeline
    together (one message), which is what makes a pipelining client cheap.
    A request that does not parse gets its error in its place.
    """
    now = time.monotonic()
    stats.requests += len(lines)
    done: list[_Pending] = []  # fates known, in order, not handed over yet
    group: list[Any] = []
    # The group's ids and keys, made (as long as the group) only once a
    # request has one: most pipelining clients send neither.
    ids: list[Any] | None = None
    keys: list[str | None] | None = None
    version: str | None = None
    loads = orjson.loads

    async def flush() -> None:
        nonlocal ids, keys
        if done:  # the errors before the group are answered first, whatever happens to it
            replies.add(done)
            done.clear()
        rids: Iterable[Any] = repeat(None) if ids is None else ids
        try:
            # Decoded through the client's view as it stands when the items
            # are admitted; they then enter before any change that would make
            # that view wrong, so their replies are encoded through it.
            tickets = await sup.submit_many(group, version=version, decode=True, keys=keys)
        except Exception as exc:
            err = error_data(exc)
            done.extend([(rid, None, err, now) for rid, _ in zip(rids, group, strict=False)])
        else:
            done.extend(
                [
                    (rid, t, None, now)
                    if type(t) is Ticket
                    # (mypy narrows ``type(t) is`` on the if side only)
                    else (rid, None, error_data(t), now)  # type: ignore[arg-type]
                    for rid, t in zip(rids, tickets, strict=False)
                ]
            )
        replies.add(done)
        done.clear()
        group.clear()
        ids = keys = None

    for line in lines:
        if type(line) is not bytes:
            assert isinstance(line, LineTooLong)
            if group:
                await flush()
            done.append((None, None, error_data(_too_long(line)), now))
            continue
        try:
            req = loads(line)
            if type(req) is dict and len(req) == 1 and "item" in req:
                # {"item": ...} alone, the common request: nothing to check
                rid = v = key = None
                raw = req["item"]
            else:
                rid, raw, v, key = _fields(req)
        except (orjson.JSONDecodeError, ProtocolError) as exc:
            if group:
                await flush()  # the requests before it are answered first
            if isinstance(exc, orjson.JSONDecodeError):
                exc = _invalid_json(exc)
            done.append((_id_of(line), None, error_data(exc), now))
            continue
        if group and v != version:
            await flush()
        version = v
        if ids is not None:
            ids.append(rid)
        elif rid is not None:
            ids = [*repeat(None, len(group)), rid]
        if keys is not None:
            keys.append(key)
        elif key is not None:
            keys = [*repeat(None, len(group)), key]
        group.append(raw)
    if group:
        await flush()
    if done:
        replies.add(done)


def _too_long(exc: LineTooLong) -> ProtocolError:
    return _protocol_error("$", f"a line of at most {exc.limit} bytes", f"{exc.size} bytes")


class Drain:
    """Stops every data connection reading, so a server can shut down
    without dropping a reply: each connection then answers what it has
    admitted and closes."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self.draining = False

    def stop_reading(self) -> None:
        """Stop reading requests on every connection, now and from now on."""
        self.draining = True
        for scope in self._scopes:
            scope.cancel()

    def watch(self, scope: anyio.CancelScope) -> None:
        """Register a connection's reading scope (cancelled at once if draining)."""
        self._scopes.add(scope)
        if self.draining:
            scope.cancel()

    def forget(self, scope: anyio.CancelScope) -> None:
        """Unregister a reading scope."""
        self._scopes.discard(scope)


class _Stuck(Exception):
    """The client has not taken a reply for ``send_timeout`` seconds."""


class _Sender:
    """Writes a connection's replies, straight to the socket's transport when
    it takes them now.

    anyio's ``send`` costs two checkpoints, a guard and (for the send
    timeout) a cancel scope per call; for a pipelining client that is more
    than the replies themselves. When the transport is not holding unsent
    data (its protocol's write event is set; anyio pauses writing as soon as
    anything is buffered), a write cannot wait, so it is made directly and
    needs no timeout. Otherwise, and with a stream that is not anyio's
    asyncio socket stream, the reply goes through ``send`` under the send
    timeout. Like the server's pausing of accepted sockets, this reaches
    into anyio's stream, guarded: without those attributes nothing changes.
    """

    __slots__ = ("_protocol", "_stream", "_timeout", "_transport")

    def __init__(self, stream: ByteStream, send_timeout: float | None) -> None:
        self._stream = stream
        self._timeout = send_timeout if send_timeout is not None else math.inf
        transport = getattr(stream, "_transport", None)
        protocol = getattr(stream, "_protocol", None)
        direct = (
            isinstance(getattr(protocol, "write_event", None), asyncio.Event)
            and callable(getattr(transport, "write", None))
            and callable(getattr(transport, "is_closing", None))
            and hasattr(protocol, "exception")
        )
        self._transport: Any = transport if direct else None
        self._protocol: Any = protocol

    async def send(self, data: bytes) -> bool:
        """Send ``data``; False if the client has gone.

        Raises:
            _Stuck: the client took nothing for the send timeout.
        """
        transport = self._transport
        # Looked up each time: anyio replaces the event when writing pauses.
        if transport is not None and self._protocol.write_event.is_set():
            if transport.is_closing() or self._protocol.exception is not None:
                return False
            try:
                transport.write(data)
            except (RuntimeError, OSError):
                return False
            return True
        with anyio.move_on_after(self._timeout) as scope:
            try:
                await self._stream.send(data)
            except _GONE:
                return False
        if scope.cancelled_caught:
            raise _Stuck
        return True


async def _write_replies(
    stream: ByteStream, replies: _Replies, send_timeout: float | None, stats: DataStats
) -> None:
    """Write each request's reply in order until reading has ended and every
    admitted request is answered."""
    alive = True
    queue = replies.queue
    dumps = orjson.dumps
    sender = _Sender(stream, send_timeout)

    def failed(p: _Pending, data: dict[str, Any]) -> bytes:
        stats.error(data)
        return _reply(p[0], error=data)

    while True:
        if not queue:
            if not replies.reading:
                return
            await replies.wait_work()
            continue
        chunks: list[bytes] = []
        n = 0
        head = queue[0][1]
        if alive and head is not None and not head.done:
            try:  # the oldest reply is not in yet: wait for it alone
                out = await head.result()
            except Exception as exc:
                chunks.append(failed(queue[0], error_data(exc)))
            else:
                chunks.append(_encode_output(queue[0], out, stats))
            n = 1
        # Then every reply that is ready goes out with it, at most _BATCH per
        # send: the writer must not empty the window faster than the client
        # reads its replies, or the window would bound nothing. (No await in
        # this loop: the reader appends to the queue meanwhile.)
        view: ClientView | None = None
        encode: Any = None  # view's encoder, looked up once per view and send
        emit: Any = None  # and its output adapter (None: none)
        add = chunks.append
        for p in islice(queue, n, _BATCH):
            t = p[1]
            if t is None:
                if alive:
                    assert p[2] is not None
                    add(failed(p, p[2]))
            elif not alive:
                t.forget()  # the client is gone: nobody will read it
            elif t.done:
                try:
                    if t.error is not None:
                        t.get()  # raises it
                    # Ticket.get inlined: the pipeline's end has already
                    # stopped tracking a delivered batch.
                    out = t.value
                    if t.view is not view:
                        view = t.view
                        assert view is not None
                        encode = view.encoder()
                        emit = view.emit if view.adapt_out else None
                    data = encode(out if emit is None else emit(out), "output")
                except Exception as exc:
                    add(failed(p, error_data(exc)))
                else:
                    rid = p[0]
                    add(
                        dumps(
                            {"output": data} if rid is None else {"id": rid, "output": data},
                            option=_LINE,
                        )
                    )
            else:
                break
            n += 1
        if chunks:
            stats.latency.observe(time.monotonic() - queue[0][3])
            if await sender.send(b"".join(chunks)):
                stats.replies += len(chunks)
            else:
                alive = False  # the client is gone: keep draining its tickets, write nothing
        replies.written(n)


async def _next_lines(
    reader: LineReader, replies: _Replies, limit: int
) -> list[bytes | LineTooLong] | None:
    """The next request lines (at least one, at most ``limit``); ``None`` at
    the end. While it waits on the socket, ``replies.waiting_since`` says
    since when (for the idle watch)."""
    lines = reader.take_lines(limit)
    if lines:
        return lines  # already buffered: no await
    replies.waiting_since = time.monotonic()
    try:
        return await reader.receive_lines(limit)  # a partial line stays buffered
    finally:
        replies.waiting_since = None


async def _watch_idle(replies: _Replies, reading: anyio.CancelScope, idle_timeout: float) -> None:
    """Stop reading once the client has been idle for ``idle_timeout``: the
    reader waiting on the socket, no complete request since, and no reply
    owed or written since.

    One sleeping task per connection instead of a timer around every read,
    which on a busy connection cost more than the request it guarded.
    """
    interval = min(max(idle_timeout / 4, 0.01), 1.0)
    while True:
        await anyio.sleep(interval)
        since = replies.waiting_since
        if since is None or replies.queue:
            continue  # reading or admitting, or replies are owed: not idle
        if time.monotonic() - max(since, replies.last_written) >= idle_timeout:
            reading.cancel()  # ends reading as if the client had closed
            return


async def _read_requests(
    sup: Supervisor, reader: LineReader, replies: _Replies, stats: DataStats
) -> None:
    while True:
        if replies.room <= 0:
            await replies.wait_room()
        lines = await _next_lines(reader, replies, replies.room)
        if lines is None:
            return
        await _admit(sup, lines, replies, stats)


async def _run_in(scope: anyio.CancelScope, work: Coroutine[Any, Any, None]) -> None:
    with scope:
        await work


async def serve_data_connection(
    sup: Supervisor,
    stream: ByteStream,
    *,
    max_line: int,
    window: int = DEFAULT_WINDOW,
    send_timeout: float | None = None,
    drain: Drain | None = None,
    idle_timeout: float | None = None,
    budget: BufferBudget | None = None,
    stats: DataStats | None = None,
) -> None:
    """Serve one data connection until the client closes it or goes away.

    Every request gets a reply unless the client vanished first; the items
    it submitted are processed either way. A client that takes no reply for
    ``send_timeout`` seconds while replies wait is disconnected, and so is
    one that sends no complete request for ``idle_timeout`` seconds while no
    reply is owed to it. When ``drain`` stops reading, the connection
    answers every request it has admitted, then closes; requests it had not
    read were not processed. The same happens when ``budget`` (shared by
    the server's connections) evicts this one for holding the most
    unprocessed bytes while the total is over it.
    """
    replies = _Replies(window)
    stats = DataStats() if stats is None else stats
    reading = anyio.CancelScope()
    # Evicted by the budget: stop reading (as on a drain), answer what was
    # admitted, close.
    reader = LineReader(stream, max_line, budget=budget, on_evict=reading.cancel)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_write_replies, stream, replies, send_timeout, stats)
            watching = anyio.CancelScope()
            with reading:
                if idle_timeout is not None:
                    tg.start_soon(_run_in, watching, _watch_idle(replies, reading, idle_timeout))
                if drain is not None:
                    drain.watch(reading)
                try:
                    await _read_requests(sup, reader, replies, stats)
                finally:
                    watching.cancel()
                    if drain is not None:
                        drain.forget(reading)
                    replies.done_reading()
    except* _Stuck:
        stuck = True  # the caller closes the connection
    else:
        stuck = False
    finally:
        replies.forget_all()  # requests the writer never reached
        reader.release()
    if not stuck:
        # RuntimeError: uvloop's transport when the peer has already gone.
        with contextlib.suppress(*_GONE, NotImplementedError, RuntimeError):
            await stream.send_eof()
