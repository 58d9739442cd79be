"""Code changes across processes: sent in-band into a pipeline's first
channel, applied by the segment running the stages they name at exactly
that point of the stream, committed with the states (a segment started
again runs the new code), and refused, with the reason, when they cannot
be applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from arrowloop.cli import main
from arrowloop.distributed import (
    connect,
    open_segment,
    open_sink,
    open_source,
    pipeline_status,
    send_change,
)
from arrowloop.errors import UpgradeError
from arrowloop.runtime import EndMsg
from arrowloop.supervisor import code_change
from arrowloop.typesys import INT
from tests.nats_pipeline import CONFIG, PIPELINE, SPEC, as_tuples, model, total_twice
from tests.natsserver import NatsServer, nats_server
from tests.serving import run_arrowloop

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

__all__ = ["nats_server"]  # the fixture, imported for pytest

OUT_TYPE = SPEC.stages[-1].machine.output
TOTAL = SPEC.stages[1].machine.version


async def _drain(sink: Any) -> list[Any]:
    got: list[Any] = []
    try:
        while True:
            for m in await sink.receive(1024):
                if type(m) is list:
                    got.extend(m)
    except anyio.EndOfStream:
        pass
    return got


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_change_applies_at_its_place_in_the_stream_and_survives_a_restart(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url
    first, second = list(range(1, 301)), list(range(-50, 250))
    kw: dict[str, Any] = {"pipeline": PIPELINE, "state_dir": tmp_path, "config": CONFIG}
    async with (
        open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
        open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
        connect(url) as nc,
        open_segment(SPEC, ["check"], url, **kw) as b,
    ):
        async with open_segment(SPEC, ["count", "total"], url, **kw):
            await src.send(first)
            await src.flush()
            change = code_change("total", TOTAL, total_twice)
            versions = await send_change(nc, PIPELINE, "count", change, within=60)
            assert versions == {"total": total_twice.machine.version}
        # Stopped after the change was committed; started again on its store.
        async with open_segment(SPEC, ["count", "total"], url, **kw) as a:
            assert a.actors[1].machine.version == total_twice.machine.version
            await src.send(second)
            await src.send(EndMsg())
            await a.finished.wait()
        got = await _drain(sink)
        await b.finished.wait()
    assert as_tuples(got) == model(first + second, twice_from=len(first))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_changes_that_cannot_apply_are_refused_with_the_reason(
    nats_server: NatsServer,
) -> None:
    url = nats_server.url
    kw: dict[str, Any] = {"pipeline": PIPELINE, "config": CONFIG}
    stale = code_change("total", "0" * 64, total_twice)
    unknown = code_change("nope", TOTAL, total_twice)
    async with (
        connect(url) as nc,
        open_segment(SPEC, ["count", "total"], url, **kw),
        open_segment(SPEC, ["check"], url, **kw),
    ):
        for change, reason in [
            (stale, "version mismatch"),
            (unknown, "unknown stage"),
        ]:
            with pytest.raises(UpgradeError) as info:
                await send_change(nc, PIPELINE, "count", change, within=60)
            assert info.value.reason == reason, info.value


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_cli_sends_a_change_into_a_distributed_pipeline(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url
    kw: dict[str, Any] = {"pipeline": PIPELINE, "config": CONFIG}
    first, second = list(range(100)), list(range(100, 200))
    nats = ["--nats", url, "--nats-pipeline", PIPELINE, "--nats-channel", "count"]
    new = "tests.nats_pipeline:total_twice"

    def upgrade(expect: str) -> Any:
        args = ["upgrade", new, "--stage", "total", "--expect", expect, *nats]
        return run_arrowloop(tmp_path, *args)

    async with (
        open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
        open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
        open_segment(SPEC, ["count", "total"], url, **kw),
        open_segment(SPEC, ["check"], url, **kw) as b,
    ):
        await src.send(first)
        await src.flush()
        done = await anyio.to_thread.run_sync(upgrade, TOTAL)
        assert done.returncode == 0, done.stderr
        assert "upgrade of stage total: succeeded" in done.stdout
        stale = await anyio.to_thread.run_sync(upgrade, TOTAL)  # it runs another now
        assert stale.returncode == 1
        assert "expected to replace version" in stale.stderr
        status = ["status", "--nats", url, "--nats-pipeline", PIPELINE]
        # The CLI gathers answers for a second; on a busy machine a segment
        # may answer later, so ask again (a bounded number of times).
        for _ in range(10):
            shown = await anyio.to_thread.run_sync(lambda: run_arrowloop(tmp_path, *status))
            assert shown.returncode == 0, shown.stderr
            lines = shown.stdout.splitlines()
            if any(line.startswith("segment check (pid ") for line in lines):
                break
        assert lines[0].startswith("segment count,total (pid ")
        new_version = total_twice.machine.version[:12]
        assert f"  stage total: version {new_version}, 100 applied, 0 failed, 1 upgrades" in lines
        assert any(line.startswith("segment check (pid ") for line in lines[3:])
        await src.send(second)
        await src.send(EndMsg())
        got = await _drain(sink)
        await b.finished.wait()
    assert as_tuples(got) == model(first + second, twice_from=len(first))


def test_the_cli_needs_full_versions_to_send_a_change_over_nats(tmp_path: Path) -> None:
    nats = ["--nats", "nats://127.0.0.1:1", "--nats-pipeline", "p", "--nats-channel", "c"]
    args = ["upgrade", "tests.nats_pipeline:total_twice", "--stage", "total", *nats]
    done = run_arrowloop(tmp_path, *args)
    assert done.returncode == 2
    assert "--expect with the full version" in done.stderr


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_status_and_changes_in_process(
    nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same through ``pipeline_status`` and the CLI's ``main`` in this
    process (a worker thread: it runs its own event loop)."""
    url = nats_server.url
    kw: dict[str, Any] = {"pipeline": PIPELINE, "config": CONFIG}
    nats = ["--nats", url, "--nats-pipeline", PIPELINE]
    async with (
        connect(url) as nc,
        open_segment(SPEC, ["check"], url, **kw),
        open_segment(SPEC, ["count", "total"], url, **kw),
    ):
        # A bound against a loaded machine, not a timing check: both answer.
        segments = await pipeline_status(nc, PIPELINE, within=30, expect=2)
        assert [[s["name"] for s in seg["stages"]] for seg in segments] == [
            ["count", "total"],
            ["check"],
        ]
        assert await pipeline_status(nc, "nobody") == []
        # The CLI gathers for a second: on a busy machine a segment may
        # answer later, so ask again (a bounded number of times).
        for _ in range(10):
            code = await anyio.to_thread.run_sync(main, ["status", *nats, "--json"])
            assert code == 0
            if '"name":"total"' in capsys.readouterr().out:
                break
        else:
            pytest.fail("the segment running total never answered the CLI's status")
        args = ["upgrade", "tests.nats_pipeline:total_twice", "--stage", "total"]
        stale = await anyio.to_thread.run_sync(
            main, [*args, "--expect", "0" * 64, *nats, "--nats-channel", "count"]
        )
        assert stale == 1
        assert "expected to replace version" in capsys.readouterr().err
        done = await anyio.to_thread.run_sync(
            main, [*args, "--expect", TOTAL, *nats, "--nats-channel", "count"]
        )
        assert done == 0
        assert "upgrade of stage total: succeeded" in capsys.readouterr().out
    code = await anyio.to_thread.run_sync(main, ["status", *nats])
    assert code == 3  # nobody answers any more
    assert "no segment of pipeline" in capsys.readouterr().err
