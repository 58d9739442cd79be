"""A sharded first stage across processes, fed by a source that routes by
key (``open_source(..., shards=N, shard_key=...)``): ``per_key`` in two
shards, one process each, and ``tally`` after it, all served with the CLI
on one broker. The source numbers its frames by offset (``send_at``: IDs
``source/<k>:<offset>:<part>``), sends a change of ``per_key`` in-band to
every shard partway, and a change of ``tally`` goes through the CLI
(``upgrade --nats-shards 2``: a copy into each shard's channel, aligned
after the shards); shard processes are killed with SIGKILL and restarted on
their state directories. Nothing is lost or duplicated, each key's outputs
come in its order and are the sequential model's, and the committed states
and versions are the model's. A migration of the first stage sent by the
source is voted on by both shards under one change id. And two sharded
stages in a row (``per_key`` in 2 shards, ``seen`` in 3: each shard of the
first routes to the second's shards, each of which merges 2 streams), in
process with changes of both and of the stage after, and with the CLI under
kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import defaultdict
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import pytest

from arrowloop import pipeline, stage
from arrowloop.distributed import change_frame, open_segment, open_sink, open_source
from arrowloop.distributed._frames import END
from arrowloop.runtime import EndMsg
from arrowloop.runtime._shards import shard_of
from arrowloop.store import SqliteStore
from arrowloop.supervisor import code_change
from arrowloop.upgrade import encode_change
from arrowloop.wire import decode_value
from tests.nats_pipeline import CONFIG, SERVE_ARGS, collect_killing
from tests.nats_shards_pipeline import (
    FIRST,
    KEYS,
    TWO,
    as_tuples,
    by_key,
    mark,
    model,
    model_two,
    per_key,
    per_key_marked,
    per_key_twice,
    seen_v2,
    tally_v2,
)
from tests.natsserver import NatsServer, nats_server
from tests.serving import run_arrowloop, server_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.anyio]

__all__ = ["nats_server"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parent.parent
TARGET = "tests.nats_shards_pipeline:FIRST"
PIPELINE = "FIRST"
IN_TYPE = FIRST.stages[0].machine.input
OUT_TYPE = FIRST.stages[-1].machine.output
PROCESSES = {
    "s0": ["--segment", "per_key", "--shards", "0"],
    "s1": ["--segment", "per_key", "--shards", "1"],
    "c": ["--segment", "tally"],
}
BOUND = ["--nats-max-msgs", "32"]
#: ``per_key`` becomes ``per_key_twice`` after this many items (in-band from
#: the source), ``tally`` becomes ``tally_v2`` after this many (the CLI, once
#: every output before it is in).
TWICE_FROM, V2_FROM = 1200, 2400


class Processes:
    """The segment processes of one test, started and killed by name."""

    def __init__(
        self,
        url: str,
        tmp: Path,
        target: str = TARGET,
        processes: dict[str, list[str]] = PROCESSES,
    ) -> None:
        self.url = url
        self.tmp = tmp
        self.target = target
        self.processes = processes
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.live_kills = 0

    def start(self, name: str) -> None:
        command = [sys.executable, "-m", "arrowloop", "serve", self.target, "--nats", self.url]
        command += [*self.processes[name], *SERVE_ARGS, *BOUND]
        command += ["--state-dir", str(self.tmp / "state")]
        with (self.tmp / f"segment-{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                command, cwd=ROOT, env=server_env(self.tmp), stdout=log, stderr=log
            )

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            self.live_kills += 1
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _stores(tmp: Path) -> dict[str, Any]:
    """Per store file (its stem): ``{stage: (version, state)}`` as committed."""
    found: dict[str, Any] = {}
    for path in sorted((tmp / "state").glob("*.sqlite")):
        store = SqliteStore(path)
        try:
            stored = store.load()
            assert stored is not None
            found[path.stem] = {
                n: (r.version, r.state) for n, r in stored.stages.items() if not n.startswith("~")
            }
        finally:
            store.close()
    return found


def _marks(tmp: Path, store: str) -> dict[str, Any]:
    """The producers' watermarks a segment's store holds."""
    s = SqliteStore(tmp / "state" / f"{store}.sqlite")
    try:
        stored = s.load()
        assert stored is not None
        marks: dict[str, Any] = stored.stages["~watermarks"].state
        return marks
    finally:
        s.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    "kills",
    [{900: "s0"}, {700: "s1", 1900: "s0", 2900: "s1"}],
    ids=["one-shard-kill", "three-shard-kills"],
)
async def test_a_source_routing_by_key_feeds_a_sharded_first_stage_across_kill_9(
    nats_server: NatsServer, tmp_path: Path, kills: dict[int, str]
) -> None:
    xs = [(i * 7919) % 1000 for i in range(3600)]
    items = [(x, n) for n, x in enumerate(xs, 1)]
    kill_at = dict(kills)
    url = nats_server.url
    procs = Processes(url, tmp_path)
    got: list[Any] = []
    frame = CONFIG.frame_items
    twice = encode_change(code_change("per_key", FIRST.stages[0].machine.version, per_key_twice))
    nats = ["--nats", url, "--nats-pipeline", PIPELINE, "--nats-channel", "per_key"]
    upgrade = [
        "upgrade",
        "tests.nats_shards_pipeline:tally_v2",
        "--stage",
        "tally",
        "--expect",
        FIRST.stages[1].machine.version,
        *nats,
        "--nats-shards",
        "2",
        "--timeout",
        "60",
    ]
    changed: list[subprocess.CompletedProcess[str]] = []
    enough = anyio.Event()
    try:
        for name in PROCESSES:
            procs.start(name)
        with anyio.fail_after(240):
            async with (
                open_source(
                    url,
                    PIPELINE,
                    "per_key",
                    IN_TYPE,
                    config=CONFIG,
                    shards=2,
                    shard_key=FIRST.stages[0].shard_key,
                ) as src,
                open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
                anyio.create_task_group() as tg,
            ):

                async def produce() -> None:
                    for i in range(0, len(items), frame):
                        if i == TWICE_FROM:
                            # In-band, to every shard between two frames of
                            # the source: its place is known exactly.
                            await src.publish_frame(change_frame(twice, None))
                        if i == V2_FROM:
                            await enough.wait()  # every output before it is in
                            done = await anyio.to_thread.run_sync(
                                lambda: run_arrowloop(tmp_path, *upgrade)
                            )
                            changed.append(done)
                        await src.send_at(i, items[i : i + frame])
                    await src.send_at(len(items), [], [END])

                tg.start_soon(produce)
                await collect_killing(
                    sink, got, kill_at, procs, lambda n: enough.set() if n >= V2_FROM else None
                )
    finally:
        procs.stop_all()
    [done] = changed
    assert done.returncode == 0, done.stderr
    assert "upgrade of stage tally: succeeded" in done.stdout
    assert {n: p.returncode for n, p in procs.procs.items()} == dict.fromkeys(PROCESSES, 0)
    assert not kill_at
    assert procs.live_kills >= 1
    expected, states = model(xs, twice_from=TWICE_FROM, v2_from=V2_FROM)
    outputs = as_tuples(got)
    lost = len(set(expected) - set(outputs))
    duplicated = len(outputs) - len(set(outputs))
    assert (lost, duplicated) == (0, 0)
    assert sorted(outputs) == sorted(expected)
    per_key_got: dict[int, list[Any]] = defaultdict(list)
    per_key_expected: dict[int, list[Any]] = defaultdict(list)
    for o in outputs:
        per_key_got[o[0] % KEYS].append(o)
    for o in expected:
        per_key_expected[o[0] % KEYS].append(o)
    assert per_key_got == per_key_expected
    stores = _stores(tmp_path)
    merged: dict[int, Any] = {}
    for k in range(2):
        version, state = stores[f"{PIPELINE}.per_key.shard{k}"]["per_key"]
        assert version == per_key_twice.machine.version
        mine = decode_value(per_key_twice.machine.state, state)
        # Routed by the in-process hash of the stage's key: shard k holds its keys only.
        assert {shard_of(key, 2) for key in mine} == {k}
        merged.update(mine)
        # The source's offsets, per shard, as the shard's watermark for it.
        assert f"source/{k}" in _marks(tmp_path, f"{PIPELINE}.per_key.shard{k}")
    assert merged == states
    assert stores[f"{PIPELINE}.tally"]["tally"] == (tally_v2.machine.version, len(items))


def _per_key_order(outputs: list[Any], expected: list[Any]) -> None:
    """Every output once, and each key's in the model's order."""
    assert (len(set(expected) - set(outputs)), len(outputs) - len(set(outputs))) == (0, 0)
    assert sorted(outputs) == sorted(expected)
    for key in range(KEYS):
        assert [o for o in outputs if o[0] % KEYS == key] == [
            o for o in expected if o[0] % KEYS == key
        ]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_two_sharded_stages_in_a_row_route_shard_to_shard(
    nats_server: NatsServer,
) -> None:
    """``per_key`` (2 shards, first) and ``seen`` (3 shards) in a row, every
    shard a segment in this process: each shard of ``per_key`` routes to the
    shards of ``seen``, each of which merges its 2 streams. Changes in-band
    from the source, of ``per_key`` (at its copies), of ``seen`` (passed on by
    ``per_key``'s shards, aligned by each shard of ``seen``) and of ``tally``
    (aligned twice), each at exactly its place."""
    url, name = nats_server.url, "two_sharded"
    xs = [(i * 7919) % 1000 for i in range(1200)]
    items = [(x, n) for n, x in enumerate(xs, 1)]
    stages = TWO.stages
    changes = {
        304: code_change("per_key", stages[0].machine.version, per_key_twice),
        608: code_change("seen", stages[1].machine.version, seen_v2),
        896: code_change("tally", stages[2].machine.version, tally_v2),
    }
    kw: dict[str, Any] = {"pipeline": name, "config": CONFIG}
    got: list[Any] = []
    with anyio.fail_after(90):
        async with AsyncExitStack() as stack:
            for k in range(2):
                await stack.enter_async_context(open_segment(TWO, ["per_key"], url, shard=k, **kw))
            segs = [
                await stack.enter_async_context(open_segment(TWO, ["seen"], url, shard=j, **kw))
                for j in range(3)
            ]
            await stack.enter_async_context(open_segment(TWO, ["tally"], url, **kw))
            src = await stack.enter_async_context(
                open_source(
                    url,
                    name,
                    "per_key",
                    IN_TYPE,
                    config=CONFIG,
                    shards=2,
                    shard_key=stages[0].shard_key,
                )
            )
            sink = await stack.enter_async_context(
                open_sink(url, name, "out", OUT_TYPE, config=CONFIG)
            )
            for i in range(0, len(items), CONFIG.frame_items):
                if i in changes:
                    await src.publish_frame(change_frame(encode_change(changes[i]), None))
                await src.send_at(i, items[i : i + CONFIG.frame_items])
            await src.send_at(len(items), [], [END])
            try:
                while True:
                    for m in await sink.receive(1024):
                        if type(m) is list:
                            got.extend(m)
            except anyio.EndOfStream:
                pass
            assert [s.actors[0].machine.version for s in segs] == [seen_v2.machine.version] * 3
            counts: dict[int, int] = {}
            for j, s in enumerate(segs):
                state = s.actors[0].state
                assert {shard_of(key, 3) for key in state} <= {j}
                counts.update(state)
    expected, _, seen_counts = model_two(xs, twice_from=304, seen_from=608, v2_from=896)
    _per_key_order(as_tuples(got), expected)
    assert counts == seen_counts


#: ``TWO`` served with the CLI: each shard of ``per_key`` in a process of its
#: own, the three shards of ``seen`` in one, ``tally`` in another.
TWO_PROCESSES = {
    "p0": ["--segment", "per_key", "--shards", "0"],
    "p1": ["--segment", "per_key", "--shards", "1"],
    "s": ["--segment", "seen"],
    "c": ["--segment", "tally"],
}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_two_sharded_stages_in_a_row_across_kill_9(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """``TWO`` served with the CLI, a change of ``seen`` in-band from the
    source, the process of ``seen``'s shards and one of ``per_key``'s shards
    killed with SIGKILL and restarted: the model's outputs (per key in
    order), states and versions."""
    xs = [(i * 7919) % 1000 for i in range(2400)]
    items = [(x, n) for n, x in enumerate(xs, 1)]
    change_at = 1200
    change = encode_change(code_change("seen", TWO.stages[1].machine.version, seen_v2))
    url = nats_server.url
    procs = Processes(url, tmp_path, "tests.nats_shards_pipeline:TWO", TWO_PROCESSES)
    kill_at = {500: "s", 1500: "p1", 1900: "s"}
    got: list[Any] = []
    try:
        for name in TWO_PROCESSES:
            procs.start(name)
        with anyio.fail_after(240):
            async with (
                open_source(
                    url,
                    "TWO",
                    "per_key",
                    IN_TYPE,
                    config=CONFIG,
                    shards=2,
                    shard_key=TWO.stages[0].shard_key,
                ) as src,
                open_sink(url, "TWO", "out", OUT_TYPE, config=CONFIG) as sink,
                anyio.create_task_group() as tg,
            ):

                async def produce() -> None:
                    for i in range(0, len(items), CONFIG.frame_items):
                        if i == change_at:
                            await src.publish_frame(change_frame(change, None))
                        await src.send_at(i, items[i : i + CONFIG.frame_items])
                    await src.send_at(len(items), [], [END])

                tg.start_soon(produce)
                await collect_killing(sink, got, kill_at, procs)
    finally:
        procs.stop_all()
    assert {n: p.returncode for n, p in procs.procs.items()} == dict.fromkeys(TWO_PROCESSES, 0)
    assert not kill_at
    assert procs.live_kills >= 1
    expected, states, seen_counts = model_two(xs, seen_from=change_at)
    _per_key_order(as_tuples(got), expected)
    stores = _stores(tmp_path)
    merged: dict[int, Any] = {}
    counts: dict[int, int] = {}
    for k in range(2):
        version, state = stores[f"TWO.per_key.shard{k}"]["per_key"]
        merged.update(decode_value(FIRST.stages[0].machine.state, state))
    for j in range(3):
        version, state = stores[f"TWO.seen.shard{j}"]["seen"]
        assert version == seen_v2.machine.version
        mine = decode_value(seen_v2.machine.state, state)
        assert {shard_of(key, 3) for key in mine} == {j}
        counts.update(mine)
    assert (merged, counts) == (states, seen_counts)
    assert stores["TWO.tally"]["tally"] == (FIRST.stages[1].machine.version, len(items))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_migration_sent_by_the_source_is_voted_on_by_every_shard(
    nats_server: NatsServer,
) -> None:
    """A change frame the source sends unnamed gets one name in every
    shard's copy: a migration of the sharded first stage is prepared and
    voted on by both shards under it, and commits on both at its place."""
    url, name = nats_server.url, "first_migrates"
    xs = [(i * 7919) % 1000 for i in range(480)]
    items = [(x, n) for n, x in enumerate(xs, 1)]
    change = code_change("per_key", FIRST.stages[0].machine.version, per_key_marked, mark)
    kw: dict[str, Any] = {"pipeline": name, "config": CONFIG}
    got: list[Any] = []
    with anyio.fail_after(90):
        async with AsyncExitStack() as stack:
            shards = [
                await stack.enter_async_context(
                    open_segment(FIRST, ["per_key"], url, shard=k, **kw)
                )
                for k in range(2)
            ]
            await stack.enter_async_context(open_segment(FIRST, ["tally"], url, **kw))
            src = await stack.enter_async_context(
                open_source(
                    url,
                    name,
                    "per_key",
                    IN_TYPE,
                    config=CONFIG,
                    shards=2,
                    shard_key=FIRST.stages[0].shard_key,
                )
            )
            sink = await stack.enter_async_context(
                open_sink(url, name, "out", OUT_TYPE, config=CONFIG)
            )
            await src.send(items[:160])
            await src.flush()
            await src.publish_frame(change_frame(encode_change(change), None))
            await src.send(items[160:])
            await src.send(EndMsg())
            try:
                while True:
                    for m in await sink.receive(1024):
                        if type(m) is list:
                            got.extend(m)
            except anyio.EndOfStream:
                pass
            for seg in shards:
                assert seg.actors[0].machine.version == per_key_marked.machine.version
                [rec] = seg.changes.history.records[-1:]
                assert rec["result"] == "succeeded"
            ids = {seg.changes.history.records[-1]["id"] for seg in shards}
            assert len(ids) == 1  # one change id: the shards voted under it
    expected, _ = model(xs, twice_from=160)
    _per_key_order(as_tuples(got), expected)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_pipeline_of_one_sharded_stage_runs_from_a_routing_source_to_a_merging_sink(
    nats_server: NatsServer,
) -> None:
    """The sharded stage first and last: the source routes, the sink merges."""
    url, name = nats_server.url, "only_sharded"
    only = pipeline(stage("per_key", per_key, shards=2, shard_key=by_key))
    xs = [(i * 7919) % 1000 for i in range(400)]
    got: list[Any] = []
    out_type = only.stages[0].machine.output
    kw: dict[str, Any] = {"pipeline": name, "config": CONFIG}
    with anyio.fail_after(60):
        async with (
            open_segment(only, ["per_key"], url, shard=0, **kw),
            open_segment(only, ["per_key"], url, shard=1, **kw),
            open_source(
                url, name, "per_key", IN_TYPE, config=CONFIG, shards=2, shard_key=by_key.function
            ) as src,
            open_sink(url, name, "out", out_type, config=CONFIG, shards=2) as sink,
        ):
            await src.send([(x, n) for n, x in enumerate(xs, 1)])
            await src.send(EndMsg())
            try:
                while True:
                    for m in await sink.receive(1024):
                        if type(m) is list:
                            got.extend(m)
            except anyio.EndOfStream:
                pass
    _per_key_order([tuple(o) for o in got], [o[:4] for o in model(xs)[0]])
