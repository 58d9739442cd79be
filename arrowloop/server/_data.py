"""The data port: items in, outputs out, one JSON document per line.

A request line is ``{"item": <value>}`` with optional ``"id"`` (echoed in
the reply) and ``"version"`` (the machine version the client was written
for; its items and outputs are adapted). Each request gets exactly one
reply line, in request order: ``{"output": <value>}`` or
``{"error": {...}}``. A connection pipelines: its reader submits items as
they arrive (in order, waiting while the pipeline is full, which is how
backpressure reaches the client), and its writer sends replies as they
complete, at most ``window`` requests apart. A slow reader therefore only
stalls its own connection: the pipeline delivers replies to tickets, never
to sockets.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Final

import anyio
import orjson
from anyio.abc import ByteStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from arrowloop.endpoints import LineReader, LineTooLong
from arrowloop.errors import ProtocolError, error_data
from arrowloop.runtime import Ticket
from arrowloop.supervisor import Supervisor
from arrowloop.typesys import describe

__all__ = ["serve_data_connection", "Drain", "DEFAULT_WINDOW", "MAX_ID"]

#: Default most requests of one connection in flight at once.
DEFAULT_WINDOW: Final = 256
#: Longest request ``id`` string.
MAX_ID: Final = 256

_REQUEST_FIELDS: Final = ("item", "id", "version")
#: Most replies written in one send.
_BATCH: Final = 64
#: Longest wait to hand a request's ticket to the writer with no send timeout.
_HANDOVER: Final = 60.0
#: What sending to a client that went away raises.
_GONE: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


class _Pending:
    """One request's place in a connection's reply order."""

    __slots__ = ("error", "id", "ticket")

    def __init__(
        self,
        rid: Any,
        ticket: Ticket | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        self.id = rid
        self.ticket = ticket
        self.error = error


def _protocol_error(path: str, expected: str, found: str) -> ProtocolError:
    return ProtocolError(
        f"expected {expected}, found {found}", path=path, expected=expected, found=found
    )


def _parse(line: bytes) -> tuple[Any, Any, str | None]:
    """``(id, raw item, version)`` of a request line.

    Raises:
        ProtocolError: not JSON, not an object, unknown or ill-typed fields.
    """
    try:
        req = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise _protocol_error("$", "a JSON object per line", f"invalid JSON ({exc})") from None
    if type(req) is not dict:
        raise _protocol_error("$", 'an object {"item": ...}', type(req).__name__)
    rid = req.get("id")
    if not (
        rid is None or type(rid) is int or (type(rid) is str and len(rid) <= MAX_ID)
    ):  # an id is echoed back: keep it a small scalar
        raise _protocol_error("$.id", f"an integer or a string of at most {MAX_ID}", describe(rid))
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
        raise _protocol_error("$.version", "a machine version (a hex string)", describe(version))
    return rid, req["item"], version


def _reply(p: _Pending, output: Any = None, error: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {} if p.id is None else {"id": p.id}
    if error is not None:
        body["error"] = error
    else:
        body["output"] = output
    return orjson.dumps(body) + b"\n"


def _id_of(line: bytes) -> Any:
    """The request's id if the line has a usable one (for error replies)."""
    try:
        req = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    rid = req.get("id") if type(req) is dict else None
    return rid if type(rid) is int or (type(rid) is str and len(rid) <= MAX_ID) else None


async def _submit(sup: Supervisor, line: bytes) -> _Pending:
    try:
        rid, raw, version = _parse(line)
    except ProtocolError as exc:
        return _Pending(_id_of(line), error=error_data(exc))
    try:
        # Decoded through the client's view as it stands when the item is
        # admitted; the item then enters before any change that would make
        # that view wrong, so its reply is encoded through the same view.
        ticket = await sup.submit(raw, version=version, decode=True)
    except Exception as exc:
        return _Pending(rid, error=error_data(exc))
    return _Pending(rid, ticket)


def _encode_output(p: _Pending, out: Any) -> bytes:
    assert p.ticket is not None
    assert p.ticket.view is not None
    try:
        return _reply(p, p.ticket.view.encode(out))
    except Exception as exc:
        return _reply(p, error=error_data(exc))


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


async def _write_replies(
    stream: ByteStream,
    pending: MemoryObjectReceiveStream[_Pending],
    send_timeout: float | None,
) -> None:
    try:
        await _write_loop(stream, pending, send_timeout)
    finally:
        _forget_rest(pending)


def _forget_rest(pending: MemoryObjectReceiveStream[_Pending]) -> None:
    """Stop tracking the outputs of requests that will get no reply, and
    close the queue so the reader stops handing over more."""
    while True:
        try:
            left = pending.receive_nowait()
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            break
        if left.ticket is not None:
            left.ticket.forget()
    pending.close()


