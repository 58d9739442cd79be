"""A NATS JetStream server of the test's own, on loopback, for tests/test_nats_*.py.

``scripts/install-nats.sh`` (run by ``make unit``) installs Debian's
``nats-server``; where it could not, these tests are skipped with that reason.
Each server gets a free port and a store directory in the test's tmp_path,
so tests never share broker state, and it can be stopped and started again
on the same port and store (a broker restart mid-stream).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

NATS_SERVER = shutil.which("nats-server") or shutil.which("nats-server", path="/usr/sbin")

#: Skips a test that needs the broker on a machine where it is not installed.
needs_nats = pytest.mark.skipif(
    NATS_SERVER is None,
    reason="nats-server is not installed (scripts/install-nats.sh needs apt-get and root)",
)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class NatsServer:
    """One ``nats-server -js`` process on 127.0.0.1 with its own store directory."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        """JetStream on, loopback only, this server's port and store directory."""
        assert NATS_SERVER is not None
        return [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)]

    def start(self, timeout: float = 30.0) -> None:
        """Start it and wait until it accepts connections."""
        assert NATS_SERVER is not None
        with (self.store.parent / "nats-server.log").open("ab") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nats-server did not start listening")

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL) and wait for it."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A running JetStream server of this test's own (skipped where not installed)."""
    if NATS_SERVER is None:
        pytest.skip("nats-server is not installed (scripts/install-nats.sh needs apt-get and root)")
    server = NatsServer(tmp_path / "jetstream")
    server.start()
    try:
        yield server
    finally:
        server.stop()
