"""The broker stopped and started again mid-stream: the source, the segment and
the sink stall (publishes wait, pulls come back empty) and then go on, with
nothing lost, duplicated or reordered."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from arrowloop.distributed import open_segment, open_sink, open_source
from arrowloop.runtime import EndMsg
from arrowloop.typesys import INT
from tests.nats_pipeline import CONFIG, PIPELINE, SPEC, as_tuples, model
from tests.natsserver import NatsServer, nats_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.anyio]

__all__ = ["nats_server"]  # the fixture, imported for pytest

OUT_TYPE = SPEC.stages[-1].machine.output


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_broker_restart_mid_stream_stalls_then_resumes_with_nothing_lost(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    items = [(i * 31) % 997 - 400 for i in range(4000)]
    url = nats_server.url
    got: list[Any] = []
    with anyio.fail_after(180):
        async with (
            open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
            open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
            open_segment(
                SPEC,
                ["count", "total", "check"],
                url,
                pipeline=PIPELINE,
                state_dir=tmp_path / "state",
                config=CONFIG,
            ) as seg,
            anyio.create_task_group() as tg,
        ):
            go_on = anyio.Event()

            async def produce() -> None:
                # Half, then the rest once the broker is down: so the
                # producer is surely publishing while it is.
                for i in range(0, len(items), CONFIG.frame_items):
                    if i == len(items) // 2:
                        await go_on.wait()
                    await src.send(items[i : i + CONFIG.frame_items])
                await src.send(EndMsg())

            tg.start_soon(produce)
            restarted = False
            try:
                while True:
                    for m in await sink.receive(1024):
                        if type(m) is list:
                            got.extend(m)
                    if not restarted and len(got) >= 1000:
                        restarted = True
                        waits = src.waits
                        nats_server.stop()
                        go_on.set()
                        # The producer is held up, not failed: it waits.
                        while src.waits == waits:  # noqa: ASYNC110 - no event for tests
                            await anyio.sleep(0.01)
                        nats_server.start()
            except anyio.EndOfStream:
                pass
            await seg.finished.wait()
    assert restarted
    assert as_tuples(got) == model(items)
