"""Throughput of a 3-process pipeline on NATS JetStream over loopback.

The pipeline of tests/nats_pipeline.py (``count``, ``total``, ``check``), one
stage per process, each served by ``python -m arrowloop serve ... --nats URL
--segment STAGE --state-dir DIR`` (so with the exactly-once commit per input
frame, as it ships), on a ``nats-server -js`` of its own. A source in this
process publishes the items, a sink reads the outputs; items/s is the count
over the time from the first publish to the last output; an item's latency
is from its frame's confirmed publish to its output's arrival at the sink,
with the source publishing as fast as it can (latency under saturation,
queueing included), or with at most 4 frames between source and sink (the
pipeline's own latency). The outputs are checked against the sequential model
(``lost`` and ``duplicated`` must be 0). Frames of 256 items (``batched``)
and of 1 item (``unbatched``).

Sharded (``benchmarks/sharded_pipeline.py``): ``number``, a CPU-bound
``work`` sharded by key, and ``tally``, with 1 shard and with 2, each shard a
process of its own (pinned to a core of its own with ``taskset`` when there
is one), so items/s with 2 shards over 1 shows what sharding across
processes buys a CPU-bound stage on this machine. Across keys the output
order varies; per key it is checked.

The kill run: the 2-shard pipeline with a shard process and the router's
process killed with SIGKILL mid-stream and restarted on their state
directories; ``lost`` and ``duplicated`` count against the model.

Needs ``nats-server`` (scripts/install-nats.sh). Run:
``.venv/bin/python benchmarks/distributed.py [--quick]``; writes
``benchmarks/results/distributed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from arrowloop.distributed import ChannelConfig, open_sink, open_source  # noqa: E402
from arrowloop.runtime import EndMsg, PipelineSpec  # noqa: E402
from arrowloop.typesys import INT  # noqa: E402
from benchmarks import sharded_pipeline  # noqa: E402
from tests.nats_pipeline import PIPELINE, SPEC, model  # noqa: E402
from tests.natsserver import NatsServer  # noqa: E402


def _start(url: str, tmp: Path, frame: int, fsync: str) -> list[subprocess.Popen[bytes]]:
    """One segment process per stage, up and connected when this returns."""
    procs = []
    for s in SPEC.stages:
        command = [sys.executable, "-m", "arrowloop", "serve", "tests.nats_pipeline:SPEC"]
        command += ["--nats", url, "--segment", s.name, "--nats-frame-items", str(frame)]
        command += ["--state-dir", str(tmp / "state"), "--fsync", fsync]
        command += ["--ready-file", str(tmp / s.name)]
        with (tmp / f"{s.name}.log").open("ab") as log:
            procs.append(subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log))
    # Timed from when every process is up (imports and connecting excluded).
    while not all((tmp / s.name).exists() for s in SPEC.stages):
        time.sleep(0.05)
    return procs


async def _run(
    url: str,
    items: list[int],
    frame: int,
    window: int | None,
    *,
    pipeline: str = PIPELINE,
    spec: PipelineSpec = SPEC,
    expected: list[Any] | None = None,
    keys: int | None = None,
    on_output: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Send ``items`` through the pipeline served and read its outputs.

    ``keys``: the outputs are checked per key (``x % keys``), across keys
    their order varies (after a sharded stage). ``on_output`` is called with
    the count of outputs read so far (the kill run kills from there).
    """
    config = ChannelConfig(frame_items=frame)
    got: list[Any] = []
    first = spec.stages[0].name
    async with (
        open_source(url, pipeline, first, INT, config=config) as src,
        open_sink(url, pipeline, "out", spec.stages[-1].machine.output, config=config) as sink,
        anyio.create_task_group() as tg,
    ):
        sent: list[float] = []  # when each frame was confirmed by the broker

        progress = anyio.Event()

        async def produce() -> None:
            nonlocal progress
            for i in range(0, len(items), frame):
                # With a window: at most that many frames between the source
                # and the sink, so latency is the pipeline's, not a queue's.
                while window is not None and i - len(got) >= window * frame:
                    await progress.wait()
                    progress = anyio.Event()
                await src.send(items[i : i + frame])
                sent.append(time.perf_counter())
            await src.send(EndMsg())

        latencies: list[float] = []
        t0 = time.perf_counter()
        tg.start_soon(produce)
        try:
            while True:
                for m in await sink.receive(1 << 16):
                    if type(m) is list:
                        now = time.perf_counter()
                        # Each output carries its item's number n (from 1).
                        latencies.extend(now - sent[(o[1] - 1) // frame] for o in m)
                        got.extend(m)
                        progress.set()
                        if on_output is not None:
                            on_output(len(got))
        except anyio.EndOfStream:
            pass
        seconds = time.perf_counter() - t0
    latencies.sort()
    expected = model(items) if expected is None else expected
    outputs = [tuple(o) for o in got]
    if keys is None:
        in_order = outputs == expected
    else:
        per_key: dict[int, list[Any]] = defaultdict(list)
        per_key_expected: dict[int, list[Any]] = defaultdict(list)
        for o in outputs:
            per_key[o[0] % keys].append(o)
        for o in expected:
            per_key_expected[o[0] % keys].append(o)
        in_order = per_key == per_key_expected
    return {
        "frame_items": frame,
        "window_frames": window,
        "items": len(items),
        "seconds": round(seconds, 3),
        "items_per_second": round(len(items) / seconds),
        "latency_p50_ms": round(latencies[len(latencies) // 2] * 1000, 1),
        "latency_p99_ms": round(latencies[len(latencies) * 99 // 100] * 1000, 1),
        "lost": len(set(expected) - set(outputs)),
        "duplicated": len(outputs) - len(set(outputs)),
        "in_order" if keys is None else "in_order_per_key": in_order,
    }


class _Sharded:
    """The processes of a sharded run: ``number``, one per shard of ``work``
    (each pinned to a core of its own when ``taskset`` is there), ``tally``."""

    def __init__(self, url: str, tmp: Path, shards: int, frame: int, fsync: str) -> None:
        self.url, self.tmp, self.frame, self.fsync = url, tmp, frame, fsync
        self.target = f"benchmarks.sharded_pipeline:SHARDS_{shards}"
        self.pinned = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
        self.args: dict[str, list[str]] = {"number": ["--segment", "number"]}
        for k in range(shards):
            self.args[f"work{k}"] = ["--segment", "work", "--shards", str(k)]
        self.args["tally"] = ["--segment", "tally"]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kills = 0

    def start(self, name: str) -> None:
        command = [sys.executable, "-m", "arrowloop", "serve", self.target, "--nats", self.url]
        command += [*self.args[name], "--nats-frame-items", str(self.frame)]
        command += ["--state-dir", str(self.tmp / "state"), "--fsync", self.fsync]
        command += ["--ready-file", str(self.tmp / f"{name}.ready")]
        if name.startswith("work") and self.pinned:
            cpu = int(name.removeprefix("work")) % (os.cpu_count() or 1)
            command = ["taskset", "-c", str(cpu), *command]
        with (self.tmp / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)

    def start_all(self) -> None:
        for name in self.args:
            self.start(name)
        # Timed from when every process is up (imports and connecting excluded).
        while not all((self.tmp / f"{n}.ready").exists() for n in self.args):
            time.sleep(0.05)

    def kill(self, name: str) -> None:
        """SIGKILL ``name`` and start it again on its state directory."""
        proc = self.procs[name]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        self.kills += 1
        self.start(name)

    def wait(self) -> None:
        for p in self.procs.values():
            p.wait(timeout=120)


def _sharded(
    shards: int, n: int, window: int | None, fsync: str, kills: dict[int, str] | None = None
) -> dict[str, Any]:
    """One sharded run on a broker of its own; with ``kills`` (after how many
    outputs, which process) the kill run."""
    frame = 256
    pending = dict(kills or {})
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        server = NatsServer(tmp / "jetstream")
        server.start()
        try:
            items = [(i * 7919) % 1000 for i in range(n)]
            procs = _Sharded(server.url, tmp, shards, frame, fsync)
            procs.start_all()

            def on_output(count: int) -> None:
                for at in sorted(pending):
                    if count >= at:
                        procs.kill(pending.pop(at))

            try:
                r = anyio.run(
                    lambda: _run(
                        server.url,
                        items,
                        frame,
                        window,
                        pipeline=f"SHARDS_{shards}",
                        spec=getattr(sharded_pipeline, f"SHARDS_{shards}"),
                        expected=sharded_pipeline.model(items),
                        keys=sharded_pipeline.KEYS,
                        on_output=on_output,
                    )
                )
            finally:
                procs.wait()
        finally:
            server.stop()
    r = {"shards": shards, "pinned": procs.pinned, **r}
    if kills is not None:
        r["kills"] = procs.kills
        r["killed"] = sorted(set(kills.values()))
    return r


def main() -> None:
    """Run both cases and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer items")
    parser.add_argument(
        "--fsync", choices=("full", "normal"), default="full", help="the segments' --fsync"
    )
    args = parser.parse_args()
    # (items per frame, items, frames in flight or None for as fast as it goes)
    cases = [
        (256, 20_000 if args.quick else 200_000, None),
        (1, 500 if args.quick else 3_000, None),
        (256, 10_000 if args.quick else 50_000, 4),
        (1, 300 if args.quick else 1_000, 4),
    ]
    results = []
    for frame, n, window in cases:
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            server = NatsServer(tmp / "jetstream")
            server.start()
            try:
                items = [(i * 7919) % 1000 - 500 for i in range(n)]
                procs = _start(server.url, tmp, frame, args.fsync)
                try:
                    r = anyio.run(_run, server.url, items, frame, window)
                finally:
                    for p in procs:
                        p.wait(timeout=60)
            finally:
                server.stop()
        print(json.dumps(r))
        results.append(r)
    sharded = []
    n = 6_000 if args.quick else 30_000
    for window in (None, 4):
        for shards in (1, 2):
            r = _sharded(shards, n, window, args.fsync)
            print(json.dumps(r))
            sharded.append(r)
    speedup = {}
    for window in (None, 4):
        one, two = (
            next(r for r in sharded if r["shards"] == k and r["window_frames"] == window)
            for k in (1, 2)
        )
        name = "as_fast_as_it_goes" if window is None else f"window_{window}_frames"
        speedup[name] = round(two["items_per_second"] / one["items_per_second"], 2)
    kill = _sharded(2, n, None, args.fsync, kills={n // 3: "work1", 2 * n // 3: "number"})
    print(json.dumps(kill))
    out = ROOT / "benchmarks" / "results" / "distributed.json"
    doc = {
        "pipeline": "3 processes, one stage each, --state-dir, loopback",
        "fsync": args.fsync,
        "cpus": os.cpu_count(),
        "runs": results,
        "sharded": {
            "pipeline": "benchmarks/sharded_pipeline.py: number, work (CPU-bound, "
            f"{sharded_pipeline.ROUNDS} multiply-adds per item, sharded by key), tally; "
            "one process per shard",
            "runs": sharded,
            "items_per_second_2_shards_over_1": speedup,
        },
        "kill_run": kill,
        "lost": kill["lost"] + sum(r["lost"] for r in results + sharded),
        "duplicated": kill["duplicated"] + sum(r["duplicated"] for r in results + sharded),
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
