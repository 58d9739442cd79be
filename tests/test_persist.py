"""Commit before reply: a pipeline with a ``persist`` hook makes each
stage's state durable before the outputs that depend on it leave the stage,
once per batch; a refused write withholds the outputs and keeps the last
durable state; an upgrade is durable before it commits.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from arrowloop.errors import PipelineClosed, StepError, UpgradeError
from arrowloop.machine import AnyMachine, native
from arrowloop.runtime import Ticket, open_pipeline, stage

pytestmark = pytest.mark.anyio


def _count(x: int, n: int) -> tuple[int, int]:
    return n + x, n + x


def _count_twice(x: int, n: int) -> tuple[int, int]:
    return n + 2 * x, n + 2 * x


class Durable:
    """A fake store: what was made durable, in order; it can be made to refuse."""

    def __init__(self) -> None:
        self.writes: list[list[tuple[str, str, Any, int]]] = []
        self.refuse = False

    async def __call__(
        self, records: list[tuple[str, AnyMachine, Any, int]], keys: Any = None
    ) -> None:
        await anyio.lowlevel.checkpoint()  # a real store waits for its disk
        if self.refuse:
            raise OSError("disk full")
        self.writes.append([(s, m.version, state, seq) for s, m, state, seq in records])

    @property
    def last(self) -> Any:
        return self.writes[-1][-1][2]


async def test_a_reply_comes_only_after_its_state_is_durable() -> None:
    durable = Durable()
    seen: list[tuple[int, Any]] = []
    async with open_pipeline(stage("c", native(_count, 0)), persist=durable) as p:
        for x in (1, 2, 3):
            out = await p.call(x)
            seen.append((out, durable.last))
    assert seen == [(1, 1), (3, 3), (6, 6)]  # every reply's state was durable first


async def test_a_batch_is_made_durable_in_one_write() -> None:
    durable = Durable()
    async with open_pipeline(stage("c", native(_count, 0)), persist=durable) as p:
        tickets = await p.submit_many([1] * 100)
        outs = [await t.result() for t in tickets if isinstance(t, Ticket)]
    assert outs == list(range(1, 101))
    assert len(durable.writes) == 1
    assert durable.writes[0] == [("c", native(_count, 0).version, 100, 100)]


async def test_a_refused_write_withholds_the_replies_and_keeps_the_durable_state() -> None:
    durable = Durable()
    async with open_pipeline(stage("c", native(_count, 0)), persist=durable) as p:
        assert await p.call(5) == 5
        durable.refuse = True
        with pytest.raises(StepError, match="durable") as info:
            await p.call(1)
        assert "disk full" in str(info.value)
        tickets = await p.submit_many([1, 1])
        for t in tickets:
            assert isinstance(t, Ticket)
            with pytest.raises(StepError):
                await t.result()
        durable.refuse = False
        assert await p.call(1) == 6  # from the last durable state, 5


async def test_plain_outputs_are_withheld_and_counted() -> None:
    durable = Durable()
    async with open_pipeline(stage("c", native(_count, 0)), persist=durable) as p:
        durable.refuse = True
        await p.send_batch([1, 2, 3])
        with anyio.fail_after(10):
            while p.statistics()[0].processed < 3:  # noqa: ASYNC110 - no event to wait on
                await anyio.sleep(0.01)
        durable.refuse = False
        assert await p.call(10) == 10
        assert p._actors[0].not_durable == 3


async def test_an_upgrade_is_durable_before_it_commits() -> None:
    durable = Durable()
    new = native(_count_twice, 0)
    async with open_pipeline(stage("c", native(_count, 0)), persist=durable) as p:
        assert await p.call(3) == 3
        await p.upgrade("c", new)
        assert durable.writes[-1] == [("c", new.version, 3, 1)]
        assert await p.call(1) == 5


async def test_a_refused_upgrade_write_keeps_the_old_code() -> None:
    durable = Durable()
    old = native(_count, 0)
    async with open_pipeline(stage("c", old), persist=durable) as p:
        assert await p.call(3) == 3
        durable.refuse = True
        with pytest.raises(UpgradeError, match="durable"):
            await p.upgrade("c", native(_count_twice, 0))
        durable.refuse = False
        assert p.version("c") == old.version
        assert await p.call(1) == 4


async def test_the_batches_a_stage_finds_waiting_are_made_durable_in_one_write() -> None:
    """Group commit across connections: several calls messages waiting in the
    stage's channel (three connections' reads) cost one write, not three."""
    durable = Durable()
    async with open_pipeline(stage("c", native(_count, 0)), persist=durable) as p:
        batches = [await p.submit_many([1] * 10) for _ in range(3)]
        outs = [await t.result() for b in batches for t in b if isinstance(t, Ticket)]
    assert outs == list(range(1, 31))
    assert [w[0][3] for w in durable.writes] == [30]


class Stuck(Durable):
    """A store whose writes never finish (a disk that hangs)."""

    def __init__(self) -> None:
        super().__init__()
        self.writing = anyio.Event()

    async def __call__(
        self, records: list[tuple[str, AnyMachine, Any, int]], keys: Any = None
    ) -> None:
        self.writing.set()
        await anyio.sleep_forever()


async def test_a_stage_stopped_during_its_commit_answers_everything_it_held() -> None:
    """Stopped for good while a wake-up's write hangs: the calls, keyed calls
    and plain outputs it held are answered (PipelineClosed) or counted, not lost."""
    durable = Stuck()
    async with open_pipeline(stage("c", native(_count, 0)), persist=durable) as p:
        p.pause_stage("c")
        plain = [1, 2]
        await p.send_batch(plain)
        first = await p.submit_many([1] * 3)
        keyed = await p.submit_many([1] * 2, keys=["a", "b"])
        p.restart_stage("c", state=0)  # resumes it: one wake-up takes all of it
        with anyio.fail_after(10):
            await durable.writing.wait()
            await p.close(shutdown={"c": 0})
        for t in first + keyed:
            assert isinstance(t, Ticket)
            with pytest.raises(PipelineClosed):
                await t.result()
        assert p.statistics()[0].abandoned == 7
