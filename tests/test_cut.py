"""Pipeline.cut: a marker through the pipeline notes every stage's state
after the same items, without pausing traffic; with a persist hook each
noted state is already durable."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from arrowloop.errors import PipelineClosed
from arrowloop.machine import AnyMachine, native
from arrowloop.runtime import PipelineSpec, open_pipeline, stage

pytestmark = pytest.mark.anyio


def _add(x: int, total: int) -> tuple[int, int]:
    return total + x, x


async def test_a_cut_sees_every_stage_after_the_items_sent_before_it() -> None:
    m = native(_add, 0)
    async with open_pipeline(PipelineSpec((stage("a", m), stage("b", m)))) as p:
        await p.send_batch([1, 2, 3])
        cut = await p.cut()
        await p.send_batch([10])
        assert [(name, state, seq) for name, _, state, seq in cut] == [
            ("a", 6, 3),
            ("b", 6, 3),
        ]
        assert [await p.receive() for _ in range(4)] == [1, 2, 3, 10]


async def test_a_cut_notes_durable_states() -> None:
    writes: list[tuple[str, Any, int]] = []

    async def persist(records: list[tuple[str, AnyMachine, Any, int]], keys: Any = None) -> None:
        await anyio.lowlevel.checkpoint()
        writes.extend((s, state, seq) for s, _, state, seq in records)

    async with open_pipeline(stage("a", native(_add, 0)), persist=persist) as p:
        await p.send_batch([4, 5])
        cut = await p.cut()
    assert (cut[0][2], cut[0][3]) == (9, 2)
    assert ("a", 9, 2) in writes


async def test_no_cut_of_a_closing_pipeline() -> None:
    async with open_pipeline(stage("a", native(_add, 0))) as p:
        await p.close()
        with pytest.raises(PipelineClosed):
            await p.cut()


def _double(x: int, total: int) -> tuple[int, int]:
    return total + 2 * x, x


async def test_an_upgrade_records_the_items_applied_before_it_in_its_batch() -> None:
    """The seq an upgrade writes counts the items of its own batch before
    it (a restart, and a cut after it, go on from that seq)."""
    writes: list[tuple[Any, int]] = []
    gate = anyio.Event()

    async def persist(records: list[tuple[str, AnyMachine, Any, int]], keys: Any = None) -> None:
        await gate.wait()
        writes.extend((state, seq) for _, _, state, seq in records)

    async with open_pipeline(stage("a", native(_add, 0)), persist=persist) as p:
        await p.send_batch([1])
        await anyio.wait_all_tasks_blocked()  # the first batch waits for its write
        await p.send_batch([1, 1])
        async with anyio.create_task_group() as tg:
            tg.start_soon(p.upgrade, "a", native(_double, 0))
            await anyio.wait_all_tasks_blocked()  # items and the upgrade queued together
            gate.set()
        cut = await p.cut()
    assert writes[-1] == (3, 3)
    assert cut[0][3] == 3
