"""The CLI where a newcomer meets it: ``call -`` as a live feed, a service whose
modules live outside the working directory (``--path``), commands on a pipeline of
several stages that say how to name one, ``--expect`` as humans see versions, and
``serve --help`` with its defaults."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from arrowloop.cli import EXIT_OK, EXIT_USAGE, main

pytestmark = pytest.mark.e2e

COUNTER = "arrowloop.examples.counter.service:pipeline"
V1 = "9a0aa6167ecf377be88f9cfceadb16fae6a9b254da8f5d2176883259843924c9"

#: A pipeline of two stages, in a module outside the working directory.
TWO_STAGES = """
from arrowloop import native, stage


def add(x: int, total: int) -> tuple[int, int]:
    return total + x, total + x


def double(x: int, seen: int) -> tuple[int, int]:
    return seen + 1, 2 * x


pipeline = stage("first", native(add, 0)) >> stage("second", native(double, 0))
"""


class Server:
    """``python -m arrowloop serve TARGET ARGS`` on free loopback ports, run from
    an empty directory."""

    def __init__(self, tmp: Path, target: str, *args: str) -> None:
        self.cwd = tmp / "cwd"
        self.cwd.mkdir()
        self.ready = tmp / "ready.json"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ARROWLOOP_")}
        self.env["XDG_CONFIG_HOME"] = str(tmp / "config")  # never the user's own token
        cmd = [sys.executable, "-m", "arrowloop", "serve", target, "--port", "0"]
        cmd += ["--control-port", "0", "--ready-file", str(self.ready), *args]
        self.proc = subprocess.Popen(
            cmd, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        while not self.ready.exists():  # written once both ports listen
            if self.proc.poll() is not None:
                assert self.proc.stderr is not None
                raise AssertionError(self.proc.stderr.read().decode())
            time.sleep(0.02)
        json.loads(self.ready.read_text())

    def command(self, *args: str) -> list[str]:
        """The command line of ``python -m arrowloop ARGS`` against this server."""
        return [sys.executable, "-m", "arrowloop", *args, "--ready-file", str(self.ready)]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``python -m arrowloop ARGS`` against this server, from its directory."""
        return subprocess.run(
            self.command(*args),
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it."""
        self.proc.terminate()
        self.proc.communicate(timeout=60)


@pytest.fixture
def counter(tmp_path: Path) -> Iterator[Server]:
    """The counter service."""
    server = Server(tmp_path, COUNTER)
    yield server
    server.stop()


def test_call_dash_sends_each_line_as_it_arrives(counter: Server) -> None:
    """``call -`` answers a line before stdin ends, so it can feed a live server; a
    line that is no item is reported, skipped, and makes the exit code 2."""
    with subprocess.Popen(
        counter.command("call", "-"),
        cwd=counter.cwd,
        env=counter.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as feed:
        assert feed.stdin is not None
        assert feed.stdout is not None
        feed.stdin.write("IncrCount\n")
        feed.stdin.flush()
        assert feed.stdout.readline() == '{"tag":"Ack","value":{}}\n'  # stdin still open
        rest, errors = feed.communicate('{"tag":"ReadCount"}\n\nnot an item!\nReadCount\n', 60)
    assert rest.splitlines() == ['{"tag":"Count","value":{"n":1}}'] * 2
    assert "stdin line 4: expected an item as JSON" in errors
    assert feed.returncode == EXIT_USAGE


def test_expect_takes_a_prefix_as_printed(counter: Server) -> None:
    """``--expect`` takes the 12 digits the CLI prints, resolved against the
    stage's versions; a prefix no version has is refused before anything is sent."""
    done = counter.cli("upgrade", "arrowloop.examples.counter.v2", "--expect", V1[:12])
    assert done.returncode == EXIT_OK, done.stderr
    assert "succeeded (9a0aa6167ecf -> 8bf1c8fbc1b6)" in done.stdout
    again = counter.cli("upgrade", "arrowloop.examples.counter.v3", "--expect", V1[:14])
    assert again.returncode == 1  # resolved to v1's full version: now stale
    assert "expected to replace version 9a0aa6167ecf" in again.stderr
    nowhere = counter.cli("upgrade", "arrowloop.examples.counter.v3", "--expect", "0" * 12)
    assert nowhere.returncode == EXIT_USAGE
    assert "--expect 000000000000: expected one version of the stage" in nowhere.stderr


def test_dump_refuses_an_expect_that_is_no_version(capsys: pytest.CaptureFixture[str]) -> None:
    """``--dump --stage S --expect X`` needs no server, and X must be a whole version."""
    args = ["upgrade", "arrowloop.examples.counter.v2", "--dump", "--stage", "counter"]
    assert main([*args, "--expect", "xyz"]) == EXIT_USAGE
    assert "--expect: expected a version (64 lowercase hex digits), found 'xyz'" in (
        capsys.readouterr().err
    )
    assert main([*args, "--expect", V1]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)["stages"][0]["expect_version"] == V1


def test_a_service_elsewhere_is_served_with_path(tmp_path: Path) -> None:
    """``serve --path DIR`` imports the service from DIR; on a pipeline of two stages,
    ``state``, ``rollback`` and ``upgrade`` each say how they take the stage."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "al_two_stages.py").write_text(textwrap.dedent(TWO_STAGES))
    server = Server(tmp_path, "al_two_stages:pipeline", "--path", str(elsewhere))
    try:
        state = server.cli("state")
        rollback = server.cli("rollback")
        upgrade = server.cli("upgrade", "al_two_stages:pipeline", "--path", str(elsewhere))
        named = server.cli("state", "second")
    finally:
        server.stop()
    message = "the pipeline has the stages ['first', 'second']: say which to"
    assert state.returncode == EXIT_USAGE
    assert f"{message} read: state STAGE" in state.stderr
    assert f"{message} roll back: rollback STAGE" in rollback.stderr
    assert f"{message} upgrade: --stage NAME" in upgrade.stderr
    assert named.returncode == EXIT_OK
    assert named.stdout.startswith("stage second (version ")


def test_serve_without_path_says_how_to_find_the_module(tmp_path: Path) -> None:
    """A service module not importable from the working directory is a usage error
    that names ``--path``."""
    done = subprocess.run(
        [sys.executable, "-m", "arrowloop", "serve", "al_two_stages:pipeline"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == EXIT_USAGE
    assert "No module named 'al_two_stages'" in done.stderr
    assert "--path DIR adds a directory" in done.stderr


def test_serve_help_shows_the_port_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    """``serve --help`` says which ports it uses by default."""
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "data port, 0 for any (7400)" in text
    assert "control port, 0 for any (7401)" in text


def test_upgrade_takes_modules_from_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``upgrade --path DIR MODULE`` builds the change from a module kept in DIR; without
    ``--path`` the module is not found, and the error says how to find it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [*sys.path])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "al_upgrade_elsewhere.py").write_text(
        "from arrowloop.examples.counter.v2 import inverse, machine, migrate\n"
    )
    args = ["upgrade", "al_upgrade_elsewhere", "--dump", "--stage", "counter", "--expect", V1]
    assert main(args) == EXIT_USAGE
    assert "--path DIR adds a directory" in capsys.readouterr().err
    assert main([*args, "--path", str(elsewhere)]) == EXIT_OK
    stage = json.loads(capsys.readouterr().out)["stages"][0]
    assert set(stage) == {"stage", "expect_version", "machine", "migrate", "inverse"}
    sys.modules.pop("al_upgrade_elsewhere", None)
