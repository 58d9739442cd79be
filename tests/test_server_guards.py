"""Resource guards across connections: a budget on buffered input, limits
per client address, and slowing an address that keeps sending wrong tokens.

Issue findings 2, 3 and 5: partial lines parked on many connections pinned
gigabytes; one host could hold every connection; wrong tokens were answered
thousands of times a second. Each guard is tested on its own and against a
real server on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import orjson
import pytest
from anyio.abc import SocketStream

from arrowloop.cli import ControlClient, DataClient
from arrowloop.endpoints import BufferBudget, LineReader
from arrowloop.server import (
    AddressCounts,
    AuthThrottle,
    Server,
    ServerConfig,
    Token,
    as_supervisor_spec,
    load_object,
    open_server,
    per_address_limit,
)

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TOKEN = Token("a-test-token-of-enough-length", "test")
INCR = {"tag": "IncrCount"}
ACK = {"tag": "Ack", "value": {}}


@asynccontextmanager
async def serving(**config: Any) -> AsyncIterator[Server]:
    spec = as_supervisor_spec(*load_object("examples.counter.service:pipeline"))
    with anyio.fail_after(60):  # a bound against hangs, not a timing check
        async with open_server(spec, TOKEN, ServerConfig(port=0, control_port=0, **config)) as s:
            yield s


async def _closed(stream: SocketStream) -> bool:
    """Whether the server has closed ``stream`` (reads to the end)."""
    with anyio.fail_after(10):
        try:
            while await stream.receive():
                pass
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return True
    return True


async def _until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` until it holds (bounded: a hang fails the test)."""
    with anyio.fail_after(20):
        while not condition():  # noqa: ASYNC110 - the server sets no event for tests
            await anyio.sleep(0.02)


# -- the buffer budget -------------------------------------------------------------------


