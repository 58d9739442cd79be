"""Throughput of a 4-stage pipeline, and the pause an in-band upgrade causes.

Everything is measured in one run, on uvloop and on asyncio's own loop, so
the ratios are meaningful on a shared, noisy machine:

* hand-written chains of 4 asyncio tasks over anyio memory object streams
  (buffer 128) doing the same work as the arrowloop stages: (a) the plain
  API (``async for`` / ``await send``), (b) the fast path (``send_nowait``
  / ``receive_nowait``, awaiting only on ``WouldBlock``), (c) the fast path
  carrying lists of 64 items;
* an arrowloop pipeline of 4 stages of the same machine, sent items one by
  one (``unbatched``) and in lists of 64 (``batched``);
* the upgrade pause: under a steady load, the gap between the last item a
  stage handles with the old version and the first with the new one,
  over 100 upgrades, and the number of items lost across them (must be 0).

Run: ``.venv/bin/python benchmarks/pipeline.py [--quick]``; writes
``benchmarks/results/pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from anyio import EndOfStream, WouldBlock
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from arrowloop import Function, Machine, const, fanout, fst, id_, loop, prim, snd  # noqa: E402
from arrowloop.runtime import open_pipeline, pipeline, stage, uvloop_available  # noqa: E402
from benchmarks._progress import progress  # noqa: E402

STAGES = 4
BUFFER = 128
BATCH = 64
BATCH_LIMIT = 256  # how much backlog an arrowloop stage takes in one go


def counting(k: int = 1) -> Machine:
    """The stage machine: ``(x, s) -> (s + k, x)`` over ints (counter-like)."""
    body = fanout(snd >> fanout(id_, const(k)) >> prim("add"), fst)
    return Machine.build(loop(body, 0, int), int, int)


def handwritten_step(x: int, s: int) -> tuple[int, int]:
    """The same work, written by hand."""
    return s + 1, x


# -- hand-written chains -------------------------------------------------------

Recv = MemoryObjectReceiveStream[Any]
Send = MemoryObjectSendStream[Any]


async def _plain_stage(recv: Recv, send: Send) -> None:
    s = 0
    step = handwritten_step
    async with send, recv:
        async for x in recv:
            s, y = step(x, s)
            await send.send(y)


async def _fast_stage(recv: Recv, send: Send) -> None:
    s = 0
    step = handwritten_step
    with send, recv:
        while True:
            try:
                x = recv.receive_nowait()
            except WouldBlock:
                try:
                    x = await recv.receive()
                except EndOfStream:
                    return
            except EndOfStream:
                return
            s, y = step(x, s)
            try:
                send.send_nowait(y)
            except WouldBlock:
                await send.send(y)


async def _batched_stage(recv: Recv, send: Send) -> None:
    s = 0
    step = handwritten_step
    with send, recv:
        while True:
            try:
                xs = recv.receive_nowait()
            except WouldBlock:
                try:
                    xs = await recv.receive()
                except EndOfStream:
                    return
            except EndOfStream:
                return
            ys = []
            for x in xs:
                s, y = step(x, s)
                ys.append(y)
            try:
                send.send_nowait(ys)
            except WouldBlock:
                await send.send(ys)


async def _chain(kind: str, n: int) -> float:
    streams = [anyio.create_memory_object_stream[Any](BUFFER) for _ in range(STAGES + 1)]
    stage_fn = {"plain": _plain_stage, "fast": _fast_stage, "batched": _batched_stage}[kind]
    received = 0

    async def producer() -> None:
        send = streams[0][0]
        if kind == "plain":
            async with send:
                for i in range(n):
                    await send.send(i)
        elif kind == "fast":
            with send:
                for i in range(n):
                    try:
                        send.send_nowait(i)
                    except WouldBlock:
                        await send.send(i)
        else:
            with send:
                for start in range(0, n, BATCH):
                    chunk = list(range(start, min(n, start + BATCH)))
                    try:
                        send.send_nowait(chunk)
                    except WouldBlock:
                        await send.send(chunk)

    async def consumer() -> None:
        nonlocal received
        recv = streams[-1][1]
        with recv:
            if kind == "plain":
                async for _ in recv:
                    received += 1
                return
            while True:
                try:
                    x = recv.receive_nowait()
                except WouldBlock:
                    try:
                        x = await recv.receive()
                    except EndOfStream:
                        return
                except EndOfStream:
                    return
                received += len(x) if kind == "batched" else 1

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        for i in range(STAGES):
            tg.start_soon(stage_fn, streams[i][1], streams[i + 1][0])
        tg.start_soon(producer)
    elapsed = time.perf_counter() - t0
    assert received == n, (received, n)
    return n / elapsed


# -- arrowloop ---------------------------------------------------------------------


async def _arrowloop(batched: bool, n: int, validate: bool = False) -> float:
    m = counting()
    # Channels hold at most as many items as the hand-written chain's do:
    # 128 items unbatched, 128 lists of 64 batched.
    capacity = BUFFER * BATCH if batched else BUFFER
    spec = pipeline(
        *(stage(f"s{i}", m, capacity=capacity, batch_limit=BATCH_LIMIT) for i in range(STAGES))
    )
    received = 0
    t0 = time.perf_counter()
    async with open_pipeline(spec, validate_inputs=validate) as p:

        async def consumer() -> None:
            nonlocal received
            while received < n:
                try:
                    received += len(p.receive_batch_nowait())
                except WouldBlock:
                    received += len(await p.receive_batch())

        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            if batched:
                for start in range(0, n, BATCH):
                    chunk = list(range(start, min(n, start + BATCH)))
                    try:
                        p.send_batch_nowait(chunk)
                    except WouldBlock:
                        await p.send_batch(chunk)
            else:
                send = p.send
                for i in range(n):
                    await send(i)
    elapsed = time.perf_counter() - t0
    assert received == n, (received, n)
    return n / elapsed


async def _upgrade_pauses(upgrades: int) -> dict[str, Any]:
    """Upgrade the middle stage `upgrades` times under a steady load."""
    versions = [counting(1), counting(2)]
    identity = Function.build(id_, int, int)
    spec = pipeline(
        *(stage(f"s{i}", versions[0], capacity=BUFFER, batch_limit=BATCH) for i in range(STAGES))
    )
    pauses: list[float] = []
    sent = 0
    outputs: list[int] = []
    async with open_pipeline(spec, validate_inputs=False) as p:

        async def producer() -> None:
            nonlocal sent
            while True:
                await p.send(sent)
                sent += 1

        async def consumer() -> None:
            async for x in p:
                outputs.append(x)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            async with anyio.create_task_group() as load:
                load.start_soon(producer)
                await anyio.sleep(0.05)  # reach a steady state first
                for i in range(upgrades):
                    await p.upgrade("s2", versions[(i + 1) % 2], identity)
                    await anyio.sleep(0.002)  # let the load run between upgrades
                    pause = p.statistics()[2].last_upgrade_pause_ns
                    if pause is not None:
                        pauses.append(pause / 1000)
                load.cancel_scope.cancel()
            await p.close()
    lost = sent - len(outputs)
    in_order = outputs == list(range(len(outputs)))
    pauses.sort()
    return {
        "median": round(statistics.median(pauses), 2),
        "p99": round(pauses[min(len(pauses) - 1, int(len(pauses) * 0.99))], 2),
        "samples": len(pauses),
        "all": [round(x, 2) for x in pauses],
        "lost": lost + (0 if in_order else 1),
    }


async def _best(fn: Callable[[], Awaitable[float]], repeat: int) -> float:
    return max([await fn() for _ in range(repeat)])


async def measure_loop(n: int, repeat: int) -> dict[str, Any]:
    """All throughput figures on the current event loop."""
    r: dict[str, Any] = {}
    r["handwritten_plain_mps"] = await _best(lambda: _chain("plain", n // 10), repeat)
    r["handwritten_fast_mps"] = await _best(lambda: _chain("fast", n), repeat)
    r["handwritten_batched_mps"] = await _best(lambda: _chain("batched", n * 4), repeat)
    r["unbatched_mps"] = await _best(lambda: _arrowloop(False, n), repeat)
    r["unbatched_validated_mps"] = await _best(lambda: _arrowloop(False, n, validate=True), repeat)
    r["batched_mps"] = await _best(lambda: _arrowloop(True, n * 4), repeat)
    r = {k: round(v) for k, v in r.items()}
    r["unbatched_ratio"] = round(r["unbatched_mps"] / r["handwritten_fast_mps"], 3)
    r["batched_ratio"] = round(r["batched_mps"] / r["handwritten_batched_mps"], 3)
    return r


def main() -> None:
    """Measure on both loops, print, and write benchmarks/results/pipeline.json."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer items (a smoke run)")
    args = ap.parse_args()
    n, repeat, upgrades = (20_000, 1, 20) if args.quick else (200_000, 3, 100)
    loops: dict[str, Any] = {}
    backends = [("asyncio", False)] + ([("uvloop", True)] if uvloop_available() else [])
    with progress(len(backends), "throughput") as advance:
        for name, use_uvloop in backends:
            loops[name] = anyio.run(
                measure_loop,
                n,
                repeat,
                backend="asyncio",
                backend_options={"use_uvloop": use_uvloop},
            )
            print(name, json.dumps(loops[name], indent=2))
            advance(f"{name} done")
    pause = anyio.run(
        _upgrade_pauses,
        upgrades,
        backend="asyncio",
        backend_options={"use_uvloop": uvloop_available()},
    )
    results = {
        "stages": STAGES,
        "buffer": BUFFER,
        "batch": BATCH,
        "items": n,
        "loops": loops,
        "upgrade_pause_us": {
            "median": pause["median"],
            "p99": pause["p99"],
            "samples": pause["samples"],
            "all": pause["all"],
        },
        "lost": pause["lost"],
    }
    print("upgrade pause (us):", results["upgrade_pause_us"], "lost:", results["lost"])
    out = ROOT / "benchmarks" / "results" / "pipeline.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
