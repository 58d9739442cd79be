"""End to end: the real ``python -m arrowloop serve`` process on 127.0.0.1,
driven by plain sockets and by the CLI as a user would.

Covers the counter's reference transcript (README) exactly, with both upgrades
made by ``python -m arrowloop upgrade``; the refused ill-typed upgrade; a
wrong token; a stale expected version; an oversized payload; rollback; the
CLI's output forms and exit codes; the token generated on first start; and
a clean stop on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arrowloop.cli import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_USAGE
from arrowloop.machine import Machine
from examples import counter
from examples.counter import v1, v2, v3
from tests.serving import ROOT, server_env, start_server

pytestmark = pytest.mark.e2e

READ = {"tag": "ReadCount"}
INCR = {"tag": "IncrCount"}
ACK = {"tag": "Ack", "value": {}}


def count(n: int) -> Any:
    """The JSON form of ``Count(n)``."""
    return {"tag": "Count", "value": {"n": n}}


def _env(tmp: Path) -> dict[str, str]:
    return server_env(tmp)


class Running:
    """A server process started for one test."""

    def __init__(self, tmp: Path, *extra: str, token_file: bool = True) -> None:
        self.tmp = tmp
        self.ready = tmp / "ready.json"
        self.env = _env(tmp)
        (tmp / "server.log").unlink(missing_ok=True)  # output() is this run's only
        self.proc, info = start_server(tmp, *extra, token_file=token_file)
        self.data = (info["data"]["host"], info["data"]["port"])
        self.control = (info["control"]["host"], info["control"]["port"])

    def output(self) -> str:
        """What the server printed."""
        return (self.tmp / "server.log").read_text(errors="replace")

    def cli(self, *args: str, ready: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``python -m arrowloop ARGS`` against this server."""
        cmd = [sys.executable, "-m", "arrowloop", *args]
        if ready:
            cmd += ["--ready-file", str(self.ready)]
        return subprocess.run(
            cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=120, check=False
        )

    def stop(self) -> int:
        """SIGTERM, then wait for the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        return code


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Running]:
    """The counter service, served by its own process for one test."""
    running = Running(tmp_path)
    try:
        yield running
    finally:
        code = running.stop()
    assert code == 0, running.output()
    assert "arrowloop: stopped" in running.output()


class Lines:
    """A plain blocking socket speaking JSON lines (what any client would write)."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=30)
        self.file = self.sock.makefile("rb")

    def send(self, *requests: Any) -> None:
        """Send requests without waiting for replies."""
        self.sock.sendall(b"".join(json.dumps(r).encode() + b"\n" for r in requests))

    def reply(self) -> Any:
        """The next reply line, parsed (None when the server closed)."""
        line = self.file.readline()
        return json.loads(line) if line else None

    def call(self, item: Any) -> Any:
        """Send one item and return its reply's output (or fail on an error)."""
        self.send({"item": item})
        reply = self.reply()
        assert "output" in reply, reply
        return reply["output"]

    def close(self) -> None:
        """Close the connection."""
        self.file.close()
        self.sock.close()


def test_the_transcript_over_tcp_with_both_upgrades_from_the_cli(server: Running) -> None:
    client = Lines(server.data)
    try:
        assert [client.call(m) for m in (READ, INCR, INCR, READ)] == [count(0), ACK, ACK, count(2)]

        done = server.cli("upgrade", "examples/counter/v2.py")
        assert done.returncode == EXIT_OK, done.stderr
        assert f"succeeded ({v1.machine.version[:12]} -> {v2.machine.version[:12]})" in done.stdout
        reset = {"tag": "ResetCount"}
        assert [client.call(m) for m in (READ, reset, READ)] == [count(2), ACK, count(0)]

        # Ill-typed: v3 with v2's migration (int -> int where int -> (int, bool) is needed).
        done = server.cli(
            "upgrade", "examples/counter/v3.py", "--migrate", "examples/counter/v2.py:migrate"
        )
        assert done.returncode == EXIT_REFUSED
        assert "expected int -> (int, bool), found int -> int" in done.stderr
        assert client.call(READ) == count(0)  # old version, state untouched

        done = server.cli("upgrade", "examples/counter/v3.py")
        assert done.returncode == EXIT_OK, done.stderr
        toggle = {"tag": "ToggleCount"}
        steps = (READ, INCR, INCR, READ, toggle, INCR, READ)
        assert [client.call(m) for m in steps] == [
            count(0),
            ACK,
            ACK,
            count(2),
            ACK,
            ACK,
            count(1),
        ]

        done = server.cli("state", "--json")
        assert json.loads(done.stdout)["state"] == [1, True]
        done = server.cli("rollback")
        assert done.returncode == EXIT_OK, done.stderr
        assert f"{v3.machine.version[:12]} -> {v2.machine.version[:12]}" in done.stdout
        assert client.call(READ) == count(1)  # the inverse kept the count
        done = server.cli("state")
        assert done.stdout.strip() == f"stage counter (version {v2.machine.version[:12]}): 1"

        done = server.cli("history", "--json")
        history = json.loads(done.stdout)
        assert [(r["kind"], r["result"]) for r in history] == [
            ("upgrade", "succeeded"),
            ("upgrade", "refused"),
            ("upgrade", "succeeded"),
            ("rollback", "succeeded"),
        ]
        assert "migration" in history[1]["reason"]
    finally:
        client.close()


