"""Batches of calls (``submit_many``): in order, one error per bad item, nothing lost.

The data port admits what one read of a connection returned as one batch;
these tests pin the batch path's guarantees at the runtime and supervisor
level: each item gets its own ticket or error in its place, outputs come
back in order through several stages, a failing item fails alone (with
either step-error policy), and a batch survives a crash and restart of a
supervised stage with every other item answered.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop.errors import PipelineClosed, StepError, ValidationError
from arrowloop.machine import native
from arrowloop.runtime import Ticket, open_pipeline, pipeline, run, stage
from arrowloop.supervisor import open_supervisor, supervisor
from examples.counter import Ack, Count, IncrCount, ReadCount, v1
from tests.profiles import examples

pytestmark = pytest.mark.anyio


def _count(x: int, n: int) -> tuple[int, int]:
    if x < 0:
        raise ValueError("poison")
    return n + x, n + x


def _double(x: int, s: int) -> tuple[int, int]:
    return s, 2 * x


def _counter(**kw: Any) -> Any:
    return stage("c", native(_count, 0), **kw)


async def _results(tickets: list[Ticket | Exception]) -> list[Any]:
    out: list[Any] = []
    for t in tickets:
        if isinstance(t, Ticket):
            try:
                out.append(await t.result())
            except StepError:
                out.append("step error")
        else:
            out.append(type(t).__name__)
    return out


async def test_a_batch_enters_in_order_with_errors_in_place() -> None:
    """Ill-typed items get their ValidationError in place; the rest run in order."""
    async with open_pipeline(pipeline(_counter(), stage("d", native(_double, 0)))) as p:
        tickets = await p.submit_many([1, "x", 2, 3.5, 3])
        assert await _results(tickets) == [2, "ValidationError", 6, "ValidationError", 12]
        assert await p.call(1) == 14


async def test_a_failing_item_fails_alone_and_the_state_is_kept() -> None:
    async with open_pipeline(_counter()) as p:
        tickets = await p.submit_many([1, -1, 2])
        assert await _results(tickets) == [1, "step error", 3]


async def test_the_restart_policy_resets_in_the_middle_of_a_batch() -> None:
    async with open_pipeline(_counter(on_step_error="restart")) as p:
        tickets = await p.submit_many([1, 1, -1, 5, 1])
        assert await _results(tickets) == [1, 2, "step error", 5, 6]


async def test_a_supervised_stage_crashing_mid_batch_loses_nothing() -> None:
    """Under a supervisor with the restart policy, the items after the
    failing one are stepped by the restarted stage; each gets its reply."""
    spec = supervisor("sup", _counter(on_step_error="restart"), intensity=5, period=10.0)
    async with open_supervisor(spec) as sup:
        tickets = await sup.submit_many([1, 2, -1, 3, -1, 4])
        assert await _results(tickets) == [1, 3, "step error", 3, "step error", 4]
        status = await sup.status()
        assert status.children[0].restarts == 2


async def test_decoding_through_the_supervisor_view() -> None:
    """JSON forms decoded with the view; one that does not fit fails alone."""
    spec = supervisor("sup", stage("counter", v1.machine))
    async with open_supervisor(spec) as sup:
        incr = {"tag": "IncrCount"}
        tickets = await sup.submit_many(
            [incr, {"tag": "Nope"}, incr, {"tag": "ReadCount"}], decode=True
        )
        assert isinstance(tickets[1], ValidationError)
        assert tickets[1].path == "$.item.tag"
        outs = await _results(tickets)
        assert outs[0] == Ack()
        assert outs[2] == Ack()
        assert outs[3] == Count(2)
        assert await sup.call(ReadCount()) == Count(2)
        assert await sup.call(IncrCount()) == Ack()


async def test_a_batch_after_close_is_refused_whole() -> None:
    async with open_pipeline(_counter()) as p:
        pass
    with pytest.raises(PipelineClosed):
        await p.submit_many([1, 2])


async def test_a_batch_larger_than_the_channel_enters() -> None:
    """A batch counts as its items against capacity, yet one larger than the
    channel still enters (into an empty channel) instead of wedging."""
    async with open_pipeline(_counter(capacity=4)) as p:
        tickets = await p.submit_many([1] * 50)
        assert await _results(tickets) == list(range(1, 51))
        assert p.statistics()[0].queue.capacity == 4


@settings(max_examples=examples(40), deadline=None, derandomize=True)
@given(st.lists(st.lists(st.integers(-2, 3), max_size=12), max_size=6))
def test_batches_and_single_calls_agree(batches: list[list[int]]) -> None:
    """Any mix of batches (with poison items) gives the replies that calling
    the items one by one gives, and the same final state."""

    async def by_batches() -> tuple[list[Any], int]:
        async with open_pipeline(_counter(capacity=8)) as p:
            out: list[Any] = []
            for b in batches:
                out += await _results(await p.submit_many(b))
            return out, await p.call(0)

    async def one_by_one() -> tuple[list[Any], int]:
        async with open_pipeline(_counter(capacity=8)) as p:
            out: list[Any] = []
            for b in batches:
                for x in b:
                    try:
                        out.append(await p.call(x))
                    except StepError:
                        out.append("step error")
            return out, await p.call(0)

    assert run(by_batches) == run(one_by_one)


async def test_concurrent_batches_keep_their_own_order() -> None:
    """Several tasks submitting batches at once: each task's outputs are in
    its own order, and every item is counted once."""
    seen: dict[int, list[int]] = {}

    async def client(k: int, p: Any) -> None:
        got: list[int] = []
        for _ in range(20):
            tickets = await p.submit_many([1] * 7)
            got += [await t.result() for t in tickets]
        seen[k] = got

    async with open_pipeline(_counter(capacity=16)) as p:
        async with anyio.create_task_group() as tg:
            for k in range(5):
                tg.start_soon(client, k, p)
        assert await p.call(0) == 5 * 20 * 7
    for got in seen.values():
        assert got == sorted(got)


async def test_a_batch_behind_a_stage_stopped_at_close_is_answered_and_counted() -> None:
    """A paused stage stopped for good at close: every call of the batch
    queued for it gets PipelineClosed, and the stage counts them abandoned."""
    async with open_pipeline(_counter()) as p:
        p.pause_stage("c")
        tickets = await p.submit_many([1, 2, 3])
        await p.close(shutdown={"c": 0})
        for t in tickets:
            assert isinstance(t, Ticket)
            with pytest.raises(PipelineClosed):
                await t.result()
        assert p.statistics()[0].abandoned == 3


async def test_delivered_outputs_are_neither_tracked_nor_failed_at_close() -> None:
    """The pipeline's end stops tracking a batch once its outputs are in (a
    collector may read them without a call per ticket), and closing the
    pipeline afterwards fails none of them."""
    async with open_pipeline(_counter()) as p:
        tickets = await p.submit_many([1, 2, 3])
        with anyio.fail_after(10):
            assert await p.call(0) == 6  # outputs come in order: the batch is in
        assert all(isinstance(t, Ticket) and t.done for t in tickets)
        assert not p._pending  # the pipeline's set of undelivered replies
    assert [t.value for t in tickets if isinstance(t, Ticket)] == [1, 3, 6]
    assert all(isinstance(t, Ticket) and t.error is None for t in tickets)
