"""The server: a supervised pipeline behind a data port and a control port.

:func:`open_server` starts the supervisor, listens on both ports and serves
every connection in its own task until the block ends; the supervisor then
stops gracefully (the pipeline drains what is in flight). The control port
listens on loopback unless told otherwise.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import resource
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import attrs
import orjson
from anyio.abc import ByteStream, Listener, SocketAttribute, TaskGroup

from arrowloop.endpoints import DEFAULT_MAX_BUFFERED, DEFAULT_MAX_LINE, BufferBudget
from arrowloop.runtime import DEFAULT_REQUEST_KEYS
from arrowloop.server._auth import Token
from arrowloop.server._control import ControlLimits, serve_control_connection
from arrowloop.server._data import DEFAULT_WINDOW, DataStats, Drain
from arrowloop.server._dataconn import serve_data_connection
from arrowloop.server._guards import LOOPBACK, AddressCounts, AuthThrottle
from arrowloop.store import StateStore
from arrowloop.supervisor import Supervisor, SupervisorSpec, open_supervisor

__all__ = [
    "ServerConfig",
    "Server",
    "open_server",
    "connection_limits",
    "per_address_limit",
    "DEFAULT_PORT",
    "DEFAULT_CONTROL_PORT",
]

log = logging.getLogger("arrowloop.server")

#: Default data port.
DEFAULT_PORT: Final = 7400
#: Default control port.
DEFAULT_CONTROL_PORT: Final = 7401


def _port(_: Any, attribute: Any, value: Any) -> None:
    if type(value) is not int or not 0 <= value <= 65535:
        raise ValueError(f"expected {attribute.name} to be a port 0..65535, found {value!r}")


def _positive(_: Any, attribute: Any, value: Any) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"expected {attribute.name} to be an integer >= 1, found {value!r}")


def _addresses(value: Iterable[str]) -> frozenset[str]:
    if isinstance(value, str):  # one address, not its characters
        return frozenset({value})
    return frozenset(value)


@attrs.frozen
class ServerConfig:
    """Where a server listens and the limits it applies.

    Attributes:
        host: the data port's address.
        port: the data port (0: any free port).
        control_host: the control port's address (loopback by default).
        control_port: the control port (0: any free port).
        max_line: longest data request line, in bytes.
        window: most requests of one data connection in flight at once.
        max_connections: most data connections open at once; more are
            told the server is busy and closed. ``None`` (the default)
            derives it from the open-file limit (``RLIMIT_NOFILE``), less
            headroom and the control port's share; an explicit value is
            lowered to that too (see :func:`connection_limits`).
        control_connections: most control connections open at once,
            reserved for them: a flood of data connections can never keep
            an operator out.
        control: limits on control requests.
        send_timeout: seconds a data client may leave replies untaken
            before it is disconnected (``None``: wait for ever).
        drain_timeout: seconds a stopping server waits for its data
            connections to answer the requests they admitted.
        idle_timeout: seconds a connection may send no complete request
            while no reply is owed to it before it is closed (``None``:
            never), on both ports.
        auth_timeout: seconds a control connection has, from opening, to
            send a request with the right token before it is closed
            (``None``: no limit).
        max_buffered: most bytes all connections together may hold in
            unprocessed input (partial and unread lines); over it, the
            connections holding the most are closed until the total is
            back under three quarters of it.
        max_per_address: most connections one client address may hold on
            a port. ``None`` (the default) derives it: a quarter of the
            port's cap (at least 2), so one host cannot take a port alone.
        per_address_exempt: addresses not limited per address: loopback
            by default, where every local client has the same address; add
            a load balancer or proxy whose clients all arrive from it.
        socket_buffer: kernel send and receive buffer size, in bytes, for
            each accepted connection (``None``: the system's default, which
            on Linux grows to several MiB per connection). Smaller buffers
            bound what a client that stops reading can hold in the kernel
            and make backpressure reach it sooner.
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=DEFAULT_PORT, validator=_port)
    control_host: str = "127.0.0.1"
    control_port: int = attrs.field(default=DEFAULT_CONTROL_PORT, validator=_port)
    max_line: int = attrs.field(default=DEFAULT_MAX_LINE, validator=_positive)
    window: int = attrs.field(default=DEFAULT_WINDOW, validator=_positive)
    max_connections: int | None = attrs.field(default=None)
    control_connections: int = attrs.field(default=16, validator=_positive)
    control: ControlLimits = attrs.field(factory=ControlLimits)
    socket_buffer: int | None = attrs.field(default=None)
    send_timeout: float | None = 60.0
    drain_timeout: float = 10.0
    idle_timeout: float | None = attrs.field(default=300.0)
    auth_timeout: float | None = attrs.field(default=10.0)
    max_buffered: int = attrs.field(default=DEFAULT_MAX_BUFFERED, validator=_positive)
    max_per_address: int | None = attrs.field(default=None)
    per_address_exempt: frozenset[str] = attrs.field(default=LOOPBACK, converter=_addresses)

    @idle_timeout.validator
    @auth_timeout.validator
    def _check_timeout(self, attribute: Any, value: Any) -> None:
        ok = value is None or (type(value) in (int, float) and value > 0)
        if not ok:
            raise ValueError(
                f"expected {attribute.name} to be a number of seconds > 0 or None, found {value!r}"
            )

    @socket_buffer.validator
    def _check_buffer(self, attribute: Any, value: Any) -> None:
        if value is not None:
            _positive(self, attribute, value)

    @max_connections.validator
    @max_per_address.validator
    def _check_connections(self, attribute: Any, value: Any) -> None:
        if value is not None:
            _positive(self, attribute, value)


