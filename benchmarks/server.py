"""Requests per second and latency of the counter server, steady and while it is upgraded.

The counter service (examples/counter/service.py) runs in-process on
127.0.0.1, ephemeral ports, on uvloop when it is installed. Clients in the
same process (default 8 data connections) send ``IncrCount`` continuously,
each keeping a window of requests in flight (default 32); a request's
latency is the time from sending its line to reading its reply. Two phases:

* steady: no code changes, a few seconds after a short warm-up;
* upgrading: a control client makes 20 code changes of the stage back to
  back (v1 -> v2 -> v3 by upgrades, back to v1 by two rollbacks, five
  times). A request whose send-to-reply interval overlaps the window from
  the first change sent to the last change answered counts as upgrading.

The clients share the process and the CPU with the server, so the absolute
figures understate the server; compare the ratios of the two phases, which
are measured in the same run (the machine is shared and noisy). The run
fails (exit status 1) if any request got an error reply or no reply, if a
change failed, or if the final count differs from the number of Acks.

External mode (on by default; ``--no-external`` skips it) is the honest
comparison: the server runs as its own process (``python -m arrowloop
serve``) and the load comes from another (``benchmarks/loadgen.py``), as a
real client would, each pinned to its own core when ``taskset`` exists.
The baseline is ``benchmarks/handwritten.py``, a hand-written uvloop
``asyncio.Protocol`` counter speaking the same protocol, measured the same
way in the same run; the two are measured in alternation, ``--rounds``
times each (each round starting one server later), and the median of each
is kept, so the machine's noise falls on both. ``ratio_vs_handwritten``
is arrowloop's requests/s over the hand-written server's (and
``p99_ratio_vs_handwritten`` the same for p99 latency).

The external mode also measures the arrowloop server with a state
directory (``serve --state-dir``: every reply waits for its batch's commit)
in the same alternation: with ``--fsync full`` and ``--fsync normal``, and
with ``full`` again while every request carries a request key of its own
(``loadgen.py --keys``: the keys are committed with the state).
``state_full_vs_arrowloop`` (and the others) is that run's requests/s over
arrowloop's without a state directory; ``--no-state`` skips these runs.

Run: ``.venv/bin/python benchmarks/server.py [--quick] [--clients N] [--window W]
[--rounds R] [--no-external] [--no-state]``; writes ``benchmarks/results/server.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from itertools import repeat
from pathlib import Path
from typing import Any, Final

import anyio
import attrs

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from arrowloop.cli import ControlClient, DataClient, RemoteError, Unreachable  # noqa: E402
from arrowloop.runtime import run, uvloop_available  # noqa: E402
from arrowloop.server import (  # noqa: E402
    Server,
    ServerConfig,
    Token,
    as_supervisor_spec,
    load_object,
    open_server,
)
from arrowloop.supervisor import code_change  # noqa: E402
from arrowloop.upgrade import encode_change  # noqa: E402
from benchmarks._progress import progress  # noqa: E402
from examples.counter import v1, v2, v3  # noqa: E402

__all__ = [
    "STAGE",
    "CHANGES",
    "ACK",
    "READ",
    "counter_server",
    "Step",
    "change_plan",
    "ChangeFailed",
    "apply_changes",
    "Incrementer",
    "read_count",
    "run_external",
    "external",
]

SERVICE: Final = "examples.counter.service:pipeline"
#: The one stage of the counter service.
STAGE: Final = "counter"
#: Code changes in the upgrading phase.
CHANGES: Final = 20
CLIENTS: Final = 8
#: The external runs: the server, its ``serve`` options with a state
#: directory (``None``: without one), and whether requests carry keys.
EXTERNAL: Final[dict[str, tuple[str, list[str] | None, bool]]] = {
    "handwritten": ("handwritten", None, False),
    "arrowloop": ("arrowloop", None, False),
    "state_full": ("arrowloop", ["--fsync", "full"], False),
    "state_normal": ("arrowloop", ["--fsync", "normal"], False),
    "state_full_keys": ("arrowloop", ["--fsync", "full"], True),
}
WINDOW: Final = 32
#: The JSON value forms the data port speaks.
ACK: Final[dict[str, Any]] = {"tag": "Ack", "value": {}}
READ: Final[dict[str, Any]] = {"tag": "ReadCount"}
# Built once: the clients share the CPU with the server, so they should cost little.
_INCR_LINE: Final = b'{"item":{"tag":"IncrCount"}}\n'


@asynccontextmanager
async def counter_server() -> AsyncIterator[Server]:
    """The counter service on ephemeral loopback ports, with a token made for this run."""
    spec = as_supervisor_spec(*load_object(SERVICE))
    token = Token(secrets.token_urlsafe(24), "made for this run")
    async with open_server(spec, token, ServerConfig(port=0, control_port=0)) as server:
        yield server


# -- code changes ----------------------------------------------------------------------


@attrs.frozen
class Step:
    """One code change of the counter stage.

    Attributes:
        op: the control operation, ``upgrade`` or ``rollback``.
        fields: the request's other fields (the change document, or the stage).
        version: the version the stage must run once the change is made.
    """

    op: str
    fields: dict[str, Any]
    version: str


class ChangeFailed(Exception):
    """A code change was refused, failed, or left the stage at another version."""


def change_plan(count: int = CHANGES) -> list[Step]:
    """``count`` code changes starting from v1: upgrade to v2, upgrade to v3
    (the state type changes), roll back to v2 (through v3's inverse
    migration), roll back to v1, and again; a multiple of 4 ends on v1."""
    to_v2 = encode_change(
        code_change(STAGE, v1.machine.version, v2.machine.machine, v2.migrate, inverse=v2.inverse)
    )
    to_v3 = encode_change(
        code_change(STAGE, v2.machine.version, v3.machine.machine, v3.migrate, inverse=v3.inverse)
    )
    cycle = [
        Step("upgrade", {"change": to_v2}, v2.machine.version),
        Step("upgrade", {"change": to_v3}, v3.machine.version),
        Step("rollback", {"stage": STAGE}, v2.machine.version),
        Step("rollback", {"stage": STAGE}, v1.machine.version),
    ]
    return [cycle[i % len(cycle)] for i in range(count)]


async def apply_changes(
    control: ControlClient,
    plan: Sequence[Step],
    before_each: Callable[[], Awaitable[None]] | None = None,
) -> list[float]:
    """Make the changes of ``plan`` in order; returns how long each took, in seconds.

    ``before_each`` is awaited before each change (tests use it to let the
    load make progress in between).

    Raises:
        ChangeFailed: a change was refused or failed, or the stage does not
            run the version the plan expects after it.
    """
    took = []
    for i, step in enumerate(plan):
        if before_each is not None:
            await before_each()
        t0 = time.perf_counter()
        try:
            result = await control.request(step.op, **step.fields)
        except (RemoteError, Unreachable) as exc:
            raise ChangeFailed(f"change {i + 1} ({step.op}) failed: {exc}") from exc
        took.append(time.perf_counter() - t0)
        running = result["versions"].get(STAGE)
        if running != step.version:
            raise ChangeFailed(
                f"change {i + 1} ({step.op}): expected {STAGE} to run {step.version[:12]}, "
                f"found {str(running)[:12]}"
            )
    return took


# -- load ------------------------------------------------------------------------------


class Incrementer:
    """One data connection sending ``IncrCount`` continuously with ``window``
    requests in flight (at most ``limit`` requests in all, if given).

    It records when each request was sent (``sent_at``) and when its reply
    was read (``replied_at``), by ``time.perf_counter``; replies come in
    request order, so reply ``i`` answers request ``i``. A reply other than
    an Ack counts as ``failed`` (the first few are kept in ``errors``); a
    request without a reply when the connection ends is lost. ``broken``
    says why the connection ended early, if it did.
    """

    def __init__(
        self,
        address: tuple[str, int],
        window: int = WINDOW,
        *,
        limit: int | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.address = address
        self.window = window
        self.limit = limit
        self.timeout = timeout
        self.sent_at: array[float] = array("d")
        self.replied_at: array[float] = array("d")
        self.acked = 0
        self.failed = 0
        self.errors: list[dict[str, Any]] = []
        self.broken: str | None = None
        self._sending = True
        self._room = anyio.Event()
        self._progress = anyio.Event()
        self._drained = anyio.Event()

    @property
    def sent(self) -> int:
        """Requests sent so far."""
        return len(self.sent_at)

    @property
    def lost(self) -> int:
        """Requests sent without a reply (so far)."""
        return len(self.sent_at) - len(self.replied_at)

    async def run(self, stop: anyio.Event) -> None:
        """Send until ``stop`` is set (or ``limit`` is reached), then wait up to
        ``timeout`` for the replies still due and close the connection."""
        try:
            async with (
                DataClient(*self.address, timeout=self.timeout) as conn,
                anyio.create_task_group() as tg,
            ):
                tg.start_soon(self._receive, conn)
                await self._send(conn, stop)
                with anyio.move_on_after(self.timeout):
                    await self._drained.wait()
                tg.cancel_scope.cancel()
        except Unreachable as exc:
            self.broken = str(exc)
        finally:
            self._sending = False
            self._progress.set()

    async def progress(self) -> None:
        """Wait for one more reply (or for the client to stop sending)."""
        if self._progress.is_set():
            self._progress = anyio.Event()
        if self._sending:
            await self._progress.wait()

    async def _send(self, conn: DataClient, stop: anyio.Event) -> None:
        try:
            while not stop.is_set() and self.broken is None:
                room = self.window - self.lost
                if self.limit is not None:
                    if self.sent >= self.limit:
                        break
                    room = min(room, self.limit - self.sent)
                if room <= 0:
                    self._room = anyio.Event()
                    await self._room.wait()
                    continue
                # Sent together, so one write; their clock starts before it, as
                # a write can wait for the socket (backpressure).
                self.sent_at.extend(repeat(time.perf_counter(), room))
                await conn.send_raw(_INCR_LINE * room)
        except Unreachable as exc:
            self.broken = str(exc)
        finally:
            self._sending = False
            self._progress.set()
            if self.lost == 0:
                self._drained.set()

    async def _receive(self, conn: DataClient) -> None:
        clock = time.perf_counter
        try:
            while True:
                reply = await conn.reply()
                self.replied_at.append(clock())
                if reply.get("output") == ACK:
                    self.acked += 1
                else:
                    self.failed += 1
                    if len(self.errors) < 5:
                        self.errors.append(reply)
                self._room.set()
                self._progress.set()
                if not self._sending and self.lost == 0:
                    self._drained.set()
        except Unreachable as exc:
            self.broken = str(exc)
        finally:
            # Nothing more will arrive: release a sender waiting for room.
            self._room.set()
            self._drained.set()


async def read_count(server: Server) -> int:
    """The counter's count, read through the data port like any client.

    Raises:
        RemoteError: the server replied with an error.
    """
    async with DataClient(*server.data_address) as conn:
        out = await conn.call(READ)
    n = out["value"]["n"]
    assert type(n) is int, out
    return n


# -- the benchmark ---------------------------------------------------------------------


def _latencies(c: Incrementer, lo: int, hi: int) -> list[float]:
    sent, replied = c.sent_at, c.replied_at
    return [replied[i] - sent[i] for i in range(lo, hi)]


def _within(clients: Sequence[Incrementer], t0: float, t1: float) -> list[float]:
    """Latencies of the requests sent at or after ``t0`` and answered by ``t1``."""
    out: list[float] = []
    for c in clients:
        # Both series only grow, so the requests wanted are one run of indices.
        out += _latencies(c, bisect_left(c.sent_at, t0), bisect_right(c.replied_at, t1))
    return out


def _overlapping(clients: Sequence[Incrementer], t0: float, t1: float) -> list[float]:
    """Latencies of the requests in flight at some time in ``[t0, t1]``."""
    out: list[float] = []
    for c in clients:
        out += _latencies(c, bisect_left(c.replied_at, t0), bisect_right(c.sent_at, t1))
    return out


def _replies_per_second(clients: Sequence[Incrementer], t0: float, t1: float) -> float:
    n = sum(bisect_right(c.replied_at, t1) - bisect_left(c.replied_at, t0) for c in clients)
    return n / (t1 - t0)


def _ms(xs: list[float], q: float) -> float | None:
    """The ``q`` quantile of ``xs`` (seconds, sorted) in milliseconds."""
    if not xs:
        return None
    return round(xs[min(len(xs) - 1, int(len(xs) * q))] * 1000, 3)


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


async def measure(clients: int, window: int, warmup: float, steady: float) -> dict[str, Any]:
    """Run both phases against a fresh server and return the figures."""
    plan = change_plan()
    failure: str | None = None
    took: list[float] = []
    async with counter_server() as server:
        load = [Incrementer(server.data_address, window) for _ in range(clients)]
        stop = anyio.Event()
        async with ControlClient(*server.control_address, server.token.value) as control:
            async with anyio.create_task_group() as tg:
                for c in load:
                    tg.start_soon(c.run, stop)
                await anyio.sleep(warmup)
                s0 = time.perf_counter()
                await anyio.sleep(steady)
                s1 = u0 = time.perf_counter()
                try:
                    took = await apply_changes(control, plan)
                except ChangeFailed as exc:
                    failure = str(exc)
                u1 = time.perf_counter()
                stop.set()
            history = await control.request("history")
            status = await control.request("status")
        count = await read_count(server)
    steady_ms = sorted(_within(load, s0, s1))
    upgrading_ms = sorted(_overlapping(load, u0, u1))
    succeeded = [r for r in history if r["result"] == "succeeded"]
    r: dict[str, Any] = {
        "loop": "uvloop" if uvloop_available() else "asyncio",
        "clients": clients,
        "window": window,
        "requests": sum(c.sent for c in load),
        "acked": sum(c.acked for c in load),
        "failed": sum(c.failed for c in load),
        "lost": sum(c.lost for c in load),
        "count": count,
        "upgrades": len(succeeded),
        "steady_s": round(s1 - s0, 3),
        "upgrading_s": round(u1 - u0, 3),
        "rps": round(_replies_per_second(load, s0, s1)),
        "rps_upgrading": round(_replies_per_second(load, u0, u1)),
        "p50_ms_steady": _ms(steady_ms, 0.5),
        "p99_ms_steady": _ms(steady_ms, 0.99),
        "max_ms_steady": _ms(steady_ms, 1.0),
        "p50_ms_upgrading": _ms(upgrading_ms, 0.5),
        "p99_ms_upgrading": _ms(upgrading_ms, 0.99),
        "max_ms_upgrading": _ms(upgrading_ms, 1.0),
        "samples_steady": len(steady_ms),
        "samples_upgrading": len(upgrading_ms),
        "change_ms": {
            "median": round(statistics.median(took) * 1000, 3) if took else None,
            "max": round(max(took) * 1000, 3) if took else None,
        },
    }
    r["rps_ratio_upgrading_vs_steady"] = _ratio(r["rps_upgrading"], r["rps"])
    r["p99_ratio_upgrading_vs_steady"] = _ratio(r["p99_ms_upgrading"], r["p99_ms_steady"])
    r["final_version_ok"] = status["children"][0]["version"] == plan[-1].version
    r["problems"] = _problems(r, load, failure)
    return r


# -- external: separate processes, against the hand-written server ----------------------


def _pinned(cpu: int) -> list[str]:
    """A ``taskset`` prefix running a command on ``cpu``, if that can be done here."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    return ["taskset", "-c", str(cpu)]