def test_a_wrong_token_is_refused_and_changes_nothing(server: Running) -> None:
    bad = server.tmp / "bad-token"
    bad.write_text("definitely-not-the-token\n")
    bad.chmod(0o600)
    done = server.cli("upgrade", "examples/counter/v2.py", "--token-file", str(bad))
    assert done.returncode == EXIT_REFUSED
    assert "AuthenticationError: wrong token" in done.stderr
    # Over a raw socket: refused, then the server closes the connection.
    conn = Lines(server.control)
    try:
        conn.send({"id": 1, "token": "definitely-not-the-token", "op": "rollback", "stage": "x"})
        reply = conn.reply()
        assert reply["ok"] is False
        assert reply["id"] == 1
        assert reply["error"]["type"] == "AuthenticationError"
        assert conn.reply() is None
    finally:
        conn.close()
    done = server.cli("history", "--json")
    assert json.loads(done.stdout) == []


def test_a_stale_expected_version_is_refused(server: Running) -> None:
    done = server.cli("upgrade", "examples/counter/v3.py", "--expect", v2.machine.version)
    assert done.returncode == EXIT_REFUSED
    assert "expected to replace version" in done.stderr
    status = json.loads(server.cli("status", "--json").stdout)
    assert status["children"][0]["version"] == v1.machine.version


def test_an_oversized_payload_is_refused(tmp_path: Path) -> None:
    running = Running(tmp_path, "--max-request-bytes", "2048", "--max-line-bytes", "512")
    try:
        # The counter's change document is far larger than 2 kB.
        done = running.cli("upgrade", "examples/counter/v2.py")
        assert done.returncode == EXIT_REFUSED
        assert "ProtocolError" in done.stderr
        assert "a request of at most 2048 bytes" in done.stderr
        status = json.loads(running.cli("status", "--json").stdout)
        assert status["children"][0]["version"] == v1.machine.version
        assert status["history"] == 0
        # An over-long data line gets an error; the connection keeps working.
        client = Lines(running.data)
        try:
            client.send({"item": INCR, "id": "x" * 600}, {"item": READ})
            assert client.reply()["error"]["expected"] == "a line of at most 512 bytes"
            assert client.reply() == {"output": count(0)}
        finally:
            client.close()
    finally:
        assert running.stop() == 0


def test_the_change_budget_flags_bound_what_a_change_may_cost(tmp_path: Path) -> None:
    """serve --change-max-type-size: the counter's v2 infers bigger types, and is refused."""
    running = Running(tmp_path, "--change-max-type-size", "5")
    try:
        done = running.cli("upgrade", "examples/counter/v2.py", "--json")
        assert done.returncode == EXIT_REFUSED
        error = json.loads(done.stdout)["error"]
        assert error["type"] == "BudgetError"
        assert error["limit"] == "max_type_size"
        assert error["path"].startswith("$.change.stages[0].machine: body")
        status = json.loads(running.cli("status", "--json").stdout)
        assert status["children"][0]["version"] == v1.machine.version
    finally:
        assert running.stop() == 0