#: File descriptors kept free of connections: listeners, standard streams,
#: logs, imports, the state store, and room to refuse a connection politely.
_HEADROOM: Final = 64


def connection_limits(cfg: ServerConfig, nofile: int | None = None) -> tuple[int, int]:
    """The data and control connection caps this process can honour.

    Every connection is a file descriptor, so together they must stay under
    the open-file limit (``nofile``, by default the soft ``RLIMIT_NOFILE``)
    with headroom (64 plus a tenth of the limit); the control port's share
    comes off the top, so it always has room for an operator.
    """
    if nofile is None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        nofile = 1 << 20 if soft == resource.RLIM_INFINITY else soft
    room = max(2, nofile - _HEADROOM - nofile // 10)
    control = max(1, min(cfg.control_connections, room // 4))
    data = max(1, room - control)
    if cfg.max_connections is not None:
        data = min(data, cfg.max_connections)
    return data, control


def per_address_limit(cfg: ServerConfig, cap: int) -> int:
    """The most connections one (non-exempt) address may hold on a port
    whose cap is ``cap``."""
    if cfg.max_per_address is not None:
        return min(cfg.max_per_address, cap)
    return max(2, cap // 4)


class Server:
    """A running server (what :func:`open_server` yields).

    Attributes:
        supervisor: the supervisor of the served pipeline.
        data_address: ``(host, port)`` the data port listens on.
        control_address: ``(host, port)`` the control port listens on.
        token: the control token in use.
    """

    def __init__(
        self,
        sup: Supervisor,
        data_address: tuple[str, int],
        control_address: tuple[str, int],
        token: Token,
    ) -> None:
        self.supervisor = sup
        self.data_address = data_address
        self.control_address = control_address
        self.token = token
        #: Connections open now, per port.
        self.connections = {"data": 0, "control": 0}
        #: Connections accepted so far, per port.
        self.accepted = {"data": 0, "control": 0}
        #: Most connections served at once, per port (see connection_limits).
        self.limits = {"data": 0, "control": 0}
        #: Times accept() failed for want of file descriptors (and was retried).
        self.accept_failures = 0
        #: What all connections hold in unprocessed input, bounded together.
        self.buffers = BufferBudget()
        #: Open connections per client address, per port.
        self.per_address = {"data": AddressCounts(None), "control": AddressCounts(None)}
        #: Slows down addresses that keep sending wrong tokens.
        self.auth = AuthThrottle()
        #: What the data connections have done (requests, replies, errors, latency).
        self.data_stats = DataStats()
        #: Error replies on the control port, by error type.
        self.refusals: dict[str, int] = {}


def _address(listener: Listener[Any]) -> tuple[str, int]:
    address = listener.extra(SocketAttribute.local_address)
    assert isinstance(address, tuple)  # an IP socket: (host, port, ...)
    return str(address[0]), int(address[1])


_GONE: Final = (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)


def _busy(message: str) -> bytes:
    return orjson.dumps({"error": {"type": "ServerBusy", "message": message}}) + b"\n"


_BUSY: Final = _busy("the server has too many connections open; try again later")
_BUSY_ADDRESS: Final = _busy(
    "too many connections from your address are open on this port; close some, or try again later"
)


def _peer(stream: ByteStream) -> str | None:
    address = stream.extra(SocketAttribute.remote_address, None)
    return str(address[0]) if isinstance(address, tuple) and address else None


def _pause_reading(stream: ByteStream) -> None:
    """Stop the transport reading until the handler asks for data.

    anyio (4.16) leaves an accepted TCP transport reading, and its
    ``receive`` pauses the transport only after a call that had to wait; a
    client sending faster than the server reads keeps data queued, so the
    transport never pauses and the queue grows without bound (gigabytes in
    seconds). Pausing at accept, as anyio does for ``connect_tcp``, makes
    every read go through ``receive``, which resumes the transport only
    while it waits: what a connection buffers is then bounded by the
    kernel's socket buffers, and backpressure reaches the client.
    """
    transport = getattr(stream, "_transport", None)
    pause = getattr(transport, "pause_reading", None)
    if callable(pause):
        pause()


#: accept() errors that mean "no file descriptor (or memory) right now".
_SCARCE: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


async def _accept_loop(
    server: Server,
    listener: Listener[Any],
    handle: Callable[[Any], Coroutine[Any, Any, None]],
    tg: TaskGroup,
) -> None:
    """Accept connections for ever; a lack of descriptors pauses, never kills.

    (anyio's ``Listener.serve`` lets the error out, which ended the server.)
    Connections not accepted meanwhile wait in the kernel's backlog.
    """
    accept = listener.accept  # type: ignore[attr-defined]
    pause = 0.01
    while True:
        try:
            stream = await accept()
        except OSError as exc:
            if exc.errno not in _SCARCE:
                raise
            server.accept_failures += 1
            if server.accept_failures == 1 or pause >= 1.0:
                log.warning(
                    "accept failed (%s): out of file descriptors; retrying in %.2fs",
                    exc.strerror,
                    pause,
                    extra={"reason": str(exc)},
                )
            await anyio.sleep(pause)
            pause = min(pause * 2, 1.0)
            continue
        pause = 0.01
        tg.start_soon(handle, stream)


def _guard(
    server: Server,
    port: str,
    cfg: ServerConfig,
    serve: Callable[[ByteStream, str | None], Awaitable[None]],
) -> Callable[[ByteStream], Coroutine[Any, Any, None]]:
    limit = server.limits[port]
    addresses = server.per_address[port]

    async def handle(stream: ByteStream) -> None:
        _pause_reading(stream)
        async with stream:
            if cfg.socket_buffer is not None:
                sock = stream.extra(SocketAttribute.raw_socket, None)
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, cfg.socket_buffer)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, cfg.socket_buffer)
            if server.connections[port] >= limit:
                with contextlib.suppress(*_GONE):
                    await stream.send(_BUSY)
                return
            peer = _peer(stream)
            if not addresses.enter(peer):
                with contextlib.suppress(*_GONE):
                    await stream.send(_BUSY_ADDRESS)
                return
            server.connections[port] += 1
            server.accepted[port] += 1
            try:
                await serve(stream, peer)
            except _GONE:
                pass  # the client went away mid-request
            finally:
                server.connections[port] -= 1
                addresses.leave(peer)

    return handle


@asynccontextmanager
async def open_server(
    spec: SupervisorSpec,
    token: Token,
    config: ServerConfig | None = None,
    *,
    store: StateStore | None = None,
    request_keys: int = DEFAULT_REQUEST_KEYS,
) -> AsyncIterator[Server]:
    """Run ``spec`` under a supervisor and serve it for the block's duration.

    Leaving the block stops accepting connections and reading requests;
    each data connection answers every request it admitted (within
    ``drain_timeout``), then the supervisor stops and the pipeline drains.

    With a ``store``, the supervisor resumes from it and every reply is
    durable before it is sent (docs/durability.md). ``request_keys``: how
    many request keys each stage remembers (see docs/durability.md).

    Raises:
        OSError: a port cannot be bound.
        EscalationError: the supervisor gave up (as :func:`open_supervisor`).
        StoreError: the store cannot be used.
    """
    cfg = config or ServerConfig()
    async with open_supervisor(spec, store=store, request_keys=request_keys) as sup:
        # Listeners are bound before anything is yielded, so a port in use
        # fails the start rather than the first client.
        data = await anyio.create_tcp_listener(local_host=cfg.host, local_port=cfg.port)
        try:
            control = await anyio.create_tcp_listener(
                local_host=cfg.control_host, local_port=cfg.control_port
            )
        except BaseException:
            await data.aclose()
            raise
        server = Server(sup, _address(data.listeners[0]), _address(control.listeners[0]), token)
        server.limits["data"], server.limits["control"] = connection_limits(cfg)
        server.buffers = BufferBudget(cfg.max_buffered)
        for port in ("data", "control"):
            server.per_address[port] = AddressCounts(
                per_address_limit(cfg, server.limits[port]), cfg.per_address_exempt
            )

        drain = Drain()
        idle = anyio.Event()  # set when draining and no data connection is left

        async def data_conn(stream: ByteStream, peer: str | None) -> None:
            try:
                await serve_data_connection(
                    sup,
                    stream,
                    max_line=cfg.max_line,
                    window=cfg.window,
                    send_timeout=cfg.send_timeout,
                    drain=drain,
                    idle_timeout=cfg.idle_timeout,
                    budget=server.buffers,
                    stats=server.data_stats,
                )
            finally:
                if drain.draining and server.connections["data"] <= 1:
                    idle.set()

        async def control_conn(stream: ByteStream, peer: str | None) -> None:
            await serve_control_connection(
                sup,
                stream,
                token,
                cfg.control,
                auth_timeout=cfg.auth_timeout,
                idle_timeout=cfg.idle_timeout,
                budget=server.buffers,
                throttle=server.auth,
                address=peer,
                refusals=server.refusals,
            )

        async with (
            data,
            control,
            anyio.create_task_group() as connections,
            anyio.create_task_group() as listening,
        ):
            for port, multi, conn in (
                ("data", data, data_conn),
                ("control", control, control_conn),
            ):
                handle = _guard(server, port, cfg, conn)
                for listener in multi.listeners:
                    listening.start_soon(_accept_loop, server, listener, handle, connections)
            try:
                yield server
            finally:
                # Stop accepting, stop reading requests, and give every data
                # connection time to answer what it has admitted.
                listening.cancel_scope.cancel()
                drain.stop_reading()
                if server.connections["data"] == 0:
                    idle.set()
                with anyio.CancelScope(shield=True), anyio.move_on_after(cfg.drain_timeout):
                    await idle.wait()
                connections.cancel_scope.cancel()
