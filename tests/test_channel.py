"""Bounded channels between stages."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from arrowloop.runtime import MemoryReceiveChannel, MemorySendChannel, open_channel

pytestmark = pytest.mark.anyio


class Both:
    """Both halves of one channel, for tests that play sender and receiver."""

    def __init__(self, capacity: int) -> None:
        self.tx: MemorySendChannel
        self.rx: MemoryReceiveChannel
        self.tx, self.rx = open_channel(capacity)

    def send_nowait(self, message: Any) -> None:
        self.tx.send_nowait(message)

    async def send(self, message: Any) -> None:
        await self.tx.send(message)

    def close(self) -> None:
        self.tx.close()

    async def receive(self, limit: int) -> list[Any]:
        return await self.rx.receive(limit)

    def receive_nowait(self, limit: int) -> list[Any]:
        return self.rx.receive_nowait(limit)

    def statistics(self) -> Any:
        return self.tx.statistics()


@pytest.fixture
def channels() -> Iterator[list[Both]]:
    """Channels made by a test, disposed of afterwards."""
    made: list[Both] = []
    yield made
    for ch in made:
        ch.rx.close()


def _open(channels: list[Both], capacity: int) -> Both:
    ch = Both(capacity)
    channels.append(ch)
    return ch


async def test_full_channel_refuses_nowait(channels: list[Both]) -> None:
    """A channel holds at most `capacity` items; one more raises WouldBlock."""
    ch = _open(channels, 4)
    ch.send_nowait([1, 2])
    ch.send_nowait([3, 4])
    with pytest.raises(anyio.WouldBlock):
        ch.send_nowait([5])
    assert ch.statistics().items == 4


async def test_empty_channel_takes_an_oversized_batch(channels: list[Both]) -> None:
    """A batch larger than the capacity still enters an empty channel (no wedge)."""
    ch = _open(channels, 2)
    ch.send_nowait([1, 2, 3])
    with pytest.raises(anyio.WouldBlock):
        ch.send_nowait([4])
    assert await ch.receive(10) == [[1, 2, 3]]


async def test_receive_takes_the_backlog_up_to_the_limit(channels: list[Both]) -> None:
    """A receiver takes what is waiting in one go, stopping at the batch limit."""
    ch = _open(channels, 16)
    for i in range(6):
        ch.send_nowait([i])
    assert await ch.receive(4) == [[0], [1], [2], [3]]
    assert await ch.receive(4) == [[4], [5]]


async def test_waiting_sender_resumes_when_room_appears(channels: list[Both]) -> None:
    """A sender blocked on a full channel proceeds once a receiver takes items."""
    ch = _open(channels, 1)
    ch.send_nowait(["a"])
    sent = anyio.Event()

    async def sender() -> None:
        await ch.send(["b"])
        sent.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        await anyio.wait_all_tasks_blocked()
        assert not sent.is_set()
        assert await ch.receive(1) == [["a"]]
        await sent.wait()
    assert await ch.receive(1) == [["b"]]


async def test_closed_channel_drains_then_ends(channels: list[Both]) -> None:
    """After close, queued batches are still received, then EndOfStream."""
    ch = _open(channels, 4)
    ch.send_nowait([1])
    ch.close()
    assert ch.statistics().closed
    assert await ch.receive(4) == [[1]]
    with pytest.raises(anyio.EndOfStream):
        await ch.receive(4)


def test_capacity_must_be_positive() -> None:
    """A zero capacity is refused with a clear message."""
    with pytest.raises(ValueError, match="capacity >= 1"):
        open_channel(0)


async def test_envelopes_count_as_one_item(channels: list[Both]) -> None:
    """A non-list message counts for one item against the capacity."""
    ch = _open(channels, 2)
    ch.send_nowait("envelope")
    ch.send_nowait(["x"])
    with pytest.raises(anyio.WouldBlock):
        ch.send_nowait("another")
    assert await ch.receive(8) == ["envelope", ["x"]]


async def test_busy_sender_can_be_cancelled(channels: list[Both]) -> None:
    """A sender that keeps refilling a drained channel still sees cancellation."""
    ch = _open(channels, 16)
    sent = 0
    busy = anyio.Event()

    async def producer() -> None:
        nonlocal sent
        while True:
            try:
                ch.send_nowait([sent])
            except anyio.WouldBlock:
                await ch.send([sent])
            sent += 1
            if sent == 2000:
                busy.set()

    async def consumer() -> None:
        while True:
            await ch.receive(64)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            async with anyio.create_task_group() as load:
                load.start_soon(producer)
                await busy.wait()
                load.cancel_scope.cancel()
            tg.cancel_scope.cancel()
    assert sent >= 2000


async def test_halves_and_teardown(channels: list[Both]) -> None:
    """The halves are separate objects; closing the receiving half fails senders."""
    ch = _open(channels, 2)
    assert not hasattr(ch.tx, "receive")
    assert not hasattr(ch.rx, "send")
    ch.send_nowait([1])
    assert ch.rx.queued == 1
    ch.rx.close()
    with pytest.raises((anyio.ClosedResourceError, anyio.BrokenResourceError)):
        ch.send_nowait([2])


async def test_seal_is_the_last_message(channels: list[Both]) -> None:
    """seal() queues its message past the capacity; a waiting sender then fails."""
    ch = _open(channels, 1)
    ch.send_nowait(["a"])
    failed = anyio.Event()

    async def sender() -> None:
        try:
            await ch.send(["b"])
        except anyio.ClosedResourceError:
            failed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(sender)
        await anyio.wait_all_tasks_blocked()
        ch.tx.seal("end")
        await failed.wait()
    assert await ch.receive(10) == [["a"], "end"]
    with pytest.raises(anyio.EndOfStream):
        await ch.receive(10)


async def test_a_waiting_sender_is_served_before_a_sender_that_did_not_wait() -> None:
    """Room freed while a sender waits goes to it: a later ``send_nowait``
    is refused meanwhile, so a producer that never yields cannot starve it."""
    send, recv = open_channel(2)
    send.send_nowait(1)
    send.send_nowait(2)
    got: list[str] = []

    async def waiter() -> None:
        await send.send("waited")
        got.append("sent")

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(anyio.WouldBlock):
            send.send_nowait(3)  # queued senders first, even once there is room
        assert recv.receive_nowait(10) == [1, 2]
        with pytest.raises(anyio.WouldBlock):
            send.send_nowait(3)
    assert got == ["sent"]
    send.send_nowait(3)  # nobody waits any more
    assert recv.receive_nowait(10) == ["waited", 3]
    recv.close()


async def test_a_cancelled_waiter_does_not_strand_the_ones_behind_it() -> None:
    send, recv = open_channel(1)
    send.send_nowait(0)
    with anyio.move_on_after(0.05):
        await send.send("cancelled")
    recv.receive_nowait(10)
    with anyio.fail_after(5):
        await send.send("after")  # room, and nobody left waiting: no hang
    assert recv.receive_nowait(10) == ["after"]
    recv.close()


async def test_a_producer_that_never_yields_does_not_starve_upgrades() -> None:
    """The pipeline benchmark's upgrade phase: a tight send loop and five
    in-band upgrades, which must all get in (this used to hang)."""
    from arrowloop.machine import native
    from arrowloop.runtime import open_pipeline, stage

    def step(x: int, s: int) -> tuple[int, int]:
        return s, x

    versions = [native(step, 0), native(lambda x, s: (s, x), 0, input=int, output=int, state=int)]
    async with open_pipeline(stage("s", versions[0], capacity=8)) as p:

        async def produce() -> None:
            i = 0
            while True:
                await p.send(i)
                i += 1

        async def consume() -> None:
            async for _ in p:
                pass

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                tg.start_soon(produce)
                for i in range(5):
                    await p.upgrade("s", versions[(i + 1) % 2])
                tg.cancel_scope.cancel()
