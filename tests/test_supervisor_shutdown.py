"""Stopping a supervisor: each child by its own shutdown spec, crashes while stopping.

OTP terminates children in reverse start order, each by its shutdown
spec (``brutal_kill``, a timeout, ``infinity``), and a child that exits
while it is being stopped is simply done. Here stages stop by their own
spec too, and whatever was queued behind a stage stopped so (or crashed
while stopping) is answered with PipelineClosed and counted, never
silently dropped and never waited for.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from arrowloop import native
from arrowloop.errors import PipelineClosed, StepError
from arrowloop.runtime import Pipeline, StageStatistics, Ticket
from arrowloop.supervisor import SupervisorSpec, child, open_supervisor, supervisor
from tests.test_supervisor import counting, relay, stage

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def _step(x: int, n: int) -> tuple[int, int]:
    """``x -> x``, counting items; -1 is poison."""
    if x == -1:
        raise ValueError("poison")
    return n + 1, x


def _pass(x: int, n: int) -> tuple[int, int]:
    """``x -> x``, counting items."""
    return n + 1, x


def _slow(x: int, n: int) -> tuple[int, int]:
    """``x -> x`` taking 20 ms of CPU per item (a stage that cannot keep up)."""
    time.sleep(0.02)
    return n + 1, x


def _stats(p: Pipeline, name: str) -> StageStatistics:
    (s,) = [s for s in p.statistics() if s.name == name]
    return s


async def _all_closed(tickets: list[Ticket]) -> None:
    for t in tickets:
        with pytest.raises(PipelineClosed):
            await t.result()


def _slow_pair(shutdown_b: float | None) -> SupervisorSpec:
    return supervisor(
        "sup",
        # One item per message from a, two at most queued for b: b yields to
        # the loop every two items (a step itself is never interrupted).
        child(stage("a", native(_step, 0), batch_limit=1), shutdown=None),
        child(stage("b", native(_slow, 0), capacity=2), shutdown=shutdown_b),
    )


@pytest.mark.parametrize("shutdown", [None, 30.0])
async def test_a_stage_crashing_while_stopping_is_done(shutdown: float | None) -> None:
    """A crash during stop's drain does not hold stop for the shutdown budget
    (or forever): the stage is done, the items behind it get PipelineClosed and
    are counted, and the stage is not restarted."""
    spec = supervisor(
        "sup",
        child(stage("a", native(_pass, 0)), shutdown=shutdown),
        child(stage("b", native(_step, 0)), shutdown=shutdown),
        intensity=10,
    )
    with anyio.fail_after(5):
        async with open_supervisor(spec, output_capacity=1) as sup:
            p = sup.pipeline
            for x in (1, 2):  # b then waits for room in the (unread) output channel,
                await p.send(x)
                await anyio.wait_all_tasks_blocked()
            poison = await p.submit(-1)  # and these queue up for it
            behind = [await p.submit(x) for x in range(3)]
            await anyio.wait_all_tasks_blocked()
            await sup.stop()  # unread outputs are dropped: b goes on, a crashes
    with pytest.raises(StepError):
        await poison.result()
    await _all_closed(behind)
    assert (_stats(p, "b").abandoned, _stats(p, "b").restarts) == (3, 0)


async def test_brutal_kill_stops_one_stage_at_once() -> None:
    """shutdown=0 on a slow stage: stop does not wait for it although the stage
    before it waits forever (None); everything it did not step is answered and
    counted."""
    with anyio.fail_after(10):
        async with open_supervisor(_slow_pair(0)) as sup:
            p = sup.pipeline
            for x in range(40):
                await p.send(x)
            tickets = [await p.submit(x) for x in range(3)]
            st = await sup.status()
            assert [c.shutdown for c in st.children] == [None, 0]
            await sup.stop()
    await _all_closed(tickets)
    b = _stats(p, "b")
    assert b.abandoned > 3  # not all 40 plain items got through in time
    assert b.processed + b.abandoned == 43  # and none went missing
    assert _stats(p, "a").abandoned == 0  # a drained into b


async def test_a_stage_past_its_shutdown_timeout_is_stopped() -> None:
    """shutdown=N: a stage still busy N seconds into the stop is stopped then."""
    with anyio.fail_after(10):
        async with open_supervisor(_slow_pair(0.1)) as sup:
            p = sup.pipeline
            for x in range(100):  # two seconds of work for b
                await p.send(x)
            started = anyio.current_time()
            await sup.stop()
            assert anyio.current_time() - started >= 0.1
    b = _stats(p, "b")
    assert b.processed >= 1
    assert b.abandoned >= 1
    assert b.processed + b.abandoned == 100


async def test_a_stage_that_drains_in_time_loses_nothing() -> None:
    """With time enough, every queued item is served before the stop completes."""
    spec = supervisor("sup", child(stage("a", counting(0)), shutdown=5.0), stage("b", relay(0)))
    with anyio.fail_after(5):
        async with open_supervisor(spec) as sup:
            tickets = [await sup.pipeline.submit(x) for x in range(1, 6)]
            await sup.stop()
    assert [(await t.result())[1] for t in tickets] == [1, 2, 3, 4, 5]
    assert all(s.abandoned == 0 for s in sup.pipeline.statistics())


async def test_nested_supervisors_stop_in_reverse_start_order() -> None:
    """Children are terminated last-started first, each by its own spec."""
    kids = [supervisor(n, stage("x", counting(0))) for n in ("s1", "s2", "s3")]
    spec = supervisor("top", *(child(k, shutdown=1.0) for k in kids))
    order: list[str] = []

    async def watch(name: str, handle: Any) -> None:
        await handle.wait()
        order.append(name)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg, open_supervisor(spec) as top:
            for n in ("s1", "s2", "s3"):
                tg.start_soon(watch, n, top.child(n))
            await anyio.wait_all_tasks_blocked()
    assert order == ["s3", "s2", "s1"]


async def test_a_terminated_stage_is_done_at_stop() -> None:
    """A stage paused by terminate_child does not hold the stop: what waits for
    it is answered with PipelineClosed."""
    spec = supervisor("sup", child(stage("a", counting(0)), shutdown=None))
    with anyio.fail_after(5):
        async with open_supervisor(spec) as sup:
            await sup.terminate_child("a")
            tickets = [await sup.pipeline.submit(x) for x in (1, 2)]
            await sup.stop()
    await _all_closed(tickets)
    assert sup.pipeline.statistics()[0].abandoned == 2
