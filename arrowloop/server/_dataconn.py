"""One data connection, driven by its transport's callbacks.

The connection is an ``asyncio.Protocol`` put in place of anyio's on the
accepted socket's transport. Bytes are handled where they arrive
(``data_received``): the complete lines are parsed and admitted at once
when the pipeline has room (``submit_many_nowait``). Replies are written
where they complete: the first reply the connection owes carries a
callback (``Reply.then``) that the pipeline's end calls as it delivers it;
the callback schedules one flush for the loop's next turn, by which time
the whole batch is in, and the flush writes every reply that is ready, in
order, in one write. So a request costs no task switch and no await; per
read the loop runs one callback for the bytes and one for the replies.

Only what must wait runs in the connection's task: admissions when a
change holds the door or the first channel is full (reading pauses until
they are in, which is how backpressure reaches the client), and the end
of the connection (answering what was admitted, or giving up on a client
that takes nothing). Reading also pauses while the window is full and
while the transport holds unsent replies, as a hand-written protocol
would; docs/protocol.md states the guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from itertools import islice
from typing import Any, Final

import anyio
import orjson
from anyio.abc import ByteStream

from arrowloop.endpoints import BufferBudget, LineFeed, LineTooLong
from arrowloop.errors import ProtocolError, error_data
from arrowloop.runtime import ClientView, Ticket
from arrowloop.server._data import (
    DEFAULT_WINDOW,
    DataStats,
    Drain,
    fields_of,
    id_of,
    invalid_json,
    reply_line,
    too_long,
)
from arrowloop.supervisor import Supervisor

__all__ = ["serve_data_connection"]

#: A request's place in a connection's reply order: for a request without
#: an id (the common case: nothing is made for it) its ticket, or the
#: exception it is answered with; else ``(id, ticket, None)`` or ``(id,
#: None, error data)``.
_Pending = Ticket | Exception | tuple[Any, Ticket | None, dict[str, Any] | None]

#: orjson's option ending a reply with its newline (no copy to add it).
_LINE: Final = orjson.OPT_APPEND_NEWLINE
#: What sending to a client that went away raises.
_GONE: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class _Group:
    """Consecutive requests for one client version, admitted together."""

    __slots__ = ("ids", "items", "keys", "version")

    def __init__(self, version: str | None) -> None:
        self.version = version
        self.items: list[Any] = []
        # Made (as long as the group) only once a request has one: most
        # pipelining clients send neither ids nor keys.
        self.ids: list[Any] | None = None
        self.keys: list[str | None] | None = None

    def pendings(self, tickets: list[Ticket | Exception]) -> list[_Pending]:
        """The group's places in the reply order, given its tickets."""
        ids = self.ids
        if ids is None:
            return tickets  # type: ignore[return-value]  # (list is invariant)
        return [
            (rid, t, None) if type(t) is Ticket else _failed(rid, t)
            for rid, t in zip(ids, tickets, strict=True)
        ]

    def refused(self, exc: Exception) -> list[_Pending]:
        """Every request of the group answered with ``exc`` (it did not enter)."""
        err = error_data(exc)
        ids = self.ids if self.ids is not None else [None] * len(self.items)
        return [(rid, None, err) for rid in ids]


def _ticket_of(p: _Pending) -> Ticket | None:
    """The ticket of a place in the reply order (None: answered already)."""
    if isinstance(p, Ticket):
        return p
    return p[1] if isinstance(p, tuple) else None


def _failed(rid: Any, exc: Any) -> _Pending:
    return (rid, None, error_data(exc))


#: What a batch of lines becomes, in order: groups to admit, and requests
#: already answered (an error in their place).
_Step = _Group | tuple[Any, None, dict[str, Any]]


