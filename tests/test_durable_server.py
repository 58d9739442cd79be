"""kill -9 against the real server with ``--state-dir``: every reply a client
saw is durable.

The server process is killed (SIGKILL) at random moments while clients keep
sending increments; it is restarted on the same directory each time. After
every restart the count is at least the number of acknowledged increments
(a reply is sent only once its state is durable) and at most the number
sent (an increment without a reply may or may not have been applied: the
client would resend it), and the upgrade made before the first kill is
still running, with its history record.

With request keys the count is exact: clients resend, with the same keys,
every increment that got no reply, and the final count equals the number
of distinct increments sent.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from examples.counter import v2
from tests.serving import run_arrowloop, start_server

KILLS = 4
KEYED_KILLS = 5


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
    return start_server(tmp_path, "--state-dir", str(state))


def _cli(tmp_path: Path, info: dict[str, Any], *args: str) -> str:
    done = run_arrowloop(tmp_path, *args, "--ready-file", info["ready_file"])
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


class _Keys:
    """One client's increments across server restarts: each has its own key."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.made = 0
        self.sent: list[str] = []  # every key sent at least once, in order
        self.acked: set[str] = set()
        self.errors: list[bytes] = []

    def unanswered(self) -> list[str]:
        return [k for k in self.sent if k not in self.acked]


class _KeyedIncrementer:
    """Sends keyed increments ten at a time: first those of earlier rounds
    that got no reply (same keys), then new ones unless ``resend_only``."""

    def __init__(self, port: int, keys: _Keys, *, resend_only: bool = False) -> None:
        self.port = port
        self.keys = keys
        self.resend = keys.unanswered()
        self.resend_only = resend_only
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _batch(self) -> list[str]:
        k = self.keys
        batch, self.resend = self.resend[:10], self.resend[10:]
        while len(batch) < 10 and not self.resend_only:
            k.made += 1
            key = f"{k.name}-{k.made}"
            k.sent.append(key)
            batch.append(key)
        return batch

    def _run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
                buf = b""
                while not self.stop.is_set():
                    batch = self._batch()
                    if not batch:
                        return
                    s.sendall(
                        b"".join(
                            json.dumps({"item": {"tag": "IncrCount"}, "key": key}).encode() + b"\n"
                            for key in batch
                        )
                    )
                    for key in batch:
                        while b"\n" not in buf:
                            chunk = s.recv(65536)
                            if not chunk:
                                return
                            buf += chunk
                        line, buf = buf.split(b"\n", 1)
                        if b'"Ack"' in line:
                            self.keys.acked.add(key)
                        else:
                            self.keys.errors.append(line)
        except OSError:
            return  # the server was killed


@pytest.mark.slow
def test_resent_keys_make_the_count_exact_across_kill_9(tmp_path: Path) -> None:
    """Kill -9 at random moments; clients resend unanswered increments with
    their keys; the final count is the number of distinct increments."""
    rng = random.Random(11)
    state = tmp_path / "state"
    clients = [_Keys(f"c{i}") for i in range(3)]
    proc, info = _start(tmp_path, state)
    try:
        _cli(tmp_path, info, "upgrade", "examples/counter/v2.py", "--by", "kill-test")
        for _ in range(KEYED_KILLS):
            load = [_KeyedIncrementer(info["data"]["port"], k) for k in clients]
            for c in load:
                c.thread.start()
            time.sleep(rng.uniform(0.2, 0.8))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            for c in load:
                c.stop.set()
                c.thread.join(timeout=10)
            proc, info = _start(tmp_path, state)
            n = _count(info["data"]["port"])
            acked = sum(len(k.acked) for k in clients)
            sent = sum(len(k.sent) for k in clients)
            assert acked <= n <= sent, (acked, n, sent)
            status = _cli(tmp_path, info, "status", "--json")
            assert json.loads(status)["children"][0]["version"] == v2.machine.version
            history = json.loads(_cli(tmp_path, info, "history", "--json"))
            assert [r["requested_by"] for r in history] == ["kill-test"]
        # The server stays up now: every increment without a reply is resent
        # (some of them were applied before a kill: they must not count twice).
        final = [_KeyedIncrementer(info["data"]["port"], k, resend_only=True) for k in clients]
        for c in final:
            c.thread.start()
        for c in final:
            c.thread.join(timeout=60)
            assert not c.thread.is_alive()
        assert [k.errors for k in clients] == [[], [], []]
        assert [k.unanswered() for k in clients] == [[], [], []]
        assert _count(info["data"]["port"]) == sum(len(k.sent) for k in clients)
        assert sum(len(k.sent) for k in clients) > 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
