"""Starting the real server in a process of its own, as a test's fixture would.

Every end-to-end test that needs the server as a separate process (the
counter service on loopback, ephemeral ports, a ready file, a token file in
the test's directory) starts it here, so the command line and the wait for
readiness are written once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SERVED = "examples.counter.service:pipeline"


def server_env(tmp: Path) -> dict[str, str]:
    """The environment of a server or CLI process of one test: no ARROWLOOP_
    settings of the caller's, and never the user's own token file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ARROWLOOP_")}
    env["XDG_CONFIG_HOME"] = str(tmp / "config")
    return env


def start_server(
    tmp: Path,
    *extra: str,
    target: str = SERVED,
    token_file: bool = True,
    preexec_fn: Callable[[], Any] | None = None,
    timeout: float = 60.0,
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``python -m arrowloop serve TARGET`` on ephemeral loopback ports,
    with ``extra`` arguments, its output appended to ``tmp/server.log``, and
    wait until it is ready.

    Returns the process and the ready file's contents, with ``ready_file``
    (its path) added.

    Raises:
        AssertionError: the server exited, or was not ready in ``timeout``
            seconds (with what it printed).
    """
    ready = tmp / "ready.json"
    ready.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "arrowloop", "serve", target]
    cmd += ["--port", "0", "--control-port", "0", "--ready-file", str(ready)]
    if token_file:
        cmd += ["--token-file", str(tmp / "token")]
    log_path = tmp / "server.log"
    with open(log_path, "ab") as log:  # the child keeps its own descriptor
        proc = subprocess.Popen(
            [*cmd, *extra],
            cwd=ROOT,
            env=server_env(tmp),
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            raise AssertionError(f"server did not start:\n{log_path.read_text(errors='replace')}")
        time.sleep(0.05)
    info: dict[str, Any] = json.loads(ready.read_text())
    info["ready_file"] = str(ready)
    return proc, info


def run_arrowloop(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m arrowloop ARGS`` as a test's client would (its
    environment, from the project root, at most a minute); never raises on
    its exit code."""
    return subprocess.run(
        [sys.executable, "-m", "arrowloop", *args],
        cwd=ROOT,
        env=server_env(tmp),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