def _plain_run(lines: list[bytes | LineTooLong]) -> list[Any]:
    """The items of the leading run of ``{"item": ...}`` requests (a
    pipelining client's usual batch is one such run), parsed in a loop of
    their own; the run ends at the first line that is anything else."""
    loads = orjson.loads
    items: list[Any] = []
    add = items.append
    for line in lines:
        if type(line) is not bytes:
            break
        try:
            req = loads(line)
        except orjson.JSONDecodeError:
            break
        if type(req) is not dict or len(req) != 1 or "item" not in req:
            break
        add(req["item"])
    return items


def _steps(lines: list[bytes | LineTooLong]) -> list[_Step]:
    """Parse a batch of request lines into what to admit and what to answer."""
    steps: list[_Step] = []
    group: _Group | None = None
    run = _plain_run(lines)
    if run:
        group = _Group(None)
        group.items = run
        steps.append(group)
        if len(run) == len(lines):
            return steps
    loads = orjson.loads
    for line in lines[len(run) :]:
        if type(line) is not bytes:
            assert isinstance(line, LineTooLong)
            steps.append((None, None, error_data(too_long(line))))
            group = None
            continue
        try:
            req = loads(line)
            if type(req) is dict and len(req) == 1 and "item" in req:
                # {"item": ...} alone: nothing to check
                rid = version = key = None
                raw = req["item"]
            else:
                rid, raw, version, key = fields_of(req)
        except (orjson.JSONDecodeError, ProtocolError) as exc:
            err = invalid_json(exc) if isinstance(exc, orjson.JSONDecodeError) else exc
            steps.append((id_of(line), None, error_data(err)))
            group = None
            continue
        if group is None or group.version != version:
            group = _Group(version)
            steps.append(group)
        if group.ids is not None:
            group.ids.append(rid)
        elif rid is not None:
            group.ids = [*([None] * len(group.items)), rid]
        if group.keys is not None:
            group.keys.append(key)
        elif key is not None:
            group.keys = [*([None] * len(group.items)), key]
        group.items.append(raw)
    return steps