def test_cli_call_prints_outputs_and_errors(server: Running) -> None:
    done = server.cli("call", "IncrCount", '{"tag": "ReadCount"}')
    assert done.returncode == EXIT_OK, done.stderr
    assert done.stdout.splitlines() == [
        '{"tag":"Ack","value":{}}',
        '{"tag":"Count","value":{"n":1}}',
    ]
    done = server.cli("call", "Bogus", "--json")
    assert done.returncode == EXIT_REFUSED
    assert json.loads(done.stdout)["error"]["type"] == "ValidationError"
    done = server.cli("call", "{broken")
    assert done.returncode == EXIT_USAGE


def test_cli_upgrade_from_combinators_and_wire_files(server: Running) -> None:
    # A bare Loop of combinators travels without types: the server builds it
    # with the types of the stage it replaces. --dump writes the change
    # document; sending that file is the same upgrade.
    done = server.cli(
        "upgrade",
        "examples.counter:counter_v1",
        "--migrate",
        "examples.counter:migrate_v1_v2",
        "--dump",
    )
    assert done.returncode == EXIT_OK, done.stderr
    doc = json.loads(done.stdout)
    assert doc["kind"] == "change"
    assert doc["stages"][0]["machine"]["kind"] == "loop"
    assert doc["stages"][0]["migrate"]["kind"] == "arrow"
    path = server.tmp / "change.json"
    path.write_text(done.stdout)
    done = server.cli("upgrade", "--change-file", str(path), "--json")
    assert done.returncode == EXIT_OK, done.stderr
    combinator_v1 = Machine.build(counter.counter_v1, counter.InputV1, counter.Output)
    assert json.loads(done.stdout) == {"versions": {"counter": combinator_v1.version}}
    # Machine documents (with their types) from files; the state type is
    # unchanged for v2, so no migration is needed.
    for m, extra in ((v2, ["--no-migrate"]), (v3, ["--migrate", "examples/counter/v3.py:migrate"])):
        path = server.tmp / "machine.json"
        path.write_bytes(m.machine.machine.to_wire())
        done = server.cli("upgrade", str(path), *extra)
        assert done.returncode == EXIT_OK, done.stderr
        assert f"-> {m.machine.version[:12]})" in done.stdout


def test_cli_exit_codes_for_unreachable_and_bad_input(tmp_path: Path) -> None:
    env = _env(tmp_path)
    token = tmp_path / "token"
    token.write_text("a-token-that-is-long-enough\n")
    token.chmod(0o600)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]  # closed again: nothing listens there

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "arrowloop", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    done = cli("status", "--control-port", str(free), "--token-file", str(token))
    assert done.returncode == EXIT_UNREACHABLE
    assert "unreachable" in done.stderr
    done = cli("call", "ReadCount", "--port", str(free))
    assert done.returncode == EXIT_UNREACHABLE
    done = cli("status", "--control-port", str(free))  # no token anywhere
    assert done.returncode == EXIT_USAGE
    assert "no control token" in done.stderr
    done = cli("serve", "examples.nothing_here:pipeline", "--port", "0", "--control-port", "0")
    assert done.returncode == EXIT_USAGE
    assert "cannot import 'examples.nothing_here'" in done.stderr
    done = cli("serve", "examples.counter:ReadCount", "--port", "0", "--control-port", "0")
    assert done.returncode == EXIT_USAGE
    assert "expected a supervisor spec" in done.stderr


def test_a_token_is_generated_on_first_start_and_found_by_the_cli(tmp_path: Path) -> None:
    first = Running(tmp_path, token_file=False)
    try:
        token_path = tmp_path / "config" / "arrowloop" / "token"
        assert token_path.stat().st_mode & 0o777 == 0o600
        token = token_path.read_text().strip()
        assert f"saved it to {token_path}" in first.output()
        assert token not in first.output()  # the token goes to the file only
        done = first.cli("status")  # finds the token in the default place
        assert done.returncode == EXIT_OK, done.stderr
    finally:
        assert first.stop() == 0
    first.ready.unlink()
    second = Running(tmp_path, token_file=False)
    try:
        assert token_path.read_text().strip() == token  # reused, not replaced
        assert "generated a control token" not in second.output()
    finally:
        assert second.stop() == 0