class _Feed:
    """A receive stream that returns given chunks, then waits for ever."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = list(chunks)

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self.chunks:
            return self.chunks.pop(0)
        await anyio.sleep_forever()
        raise AssertionError

    async def aclose(self) -> None:
        pass


async def test_the_budget_evicts_the_readers_holding_most() -> None:
    budget = BufferBudget(1000)
    evicted: list[int] = []

    def note(i: int) -> Callable[[], None]:
        return lambda: evicted.append(i)

    readers = [
        LineReader(_Feed(b"x" * size), 10_000, budget=budget, on_evict=note(i))  # type: ignore[arg-type]
        for i, size in enumerate([100, 400, 300, 350])
    ]
    for r in readers[:3]:
        with anyio.move_on_after(0.05):
            await r.receive_line()
    assert budget.total == 800
    assert not evicted
    with anyio.move_on_after(0.05):
        await readers[3].receive_line()  # 1150 > 1000: cut back to <= 750
    assert evicted == [1]  # the biggest holder goes first
    assert budget.total == 750
    assert budget.evicted == 1
    assert await readers[1].receive_line() is None  # an evicted reader is at its end


async def test_the_budget_cuts_back_to_three_quarters_in_one_go() -> None:
    budget = BufferBudget(1000)
    readers = [LineReader(_Feed(b"x" * n), 10_000, budget=budget) for n in (300, 300, 300, 200)]  # type: ignore[arg-type]
    for r in readers:
        with anyio.move_on_after(0.05):
            await r.receive_line()  # the fourth makes 1100: two of 300 go, 500 stay
    assert [r.evicted for r in readers].count(True) == 2
    assert not readers[3].evicted
    assert budget.total == 500


async def test_a_released_reader_holds_nothing() -> None:
    budget = BufferBudget(1000)
    r = LineReader(_Feed(b"abc\npartial"), budget=budget)  # type: ignore[arg-type]
    assert await r.receive_line() == b"abc"
    with anyio.move_on_after(0.05):
        await r.receive_line()
    assert budget.total == len(b"partial")
    r.release()
    assert budget.total == 0


@pytest.mark.slow
async def test_partial_lines_on_many_connections_stay_within_the_budget() -> None:
    """Twelve data connections each park 60 KiB of a line: the server closes
    the biggest holders, stays under its budget, and serves a new client."""
    async with serving(max_buffered=256 * 1024) as server:
        host, port = server.data_address
        streams = [await anyio.connect_tcp(host, port) for _ in range(12)]
        try:
            for s in streams:
                await s.send(b'{"item": "' + b"x" * 60_000)
            await _until(lambda: server.buffers.evicted > 0)
            assert server.buffers.total <= 256 * 1024
            closed = 0
            for s in streams:
                with anyio.move_on_after(0.5):
                    closed += await _closed(s)
            assert closed >= 1
            async with DataClient(*server.data_address) as client:
                assert await client.call(INCR) == ACK
        finally:
            for s in streams:
                await s.aclose()
        await _until(lambda: server.buffers.total == 0)  # closed connections hold nothing


# -- connections per address -------------------------------------------------------------


def test_address_counts_limit_each_address_and_exempt_some() -> None:
    counts = AddressCounts(2, exempt=frozenset({"10.0.0.9"}))
    assert counts.enter("10.0.0.1")
    assert counts.enter("10.0.0.1")
    assert not counts.enter("10.0.0.1")
    assert counts.enter("10.0.0.2")
    assert all(counts.enter("10.0.0.9") for _ in range(10))
    counts.leave("10.0.0.1")
    assert counts.enter("10.0.0.1")
    assert counts.refused == 1
    for _ in range(2):
        counts.leave("10.0.0.1")
    assert counts.open_from("10.0.0.1") == 0


def test_the_derived_per_address_limit_is_a_quarter_of_the_cap() -> None:
    assert per_address_limit(ServerConfig(), 900) == 225
    assert per_address_limit(ServerConfig(), 4) == 2
    assert per_address_limit(ServerConfig(max_per_address=10), 900) == 10
    assert per_address_limit(ServerConfig(max_per_address=10), 5) == 5
    assert ServerConfig(per_address_exempt="10.1.1.1").per_address_exempt == {"10.1.1.1"}


async def test_one_address_cannot_hold_more_than_its_share() -> None:
    """With loopback not exempt, the fourth data connection from 127.0.0.1 is
    told why it is refused; closing one makes room again."""
    async with serving(max_per_address=3, per_address_exempt=()) as server:
        host, port = server.data_address
        held = [DataClient(host, port) for _ in range(3)]
        for c in held:
            await c.__aenter__()
        try:
            for c in held:
                assert await c.call(INCR) == ACK
            async with await anyio.connect_tcp(host, port) as extra:
                line = LineReader(extra)
                reply = orjson.loads(await line.receive_line() or b"null")
            assert reply["error"]["type"] == "ServerBusy"
            assert "your address" in reply["error"]["message"]
            assert server.per_address["data"].refused == 1
        finally:
            await held.pop().__aexit__(None, None, None)
        async with DataClient(host, port) as again:
            assert await again.call(INCR) == ACK
        for c in held:
            await c.__aexit__(None, None, None)
        async with ControlClient(*server.control_address, TOKEN.value) as ctl:
            await ctl.request("status")  # the control port has its own count


async def test_loopback_is_exempt_by_default() -> None:
    async with (
        serving(max_per_address=1) as server,
        DataClient(*server.data_address) as a,
        DataClient(*server.data_address) as b,
    ):
        assert await a.call(INCR) == ACK
        assert await b.call(INCR) == ACK


# -- wrong tokens ------------------------------------------------------------------------


def test_the_throttle_delays_only_past_the_free_failures_and_forgets() -> None:
    now = [0.0]
    t = AuthThrottle(free=3, base=0.1, max_delay=1.0, half_life=10.0, clock=lambda: now[0])
    delays = [t.failed("1.2.3.4") for _ in range(8)]
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert delays[3:] == [0.1, 0.2, 0.4, 0.8, 1.0]
    assert t.failed("5.6.7.8") == 0.0  # another address is not slowed
    now[0] = 100.0  # ten half-lives: forgotten
    assert t.failures_of("1.2.3.4") < 0.01
    assert t.failed("1.2.3.4") == 0.0
    assert t.failures == 10


def test_the_throttle_remembers_a_bounded_number_of_addresses() -> None:
    t = AuthThrottle(max_addresses=10)
    for i in range(100):
        t.failed(f"10.0.0.{i}")
    assert len(t._scores) == 10


async def test_repeated_wrong_tokens_are_slowed_and_the_right_one_is_not() -> None:
    async with serving() as server:
        server.auth = AuthThrottle(free=2, base=0.001, max_delay=0.01)
        messages = []
        for _ in range(5):
            async with ControlClient(*server.control_address, "wrong-token-wrong-token") as bad:
                try:
                    await bad.request("status")
                except Exception as exc:
                    messages.append(str(exc))
        assert len(messages) == 5
        assert not any("delayed" in m for m in messages[:2])
        assert all("delayed" in m for m in messages[2:])
        assert server.auth.failures == 5
        async with ControlClient(*server.control_address, TOKEN.value) as good:
            status = await good.request("status")
        assert status["children"]
