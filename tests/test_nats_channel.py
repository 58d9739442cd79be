"""Networked channels on JetStream (arrowloop.distributed): round trip, order,
the bound (a full channel makes its producer wait; nothing is dropped), and
stages run as an in-process segment between two networked channels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest

from arrowloop.distributed import ChannelConfig, open_segment, open_sink, open_source
from arrowloop.errors import ArrowloopError
from arrowloop.runtime import EndMsg
from arrowloop.typesys import INT
from tests.nats_pipeline import CONFIG, PIPELINE, SPEC, as_tuples, model
from tests.natsserver import NatsServer, nats_server

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

__all__ = ["nats_server"]  # the fixture, imported for pytest

OUT_TYPE = SPEC.stages[-1].machine.output


async def _drain(sink: Any, n: int) -> list[Any]:
    got: list[Any] = []
    try:
        while True:
            for m in await sink.receive(1024):
                if type(m) is list:
                    got.extend(m)
    except anyio.EndOfStream:
        pass
    assert len(got) == n, f"expected {n} items, found {len(got)}"
    return got


async def test_items_go_through_in_order_across_many_broker_messages(
    nats_server: NatsServer,
) -> None:
    config = ChannelConfig(frame_items=10)
    items = list(range(1000))
    async with open_source(nats_server.url, "rt", "c", INT, config=config) as src:
        for i in range(0, len(items), 7):  # batches that do not line up with frames
            await src.send(items[i : i + 7])
        await src.send(EndMsg())
        assert src.published == 101  # 100 full frames and end of stream
    async with open_sink(nats_server.url, "rt", "c", INT, config=config) as sink:
        assert await _drain(sink, len(items)) == items


async def test_a_source_sending_again_from_its_own_positions_is_deduplicated(
    nats_server: NatsServer,
) -> None:
    config = ChannelConfig(frame_items=10)
    batches = {p: list(range(p * 100, p * 100 + 25)) for p in range(1, 5)}
    async with open_source(nats_server.url, "ds", "c", INT, producer="file-a", config=config) as s:
        for p in (1, 2, 3):
            await s.send_at(p, batches[p])
    # The source restarts and sends again from a position it is unsure of.
    async with open_source(nats_server.url, "ds", "c", INT, producer="file-a", config=config) as s:
        for p in (2, 3, 4):
            await s.send_at(p, batches[p])
        assert (s.published, s.duplicates) == (9, 6)  # 3 frames per position
        await s.send(EndMsg())
    async with open_sink(nats_server.url, "ds", "c", INT, config=config) as sink:
        got = await _drain(sink, 100)
    assert got == batches[1] + batches[2] + batches[3] + batches[4]


async def test_a_frame_over_the_brokers_payload_limit_is_split(nats_server: NatsServer) -> None:
    config = ChannelConfig(frame_items=25)
    items = [f"{i:06d}" + "x" * 100_000 for i in range(25)]  # 2.5 MB; the limit is 1 MiB
    async with open_source(nats_server.url, "big", "c", config=config) as src:
        await src.send(items)
        assert src.published == 4  # 25 -> 12 + 13 -> 6 + 6 + 6 + 7
        await src.send(EndMsg())
    async with open_sink(nats_server.url, "big", "c", config=config) as sink:
        assert await _drain(sink, len(items)) == items


async def test_a_replay_later_than_the_duplicate_window_is_passed_over_by_the_segment(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    # A window of 0.1 s: the broker has forgotten the IDs when the source
    # sends again; the segment's watermark for the source still drops them.
    config = attrs.evolve(CONFIG, duplicate_window=0.1)
    url = nats_server.url
    items = list(range(40))
    stages = ["count", "total", "check"]
    kw: dict[str, Any] = {"pipeline": "dw", "state_dir": tmp_path, "config": config}
    async with open_source(url, "dw", "count", INT, producer="file", config=config) as src:
        await src.send_at(1, items)
        async with open_segment(SPEC, stages, url, **kw) as seg:
            while seg.committed < 3:  # noqa: ASYNC110 - the segment sets no event for tests
                await anyio.sleep(0.01)
        await anyio.sleep(0.3)  # past the window
        await src.send_at(1, items)  # a restarted source, from the same offset
        assert src.duplicates == 0  # the broker let them through
        await src.send_at(2, [7])
        await src.send(EndMsg())
    async with open_segment(SPEC, stages, url, **kw) as seg:
        await seg.finished.wait()
        assert seg.statistics()["replays"] == 3
    async with open_sink(url, "dw", "out", OUT_TYPE, config=config) as sink:
        got = await _drain(sink, len(items) + 1)
    assert as_tuples(got) == model([*items, 7])


async def test_a_full_channel_makes_the_producer_wait_and_drops_nothing(
    nats_server: NatsServer,
) -> None:
    config = ChannelConfig(max_msgs=4, frame_items=5, fetch_timeout=0.2)
    items = list(range(200))
    async with open_source(nats_server.url, "bp", "c", INT, config=config) as src:
        produced = anyio.Event()

        async def produce() -> None:
            for i in range(0, len(items), 5):
                await src.send(items[i : i + 5])
            await src.send(EndMsg())
            produced.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(produce)
            # The stream holds 4 messages: the producer waits at the bound
            # until a reader takes some (it is refused, never dropped).
            while src.waits == 0:  # noqa: ASYNC110 - the channel sets no event for tests
                await anyio.sleep(0.01)
            assert not produced.is_set()
            assert src.published == 4
            async with open_sink(nats_server.url, "bp", "c", INT, config=config) as sink:
                got = await _drain(sink, len(items))
    assert got == items
    assert src.waits > 0


async def test_a_segment_runs_the_whole_pipeline_between_two_networked_channels(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    items = [(i * 37) % 101 - 50 for i in range(500)]
    url = nats_server.url
    stages = ["count", "total", "check"]
    async with open_source(url, PIPELINE, "count", INT, config=CONFIG) as src:
        await src.send(items)
        await src.send(EndMsg())
    async with open_segment(
        SPEC, stages, url, pipeline=PIPELINE, state_dir=tmp_path, config=CONFIG
    ) as seg:
        await seg.finished.wait()
        assert seg.inputs == 500 // CONFIG.frame_items + 2  # frames, the rest, the end
        assert seg.commits < seg.inputs  # they were waiting: group commits
        assert seg.statistics()["duplicates"] == 0
    async with open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink:
        got = await _drain(sink, len(items))
    assert as_tuples(got) == model(items)
    # Run again on its store, it has finished: it stops at once.
    async with open_segment(
        SPEC, stages, url, pipeline=PIPELINE, state_dir=tmp_path, config=CONFIG
    ) as seg:
        assert seg.finished.is_set()
        assert seg.committed == 500 // CONFIG.frame_items + 2


async def test_what_a_stopped_segment_held_comes_back_at_once(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    # ack_wait far beyond the time limit: what the first segment held must
    # come back because the next one makes the consumer anew, not because
    # the broker timed it out.
    config = attrs.evolve(CONFIG, ack_wait=600.0, frame_items=1, max_ack_pending=32)
    url = nats_server.url
    items = list(range(300))
    stages = ["count", "total", "check"]
    kw: dict[str, Any] = {"pipeline": "gb", "state_dir": tmp_path, "config": config}
    async with open_source(url, "gb", "count", INT, config=config) as src:
        for x in items:
            await src.send([x])
        await src.send(EndMsg())
    with anyio.fail_after(60):
        async with open_segment(SPEC, stages, url, **kw) as seg:
            # Stopped once it has committed some inputs and holds others.
            while not (seg.inputs and seg.receiver.statistics().messages):  # noqa: ASYNC110
                await anyio.sleep(0.001)
        assert 0 < seg.inputs < len(items)
        async with open_segment(SPEC, stages, url, **kw) as seg:
            await seg.finished.wait()
    async with open_sink(url, "gb", "out", OUT_TYPE, config=config) as sink:
        got = await _drain(sink, len(items))
    assert as_tuples(got) == model(items)


async def test_a_segment_runs_in_one_process_at_a_time(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    kw: dict[str, Any] = {"pipeline": PIPELINE, "state_dir": tmp_path, "config": CONFIG}
    async with open_segment(SPEC, ["count"], nats_server.url, **kw):
        with pytest.raises(ArrowloopError, match="another process runs this segment"):
            async with open_segment(SPEC, ["count"], nats_server.url, **kw):
                pass
    async with open_segment(SPEC, ["count"], nats_server.url, **kw):
        pass  # free again once the first has stopped


async def test_a_segment_is_consecutive_stages(nats_server: NatsServer) -> None:
    with pytest.raises(ArrowloopError, match="consecutive"):
        async with open_segment(SPEC, ["count", "check"], nats_server.url):
            pass
    with pytest.raises(ArrowloopError, match="no stages"):
        async with open_segment(SPEC, ["nope"], nats_server.url):
            pass
