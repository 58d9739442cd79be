"""Rollback and history across segments: a change of stages in two segments
rolled back in both at one place in the stream (through the inverse of its
migration), each segment's part recorded in its store, and the history
gathered from both."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from arrowloop.cli import main
from arrowloop.distributed import (
    change_frame,
    connect,
    open_segment,
    open_sink,
    open_source,
    pipeline_history,
    send_rollback,
)
from arrowloop.errors import UpgradeError
from arrowloop.runtime import EndMsg
from arrowloop.supervisor import CodeChange, code_change
from arrowloop.typesys import INT
from arrowloop.upgrade import encode_change
from tests.nats_pipeline import CONFIG, PIPELINE, SPEC, as_tuples
from tests.nats_versions import check_wide, model_wide, narrow, rehash, total_wide, widen
from tests.natsserver import NatsServer, nats_server

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

__all__ = ["nats_server"]  # the fixture, imported for pytest

OUT_TYPE = SPEC.stages[-1].machine.output
TOTAL = SPEC.stages[1].machine.version
CHECK = SPEC.stages[2].machine.version
WIDE = CodeChange(
    code_change("total", TOTAL, total_wide, widen, inverse=narrow).upgrades
    + code_change("check", CHECK, check_wide, rehash, inverse=rehash).upgrades,
    requested_by="tester",
)


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
async def test_a_change_across_segments_is_rolled_back_in_both_and_recorded(
    nats_server: NatsServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = nats_server.url
    items = list(range(1, 301))
    kw: dict[str, Any] = {"pipeline": PIPELINE, "state_dir": tmp_path, "config": CONFIG}
    async with (
        open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
        open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
        connect(url) as nc,
    ):
        async with (
            open_segment(SPEC, ["count", "total"], url, **kw) as a,
            open_segment(SPEC, ["check"], url, **kw) as b,
        ):
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox, max_msgs=1)
            await src.send(items[:100])
            await src.flush()
            await src.publish_frame(change_frame(encode_change(WIDE), inbox, uuid.uuid4().hex))
            await src.send(items[100:200])  # queued behind the change
            await src.flush()
            assert "versions" in orjson.loads((await sub.next_msg(timeout=60)).data)
            # Both segments answer (a bound against a loaded machine).
            back = await send_rollback(
                nc, PIPELINE, "count", "check", requested_by="tester", gather=30, expect=2
            )
            assert back == {"total": TOTAL, "check": CHECK}
            with pytest.raises(UpgradeError) as info:  # nothing further back
                await send_rollback(nc, PIPELINE, "count", "total", gather=30, expect=2)
            assert info.value.reason == "nothing to roll back"
            await src.send(items[200:])
            await src.send(EndMsg())
            await b.finished.wait()
            assert [x.machine.version for x in a.actors] == [
                s.machine.version for s in SPEC.stages[:2]
            ]
            history = await pipeline_history(nc, PIPELINE, within=30, expect=2)
        got = await _drain(sink)
    assert as_tuples(got) == model_wide(items, wide_from=100, wide_to=200)
    assert [(h["kind"], h["result"], h["requested_by"]) for h in history] == [
        ("upgrade", "succeeded", "tester"),
        ("rollback", "succeeded", "tester"),
    ]
    up, down = history
    assert up["from"] == {"total": TOTAL, "check": CHECK}
    assert up["to"] == {"total": total_wide.machine.version, "check": check_wide.machine.version}
    assert (down["from"], down["to"]) == (up["to"], up["from"])
    assert down["undoes"] == up["id"]
    # Each segment's part is in its store: started again, the history is
    # there, and the rollback is remembered (still nothing to roll back).
    async with (
        connect(url) as nc,
        open_segment(SPEC, ["count", "total"], url, **kw) as a,
        open_segment(SPEC, ["check"], url, **kw),
    ):
        assert [r["kind"] for r in a.changes.history.changes()] == ["upgrade", "rollback"]
        assert a.changes.history.undo_stack() == []
        again = await pipeline_history(nc, PIPELINE, within=30, expect=2)
        assert [h["id"] for h in again] == [h["id"] for h in history]
        # The CLI (in a worker thread: it runs its own event loop) gathers
        # for a second; a loaded machine may answer later: asked again.
        nats = ["--nats", url, "--nats-pipeline", PIPELINE]
        for _ in range(10):
            code = await anyio.to_thread.run_sync(main, ["history", *nats])
            assert code == 0
            lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("#")]
            if len(lines) == 2 and "check" in lines[0]:
                break
        assert lines[0].startswith("#1 ")
        assert "upgrade succeeded: total" in lines[0]
        assert "(by tester)" in lines[0]
        assert "rollback succeeded: total" in lines[1]
        # The live view, polled through the broker (drawn once here).
        watch = ["status", *nats, "--watch", "--count", "1", "--interval", "0"]
        for _ in range(10):
            code = await anyio.to_thread.run_sync(main, watch)
            assert code == 0
            view = capsys.readouterr().out
            if "check" in view:
                break
        assert f"pipeline {PIPELINE} (distributed, 2 segment(s))" in view
        assert all(name in view for name in ("count", "total", "check", "rollback"))
        rollback = ["rollback", "total", *nats, "--nats-channel", "count"]
        code = await anyio.to_thread.run_sync(main, rollback)
        assert code == 1
        assert "no recorded code change to roll back" in capsys.readouterr().err
        code = await anyio.to_thread.run_sync(main, ["rollback", "total", *nats])
        assert code == 2
        assert "--nats-channel FIRST_STAGE" in capsys.readouterr().err
