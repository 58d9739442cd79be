"""The README runs as printed: each Python snippet is a complete script that
runs from any directory and prints what its comments promise, and the shell
sessions, run in the order printed against one fresh server, print what the
README shows."""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
import sys
import time
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
        cwd=tmp_path,  # anywhere: the snippets use only the installed package
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for promise in _promised(code):
        assert promise in done.stdout, f"{promise!r} not printed:\n{done.stdout}"


# -- the sessions ------------------------------------------------------------------------

BLOCKS = re.findall(r"```(\w*)\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
SERVE = ".venv/bin/python -m arrowloop serve "
_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
_NC = re.compile(r"^printf '(.*)' \| nc -N 127\.0\.0\.1 7400$")


def _sessions() -> tuple[str, list[str], list[tuple[str, list[str]]]]:
    """The README's ``serve`` command, the banner it prints, and every ``$ command``
    of the shell sessions after it with its output, in the order printed."""
    serve = next(i for i, (lang, code) in enumerate(BLOCKS) if code.startswith(SERVE))
    banner = BLOCKS[serve + 1][1].splitlines()
    steps: list[tuple[str, list[str]]] = []
    for lang, code in BLOCKS[serve + 2 :]:
        if lang != "sh" or not code.startswith("$ "):
            continue
        for line in code.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
    return BLOCKS[serve][1].strip(), banner, steps


def _normal(lines: list[str], home: Path, ports: tuple[int, int]) -> list[str]:
    """What may differ between two runs: the times, the ports, the home directory,
    the connection caps (from the open-file limit) and the user name."""
    out = []
    for line in lines:
        line = _TIME.sub("<time>", line).replace("(by tester)", "(by $USER)")
        line = line.replace(str(home), "/home/you")
        line = line.replace(f":{ports[0]} ", ":7400 ").replace(f":{ports[1]} ", ":7401 ")
        out.append(re.sub(r"up to \d+ data", "up to 842 data", line))
    return out


def _port(banner: list[str], which: str) -> int:
    """The port the banner says ``which`` listens on."""
    found = [re.search(rf"^  {which} +[\d.]+:(\d+) ", line) for line in banner]
    return next(int(m.group(1)) for m in found if m)


def _nc(payload: str, port: int) -> list[str]:
    """``printf PAYLOAD | nc -N 127.0.0.1 PORT``: send, half-close, read to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(payload.encode().decode("unicode_escape").encode())
        conn.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    return received.decode().splitlines()


@pytest.mark.slow
@pytest.mark.e2e
def test_readme_sessions_run_as_printed(tmp_path: Path) -> None:
    """The README's server banner and every shell session after it, run in the order
    printed against one fresh server, print what the README shows."""
    serve, banner, steps = _sessions()
    assert len(steps) >= 10
    home = tmp_path / "home"
    ready = tmp_path / "ready.json"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(home),  # a fresh token is made under it, as on a first start
        "USER": "tester",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [sys.executable, *shlex.split(serve)[1:], "--port", "0", "--control-port", "0"]
    with subprocess.Popen(
        [*cmd, "--ready-file", str(ready)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as server:
        try:
            assert server.stdout is not None
            shown = [server.stdout.readline().rstrip("\n") for _ in banner]
            ports = (_port(shown, "data"), _port(shown, "control"))
            while not ready.exists():  # written just after the banner
                time.sleep(0.01)
            assert _normal(shown, home, ports) == banner
            for command, expected in steps:
                nc = _NC.match(command)
                if nc:
                    got = _nc(nc.group(1), ports[0])
                else:
                    argv = shlex.split(command)
                    assert argv[:3] == [".venv/bin/python", "-m", "arrowloop"], command
                    done = subprocess.run(
                        [sys.executable, *argv[1:], "--ready-file", str(ready)],
                        cwd=ROOT,
                        env=env,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT,
                        text=True,
                        timeout=120,
                        check=False,
                    )
                    got = done.stdout.splitlines()
                assert _normal(got, home, ports) == _normal(expected, home, ports), command
        finally:
            server.send_signal(signal.SIGTERM)
            server.communicate(timeout=60)
    assert server.returncode == 0
