"""The main job: ``python -m arrowloop demo`` holds every check it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from arrowloop.__main__ import main
from arrowloop._demo import run_demo


def test_demo_transcript_holds() -> None:
    """The demo replays the transcript with live upgrades and loses nothing."""
    lines: list[str] = []
    assert run_demo(lines.append) == 0
    text = "\n".join(lines)
    assert "MISMATCH" not in text
    assert "upgrade to v3 without a migration -> refused" in text
    assert ", 0 lost  ok" in text
    assert text.endswith("all checks held")


def test_cli_runs_the_demo() -> None:
    """``python -m arrowloop demo`` exits 0 from the project root."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "arrowloop", "demo"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "all checks held" in done.stdout


def test_cli_rejects_unknown_commands() -> None:
    """An unknown command is a usage error (argparse exits 2)."""
    with pytest.raises(SystemExit) as info:
        main(["nonsense"])
    assert info.value.code == 2
