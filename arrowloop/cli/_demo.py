"""The counter demo over TCP (``python -m arrowloop demo``, ``make demo``).

Starts ``python -m arrowloop serve arrowloop.examples.counter.service:pipeline``
on loopback (ephemeral ports, a fresh token), then:

1. replays the counter's reference transcript (see the README) as a TCP
   client, upgrading the running counter v1 -> v2 -> v3 with the CLI in between, and shows the
   refusals that change nothing (an ill-typed migration, a wrong token, a
   stale expected version);
2. rolls the counter back to v1 with the CLI and upgrades it to v2 and v3
   again while background clients keep sending increments, then checks
   that every request got its reply, none failed, and the count equals the
   increments acknowledged;
3. stops the server with SIGTERM and checks it exits cleanly.

The counter ships inside the package (:mod:`arrowloop.examples.counter`)
and the server and CLI processes name it by its dotted names, from a
temporary directory: the demo needs nothing but an installed arrowloop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Final

import anyio
import anyio.abc
import orjson

from arrowloop.cli._client import DataClient, Unreachable
from arrowloop.runtime import run

__all__ = ["run_demo"]

TARGET: Final = "arrowloop.examples.counter.service:pipeline"
#: The upgrade files the demo sends, as module names (they resolve anywhere).
V2: Final = "arrowloop.examples.counter.v2"
V3: Final = "arrowloop.examples.counter.v3"
CLIENTS: Final = 4
WINDOW: Final = 32

Say = Callable[[str], Any]


def _count(n: int) -> Any:
    return {"tag": "Count", "value": {"n": n}}


ACK: Final = {"tag": "Ack", "value": {}}
_SHORT: Final = {
    "ReadCount": "read",
    "IncrCount": "incr",
    "ResetCount": "reset",
    "ToggleCount": "toggle",
}


def _child_env() -> dict[str, str]:
    """The environment of the server and CLI processes: the demo's own, with
    the directory this arrowloop was imported from first on the path when it
    is a source tree (a checkout run without installing), so the children
    run the same code wherever their working directory is."""
    env = dict(os.environ)
    home = Path(__file__).resolve().parents[2]
    if home.name not in ("site-packages", "dist-packages"):
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(home), env.get("PYTHONPATH")]))
    return env


def run_demo(say: Say) -> int:
    """Run the demo, reporting through ``say``; 0 if every check held, else 1."""
    # The server's output goes to a file that the demo shows as it goes; the
    # processes run in the temporary directory, so nothing depends on where
    # the demo was started.
    with (
        tempfile.TemporaryDirectory(prefix="arrowloop-demo-") as tmp,
        open(Path(tmp) / "server.log", "wb") as log_file,
    ):
        return run(_Demo(Path(tmp), say, log_file).main)


class _Demo:
    def __init__(self, tmp: Path, say: Say, log_file: BinaryIO) -> None:
        self.log_file = log_file
        self.env = _child_env()
        self.tmp = tmp
        self.say = say
        self.ready = tmp / "ready.json"
        self.log = tmp / "server.log"
        self.ok = True
        self.data: tuple[str, int] = ("127.0.0.1", 0)

    def check(self, good: bool, what: str, *, echo: bool = True) -> None:
        self.ok = self.ok and good
        if echo or not good:
            self.say(f"  {what}  {'ok' if good else 'FAILED'}")

    # -- the server process ---------------------------------------------------------

    async def main(self) -> int:
        cmd = [sys.executable, "-m", "arrowloop", "serve", TARGET, "--port", "0"]
        cmd += ["--control-port", "0", "--token-file", str(self.tmp / "token")]
        cmd += ["--ready-file", str(self.ready)]
        self.say(f"$ python -m arrowloop serve {TARGET} --port 0 --control-port 0")
        proc = await anyio.open_process(
            cmd, cwd=self.tmp, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        try:
            if not await self._wait_ready(proc):
                return 1
            self._show_log(0)
            address = orjson.loads(self.ready.read_bytes())["data"]
            self.data = (address["host"], int(address["port"]))
            self.say(
                "(each CLI command below also gets --ready-file, which gives it the ports "
                "and the token file)"
            )
            await self.transcript()
            await self.under_load()
        finally:
            with anyio.CancelScope(shield=True):  # stop the server even on Ctrl-C
                code = await self._stop(proc)
        self.check(code == 0, f"server stopped on SIGTERM with exit code {code}")
        self.say("all checks held" if self.ok else "SOME CHECKS FAILED")
        return 0 if self.ok else 1

    async def _wait_ready(self, proc: anyio.abc.Process) -> bool:
        with anyio.move_on_after(60):
            while not self.ready.exists():
                if proc.returncode is not None:
                    break
                await anyio.sleep(0.05)
            else:
                return True
        self.say("the server did not start:")
        self._show_log(0)
        self.ok = False
        return False

    def _show_log(self, skip: int) -> int:
        lines = self.log.read_text(errors="replace").splitlines()
        for line in lines[skip:]:
            self.say(f"  | {line}")
        return len(lines)

    async def _stop(self, proc: anyio.abc.Process) -> int | None:
        shown = len(self.log.read_text(errors="replace").splitlines())
        if proc.returncode is None:  # first, so the server never outlives the demo
            proc.send_signal(signal.SIGTERM)
        self.say("stopping the server (SIGTERM)")
        with anyio.move_on_after(30):
            await proc.wait()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
            return None
        self._show_log(shown)
        return proc.returncode

    # -- the CLI ----------------------------------------------------------------------

    async def cli(self, *args: str, expect: int = 0, echo: bool = True) -> str:
        """Run ``python -m arrowloop ARGS``; its stdout. With ``echo``, show
        the command, its output and the exit code check."""
        if echo:
            self.say(f"$ python -m arrowloop {' '.join(args)}")
        cmd = [sys.executable, "-m", "arrowloop", *args, "--ready-file", str(self.ready)]
        done = await anyio.run_process(cmd, cwd=self.tmp, env=self.env, check=False)
        if echo:
            for line in (done.stdout + done.stderr).decode(errors="replace").splitlines():
                self.say(f"  | {line}")
        self.check(done.returncode == expect, f"exit code {done.returncode}", echo=echo)
        return done.stdout.decode(errors="replace")

    # -- part 1 -------------------------------------------------------------------------

    async def steps(self, client: DataClient, steps: list[tuple[str, Any]]) -> None:
        for tag, expect in steps:
            out = await client.call({"tag": tag})
            shown = f"{out['value']['n']}" if out.get("tag") == "Count" else "ack"
            good = out == expect
            self.ok = self.ok and good
            mark = "" if good else f"  MISMATCH (expected {orjson.dumps(expect).decode()})"
            self.say(f"  {_SHORT[tag]} -> {shown}{mark}")

    async def transcript(self) -> None:
        self.say("")
        self.say("part 1: the counter's reference transcript, over TCP, upgraded live by the CLI")
        async with DataClient(*self.data) as client:
            self.say(f"client connected to the data port {self.data[0]}:{self.data[1]}")
            await self.steps(
                client,
                [
                    ("ReadCount", _count(0)),
                    ("IncrCount", ACK),
                    ("IncrCount", ACK),
                    ("ReadCount", _count(2)),
                ],
            )
            await self.cli("upgrade", V2)
            await self.steps(
                client, [("ReadCount", _count(2)), ("ResetCount", ACK), ("ReadCount", _count(0))]
            )
            self.say(
                "an ill-typed upgrade: v3 with v2's migration (int -> int, not int -> (int, bool))"
            )
            await self.cli(
                "upgrade",
                V3,
                "--migrate",
                f"{V2}:migrate",
                expect=1,
            )
            await self.steps(client, [("ReadCount", _count(0))])
            self.say("a control request with the wrong token")
            bad = self.tmp / "wrong-token"
            bad.write_text("not-the-servers-token-at-all\n")
            bad.chmod(0o600)  # a token file must be private to be read at all
            await self.cli("status", "--token-file", str(bad), expect=1)
            self.say("an upgrade expecting a version the stage no longer runs (v1's)")
            history = orjson.loads(await self.cli("history", "--json", echo=False))
            v1 = history[0]["from_versions"][0]  # what the first upgrade replaced
            await self.cli("upgrade", V3, "--expect", v1, expect=1)
            await self.cli("upgrade", V3)
            await self.steps(
                client,
                [
                    ("ReadCount", _count(0)),
                    ("IncrCount", ACK),
                    ("IncrCount", ACK),
                    ("ReadCount", _count(2)),
                    ("ToggleCount", ACK),
                    ("IncrCount", ACK),
                    ("ReadCount", _count(1)),
                ],
            )
            self.check(self.ok, "transcript held, state kept across both upgrades")

    # -- part 2 -------------------------------------------------------------------------

    async def under_load(self) -> None:
        self.say("")
        self.say("part 2: both upgrades again, while clients keep sending increments")
        async with DataClient(*self.data) as client:
            self.say("count up from zero again")
            await self.steps(client, [("ResetCount", ACK), ("ToggleCount", ACK)])
            await self.cli("rollback")
            await self.cli("rollback")
            await self.steps(client, [("ReadCount", _count(0))])
        stop = anyio.Event()
        tallies = [[0, 0, 0, 0] for _ in range(CLIENTS)]  # sent, acked, failed, lost
        async with anyio.create_task_group() as tg:
            for t in tallies:
                tg.start_soon(self._incrementer, stop, t)
            self.say(f"{CLIENTS} clients sending IncrCount continuously, {WINDOW} in flight each")
            await anyio.sleep(0.5)
            await self.cli("upgrade", V2)
            await anyio.sleep(0.3)
            await self.cli("upgrade", V3)
            await anyio.sleep(0.3)
            stop.set()
        sent, acked, failed, lost = (sum(t[i] for t in tallies) for i in range(4))
        async with DataClient(*self.data) as client:
            out = await client.call({"tag": "ReadCount"})
        count = out.get("value", {}).get("n") if isinstance(out, dict) else None
        self.check(
            sent > 0 and failed == 0, f"{sent} increments sent: {acked} acked, {failed} failed"
        )
        self.check(lost == 0 and acked == sent, f"{lost} lost (a request without its reply)")
        self.check(count == acked, f"count after the upgrades is {count}, the increments acked")
        await self.cli("history")

    async def _incrementer(self, stop: anyio.Event, tally: list[int]) -> None:
        try:
            async with DataClient(*self.data, timeout=30) as client:
                while not stop.is_set():
                    tally[0] += await client.send([{"tag": "IncrCount"}] * WINDOW)
                    for _ in range(WINDOW):
                        reply = await client.reply()
                        if reply.get("output") == ACK:
                            tally[1] += 1
                        else:
                            tally[2] += 1
        except Unreachable:
            pass
        tally[3] = tally[0] - tally[1] - tally[2]
