"""Exactly-once effect across kill -9: two segment processes
(``python -m arrowloop serve tests.nats_pipeline:SPEC --nats URL --segment
count,total``, and ``check``) on one broker, a code change in-band halfway
through (of ``total``; or of ``total`` and ``check``, across both segments,
changing the type of the channel between them), each
killed with SIGKILL during a steady stream and restarted on its state
directory; the outputs are the sequential model's, exactly: nothing lost,
nothing duplicated, nothing reordered, the change applied at exactly its
place in the stream, and the final states match."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from arrowloop.distributed import change_frame, open_sink, open_source
from arrowloop.runtime import EndMsg
from arrowloop.store import SqliteStore
from arrowloop.supervisor import CodeChange, code_change
from arrowloop.typesys import INT
from arrowloop.upgrade import encode_change
from tests.nats_pipeline import (
    CONFIG,
    PIPELINE,
    SERVE_ARGS,
    SPEC,
    as_tuples,
    collect_killing,
    model,
    total_twice,
)
from tests.nats_versions import check_wide, model_wide, rehash, total_wide, widen
from tests.natsserver import NatsServer, nats_server
from tests.serving import server_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.anyio]

__all__ = ["nats_server"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parent.parent
OUT_TYPE = SPEC.stages[-1].machine.output
SEGMENTS = {"a": "count,total", "b": "check"}
#: ``total`` becomes ``total_twice`` after this many items, in-band.
CHANGE_AT = 3008
CHANGE = encode_change(code_change("total", SPEC.stages[1].machine.version, total_twice))
#: The change across both segments: ``total`` writes, and ``check`` reads, one more field.
ACROSS = encode_change(
    CodeChange(
        code_change("total", SPEC.stages[1].machine.version, total_wide, widen).upgrades
        + code_change("check", SPEC.stages[2].machine.version, check_wide, rehash).upgrades
    )
)


class Segments:
    """The segment processes of one test, started and killed by name."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.kills = 0
        self.live_kills = 0  # of a process still running its part of the stream

    def start(self, name: str) -> None:
        command = [sys.executable, "-m", "arrowloop", "serve", "tests.nats_pipeline:SPEC"]
        command += ["--nats", self.url, "--segment", SEGMENTS[name], *SERVE_ARGS]
        command += ["--state-dir", str(self.tmp / "state")]
        with (self.tmp / f"segment-{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                command,
                cwd=ROOT,
                env=server_env(self.tmp),
                stdout=log,
                stderr=log,
            )

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:  # it may have finished its part of the stream
            os.kill(proc.pid, signal.SIGKILL)
            self.live_kills += 1
        proc.wait()
        self.kills += 1

    def stop_all(self) -> None:
        """Wait for each to finish on its own (they stop after end of
        stream, once it is committed), killing one that does not."""
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _committed_states(tmp: Path) -> dict[str, Any]:
    states: dict[str, Any] = {}
    for path in (tmp / "state").glob("*.sqlite"):
        store = SqliteStore(path)
        try:
            stored = store.load()
            assert stored is not None
            stages = {n: r for n, r in stored.stages.items() if not n.startswith("~")}
            states.update({name: rec.state for name, rec in stages.items()})
        finally:
            store.close()
    return states


def _committed_versions(tmp: Path) -> dict[str, str]:
    versions: dict[str, str] = {}
    for path in (tmp / "state").glob("*.sqlite"):
        store = SqliteStore(path)
        try:
            stored = store.load()
            assert stored is not None
            versions.update({name: rec.version for name, rec in stored.stages.items()})
        finally:
            store.close()
    return versions


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("across", [False, True], ids=["one segment", "across segments"])
async def test_kill_9_of_segment_processes_loses_and_duplicates_nothing(
    nats_server: NatsServer, tmp_path: Path, across: bool
) -> None:
    items = [(i * 7919) % 1000 - 500 for i in range(6000)]
    # Kill after these many outputs have come out, alternating processes.
    kill_at = {600: "a", 1500: "b", 2400: "a", 3300: "b", 4200: "a"}
    url = nats_server.url
    segments = Segments(url, tmp_path)
    got: list[Any] = []
    try:
        for name in SEGMENTS:
            segments.start(name)
        with anyio.fail_after(180):
            async with (
                open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
                open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
                anyio.create_task_group() as tg,
            ):

                async def produce() -> None:
                    for i in range(0, len(items), CONFIG.frame_items):
                        if i == CHANGE_AT:
                            # A code change in-band, between two frames of the
                            # source: its place in the stream is known exactly.
                            await src.flush()
                            doc = ACROSS if across else CHANGE
                            await src.publish_frame(change_frame(doc, None))
                        await src.send(items[i : i + CONFIG.frame_items])
                    await src.send(EndMsg())

                tg.start_soon(produce)
                await collect_killing(sink, got, kill_at, segments)
    finally:
        segments.stop_all()
    assert [p.returncode for p in segments.procs.values()] == [0, 0]
    assert segments.kills == 5
    # "b" makes the outputs, so it runs until the last one: killed mid-stream.
    assert segments.live_kills >= 2
    if across:
        expected = model_wide(items, wide_from=CHANGE_AT)
    else:
        expected = model(items, twice_from=CHANGE_AT)
    outputs = as_tuples(got)
    lost = len(set(expected) - set(outputs))
    duplicated = len(outputs) - len(set(outputs))
    assert (lost, duplicated) == (0, 0)
    assert outputs == expected
    _, n, t, h = expected[-1]
    states, versions = _committed_states(tmp_path), _committed_versions(tmp_path)
    if across:
        assert states == {"count": n, "total": [t, len(items) - CHANGE_AT], "check": h}
        assert versions["total"] == total_wide.machine.version
        assert versions["check"] == check_wide.machine.version
    else:
        assert states == {"count": n, "total": t, "check": h}
        assert versions["total"] == total_twice.machine.version
