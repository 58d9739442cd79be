"""kill -9 against the real server with ``--state-dir``: every reply a client
saw is durable.

The server process is killed (SIGKILL) at random moments while clients keep
sending increments; it is restarted on the same directory each time. After
every restart the count is at least the number of acknowledged increments
(a reply is sent only once its state is durable) and at most the number
sent (an increment without a reply may or may not have been applied: the
client would resend it), and the upgrade made before the first kill is
still running, with its history record.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from examples.counter import v2
from tests.test_server_e2e import ROOT, _env

KILLS = 4


class _Incrementer:
    """Sends increments one after another, counting what was sent and acked."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sent = 0
        self.acked = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                buf = b""
                while not self.stop.is_set():
                    s.sendall(b'{"item": {"tag": "IncrCount"}}\n' * 10)
                    self.sent += 10
                    got = 0
                    while got < 10:
                        chunk = s.recv(65536)
                        if not chunk:
                            return
                        buf += chunk
                        while b"\n" in buf:
                            line, buf = buf.split(b"\n", 1)
                            assert b'"Ack"' in line, line
                            self.acked += 1
                            got += 1
        except OSError:
            return  # the server was killed


def _start(tmp_path: Path, state: Path) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    ready = tmp_path / "ready.json"
    ready.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "arrowloop", "serve", "examples.counter.service:pipeline"]
    cmd += ["--port", "0", "--control-port", "0", "--ready-file", str(ready)]
    cmd += ["--token-file", str(tmp_path / "token"), "--state-dir", str(state)]
    log = open(tmp_path / "server.log", "ab")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(tmp_path), stdout=log, stderr=subprocess.STDOUT)
    log.close()
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    info: dict[str, Any] = json.loads(ready.read_text())
    info["ready_file"] = str(ready)
    return proc, info


def _cli(tmp_path: Path, info: dict[str, Any], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "arrowloop", *args, "--ready-file", info["ready_file"]],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _count(port: int) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b'{"item": {"tag": "ReadCount"}}\n')
        data = b""
        while not data.endswith(b"\n"):
            data += s.recv(65536)
    n = json.loads(data)["output"]["value"]["n"]
    assert type(n) is int
    return n


def test_every_acknowledged_increment_survives_kill_9(tmp_path: Path) -> None:
    rng = random.Random(7)
    state = tmp_path / "state"
    proc, info = _start(tmp_path, state)
    sent = acked = 0
    try:
        _cli(tmp_path, info, "upgrade", "examples/counter/v2.py", "--by", "kill-test")
        for _ in range(KILLS):
            load = [_Incrementer(info["data"]["port"]) for _ in range(3)]
            for c in load:
                c.thread.start()
            time.sleep(rng.uniform(0.2, 0.8))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            for c in load:
                c.stop.set()
                c.thread.join(timeout=10)
            sent += sum(c.sent for c in load)
            acked += sum(c.acked for c in load)
            proc, info = _start(tmp_path, state)
            n = _count(info["data"]["port"])
            assert acked <= n <= sent, (acked, n, sent)
            sent = acked = n  # what the next round starts from
            status = _cli(tmp_path, info, "status", "--json")
            assert json.loads(status)["children"][0]["version"] == v2.machine.version
            history = json.loads(_cli(tmp_path, info, "history", "--json"))
            assert [r["requested_by"] for r in history] == ["kill-test"]
        assert "resumed" in (tmp_path / "server.log").read_text()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
