"""A control port per segment: ``serve TARGET --nats URL --segment S
--control-port N`` answers the server's control protocol for the whole
distributed pipeline, so ``python -m arrowloop upgrade/rollback/status/history``
against either segment's port change, roll back and report every segment."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from arrowloop.distributed import open_sink, open_source
from arrowloop.runtime import EndMsg
from arrowloop.typesys import INT
from tests.nats_pipeline import (
    CONFIG,
    PIPELINE,
    SERVE_ARGS,
    SPEC,
    as_tuples,
    total_twice,
)
from tests.natsserver import NatsServer, nats_server
from tests.serving import run_arrowloop, start_server

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

__all__ = ["nats_server"]  # the fixture, imported for pytest

TARGET = "tests.nats_pipeline:SPEC"
TOTAL = SPEC.stages[1].machine.version


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(timeout=60)


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


def _cli(tmp: Path, ready: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_arrowloop(tmp, *args, "--ready-file", ready)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_either_segments_control_port_drives_the_whole_pipeline(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url
    a_dir, b_dir = tmp_path / "a", tmp_path / "b"
    a_dir.mkdir()
    b_dir.mkdir()
    nats = ["--nats", url, *SERVE_ARGS]
    a, ready_a = await anyio.to_thread.run_sync(
        lambda: start_server(
            a_dir, *nats, "--segment", "count,total", "--state-dir", str(a_dir), target=TARGET
        )
    )
    try:
        # One token for the pipeline: the second segment reads the file the first made.
        token = ["--token-file", str(a_dir / "token")]
        b, ready_b = await anyio.to_thread.run_sync(
            lambda: start_server(
                b_dir, *nats, "--segment", "check", *token, "--state-dir", str(b_dir), target=TARGET
            )
        )
        try:
            assert ready_a["control"]["port"] != ready_b["control"]["port"]
            first, second = list(range(100)), list(range(100, 200))
            async with open_source(url, PIPELINE, "count", INT, config=CONFIG) as src:
                await src.send(first)
                await src.flush()

                def cli(ready: dict[str, Any], *args: str) -> subprocess.CompletedProcess[str]:
                    return _cli(tmp_path, ready["ready_file"], *args)

                # The upgrade asks the port for the running version (status),
                # then sends the change in-band: through the *second*
                # segment's port, for a stage of the first.
                new = "tests.nats_pipeline:total_twice"
                done = await anyio.to_thread.run_sync(
                    lambda: cli(ready_b, "upgrade", new, "--stage", "total", "--by", "op")
                )
                assert done.returncode == 0, done.stderr
                assert f"stage total runs {TOTAL[:12]}" in done.stdout
                assert "upgrade of stage total: succeeded" in done.stdout
                # Status through the first segment's port: every stage.
                for _ in range(10):  # gathered for a second; a loaded machine may be late
                    shown = await anyio.to_thread.run_sync(lambda: cli(ready_a, "status", "--json"))
                    assert shown.returncode == 0, shown.stderr
                    status = json.loads(shown.stdout)
                    if len(status["children"]) == 3:
                        break
                names = [c["name"] for c in status["children"]]
                assert names == ["count", "total", "check"]
                versions = {c["name"]: c["version"] for c in status["children"]}
                assert versions["total"] == total_twice.machine.version
                text = await anyio.to_thread.run_sync(lambda: cli(ready_a, "status"))
                assert "stage total: running" in text.stdout
                await src.send(second)
                await src.flush()
                # Rollback through the first segment's port.
                back = await anyio.to_thread.run_sync(lambda: cli(ready_a, "rollback", "total"))
                assert back.returncode == 0, back.stderr
                assert "rollback of stage total: succeeded (" in back.stdout
                assert TOTAL[:12] in back.stdout
                again = await anyio.to_thread.run_sync(lambda: cli(ready_b, "rollback", "total"))
                assert again.returncode == 1
                assert "no recorded code change to roll back" in again.stderr
                history = await anyio.to_thread.run_sync(lambda: cli(ready_b, "history"))
                assert history.returncode == 0, history.stderr
                lines = [ln for ln in history.stdout.splitlines() if ln.startswith("#")]
                assert len(lines) == 2, history.stdout
                assert "upgrade succeeded: total" in lines[0]
                assert "(by op)" in lines[0]
                assert "rollback succeeded: total" in lines[1]
                watch = ("status", "--watch", "--count", "1", "--interval", "0")
                view = await anyio.to_thread.run_sync(lambda: cli(ready_b, *watch))
                assert view.returncode == 0, view.stderr
                assert f"pipeline {PIPELINE} (distributed," in view.stdout
                state = await anyio.to_thread.run_sync(lambda: cli(ready_a, "state", "total"))
                assert state.returncode == 1
                assert "a supervisor's operation" in state.stderr
                third = list(range(200, 300))
                await src.send(third)
                await src.send(EndMsg())
            async with open_sink(url, PIPELINE, "out", SPEC.stages[-1].machine.output) as sink:
                got = await _drain(sink)
        finally:
            await anyio.to_thread.run_sync(_stop, b)
    finally:
        await anyio.to_thread.run_sync(_stop, a)
    assert as_tuples(got) == _model(first + second + third, twice=(100, 200))


def _model(items: list[int], twice: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The pipeline's outputs with ``total`` counting items twice from item
    ``twice[0] + 1`` to item ``twice[1]`` (upgraded, then rolled back)."""
    out = []
    t, h = 0, 7
    for n, x in enumerate(items, 1):
        t += 2 * x if twice[0] < n <= twice[1] else x
        h = (h * 31 + x * 7 + n * 3 + t) % 1000000007
        out.append((x, n, t, h))
    return out


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_bad_control_requests_to_a_segment_get_one_clear_error(
    nats_server: NatsServer,
) -> None:
    """In this process: a segment's control port refuses a wrong token, a
    malformed change (with its path; nothing is sent into the pipeline), a
    rollback without a stage or of a stage with nothing to undo, and a
    supervisor's operation; the pipeline goes on unchanged."""
    from arrowloop.cli._client import ControlClient, RemoteError
    from arrowloop.cli._segment_port import open_control_port
    from arrowloop.distributed import connect, open_segment
    from arrowloop.distributed._control import SegmentControl
    from arrowloop.server import Token

    token = Token("a-test-token-of-enough-length", "test")
    url = nats_server.url
    kw: dict[str, Any] = {"pipeline": PIPELINE, "config": CONFIG}
    items = list(range(50))
    async with (
        open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
        open_sink(url, PIPELINE, "out", SPEC.stages[-1].machine.output, config=CONFIG) as sink,
        connect(url) as nc,
        open_segment(SPEC, ["count", "total"], url, **kw),
        open_segment(SPEC, ["check"], url, **kw) as b,
        open_control_port(SegmentControl(nc, PIPELINE, "count"), token) as (host, port),
    ):
        async with ControlClient(host, port, "not-the-token-at-all") as wrong:
            with pytest.raises(RemoteError) as info:
                await wrong.request("status")
            assert info.value.error["type"] == "AuthenticationError"
        async with ControlClient(host, port, token.value) as ctl:
            refusals: list[tuple[tuple[str], dict[str, Any], str, str | None]] = [
                (("upgrade",), {"change": {"kind": "change"}}, "DecodeError", "$.format"),
                (("upgrade",), {"change": [1]}, "ProtocolError", "$.change"),
                (("rollback",), {}, "ProtocolError", "$.stage"),
                (("rollback",), {"stage": "total"}, "UpgradeError", None),
                (("get_state",), {"stage": "total"}, "ProtocolError", "$.op"),
                (("nope",), {}, "ProtocolError", "$.op"),
            ]
            for (op,), fields, kind, path in refusals:
                with pytest.raises(RemoteError) as info:
                    await ctl.request(op, **fields)
                assert info.value.error["type"] == kind, info.value.error
                if path is not None:
                    assert info.value.error.get("path", "").startswith(path), info.value.error
            await src.send(items)
            await src.send(EndMsg())
            got = await _drain(sink)
            await b.finished.wait()
    assert as_tuples(got) == _model(items, twice=(0, 0))
