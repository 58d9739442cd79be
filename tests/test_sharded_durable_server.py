"""kill -9 against the real server serving a sharded stage with ``--state-dir``.

Clients send keyed increments ``(letter, 1)`` to a stage of three replicas
(per key, the running sum), the server is killed (SIGKILL) at random
moments and restarted on the same directory, and each time the clients
resend, with the same keys, every increment that got no reply. At the end
every letter's sum is exactly the number of distinct increments sent for it:
no replica lost an acknowledged one or applied one twice.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.serving import run_arrowloop, start_server

KILLS = 3
TARGET = "tests.sharded_service:service"
LETTERS = "abcdefgh"


class _Client:
    """One client's keyed increments across restarts (a key per increment)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.made = 0
        self.sent: dict[str, str] = {}  # key -> letter, every key sent at least once
        self.acked: set[str] = set()
        self.errors: list[bytes] = []

    def unanswered(self) -> list[str]:
        return [k for k in self.sent if k not in self.acked]

    def run(self, port: int, stop: threading.Event, *, resend_only: bool) -> None:
        resend = self.unanswered()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                buf = b""
                while not stop.is_set():
                    batch, resend = resend[:10], resend[10:]
                    while len(batch) < 10 and not resend_only:
                        self.made += 1
                        key = f"{self.name}-{self.made}"
                        self.sent[key] = LETTERS[(self.made * 7 + len(self.name)) % len(LETTERS)]
                        batch.append(key)
                    if not batch:
                        return
                    s.sendall(
                        b"".join(
                            json.dumps({"item": [self.sent[k], 1], "key": k}).encode() + b"\n"
                            for k in batch
                        )
                    )
                    for key in batch:
                        while b"\n" not in buf:
                            chunk = s.recv(65536)
                            if not chunk:
                                return
                            buf += chunk
                        line, buf = buf.split(b"\n", 1)
                        if b'"output"' in line:
                            self.acked.add(key)
                        else:
                            self.errors.append(line)
        except OSError:
            return  # the server was killed


def _sums(port: int) -> dict[str, int]:
    """Every letter's sum, read by adding 0 to it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"".join(json.dumps({"item": [k, 0]}).encode() + b"\n" for k in LETTERS))
        data = b""
        while data.count(b"\n") < len(LETTERS):
            data += s.recv(65536)
    out: dict[str, int] = {}
    for line in data.splitlines():
        k, total = json.loads(line)["output"]
        out[k] = total
    return out


def _round(port: int, clients: list[_Client], seconds: float | None) -> Any:
    stop = threading.Event()
    threads = [
        threading.Thread(target=c.run, args=(port, stop), kwargs={"resend_only": seconds is None})
        for c in clients
    ]
    for t in threads:
        t.start()
    if seconds is not None:
        time.sleep(seconds)
    return stop, threads


@pytest.mark.slow
def test_a_sharded_stage_loses_and_duplicates_nothing_across_kill_9(tmp_path: Path) -> None:
    """Kill -9 at random moments, keyed increments resent: every letter's
    sum is exactly its number of distinct increments."""
    rng = random.Random(5)
    state = tmp_path / "state"
    clients = [_Client(f"c{i}") for i in range(3)]
    proc, info = start_server(tmp_path, "--state-dir", str(state), target=TARGET)
    try:
        for _ in range(KILLS):
            stop, threads = _round(info["data"]["port"], clients, rng.uniform(0.3, 0.8))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            stop.set()
            for t in threads:
                t.join(timeout=10)
            proc, info = start_server(tmp_path, "--state-dir", str(state), target=TARGET)
            sums = _sums(info["data"]["port"])
            acked = sum(len(c.acked) for c in clients)
            sent = sum(len(c.sent) for c in clients)
            assert acked <= sum(sums.values()) <= sent, (acked, sums, sent)
        # The server stays up now: every unanswered increment is resent.
        stop, threads = _round(info["data"]["port"], clients, None)
        for t in threads:
            t.join(timeout=60)
            assert not t.is_alive()
        assert [c.errors for c in clients] == [[], [], []]
        assert [c.unanswered() for c in clients] == [[], [], []]
        expected = Counter(letter for c in clients for letter in c.sent.values())
        assert _sums(info["data"]["port"]) == {k: expected.get(k, 0) for k in LETTERS}
        assert sum(expected.values()) > 0
        assert "resumed" in (tmp_path / "server.log").read_text()
        # A savepoint of the replicas, and a cold start from it elsewhere.
        done = run_arrowloop(tmp_path, "savepoint", "end", "--ready-file", info["ready_file"])
        assert done.returncode == 0, done.stderr
        path = state / "savepoints" / "end.savepoint.json"
        stages = json.loads(path.read_bytes())["stages"]
        assert [s["stage"] for s in stages] == ["sums#0", "sums#1", "sums#2"]
        proc.terminate()
        proc.wait(timeout=30)
        fresh = ["--state-dir", str(tmp_path / "fresh"), "--from-savepoint", str(path)]
        proc, info = start_server(tmp_path, *fresh, target=TARGET)
        assert _sums(info["data"]["port"]) == {k: expected.get(k, 0) for k in LETTERS}
    finally:
        proc.terminate()
        proc.wait(timeout=30)