class _Connection(asyncio.Protocol):
    """The protocol of one data connection (see the module docstring)."""

    def __init__(
        self,
        sup: Supervisor,
        transport: Any,
        *,
        max_line: int,
        window: int,
        send_timeout: float | None,
        idle_timeout: float | None,
        budget: BufferBudget | None,
        stats: DataStats,
    ) -> None:
        self.sup = sup
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.window = window
        self.stats = stats
        self.send_timeout = send_timeout
        self.idle_timeout = idle_timeout
        self.lines = LineFeed(max_line, budget=budget, on_evict=self.stop_reading)
        #: What the connection owes, in request order: admitted, not written.
        self.queue: deque[_Pending] = deque()
        # When the lines not answered yet were read: [how many, time], oldest
        # first (for the latency histogram: one observation per write).
        self._reads: deque[list[Any]] = deque()
        #: Steps that must wait for the pipeline (the task admits them).
        self.backlog: list[_Step] = []
        self.reading = True  # requests are still read and admitted
        self.alive = True  # the client is still there
        self.writable = True  # the transport holds no unsent replies
        self.stuck = False  # the client took nothing for the send timeout
        # Reading is paused: the server pauses an accepted socket until its
        # handler reads (see _serve.py), and _flow resumes it here.
        self._paused = True
        self._flushing = False  # a flush is scheduled
        self._stuck_timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        #: When the last complete request was taken, or the last reply written.
        self.last_active = time.monotonic()
        self._event = asyncio.Event()  # the task has something to look at
        # The task waits for every reply to be written (only then does an
        # emptied queue wake it: while serving, that would be a task switch
        # per read for nothing).
        self._finishing = False
        self._view: ClientView | None = None  # the writer's view, encoder, adapter
        self._encode: Any = None
        self._emit: Any = None

    # -- taking over the transport ------------------------------------------------

    def start(self, inner: Any) -> None:
        """Put this protocol in place of anyio's ``inner``, taking what it received."""
        self.transport.set_protocol(self)
        queued = getattr(inner, "read_queue", ())
        while queued:
            self.lines.feed(queued.popleft())
        write_event = getattr(inner, "write_event", None)
        if write_event is not None and not write_event.is_set():
            self.pause_writing()
        if getattr(inner, "exception", None) is not None or self.transport.is_closing():
            self.connection_lost(None)
            return
        if getattr(inner, "is_at_eof", False):
            self.eof_received()
        else:
            self._take()
        if self.idle_timeout is not None:
            self._idle_timer = self.loop.call_later(self._idle_interval(), self._check_idle)

    # -- the transport's callbacks ------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.lines.feed(data)
        self._take()

    def eof_received(self) -> bool:
        self.lines.end()
        self._take()
        return True  # keep the transport open: the replies still go out

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.alive:
            return
        self.alive = False
        self.writable = False
        self._cancel_timers()
        self._forget_all()
        # What the client sent before it went is still processed (nobody
        # will read the replies): the lines already received are admitted.
        self.lines.end()
        self._take()
        self._event.set()

    def pause_writing(self) -> None:
        self.writable = False
        if self.send_timeout is not None and self._stuck_timer is None:
            self._stuck_timer = self.loop.call_later(self.send_timeout, self._give_up)
        self._flow()

    def resume_writing(self) -> None:
        self.writable = True
        if self._stuck_timer is not None:
            self._stuck_timer.cancel()
            self._stuck_timer = None
        self._flush()
        if self._finishing:
            self._event.set()

    # -- reading and admitting ----------------------------------------------------

    def stop_reading(self) -> None:
        """Read and admit nothing more; answer what was admitted."""
        if self.reading:
            self.reading = False
            self._unread(self.backlog)
            self._flow()
            self._event.set()

    def _take(self) -> None:
        """Admit the lines ready, as far as the window and the pipeline allow."""
        while self.reading and not self.backlog:
            lines = self.lines.take(self.window - len(self.queue))
            if not lines:
                break
            now = time.monotonic()
            self.last_active = now
            self.stats.requests += len(lines)
            self._reads.append([len(lines), now])
            self._admit(_steps(lines))
        if self.reading and self.lines.ended and not self.lines.ready and not self.backlog:
            self.reading = False  # the client has sent everything
            self._event.set()
        self._flow()

    def _admit(self, steps: list[_Step]) -> None:
        """Admit ``steps`` now, in order; what must wait goes to the task."""
        queue = self.queue
        sup = self.sup
        for i, step in enumerate(steps):
            if not isinstance(step, _Group):
                queue.append(step)  # an answered request
                continue
            try:
                tickets = sup.submit_many_nowait(
                    step.items, version=step.version, decode=True, keys=step.keys
                )
            except Exception as exc:
                queue.extend(step.refused(exc))
                continue
            if tickets is None:
                self.backlog = steps[i:]
                self._event.set()
                break
            queue.extend(step.pendings(tickets))
        if self.alive:
            self._arm()
        else:
            self._forget_all()

    def _unread(self, steps: list[_Step]) -> None:
        """Drop ``steps`` not admitted: they get no reply."""
        n = sum(len(s.items) if isinstance(s, _Group) else 1 for s in steps)
        steps.clear()
        reads = self._reads
        while n and reads:
            last = reads[-1]
            k = min(n, last[0])
            last[0] -= k
            n -= k
            if not last[0]:
                reads.pop()

    def _forget_all(self) -> None:
        """Stop tracking the outputs of requests that will get no reply."""
        for p in self.queue:
            t = _ticket_of(p)
            if t is not None:
                t.forget()
        self.queue.clear()
        self._reads.clear()

    async def admit_waiting(self) -> None:
        """Admit the backlog, waiting for the pipeline; then read on."""
        while self.backlog:
            step = self.backlog.pop(0)
            if not isinstance(step, _Group):
                self.queue.append(step)
            else:
                try:
                    # Decoded through the client's view as it stands when the
                    # items are admitted; they then enter before any change
                    # that would make that view wrong.
                    tickets = await self.sup.submit_many(
                        step.items, version=step.version, decode=True, keys=step.keys
                    )
                except Exception as exc:
                    self.queue.extend(step.refused(exc))
                else:
                    self.queue.extend(step.pendings(tickets))
            if self.alive:
                self._arm()
            else:
                self._forget_all()
        self._take()

    def _flow(self) -> None:
        """Pause reading while nothing more may be admitted, resume after."""
        want = (
            self.reading
            and self.writable
            and not self.backlog
            and len(self.queue) < self.window
            and self.lines.ready < self.window
        )
        if want == self._paused and self.alive:
            self._paused = not want
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()

    # -- writing replies ----------------------------------------------------------

    def _arm(self) -> None:
        """Make sure the first reply owed is written once it is in."""
        if self._flushing or not self.queue:
            return
        head = _ticket_of(self.queue[0])
        if head is None or head.done:
            self._flushing = True
            self.loop.call_soon(self._flush)
        elif head.then is None:
            head.then = self._delivered

    def _delivered(self) -> None:
        # Called by the pipeline's end as it delivers the first reply owed,
        # mid-batch: flush once the batch is in, on the loop's next turn.
        if not self._flushing:
            self._flushing = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Write every reply that is ready, from the first owed, in one write."""
        self._flushing = False
        queue = self.queue
        if not self.alive or not self.writable or not queue:
            return
        stats = self.stats
        chunks: list[bytes] = []
        add = chunks.append
        dumps = orjson.dumps
        view, encode, emit = self._view, self._encode, self._emit
        n = 0
        if view is not None:
            # The usual run first: delivered outputs of requests without an
            # id, through the view of the last flush, in a loop of their own.
            # Anything else (or an encoder that raises) ends the run, and
            # the general loop below goes on from there.
            line = _LINE
            try:
                for p in queue:
                    if (
                        type(p) is not Ticket
                        or not p.done
                        or p.error is not None
                        or p.view is not view
                    ):
                        break
                    out = p.value
                    add(
                        dumps(
                            {"output": encode(out if emit is None else emit(out), "output")},
                            None,
                            line,
                        )
                    )
            except Exception:
                pass  # the general loop answers it with the error
            n = len(chunks)
        for p in islice(queue, n, None) if n else queue:
            if isinstance(p, Ticket):
                t = p
                rid = None
            elif not isinstance(p, tuple):
                data = error_data(p)  # refused on its own (ill-typed, say)
                stats.error(data)
                add(reply_line(None, error=data))
                n += 1
                continue
            else:
                rid, answered, err = p
                if answered is None:
                    assert err is not None
                    stats.error(err)
                    add(reply_line(rid, error=err))
                    n += 1
                    continue
                t = answered
            if not t.done:
                break
            n += 1
            try:
                if t.error is not None:
                    t.get()  # raises it
                # Ticket.get inlined: the pipeline's end has already
                # stopped tracking a delivered batch.
                if t.view is not view:
                    view = t.view
                    assert view is not None
                    encode = view.encoder()
                    emit = view.emit if view.adapt_out else None
                out = t.value
                data = encode(out if emit is None else emit(out), "output")
            except Exception as exc:
                err = error_data(exc)
                stats.error(err)
                add(reply_line(rid, error=err))
            else:
                add(
                    dumps(
                        {"output": data} if rid is None else {"id": rid, "output": data},
                        option=_LINE,
                    )
                )
        self._view, self._encode, self._emit = view, encode, emit
        if not n:
            self._arm()
            return
        now = time.monotonic()
        self._answered(n, now)
        if n == len(queue):
            queue.clear()
        else:
            for _ in range(n):
                queue.popleft()
        self.last_active = now
        stats.replies += n
        try:
            self.transport.write(b"".join(chunks))
        except (RuntimeError, OSError):
            self.connection_lost(None)  # the transport is closing: the client went
            return
        self._arm()
        if self.reading and self.lines.ready:
            self._take()  # room was made: admit what waits for it
        else:
            self._flow()  # or read again
        if not queue and self._finishing:
            self._event.set()  # finish() waits for this

    def _answered(self, n: int, now: float) -> None:
        """``n`` replies are written: the latency of the oldest, then forget them."""
        reads = self._reads
        if not reads:
            return
        self.stats.latency.observe(now - reads[0][1])
        while n and reads:
            first = reads[0]
            k = min(n, first[0])
            first[0] -= k
            n -= k
            if not first[0]:
                reads.popleft()

    # -- timers ---------------------------------------------------------------------

    def _give_up(self) -> None:
        """The client took no reply for the send timeout: disconnect it
        (what it sent and was not admitted yet is not processed)."""
        self._stuck_timer = None
        self.stuck = True
        self.stop_reading()
        self.connection_lost(None)

    def _idle_interval(self) -> float:
        assert self.idle_timeout is not None
        return min(max(self.idle_timeout / 4, 0.01), 1.0)

    def _check_idle(self) -> None:
        """Stop reading once the client has been idle for the idle timeout:
        no complete request and no reply written since, and none owed."""
        self._idle_timer = None
        if not self.reading or self.idle_timeout is None:
            return
        idle = not self.queue and not self.backlog and self.writable
        if idle and time.monotonic() - self.last_active >= self.idle_timeout:
            self.stop_reading()  # ends the connection as if the client had closed
            return
        self._idle_timer = self.loop.call_later(self._idle_interval(), self._check_idle)

    def _cancel_timers(self) -> None:
        for timer in (self._stuck_timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._stuck_timer = self._idle_timer = None

    # -- the connection's task ------------------------------------------------------

    async def wait(self) -> None:
        """Wait until a callback has something for the task."""
        await self._event.wait()
        self._event.clear()

    async def serve(self) -> None:
        """Admit what must wait, until reading ends."""
        while self.reading or self.backlog:
            if self.backlog:
                await self.admit_waiting()
            else:
                await self.wait()

    async def finish(self) -> None:
        """Answer what was admitted (the client may leave meanwhile)."""
        self.stop_reading()
        self._finishing = True
        self._arm()
        while self.alive and (self.queue or not self.writable):
            await self.wait()

    def close(self) -> None:
        """Stop: forget what will not be answered, stop counting the buffer."""
        self._cancel_timers()
        self._forget_all()
        self.lines.release()


def _transport_of(stream: ByteStream) -> tuple[Any, Any]:
    """The asyncio transport of anyio's socket stream, and its protocol.

    Raises:
        TypeError: ``stream`` is not anyio's asyncio socket stream.
    """
    transport = getattr(stream, "_transport", None)
    inner = getattr(stream, "_protocol", None)
    if not (
        callable(getattr(transport, "set_protocol", None))
        and callable(getattr(transport, "pause_reading", None))
        and inner is not None
    ):
        raise TypeError(
            f"the data port serves TCP connections of an asyncio event loop, not {stream!r}"
        )
    return transport, inner


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

    Raises:
        TypeError: ``stream`` is not a TCP connection of an asyncio loop.
    """
    transport, inner = _transport_of(stream)
    conn = _Connection(
        sup,
        transport,
        max_line=max_line,
        window=window,
        send_timeout=send_timeout,
        idle_timeout=idle_timeout,
        budget=budget,
        stats=DataStats() if stats is None else stats,
    )
    reading = anyio.CancelScope()
    if drain is not None:
        drain.watch(reading)
        if drain.draining:
            conn.reading = False  # the server is stopping: read nothing
    try:
        conn.start(inner)
        with reading:
            await conn.serve()
        await conn.finish()
    finally:
        if drain is not None:
            drain.forget(reading)
        conn.close()
    if conn.alive:
        # RuntimeError: uvloop's transport when the peer has already gone.
        with contextlib.suppress(*_GONE, NotImplementedError, RuntimeError):
            await stream.send_eof()
