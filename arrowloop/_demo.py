"""The in-process counter demo (``python -m arrowloop demo``).

Part 1 replays the transcript of DESIGN.md against a running pipeline: the
counter machines (written in plain annotated Python and compiled to the
arrow language) are shipped through the wire format and re-checked as a
remote end would, then installed with in-band upgrades; an ill-typed
upgrade is refused and changes nothing. Part 2 upgrades the counter
v1 -> v2 -> v3 while a producer keeps sending increments, and shows that
none was lost. (The TCP server version of this demo comes with the server.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from arrowloop.errors import UpgradeError
from arrowloop.machine import Function, Machine
from arrowloop.runtime import open_pipeline, run, stage


def run_demo(say: Callable[[str], Any]) -> int:
    """Run the demo, reporting through ``say``; 0 if every check held, else 1."""
    try:
        from examples import counter_py as c
    except ImportError:
        say("the demo needs the project's examples/ package: run it from the project root")
        return 1
    return run(_demo, c, say)


async def _demo(c: Any, say: Callable[[str], Any]) -> int:
    def ship(m: Machine) -> Machine:
        return Machine.from_wire(m.to_wire())

    v1, v2, v3 = (ship(x.machine) for x in (c.counter_v1, c.counter_v2, c.counter_v3))
    to_v3 = Function.from_wire(c.migrate_v2_v3.function.to_wire())
    ok = True

    say("part 1: the transcript, upgrading the running counter in-band")
    async with open_pipeline(stage("counter", v1)) as p:

        async def send(msg: Any, expect: Any) -> None:
            nonlocal ok
            out = await p.call(msg)
            good = out == expect
            ok = ok and good
            mark = "ok" if good else f"MISMATCH (expected {expect})"
            say(f"  {type(msg).__name__:<12} -> {out!r:<14} {mark}")

        say(f"  running v1 {v1.version[:12]}")
        for msg, expect in [
            (c.ReadCount(), c.Count(0)),
            (c.IncrCount(), c.Ack()),
            (c.IncrCount(), c.Ack()),
            (c.ReadCount(), c.Count(2)),
        ]:
            await send(msg, expect)
        new = await p.upgrade("counter", v2)
        say(f"  upgrade to v2 {new[:12]} -> succeeded")
        for msg, expect in [
            (c.ReadCount(), c.Count(2)),
            (c.ResetCount(), c.Ack()),
            (c.ReadCount(), c.Count(0)),
        ]:
            await send(msg, expect)
        try:
            await p.upgrade("counter", v3)  # no migration: int does not become (int, bool)
            ok = False
            say("  MISMATCH: an upgrade without its migration was accepted")
        except UpgradeError as exc:
            say(f"  upgrade to v3 without a migration -> {exc}")
        new = await p.upgrade("counter", v3, to_v3)
        say(f"  upgrade to v3 {new[:12]} (migration n -> (n, False)) -> succeeded")
        for msg, expect in [
            (c.ReadCount(), c.Count(0)),
            (c.IncrCount(), c.Ack()),
            (c.IncrCount(), c.Ack()),
            (c.ReadCount(), c.Count(2)),
            (c.ToggleCount(), c.Ack()),
            (c.IncrCount(), c.Ack()),
            (c.ReadCount(), c.Count(1)),
        ]:
            await send(msg, expect)

    total = 30_000
    say(f"part 2: {total} increments sent while the counter is upgraded v1 -> v2 -> v3")
    async with open_pipeline(stage("counter", v1)) as p:
        acks = 0

        async def consume() -> None:
            nonlocal acks
            async for out in p:
                acks += out == c.Ack()

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            for i in range(total):
                await p.send(c.IncrCount())
                if i == total // 3:
                    await p.upgrade("counter", v2)
                    say(f"  after {i + 1} sends: upgraded to v2")
                elif i == 2 * total // 3:
                    await p.upgrade("counter", v3, to_v3)
                    say(f"  after {i + 1} sends: upgraded to v3")
            final = await p.call(c.ReadCount())
            await p.close()
        good = final == c.Count(total) and acks == total
        ok = ok and good
        verdict = "ok" if good else "MISMATCH"
        say(f"  final count {final.n}, {acks} acks, {total - acks} lost  {verdict}")
    say("all checks held" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1