async def _write_loop(
    stream: ByteStream,
    pending: MemoryObjectReceiveStream[_Pending],
    send_timeout: float | None,
) -> None:
    alive = True

    async def flush(chunks: list[bytes]) -> bool:
        if not alive or not chunks:
            return alive
        with anyio.move_on_after(send_timeout if send_timeout is not None else math.inf) as scope:
            try:
                await stream.send(b"".join(chunks))
            except _GONE:
                return False  # the client went away: keep draining its tickets, write nothing
        if scope.cancelled_caught:
            raise _Stuck
        return True

    async for p in pending:
        chunks: list[bytes] = []
        while True:
            if p.error is not None:
                chunks.append(_reply(p, error=p.error))
            else:
                assert p.ticket is not None
                if not alive:
                    p.ticket.forget()
                else:
                    try:
                        out = await p.ticket.result()
                    except Exception as exc:
                        chunks.append(_reply(p, error=error_data(exc)))
                    else:
                        chunks.append(_encode_output(p, out))
            # Write replies that are ready together: one send, not one per line.
            try:
                nxt = pending.receive_nowait()
            except (anyio.WouldBlock, anyio.EndOfStream):
                break
            # Flush before waiting, and at most _BATCH replies at a time: the
            # writer must not take requests out of the window faster than
            # the client takes replies, or the window would bound nothing.
            if len(chunks) >= _BATCH or (nxt.ticket is not None and not nxt.ticket.done):
                alive = await flush(chunks)
                chunks = []
            p = nxt
        alive = await flush(chunks)


def _owes_nothing(send: MemoryObjectSendStream[_Pending]) -> bool:
    """Whether every request read so far has had its reply written: nothing
    waits for the writer and the writer waits for work."""
    st = send.statistics()
    return st.current_buffer_used == 0 and st.tasks_waiting_receive > 0


async def _next_line(
    reader: LineReader, send: MemoryObjectSendStream[_Pending], idle_timeout: float | None
) -> bytes | None:
    """The next request line; ``None`` at the end, or once the client has been
    idle (no request, no reply owed) for ``idle_timeout`` seconds."""
    if idle_timeout is None:
        return await reader.receive_line()
    while True:
        with anyio.move_on_after(idle_timeout):
            return await reader.receive_line()  # a partial line stays buffered
        if _owes_nothing(send):
            return None  # idle: end the connection as if the client had
        # Replies are still owed (a slow pipeline): the client is waiting, not idle.


async def _read_requests(
    sup: Supervisor,
    reader: LineReader,
    send: MemoryObjectSendStream[_Pending],
    send_timeout: float | None,
    idle_timeout: float | None = None,
) -> None:
    while True:
        try:
            line = await _next_line(reader, send, idle_timeout)
        except LineTooLong as exc:
            err = _protocol_error("$", f"a line of at most {exc.limit} bytes", f"{exc.size} bytes")
            p = _Pending(None, error=error_data(err))
        else:
            if line is None:
                return
            if not line.strip():
                continue
            p = await _submit(sup, line)
        try:
            send.send_nowait(p)  # the common case: room in the window, no await
            continue
        except anyio.WouldBlock:
            pass
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            if p.ticket is not None:
                p.ticket.forget()
            return
        # Shielded: once an item is in the pipeline its ticket must reach
        # the writer, even when reading stops (the writer keeps draining);
        # bounded, because a writer facing a client that reads nothing
        # frees no room until it gives up on the client.
        with anyio.CancelScope(shield=True) as handing:
            handing.deadline = anyio.current_time() + (send_timeout or _HANDOVER)
            try:
                await send.send(p)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                pass  # the writer gave up on this client
            else:
                continue
        if p.ticket is not None:
            p.ticket.forget()
        if not handing.cancelled_caught:
            return


async def serve_data_connection(
    sup: Supervisor,
    stream: ByteStream,
    *,
    max_line: int,
    window: int = DEFAULT_WINDOW,
    send_timeout: float | None = None,
    drain: Drain | None = None,
    idle_timeout: float | None = None,
) -> None:
    """Serve one data connection until the client closes it or goes away.

    Every request gets a reply unless the client vanished first; the items
    it submitted are processed either way. A client that takes no reply for
    ``send_timeout`` seconds while replies wait is disconnected, and so is
    one that sends no complete request for ``idle_timeout`` seconds while no
    reply is owed to it. When ``drain`` stops reading, the connection
    answers every request it has admitted, then closes; requests it had not
    read were not processed.
    """
    send, receive = anyio.create_memory_object_stream[_Pending](window)
    reader = LineReader(stream, max_line)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_write_replies, stream, receive, send_timeout)
            async with send:
                with anyio.CancelScope() as reading:
                    if drain is not None:
                        drain.watch(reading)
                    try:
                        await _read_requests(sup, reader, send, send_timeout, idle_timeout)
                    finally:
                        if drain is not None:
                            drain.forget(reading)
    except* _Stuck:
        stuck = True  # the caller closes the connection
    else:
        stuck = False
    finally:
        _forget_rest(receive)  # requests the writer never reached
    if not stuck:
        # RuntimeError: uvloop's transport when the peer has already gone.
        with contextlib.suppress(*_GONE, NotImplementedError, RuntimeError):
            await stream.send_eof()
