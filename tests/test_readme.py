"""The README's Python snippets run as the README says: each is a complete
script, run from the project root, and prints what its comments promise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SNIPPETS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)


def _promised(code: str) -> list[str]:
    """The outputs a snippet's ``print(...)  # X`` comments promise: X up to
    a ``": "`` that starts an explanation; comments that describe rather
    than show (``then``, an ellipsis) are skipped."""
    found = []
    for line in code.splitlines():
        m = re.match(r"\s*print\(.*\)\s+# (.+)$", line)
        if m:
            value = m.group(1).split(": ")[0].strip()
            if " then " not in value and "..." not in value:
                found.append(value)
    return found


def test_the_readme_has_its_snippets() -> None:
    assert len(SNIPPETS) >= 4


@pytest.mark.parametrize("index", range(len(SNIPPETS)))
def test_readme_snippet_runs(index: int, tmp_path: Path) -> None:
    code = SNIPPETS[index]
    script = tmp_path / f"snippet_{index}.py"  # the front end reads source files
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for promise in _promised(code):
        assert promise in done.stdout, f"{promise!r} not printed:\n{done.stdout}"
