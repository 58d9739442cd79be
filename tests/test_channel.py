"""Bounded channels between stages."""

from __future__ import annotations

from collections.abc import Iterator

import anyio
import pytest

from arrowloop.runtime import MemoryChannel, open_channel

pytestmark = pytest.mark.anyio


@pytest.fixture
def channels() -> Iterator[list[MemoryChannel]]:
    """Channels made by a test, disposed of afterwards."""
    made: list[MemoryChannel] = []
    yield made
    for ch in made:
        ch.dispose()


def _open(channels: list[MemoryChannel], capacity: int) -> MemoryChannel:
    ch = open_channel(capacity)
    channels.append(ch)
    return ch


async def test_full_channel_refuses_nowait(channels: list[MemoryChannel]) -> None:
    """A channel holds at most `capacity` items; one more raises WouldBlock."""
    ch = _open(channels, 4)
    ch.send_nowait([1, 2])
    ch.send_nowait([3, 4])
    with pytest.raises(anyio.WouldBlock):
        ch.send_nowait([5])
    assert ch.statistics().items == 4


async def test_empty_channel_takes_an_oversized_batch(channels: list[MemoryChannel]) -> None:
    """A batch larger than the capacity still enters an empty channel (no wedge)."""
    ch = _open(channels, 2)
    ch.send_nowait([1, 2, 3])
    with pytest.raises(anyio.WouldBlock):
        ch.send_nowait([4])
    assert await ch.receive(10) == [[1, 2, 3]]


async def test_receive_takes_the_backlog_up_to_the_limit(channels: list[MemoryChannel]) -> None:
    """A receiver takes what is waiting in one go, stopping at the batch limit."""
    ch = _open(channels, 16)
    for i in range(6):
        ch.send_nowait([i])
    assert await ch.receive(4) == [[0], [1], [2], [3]]
    assert await ch.receive(4) == [[4], [5]]


async def test_waiting_sender_resumes_when_room_appears(channels: list[MemoryChannel]) -> None:
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


async def test_closed_channel_drains_then_ends(channels: list[MemoryChannel]) -> None:
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


async def test_envelopes_count_as_one_item(channels: list[MemoryChannel]) -> None:
    """A non-list message counts for one item against the capacity."""
    ch = _open(channels, 2)
    ch.send_nowait("envelope")
    ch.send_nowait(["x"])
    with pytest.raises(anyio.WouldBlock):
        ch.send_nowait("another")
    assert await ch.receive(8) == ["envelope", ["x"]]


async def test_busy_sender_can_be_cancelled(channels: list[MemoryChannel]) -> None:
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
