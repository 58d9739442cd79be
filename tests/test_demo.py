"""The main job: ``python -m arrowloop demo`` serves the counter over TCP,
replays the transcript, upgrades it live from the CLI under load, and holds
every check it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arrowloop.cli import main

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.e2e


@pytest.mark.slow
def test_cli_runs_the_demo() -> None:
    """``python -m arrowloop demo`` exits 0 from the project root with every check held."""
    done = subprocess.run(
        [sys.executable, "-m", "arrowloop", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "FAILED" not in out
    assert "MISMATCH" not in out
    # The counter's reference transcript (README), read from the TCP replies.
    reads = [line.strip() for line in out.splitlines() if line.strip().startswith("read -> ")]
    # v1: read, incr, incr, read; v2: read, reset, read; the refused upgrade
    # leaves the state alone; v3: read, incr, incr, read, toggle, incr, read;
    # then part 2 starts from zero.
    expected = [0, 2, 2, 0, 0, 0, 2, 1, 0]
    assert reads == [f"read -> {n}" for n in expected]
    assert "UpgradeError: refused: the migration for stage 'counter'" in out
    assert "AuthenticationError: wrong token" in out
    assert "expected to replace version" in out
    assert " 0 failed  ok" in out
    assert "0 lost (a request without its reply)  ok" in out
    assert "server stopped on SIGTERM with exit code 0  ok" in out
    assert out.rstrip().endswith("all checks held")


def test_cli_rejects_unknown_commands() -> None:
    """An unknown command is a usage error (argparse exits 2)."""
    with pytest.raises(SystemExit) as info:
        main(["nonsense"])
    assert info.value.code == 2
