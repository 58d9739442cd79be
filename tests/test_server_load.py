"""Code changes under load: 20 upgrades and rollbacks through the control port
while several clients keep sending increments, on 127.0.0.1 with real sockets.

The load and the change plan are the ones benchmarks/server.py measures.
Between two changes every client must get at least one more reply, so the
changes really interleave with the load. Bounded in time (``fail_after``)
and in requests (a cap per client).
"""

from __future__ import annotations

from collections import Counter

import anyio
import pytest

from arrowloop.cli import ControlClient
from benchmarks.server import (
    CHANGES,
    STAGE,
    Incrementer,
    apply_changes,
    change_plan,
    counter_server,
    read_count,
    run_external,
)
from examples.counter import v1

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CLIENTS = 4
WINDOW = 16
#: Far more than 20 changes need; a bound on the test's work, not a target.
MAX_REQUESTS = 200_000


async def test_upgrades_and_rollbacks_under_load_lose_nothing() -> None:
    """Every request gets an Ack across 20 live changes, and the count equals the Acks."""
    plan = change_plan(CHANGES)
    with anyio.fail_after(60):  # a bound against hangs, not a timing check
        async with counter_server() as server:
            load = [
                Incrementer(server.data_address, WINDOW, limit=MAX_REQUESTS, timeout=20)
                for _ in range(CLIENTS)
            ]
            stop = anyio.Event()

            async def everyone_progresses() -> None:
                for c in load:
                    await c.progress()

            async with ControlClient(*server.control_address, server.token.value) as control:
                async with anyio.create_task_group() as tg:
                    for c in load:
                        tg.start_soon(c.run, stop)
                    try:
                        took = await apply_changes(control, plan, before_each=everyone_progresses)
                        await everyone_progresses()  # the load also runs after the last one
                    finally:
                        stop.set()
                history = await control.request("history")
                status = await control.request("status")
            count = await read_count(server)

    assert len(took) == CHANGES
    assert [c.broken for c in load] == [None] * CLIENTS
    assert sum(c.failed for c in load) == 0, [e for c in load for e in c.errors]
    assert sum(c.lost for c in load) == 0
    acked = sum(c.acked for c in load)
    assert all(c.acked > CHANGES for c in load)
    assert count == acked
    assert len(history) == CHANGES
    assert [r["result"] for r in history] == ["succeeded"] * CHANGES
    assert Counter(r["kind"] for r in history) == {"upgrade": 10, "rollback": 10}
    assert [r["to_versions"] for r in history] == [[step.version] for step in plan]
    assert status["children"][0]["name"] == STAGE
    assert status["children"][0]["version"] == v1.machine.version


@pytest.mark.parametrize("kind", ["arrowloop", "handwritten", "state_full_keys"])
def test_the_external_benchmark_loads_each_server_from_its_own_process(kind: str) -> None:
    """benchmarks/server.py's external mode, briefly: the server as its own
    process, a load-generator process, and no request lost or miscounted."""
    r = run_external(kind, clients=2, window=8, warmup=0.1, duration=0.3)
    assert r["acked"] > 0
    assert r["failed"] == 0
    assert r["lost"] == 0
    assert r["count"] == r["acked"]
