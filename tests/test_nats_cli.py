"""``python -m arrowloop serve TARGET --nats URL --segment A,B``: its usage
errors (no broker needed), and a whole pipeline served as one segment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from arrowloop.distributed import open_sink, open_source
from arrowloop.runtime import EndMsg
from arrowloop.typesys import INT
from tests.nats_pipeline import CONFIG, PIPELINE, SERVE_ARGS, SPEC, as_tuples, model
from tests.natsserver import NatsServer, free_port, nats_server
from tests.serving import run_arrowloop

pytestmark = pytest.mark.e2e

__all__ = ["nats_server"]  # the fixture, imported for pytest

TARGET = "tests.nats_pipeline:SPEC"


def test_a_segment_needs_a_broker(tmp_path: Path) -> None:
    done = run_arrowloop(tmp_path, "serve", TARGET, "--segment", "count")
    assert done.returncode == 2
    assert "--segment goes with --nats URL" in done.stderr


def test_a_segment_is_consecutive_known_stages(tmp_path: Path) -> None:
    # Refused before connecting: the URL is never dialled.
    url = "nats://127.0.0.1:1"
    done = run_arrowloop(tmp_path, "serve", TARGET, "--nats", url, "--segment", "count,check")
    assert done.returncode == 2
    assert "consecutive stages" in done.stderr
    done = run_arrowloop(tmp_path, "serve", TARGET, "--nats", url, "--segment", "nope")
    assert done.returncode == 2
    assert "no stages ['nope']" in done.stderr


def test_no_broker_is_an_error_not_a_wait(tmp_path: Path) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    done = run_arrowloop(tmp_path, "serve", TARGET, "--nats", url)
    assert done.returncode == 3
    assert f"unreachable: no broker at {url}" in done.stderr


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_serve_runs_the_whole_pipeline_until_end_of_stream(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    items = list(range(-100, 300))
    url = nats_server.url
    async with open_source(url, PIPELINE, "count", INT, config=CONFIG) as src:
        await src.send(items)
        await src.send(EndMsg())
    args = ["serve", TARGET, "--nats", url, *SERVE_ARGS, "--state-dir", str(tmp_path / "s")]
    done = await anyio.to_thread.run_sync(lambda: run_arrowloop(tmp_path, *args))
    assert done.returncode == 0, done.stderr
    assert "serving stages count, total, check" in done.stdout
    assert "end of stream" in done.stdout
    got: list[Any] = []
    async with open_sink(url, PIPELINE, "out", SPEC.stages[-1].machine.output) as sink:
        try:
            while True:
                for m in await sink.receive(1024):
                    if type(m) is list:
                        got.extend(m)
        except anyio.EndOfStream:
            pass
    assert as_tuples(got) == model(items)
