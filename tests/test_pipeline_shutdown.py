"""Pipelines: per-stage shutdown budgets, stages stopped for good, paused stages.

What a supervisor's stop and terminate_child rely on: a stage past its
shutdown budget (or with budget 0) is stopped for good, end of stream goes
on downstream, and everything that was queued for it is answered with
PipelineClosed and counted, never silently dropped.
"""

from __future__ import annotations

import anyio
import pytest

from arrowloop import native
from arrowloop.errors import PipelineClosed
from arrowloop.runtime import (
    Pipeline,
    PipelineSpec,
    StageSpec,
    Ticket,
    open_pipeline,
    pipeline,
    stage,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(30)]


def _plus(name: str) -> StageSpec:
    """``x -> x + 1``, counting its items in its state."""

    def step(x: int, seen: int) -> tuple[int, int]:
        return seen + 1, x + 1

    return stage(name, native(step, 0))


def _two() -> PipelineSpec:
    return pipeline(_plus("a"), _plus("b"))


async def _closed(tickets: list[Ticket]) -> int:
    n = 0
    for t in tickets:
        with pytest.raises(PipelineClosed):
            await t.result()
        n += 1
    return n


def _stat(p: Pipeline, name: str) -> tuple[int, int]:
    (s,) = [s for s in p.statistics() if s.name == name]
    return s.processed, s.abandoned


async def test_zero_shutdown_stops_a_stage_at_once_and_answers_its_queue() -> None:
    """Budget 0: the stage is stopped for good; what is queued for it gets PipelineClosed."""
    async with open_pipeline(_two()) as p:
        assert await p.call(1) == 3
        p.pause_stage("a")
        tickets = [await p.submit(x) for x in range(3)]
        await p.send_batch([7, 8])
        await anyio.wait_all_tasks_blocked()
        with anyio.fail_after(5):
            await p.close(shutdown={"a": 0, "b": None})
        assert await _closed(tickets) == 3
        assert _stat(p, "a") == (1, 5)  # 3 calls and 2 plain items, all counted
        assert _stat(p, "b") == (1, 0)


async def test_a_stage_past_its_budget_is_stopped_and_the_rest_finishes() -> None:
    """A stage still busy when its budget runs out is stopped; stages before it drain."""
    async with open_pipeline(_two(), output_capacity=1) as p:
        await p.send(1)  # fills the output channel: nobody reads it
        await anyio.wait_all_tasks_blocked()
        await p.send(2)  # b holds this output, waiting for room
        await anyio.wait_all_tasks_blocked()
        tickets = [await p.submit(x) for x in range(3)]
        await anyio.wait_all_tasks_blocked()
        with anyio.fail_after(5):
            await p.close(shutdown={"a": None, "b": 0.05})
        assert await _closed(tickets) == 3
        assert _stat(p, "a") == (5, 0)  # a passed everything on
        assert _stat(p, "b") == (2, 4)  # the output it held and the three calls
        assert await p.receive() == 3  # what was delivered stays readable


async def test_abandoning_twice_or_after_finishing_does_nothing() -> None:
    """abandon is idempotent and a no-op for a stage that finished."""
    async with open_pipeline(_two()) as p:
        await p.call(1)
        await p.close()
        p.abandon("a")
        p.abandon("a")
        assert _stat(p, "a") == (1, 0)


async def test_a_paused_stage_holds_its_items_until_resumed() -> None:
    """pause_stage: nothing is stepped until restart_stage resumes it; nothing is lost."""
    async with open_pipeline(_two()) as p:
        await p.call(1)
        p.pause_stage("b")
        assert p.is_paused("b")
        tickets = [await p.submit(x) for x in (10, 20)]
        await anyio.wait_all_tasks_blocked()
        assert _stat(p, "b") == (1, 0)
        p.restart_stage("b")
        assert [await t.result() for t in tickets] == [12, 22]
        assert not p.is_paused("b")
        assert p.state("b") == 2  # reset on resume, then two items
