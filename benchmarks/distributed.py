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

Needs ``nats-server`` (scripts/install-nats.sh). Run:
``.venv/bin/python benchmarks/distributed.py [--quick]``; writes
``benchmarks/results/distributed.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from arrowloop.distributed import ChannelConfig, open_sink, open_source  # noqa: E402
from arrowloop.runtime import EndMsg  # noqa: E402
from arrowloop.typesys import INT  # noqa: E402
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


async def _run(url: str, items: list[int], frame: int, window: int | None) -> dict[str, Any]:
    config = ChannelConfig(frame_items=frame)
    got: list[Any] = []
    async with (
        open_source(url, PIPELINE, "count", INT, config=config) as src,
        open_sink(url, PIPELINE, "out", SPEC.stages[-1].machine.output, config=config) as sink,
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
        except anyio.EndOfStream:
            pass
        seconds = time.perf_counter() - t0
    latencies.sort()
    expected = model(items)
    outputs = [tuple(o) for o in got]
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
        "in_order": outputs == expected,
    }


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
    out = ROOT / "benchmarks" / "results" / "distributed.json"
    doc = {
        "pipeline": "3 processes, one stage each, --state-dir, loopback",
        "fsync": args.fsync,
        "runs": results,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")


if __name__ == "__main__":
    main()
