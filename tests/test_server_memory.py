"""Memory: partial lines parked on hundreds of connections do not kill the server.

Issue finding 2: each connection could park most of a line, and a few
hundred did that to a server under a memory limit until ``MemoryError``.
Here the real server process runs under an address-space limit
(``RLIMIT_AS``) that the flood would exceed several times over without the
buffer budget; with it, the server closes the biggest holders, stays up,
and serves a data client and an operator afterwards.
"""

from __future__ import annotations

import contextlib
import json
import resource
import socket
from pathlib import Path

import pytest

from tests.serving import run_arrowloop, start_server

pytestmark = pytest.mark.e2e

#: Address space for the server: its baseline is about 200 MiB (mostly
#: mapped, not used), the flood below is 1.2 GB.
LIMIT_AS = 640 * 1024 * 1024
CONNECTIONS = 1200
PARTIAL = b'{"item": "' + b"x" * 1_000_000  # under the 1 MiB line limit, no newline


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))


def _call(address: tuple[str, int], line: bytes) -> dict[str, object]:
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(line)
        data = b""
        while not data.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, object] = json.loads(data or b"{}")
    return reply


@pytest.mark.slow
def test_a_flood_of_partial_lines_under_a_memory_limit_leaves_the_server_up(
    tmp_path: Path,
) -> None:
    log_path = tmp_path / "server.log"
    proc, info = start_server(
        tmp_path, "--max-buffered-bytes", str(64 << 20), preexec_fn=_limit_memory
    )
    ready = info["ready_file"]
    flood: list[socket.socket] = []
    try:
        data = (info["data"]["host"], info["data"]["port"])
        refused = 0
        for _ in range(CONNECTIONS):
            s = socket.create_connection(data, timeout=10)
            flood.append(s)
            try:
                s.sendall(PARTIAL)
            except OSError:
                refused += 1  # the server closed it: its budget at work
        assert proc.poll() is None, log_path.read_text()
        # Some of the flood was cut off (reads at the end, or resets).
        closed = refused
        for s in flood:
            s.settimeout(0.01)
            with contextlib.suppress(TimeoutError, BlockingIOError):
                try:
                    closed += s.recv(1) == b""
                except ConnectionError:
                    closed += 1
        assert closed > 0
        # A data client and an operator are served while the rest stays open.
        assert _call(data, b'{"item": {"tag": "IncrCount"}}\n').get("output") == {
            "tag": "Ack",
            "value": {},
        }
        done = run_arrowloop(tmp_path, "status", "--ready-file", str(ready))
        assert done.returncode == 0, done.stderr
        assert proc.poll() is None, log_path.read_text()
    finally:
        for s in flood:
            s.close()
        proc.terminate()
        code = proc.wait(timeout=30)
    assert code == 0, log_path.read_text()
    assert "MemoryError" not in log_path.read_text()
