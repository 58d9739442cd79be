"""File descriptors: the server derives its connection caps from the open-file
limit, survives running out of descriptors, and keeps room for an operator.

The flood test runs the real server process under a small RLIMIT_NOFILE and
opens more idle connections than it could ever hold.
"""

from __future__ import annotations

import json
import resource
import socket
import time
from pathlib import Path

import pytest

from arrowloop.server import ServerConfig, connection_limits
from tests.serving import run_arrowloop, start_server

pytestmark = pytest.mark.e2e

NOFILE = 128


def test_connection_limits_follow_the_open_file_limit() -> None:
    """Caps leave headroom under the limit; control keeps its share; explicit caps only lower."""
    data, control = connection_limits(ServerConfig(), nofile=1024)
    assert control == 16
    assert data + control <= 1024 - 64 - 102
    assert connection_limits(ServerConfig(max_connections=10), nofile=1024) == (10, 16)
    assert connection_limits(ServerConfig(max_connections=10_000), nofile=1024)[0] == data
    small_data, small_control = connection_limits(ServerConfig(), nofile=NOFILE)
    assert small_data >= 1
    assert small_control >= 1
    assert small_data + small_control < NOFILE


def test_max_connections_is_checked() -> None:
    """A non-positive connection cap is refused with the field's name."""
    with pytest.raises(ValueError, match="max_connections"):
        ServerConfig(max_connections=0)


def _limit_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


def _line(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_a_connection_flood_under_a_small_file_limit_leaves_the_server_up(
    tmp_path: Path,
) -> None:
    """Far more idle connections than descriptors: the server lives, an operator gets in."""
    proc, info = start_server(tmp_path, preexec_fn=_limit_files)
    ready = info["ready_file"]
    flood: list[socket.socket] = []
    try:
        data = (info["data"]["host"], info["data"]["port"])
        control = (info["control"]["host"], info["control"]["port"])
        for _ in range(3 * NOFILE):  # idle connections, never closed by the client
            s = socket.create_connection(data, timeout=10)
            flood.append(s)
        time.sleep(0.5)  # let the server accept, refuse, and hit its limit
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        # The operator still gets in on the control port.
        done = run_arrowloop(tmp_path, "status", "--ready-file", str(ready))
        assert done.returncode == 0, done.stderr
        assert "counter" in done.stdout
        for s in flood:
            s.close()
        flood.clear()
        # And data clients are served again once the flood is gone.
        deadline = time.monotonic() + 30
        while True:
            with socket.create_connection(data, timeout=10) as s:
                s.sendall(b'{"item": {"tag": "ReadCount"}}\n')
                reply = json.loads(_line(s) or b"{}")
            if "output" in reply or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert reply.get("output") == {"tag": "Count", "value": {"n": 0}}, reply
        assert proc.poll() is None
    finally:
        for s in flood:
            s.close()
        proc.terminate()
        code = proc.wait(timeout=30)
    assert code == 0, (tmp_path / "server.log").read_text()
    assert control[1] > 0


@pytest.mark.anyio
async def test_accept_survives_running_out_of_descriptors() -> None:
    """EMFILE from accept() pauses the loop and retries; other errors still end it."""
    import errno

    import anyio

    from arrowloop.server._serve import Server, _accept_loop

    served: list[object] = []

    class Flaky:
        def __init__(self) -> None:
            self.calls = 0

        async def accept(self) -> object:
            self.calls += 1
            if self.calls <= 3:
                raise OSError(errno.EMFILE, "Too many open files")
            if self.calls == 4:
                return "a stream"
            raise OSError(errno.EBADF, "listener closed")

    async def handle(stream: object) -> None:
        served.append(stream)

    server = Server(None, ("127.0.0.1", 1), ("127.0.0.1", 2), None)  # type: ignore[arg-type]
    errors: list[BaseException] = []
    with anyio.fail_after(10):
        try:
            async with anyio.create_task_group() as tg:
                await _accept_loop(server, Flaky(), handle, tg)  # type: ignore[arg-type]
        except* OSError as group:
            errors.extend(group.exceptions)
    assert [str(e) for e in errors] == ["[Errno 9] listener closed"]
    assert served == ["a stream"]
    assert server.accept_failures == 3