def _server_command(kind: str, ready: Path, token: Path) -> list[str]:
    server, state, _ = EXTERNAL[kind]
    if server == "handwritten":
        return [
            sys.executable,
            str(ROOT / "benchmarks" / "handwritten.py"),
            "--ready-file",
            str(ready),
        ]
    return [
        sys.executable,
        "-m",
        "arrowloop",
        "serve",
        SERVICE,
        "--port",
        "0",
        "--control-port",
        "0",
        "--ready-file",
        str(ready),
        "--token-file",
        str(token),
        "--log-level",
        "warning",
        *([] if state is None else ["--state-dir", str(ready.parent / "state"), *state]),
    ]


def run_external(
    kind: str, clients: int, window: int, warmup: float, duration: float
) -> dict[str, Any]:
    """Start the ``kind`` server (a key of :data:`EXTERNAL`) as a process
    on core 0, load it from a load-generator process on core 1, and return
    the load generator's figures.

    Raises:
        RuntimeError: a process failed or the server did not start.
    """
    with tempfile.TemporaryDirectory() as tmp:
        ready, token = Path(tmp) / "ready.json", Path(tmp) / "token"
        errors = Path(tmp) / "stderr"
        with (
            errors.open("wb") as err,
            subprocess.Popen(
                _pinned(0) + _server_command(kind, ready, token),
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=err,
            ) as server,
        ):
            try:
                deadline = time.monotonic() + 30
                while not ready.exists():
                    if server.poll() is not None or time.monotonic() > deadline:
                        said = errors.read_text(errors="replace")[-400:]
                        raise RuntimeError(f"the {kind} server did not start: {said}")
                    time.sleep(0.05)
                port = json.loads(ready.read_text())["data"]["port"]
                return _load(port, clients, window, warmup, duration, EXTERNAL[kind][2])
            finally:
                server.terminate()
                try:
                    server.wait(30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()


def _load(
    port: int, clients: int, window: int, warmup: float, duration: float, keys: bool = False
) -> dict[str, Any]:
    load = subprocess.run(
        [
            *_pinned(1),
            sys.executable,
            str(ROOT / "benchmarks" / "loadgen.py"),
            "127.0.0.1",
            str(port),
            f"--clients={clients}",
            f"--window={window}",
            f"--warmup={warmup}",
            f"--duration={duration}",
            *(["--keys"] if keys else []),
        ],
        capture_output=True,
        check=False,
        timeout=warmup + duration + 120,
    )
    if load.returncode != 0:
        raise RuntimeError(f"the load generator failed: {load.stderr.decode()[-400:]}")
    figures: dict[str, Any] = json.loads(load.stdout)
    return figures


def external(
    clients: int, window: int, warmup: float, duration: float, rounds: int, state: bool = True
) -> dict[str, Any]:
    """arrowloop against the hand-written server (and, with ``state``,
    against itself with a state directory), ``rounds`` times each in
    alternation; the medians, their ratios, and every run's figures."""
    kinds = list(EXTERNAL) if state else ["handwritten", "arrowloop"]
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
    with progress(rounds * len(runs), "external") as advance:
        for i in range(rounds):
            # Each round starts one kind later, so that no server always
            # runs right after the same other one (the machine's state after
            # a run, and its other load, then fall on each slot in turn).
            for kind in kinds[i % len(kinds) :] + kinds[: i % len(kinds)]:
                runs[kind].append(run_external(kind, clients, window, warmup, duration))
                advance(f"round {i + 1} of {rounds}, {kind} done")

    def median(kind: str, key: str) -> float:
        return float(statistics.median(r[key] for r in runs[kind]))

    r: dict[str, Any] = {
        "pinned": bool(_pinned(0)),
        "rounds": rounds,
        "duration_s": duration,
        "handwritten_rps": round(median("handwritten", "rps")),
        "arrowloop_rps": round(median("arrowloop", "rps")),
        "handwritten_p99_ms": median("handwritten", "p99_ms"),
        "arrowloop_p99_ms": median("arrowloop", "p99_ms"),
    }
    r["ratio_vs_handwritten"] = _ratio(r["arrowloop_rps"], r["handwritten_rps"])
    r["p99_ratio_vs_handwritten"] = _ratio(r["arrowloop_p99_ms"], r["handwritten_p99_ms"])
    for kind in kinds[2:]:
        r[f"{kind}_rps"] = round(median(kind, "rps"))
        r[f"{kind}_p99_ms"] = median(kind, "p99_ms")
        r[f"{kind}_vs_arrowloop"] = _ratio(r[f"{kind}_rps"], r["arrowloop_rps"])
    r["runs"] = runs
    r["problems"] = [
        f"{kind}: {p}" for kind, rs in runs.items() for one in rs for p in _load_problems(one)
    ]
    return r


def _load_problems(r: dict[str, Any]) -> list[str]:
    problems = []
    if r["failed"]:
        problems.append(f"{r['failed']} error replies, e.g. {r['errors'][:2]}")
    if r["lost"]:
        problems.append(f"{r['lost']} requests without a reply")
    if r["count"] != r["acked"]:
        problems.append(f"the count is {r['count']}, but {r['acked']} increments were acked")
    return problems


def _problems(r: dict[str, Any], load: Sequence[Incrementer], failure: str | None) -> list[str]:
    problems = [] if failure is None else [failure]
    if r["failed"]:
        errors = [e for c in load for e in c.errors]
        problems.append(f"{r['failed']} error replies, e.g. {errors[:3]}")
    if r["lost"]:
        problems.append(f"{r['lost']} requests without a reply")
    if r["count"] != r["acked"]:
        problems.append(f"the count is {r['count']}, but {r['acked']} increments were acked")
    if r["upgrades"] != CHANGES:
        problems.append(f"{r['upgrades']} changes succeeded, expected {CHANGES}")
    if not r["final_version_ok"]:
        problems.append("the stage does not run the version the plan ends on")
    problems += [f"a connection broke: {c.broken}" for c in load if c.broken is not None]
    return problems


def _show(r: dict[str, Any]) -> None:
    print(
        f"{r['clients']} clients x {r['window']} in flight on {r['loop']}: "
        f"{r['requests']} requests, {r['acked']} acked, {r['failed']} failed, {r['lost']} lost; "
        f"count {r['count']}"
    )
    print(f"{'':12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'samples':>9}")
    for phase, rps in (("steady", "rps"), ("upgrading", "rps_upgrading")):
        print(
            f"{phase:12} {r[rps]:>9} {r[f'p50_ms_{phase}']:>8} {r[f'p99_ms_{phase}']:>8} "
            f"{r[f'max_ms_{phase}']:>8} {r[f'samples_{phase}']:>9}"
        )
    print(
        f"upgrading / steady: req/s x{r['rps_ratio_upgrading_vs_steady']}, "
        f"p99 x{r['p99_ratio_upgrading_vs_steady']}"
    )
    print(
        f"{r['upgrades']} changes in {r['upgrading_s']} s "
        f"(median {r['change_ms']['median']} ms, max {r['change_ms']['max']} ms each)"
    )


def _show_external(e: dict[str, Any]) -> None:
    where = "pinned to cores 0 and 1" if e["pinned"] else "not pinned"
    print(
        f"external ({where}; median of {e['rounds']} x {e['duration_s']} s each, "
        "server and load generator in separate processes):"
    )
    print(f"{'':12} {'req/s':>9} {'p99 ms':>8}")
    print(f"{'handwritten':12} {e['handwritten_rps']:>9} {e['handwritten_p99_ms']:>8}")
    print(f"{'arrowloop':12} {e['arrowloop_rps']:>9} {e['arrowloop_p99_ms']:>8}")
    for kind in list(EXTERNAL)[2:]:
        if f"{kind}_rps" in e:
            print(f"{kind:16} {e[f'{kind}_rps']:>9} {e[f'{kind}_p99_ms']:>8}")
    print(
        f"arrowloop / handwritten: req/s x{e['ratio_vs_handwritten']}, "
        f"p99 x{e['p99_ratio_vs_handwritten']}"
    )
    for kind, (_, options, keys) in list(EXTERNAL.items())[2:]:
        if f"{kind}_rps" in e:
            assert options is not None
            what = f"--state-dir {' '.join(options)}" + (
                ", a request key per request" if keys else ""
            )
            print(f"with {what} / without: req/s x{e[f'{kind}_vs_arrowloop']}")


def main() -> None:
    """Measure, print, write benchmarks/results/server.json; exit 1 on a problem."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="shorter phases (a smoke run)")
    ap.add_argument("--clients", type=int, default=CLIENTS, help="data connections")
    ap.add_argument("--window", type=int, default=WINDOW, help="requests in flight per client")
    ap.add_argument("--rounds", type=int, default=3, help="external runs of each server")
    ap.add_argument(
        "--no-external", action="store_true", help="skip the separate-process comparison"
    )
    ap.add_argument(
        "--no-state", action="store_true", help="skip the external runs with --state-dir"
    )
    args = ap.parse_args()
    warmup, steady = (0.3, 1.0) if args.quick else (1.0, 5.0)
    r = run(measure, args.clients, args.window, warmup, steady)
    _show(r)
    if not args.no_external:
        e = external(
            args.clients, args.window, warmup, steady / 2, args.rounds, state=not args.no_state
        )
        _show_external(e)
        r["handwritten_rps"] = e["handwritten_rps"]
        r["external_rps"] = e["arrowloop_rps"]
        r["ratio_vs_handwritten"] = e["ratio_vs_handwritten"]
        r["p99_ratio_vs_handwritten"] = e["p99_ratio_vs_handwritten"]
        r["external"] = e
        r["problems"] += [f"external: {p}" for p in e["problems"]]
    out = ROOT / "benchmarks" / "results" / "server.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    for p in r["problems"]:
        print(f"PROBLEM: {p}", file=sys.stderr)
    if r["problems"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
