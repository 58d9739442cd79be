"""Savepoints and cold upgrades against the real server: a savepoint taken
over the control port, the server killed, a new one started from the
savepoint with an upgrade that changes the state type; a cold upgrade that
does not check, or a state directory that holds state, refuses the start
and writes nothing."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from arrowloop.store import SqliteStore
from examples.counter import v1, v3
from tests.serving import SERVED, run_arrowloop, start_server
from tests.test_durable_server import _cli, _count


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    return start_server(tmp_path, *extra)


def _refused(tmp_path: Path, *extra: str) -> str:
    """Run a server start that must be refused; its error output."""
    done = run_arrowloop(
        tmp_path,
        *("serve", SERVED, "--port", "0", "--control-port", "0"),
        *("--token-file", str(tmp_path / "token"), *extra),
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    return done.stderr


def _send(port: int, *tags: str) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"".join(json.dumps({"item": {"tag": t}}).encode() + b"\n" for t in tags))
        got = b""
        while got.count(b"\n") < len(tags):
            got += s.recv(65536)
    assert got.count(b'"Ack"') == len(tags), got


def test_savepoint_kill_and_cold_upgrade_from_it(tmp_path: Path) -> None:
    """Savepoint over the control port, kill -9, start from it under v3
    (state int -> (int, bool)); a refused cold upgrade and a non-empty state
    directory write nothing; rollback works on the cold-upgraded service."""
    first = tmp_path / "first"
    proc, info = _start(tmp_path, "--state-dir", str(first))
    try:
        _send(info["data"]["port"], *["IncrCount"] * 5)
        out = json.loads(_cli(tmp_path, info, "savepoint", "five", "--json"))
        _send(info["data"]["port"], "IncrCount")  # after the cut: not in it
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    path = Path(out["path"])
    assert path == first / "savepoints" / "five.savepoint.json"
    assert out["seqs"] == {"counter": 5}
    saved = json.loads(path.read_bytes())
    assert saved["stages"][0]["state"] == 5
    assert saved["stages"][0]["version"] == v1.machine.version

    # A cold upgrade that does not check (v2's int migration after v3's
    # tuple state) refuses the start; nothing is written.
    second = tmp_path / "second"
    err = _refused(
        tmp_path,
        "--state-dir",
        str(second),
        "--from-savepoint",
        str(path),
        "--upgrade",
        "examples/counter/v3.py",
        "--upgrade",
        "examples/counter/v2.py",
    )
    for part in ("refused", "examples/counter/v2.py", "migration", "nothing was written"):
        assert part in err, err
    assert not second.exists() or not any(second.iterdir())
    # A state directory that holds state is kept.
    err = _refused(tmp_path, "--state-dir", str(first), "--from-savepoint", str(path))
    for part in ("holds a service's state already", "--replace-state"):
        assert part in err, err
    kept = SqliteStore(first / "counter_service.db")
    stored = kept.load()
    kept.close()
    assert stored is not None
    assert stored.stages["counter"].state == 6  # its own state, not the savepoint's 5
    # A damaged savepoint: one clear error naming the file.
    bad = tmp_path / "bad.savepoint.json"
    bad.write_bytes(path.read_bytes()[:100])
    err = _refused(tmp_path, "--state-dir", str(second), "--from-savepoint", str(bad))
    for part in (str(bad), "truncated"):
        assert part in err, err

    proc, info = _start(
        tmp_path,
        "--state-dir",
        str(second),
        "--from-savepoint",
        str(path),
        "--upgrade",
        "examples/counter/v3.py",
    )
    try:
        assert "from the savepoint" in (tmp_path / "server.log").read_text()
        state = json.loads(_cli(tmp_path, info, "state", "--json"))
        assert state["version"] == v3.machine.version
        assert state["state"] == [5, False]
        assert _count(info["data"]["port"]) == 5
        _send(info["data"]["port"], "ToggleCount", "IncrCount")
        assert _count(info["data"]["port"]) == 4
        history = json.loads(_cli(tmp_path, info, "history", "--json"))
        assert [(r["kind"], r["requested_by"]) for r in history] == [("upgrade", "cold-upgrade")]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    # Restarted on the seeded directory: resumed, and the cold upgrade rolls back.
    proc, info = _start(tmp_path, "--state-dir", str(second))
    try:
        _cli(tmp_path, info, "rollback")
        state = json.loads(_cli(tmp_path, info, "state", "--json"))
        assert state["version"] == v1.machine.version
        assert state["state"] == 4
    finally:
        proc.terminate()
        proc.wait(timeout=30)
