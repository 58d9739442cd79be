"""Sharded stages across processes under kill -9: the segment before the
sharded stage (``number``), its three shards in two processes (shards 0 and
1 as tasks of one, shard 2 alone: how many a process runs differs), and the
segment after them (``tally``), all served with the CLI on one broker; a
code change of the sharded stage in-band partway, and one of the stage
after it (its shards' copies aligned: one cut); shard processes (and in
one run the router's and the reader's) killed with SIGKILL during a steady
stream and restarted on their state directories. Nothing is lost or
duplicated, each key's outputs come in its order and are the sequential
model's (each change at exactly its place), and the committed states and
versions are the model's. And migrations of the sharded stage, voted on
by its shards: committed on every shard or refused on every shard, the
same with a shard's or the deciding shard's process killed after it
voted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import defaultdict
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from arrowloop import pipeline, stage
from arrowloop.distributed import (
    change_frame,
    connect,
    open_segment,
    open_sink,
    open_source,
    pipeline_history,
    pipeline_status,
    send_change,
)
from arrowloop.distributed._decisions import Decisions
from arrowloop.errors import UpgradeError
from arrowloop.runtime import EndMsg
from arrowloop.runtime._shards import shard_of
from arrowloop.store import SqliteStore
from arrowloop.supervisor import CodeChange, code_change
from arrowloop.typesys import INT
from arrowloop.upgrade import encode_change
from arrowloop.wire import decode_value
from tests.nats_pipeline import CONFIG, SERVE_ARGS, collect_killing
from tests.nats_shards_pipeline import (
    KEYS,
    PIPELINE,
    SHARDS,
    SPEC,
    as_tuples,
    by_key,
    mark,
    mark_badly,
    model,
    number,
    number_wide,
    per_key,
    per_key_marked,
    per_key_twice,
    tally_v2,
)
from tests.natsserver import NatsServer, nats_server
from tests.serving import server_env

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.anyio]

__all__ = ["nats_server"]  # the fixture, imported for pytest

ROOT = Path(__file__).resolve().parent.parent
TARGET = "tests.nats_shards_pipeline:SPEC"
OUT_TYPE = SPEC.stages[-1].machine.output
#: Each process: the stages it runs, and the shards of a sharded one.
PROCESSES = {
    "a": ["--segment", "number"],
    "s01": ["--segment", "per_key", "--shards", "0,1"],
    "s2": ["--segment", "per_key", "--shards", "2"],
    "c": ["--segment", "tally"],
}
#: Small streams, so no process can run far ahead of the sink: one killed
#: after some outputs is still running its part of the stream.
BOUND = ["--nats-max-msgs", "32"]
#: In-band: ``per_key`` (the sharded stage) becomes ``per_key_twice`` after
#: this many items, and ``tally`` (after the shards: aligned) ``tally_v2``.
CHANGES = {
    2400: encode_change(code_change("per_key", SPEC.stages[1].machine.version, per_key_twice)),
    3200: encode_change(code_change("tally", SPEC.stages[2].machine.version, tally_v2)),
}


class Processes:
    """The segment processes of one test, started and killed by name."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.url = url
        self.tmp = tmp
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.live_kills = 0  # of a process still running its part of the stream

    def start(self, name: str) -> None:
        command = [sys.executable, "-m", "arrowloop", "serve", TARGET, "--nats", self.url]
        command += [*PROCESSES[name], *SERVE_ARGS, *BOUND, "--state-dir", str(self.tmp / "state")]
        with (self.tmp / f"segment-{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                command, cwd=ROOT, env=server_env(self.tmp), stdout=log, stderr=log
            )

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:  # it may have finished its part of the stream
            os.kill(proc.pid, signal.SIGKILL)
            self.live_kills += 1
        proc.wait()

    def stop_all(self) -> None:
        """Wait for each to finish on its own, killing one that does not."""
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


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    "kills",
    [
        {900: "s01"},
        {500: "s01", 1300: "s2", 2100: "s01", 2900: "s2", 3700: "s01"},
        {700: "a", 1500: "c", 2300: "s2", 3100: "a", 3900: "c"},
    ],
    ids=["one-shard-kill", "five-shard-kills", "router-reader-and-shard-kills"],
)
async def test_kill_9_of_shard_processes_loses_and_duplicates_nothing(
    nats_server: NatsServer, tmp_path: Path, kills: dict[int, str]
) -> None:
    items = [(i * 7919) % 1000 for i in range(4800)]
    kill_at = dict(kills)
    url = nats_server.url
    procs = Processes(url, tmp_path)
    got: list[Any] = []
    try:
        for name in PROCESSES:
            procs.start(name)
        with anyio.fail_after(240):
            async with (
                open_source(url, PIPELINE, "number", INT, config=CONFIG) as src,
                open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
                anyio.create_task_group() as tg,
            ):

                async def produce() -> None:
                    for i in range(0, len(items), CONFIG.frame_items):
                        if i in CHANGES:
                            # A code change in-band, between two frames of the
                            # source: its place in the stream is known exactly.
                            await src.flush()
                            await src.publish_frame(change_frame(CHANGES[i], None))
                        await src.send(items[i : i + CONFIG.frame_items])
                    await src.send(EndMsg())

                tg.start_soon(produce)
                await collect_killing(sink, got, kill_at, procs)
    finally:
        procs.stop_all()
    assert {n: p.returncode for n, p in procs.procs.items()} == dict.fromkeys(PROCESSES, 0)
    assert not kill_at
    assert procs.live_kills >= 1
    expected, states = model(items, twice_from=2400, v2_from=3200)
    outputs = as_tuples(got)
    lost = len(set(expected) - set(outputs))
    duplicated = len(outputs) - len(set(outputs))
    assert (lost, duplicated) == (0, 0)
    assert sorted(outputs) == sorted(expected)
    # Per key, the order of the input: one key is one shard, in order.
    per_key_got: dict[int, list[Any]] = defaultdict(list)
    per_key_expected: dict[int, list[Any]] = defaultdict(list)
    for o in outputs:
        per_key_got[o[0] % KEYS].append(o)
    for o in expected:
        per_key_expected[o[0] % KEYS].append(o)
    assert per_key_got == per_key_expected
    stores = _stores(tmp_path)
    shard_stores = [s for name, s in stores.items() if ".per_key.shard" in name]
    assert len(shard_stores) == 3
    state_type = per_key_twice.machine.state
    merged: dict[int, Any] = {}
    for s in shard_stores:
        version, state = s["per_key"]
        assert version == per_key_twice.machine.version  # every shard, at its copy
        merged.update(decode_value(state_type, state))
    assert merged == states
    assert stores[f"{PIPELINE}.number"]["number"][1] == len(items)
    assert stores[f"{PIPELINE}.tally"]["tally"] == (tally_v2.machine.version, len(items))


LAST_SHARDED = pipeline(
    stage("number", number), stage("per_key", per_key, shards=SHARDS, shard_key=by_key)
)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_sink_after_a_sharded_last_stage_reads_every_shard(
    nats_server: NatsServer,
) -> None:
    """Segments in this process (the shards of the last stage as tasks), a
    sink with ``shards``: every output once, per key in order, one end."""
    url, name = nats_server.url, "last_sharded"
    items = [(i * 7919) % 1000 for i in range(600)]
    got: list[Any] = []
    out_type = LAST_SHARDED.stages[-1].machine.output
    with anyio.fail_after(60):
        async with (
            open_segment(LAST_SHARDED, ["number"], url, pipeline=name, config=CONFIG),
            open_segment(LAST_SHARDED, ["per_key"], url, pipeline=name, config=CONFIG, shard=0),
            open_segment(LAST_SHARDED, ["per_key"], url, pipeline=name, config=CONFIG, shard=1),
            open_segment(LAST_SHARDED, ["per_key"], url, pipeline=name, config=CONFIG, shard=2),
            open_source(url, name, "number", INT, config=CONFIG) as src,
            open_sink(url, name, "out", out_type, config=CONFIG, shards=SHARDS) as sink,
        ):
            await src.send(items)
            await src.send(EndMsg())
            try:
                while True:
                    for m in await sink.receive(1024):
                        if type(m) is list:
                            got.extend(m)
            except anyio.EndOfStream:
                pass
    expected = [o[:4] for o in model(items)[0]]
    outputs = [tuple(o) for o in got]
    assert sorted(outputs) == sorted(expected)
    for key in range(KEYS):
        assert [o for o in outputs if o[0] % KEYS == key] == [
            o for o in expected if o[0] % KEYS == key
        ]


def _notes(tmp: Path, store: str) -> dict[str, Any]:
    """The watermarks row (and so the merge's notes) a segment's store holds."""
    path = tmp / "state" / f"{store}.sqlite"
    if not path.exists():
        return {}
    s = SqliteStore(path)
    try:
        stored = s.load()
        if stored is None or "~watermarks" not in stored.stages:
            return {}
        marks: dict[str, Any] = stored.stages["~watermarks"].state
        return marks
    finally:
        s.close()


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_reader_killed_while_it_holds_shards_for_a_change_holds_them_again(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Shard 2 is stopped (SIGSTOP) before a change of ``tally``: the reader
    after the shards holds shards 0 and 1 after their copies, commits that,
    is killed with SIGKILL and restarted; it holds them again from its notes
    until shard 2 goes on (SIGCONT) and its copy comes. Every item before
    the change meets the old ``tally``, every one after it the new."""
    change_at = 160
    items = [(i * 7919) % 1000 for i in range(1600)]
    change = encode_change(code_change("tally", SPEC.stages[2].machine.version, tally_v2))
    url = nats_server.url
    procs = Processes(url, tmp_path)
    expected, _ = model(items, v2_from=change_at)
    before = {o for o in expected if o[1] <= change_at and shard_of(o[0] % KEYS, SHARDS) != 2}
    got: list[Any] = []
    for name in PROCESSES:
        procs.start(name)
    stopped = procs.procs["s2"]
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        with anyio.fail_after(180):
            async with (
                open_source(url, PIPELINE, "number", INT, config=CONFIG) as src,
                open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
                anyio.create_task_group() as tg,
            ):

                async def produce() -> None:
                    for i in range(0, len(items), CONFIG.frame_items):
                        if i == change_at:
                            await src.flush()
                            await src.publish_frame(change_frame(change, None))
                        await src.send(items[i : i + CONFIG.frame_items])
                    await src.send(EndMsg())

                async def read(until: int | None) -> None:
                    while until is None or len(got) < until:
                        for m in await sink.receive(1024):
                            if type(m) is list:
                                got.extend(m)

                tg.start_soon(produce)
                await read(len(before))
                # Held: shards 0 and 1 are past the change, shard 2 is not;
                # wait until the reader has committed that (another process).
                held = {"~copies:0", "~copies:1"}
                while not held <= set(_notes(tmp_path, "SPEC.tally")):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
                assert set(as_tuples(got)) == before
                procs.kill("c")
                procs.start("c")
                os.kill(stopped.pid, signal.SIGCONT)
                with suppress(anyio.EndOfStream):
                    await read(None)
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
        procs.stop_all()
    assert {n: p.returncode for n, p in procs.procs.items()} == dict.fromkeys(PROCESSES, 0)
    assert procs.live_kills == 1
    outputs = as_tuples(got)
    assert len(outputs) == len(set(outputs))
    assert sorted(outputs) == sorted(expected)
    assert _stores(tmp_path)["SPEC.tally"]["tally"] == (tally_v2.machine.version, len(items))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_changes_with_shards_and_the_control_branch_features(
    nats_server: NatsServer,
) -> None:
    """Segments in this process, each stage's state in the broker's key-value
    store (a record per shard): a change of the router's stage and of the
    stage after the shards that the shards cannot read is refused by every
    shard (``interface change``) and changes nothing; a change across
    segments of the sharded stage and the stage after it commits on every
    shard and after them at one cut, is recorded once in the history, and
    every item after it meets it."""
    url, name = nats_server.url, "shards_control"
    items = [(i * 7919) % 1000 for i in range(600)]
    got: list[Any] = []
    v1 = [s.machine.version for s in SPEC.stages]
    across_shards = CodeChange(
        (
            *code_change("per_key", v1[1], per_key_twice).upgrades,
            *code_change("tally", v1[2], tally_v2).upgrades,
        )
    )
    across_router = CodeChange(
        (
            *code_change("number", v1[0], number_wide).upgrades,
            *code_change("tally", v1[2], tally_v2).upgrades,
        )
    )

    async def read(sink: Any) -> None:
        with suppress(anyio.EndOfStream):
            while True:
                for m in await sink.receive(1024):
                    if type(m) is list:
                        got.extend(m)

    with anyio.fail_after(90):
        async with (
            open_segment(SPEC, ["number"], url, pipeline=name, config=CONFIG),
            open_segment(SPEC, ["per_key"], url, pipeline=name, config=CONFIG, shard=0),
            open_segment(SPEC, ["per_key"], url, pipeline=name, config=CONFIG, shard=1),
            open_segment(SPEC, ["per_key"], url, pipeline=name, config=CONFIG, shard=2),
            open_segment(SPEC, ["tally"], url, pipeline=name, config=CONFIG) as last,
            open_source(url, name, "number", INT, config=CONFIG) as src,
            open_sink(url, name, "out", OUT_TYPE, config=CONFIG) as sink,
            connect(url) as nc,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(read, sink)
            await src.send(items[:300])
            await src.flush()  # every item before the changes is in the channel
            with pytest.raises(UpgradeError) as err:
                await send_change(nc, name, "number", across_router)
            assert err.value.reason == "interface change"
            versions = await send_change(nc, name, "number", across_shards)
            assert versions == {
                "per_key": per_key_twice.machine.version,
                "tally": tally_v2.machine.version,
            }
            await src.send(items[300:])
            await src.send(EndMsg())
            await last.finished.wait()
            history = await pipeline_history(nc, name)
            status = await pipeline_status(nc, name)
    expected, _ = model(items, twice_from=300, v2_from=300)
    outputs = as_tuples(got)
    assert sorted(outputs) == sorted(expected)
    applied = [c["stages"] for c in history if c["result"] == "succeeded"]
    refused = [c["reason"] for c in history if c["result"] == "refused"]
    assert (applied, refused) == ([["per_key", "tally"]], ["interface change"])
    # Each shard answers its status: five segments, the shards under their inputs.
    channels = ["number", *(f"per_key_shard{k}" for k in range(SHARDS)), "tally"]
    assert sorted(s["input"] for s in status) == [f"arrowloop_{name}_{c}" for c in channels]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_serve_shards_with_a_control_port_and_the_key_value_store(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """``serve --segment per_key --shards 0,1,2`` with a control port and no
    state directory (every shard's state in the broker's key-value store):
    an upgrade of the sharded stage through that port reaches every shard,
    ``status`` through it shows each shard, and a change across segments
    with a part in the shards that every shard refuses is refused, with
    the shards' reason, by the segment deciding after them."""
    from tests.serving import run_arrowloop, start_server

    url = nats_server.url
    nats = ["--nats", url, *SERVE_ARGS, *BOUND]
    procs: list[subprocess.Popen[bytes]] = []
    ready: dict[str, dict[str, Any]] = {}
    try:
        for label, segment in (
            ("a", ["--segment", "number"]),
            ("s", ["--segment", "per_key", "--shards", "0,1,2"]),
            ("c", ["--segment", "tally"]),
        ):
            work = tmp_path / label
            work.mkdir()
            start = partial(start_server, work, *nats, *segment, target=TARGET)
            proc, ready[label] = await anyio.to_thread.run_sync(start)
            procs.append(proc)
        items = [(i * 7919) % 1000 for i in range(400)]

        def cli(*args: str) -> subprocess.CompletedProcess[str]:
            return run_arrowloop(tmp_path, *args, "--ready-file", ready["s"]["ready_file"])

        got: list[Any] = []

        async def read(sink: Any) -> None:
            with suppress(anyio.EndOfStream):
                while True:
                    for m in await sink.receive(1024):
                        if type(m) is list:
                            got.extend(m)

        # Read as it goes: the answer to a change across the shards comes
        # from after them, which a full output channel would hold up.
        async with (
            open_source(url, PIPELINE, "number", INT, config=CONFIG) as src,
            open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(read, sink)
            await src.send(items[:200])
            await src.flush()
            new = "tests.nats_shards_pipeline:per_key_twice"
            done = await anyio.to_thread.run_sync(lambda: cli("upgrade", new, "--stage", "per_key"))
            assert done.returncode == 0, done.stderr
            assert "upgrade of stage per_key: succeeded" in done.stdout
            across = tmp_path / "across.json"
            change = CodeChange(
                (
                    # Stale: per_key runs per_key_twice by now, on every shard.
                    *code_change("per_key", per_key.machine.version, per_key).upgrades,
                    *code_change("tally", SPEC.stages[2].machine.version, tally_v2).upgrades,
                )
            )
            across.write_text(json.dumps(encode_change(change)))
            refused = await anyio.to_thread.run_sync(
                lambda: cli("upgrade", "--change-file", str(across))
            )
            assert refused.returncode == 1
            assert "shard 0: refused: stage 'per_key': expected to replace" in refused.stderr
            for _ in range(10):  # gathered for a second; a loaded machine may be late
                shown = await anyio.to_thread.run_sync(lambda: cli("status", "--json"))
                assert shown.returncode == 0, shown.stderr
                status = json.loads(shown.stdout)
                if len(status["children"]) == 5:
                    break
            names = [c["name"] for c in status["children"]]
            assert names == ["number", "per_key", "per_key", "per_key", "tally"]
            shards = [c for c in status["children"] if c["name"] == "per_key"]
            assert {c["version"] for c in shards} == {per_key_twice.machine.version}
            await src.send(items[200:])
            await src.send(EndMsg())
            with anyio.fail_after(120):
                while len(got) < len(items):  # noqa: ASYNC110
                    await anyio.sleep(0.05)
    finally:
        for proc in procs:
            proc.terminate()
            await anyio.to_thread.run_sync(proc.wait)
    expected, _ = model(items, twice_from=200)
    assert sorted(as_tuples(got)) == sorted(expected)


#: A migration of the sharded stage (another state type), and one that raises
#: on shard 1's state only (it holds key 5).
MIGRATION = encode_change(
    code_change("per_key", SPEC.stages[1].machine.version, per_key_marked, mark)
)
BAD_MIGRATION = encode_change(
    code_change("per_key", SPEC.stages[1].machine.version, per_key_marked, mark_badly)
)


def _marked(states: dict[int, tuple[int, int]]) -> dict[int, tuple[int, int, int]]:
    return {k: (c, h, 1) for k, (c, h) in states.items()}


def _check_outputs(got: list[Any], expected: list[Any]) -> None:
    """0 lost, 0 duplicated, and per key the model's outputs in its order."""
    outputs = as_tuples(got)
    lost = len(set(expected) - set(outputs))
    duplicated = len(outputs) - len(set(outputs))
    assert (lost, duplicated) == (0, 0)
    assert sorted(outputs) == sorted(expected)
    for key in range(KEYS):
        assert [o for o in outputs if o[0] % KEYS == key] == [
            o for o in expected if o[0] % KEYS == key
        ]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("bad", [False, True], ids=["commits", "raises-on-one-shard"])
async def test_a_migration_of_a_sharded_stage_commits_on_every_shard_or_none(
    nats_server: NatsServer, bad: bool
) -> None:
    """Segments in this process, the three shards as tasks, with 300 items
    before a migration of ``per_key`` and 300 after it queued in the first
    channel before any segment runs. It commits on every shard at the
    change, with one answer; or, raising on shard 1's state only, it is
    refused on every shard, each keeping its version and state."""
    url, name = nats_server.url, "shards_migration" + ("_bad" if bad else "")
    items = [(i * 7919) % 1000 for i in range(600)]
    got: list[Any] = []
    answers: list[Any] = []
    with anyio.fail_after(90):
        async with connect(url) as nc:
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            async with open_source(url, name, "number", INT, config=CONFIG) as src:
                await src.send(items[:300])
                await src.flush()
                doc = BAD_MIGRATION if bad else MIGRATION
                await src.publish_frame(change_frame(doc, inbox))
                await src.send(items[300:])
                await src.send(EndMsg())
            async with (
                open_segment(SPEC, ["number"], url, pipeline=name, config=CONFIG),
                open_segment(SPEC, ["per_key"], url, pipeline=name, config=CONFIG, shard=0) as s0,
                open_segment(SPEC, ["per_key"], url, pipeline=name, config=CONFIG, shard=1) as s1,
                open_segment(SPEC, ["per_key"], url, pipeline=name, config=CONFIG, shard=2) as s2,
                open_segment(SPEC, ["tally"], url, pipeline=name, config=CONFIG) as last,
                open_sink(url, name, "out", OUT_TYPE, config=CONFIG) as sink,
            ):
                with suppress(anyio.EndOfStream):
                    while True:
                        for m in await sink.receive(1024):
                            if type(m) is list:
                                got.extend(m)
                await last.finished.wait()
                answers.append(json.loads((await sub.next_msg(timeout=10)).data))
                with pytest.raises(TimeoutError):  # one answer for the change
                    await sub.next_msg(timeout=0.5)
                shards = [s0, s1, s2]
                versions = {s.actors[0].machine.version for s in shards}
                merged: dict[int, Any] = {}
                for s in shards:
                    merged.update(s.actors[0].state)
    expected, states = model(items, twice_from=None if bad else 300)
    _check_outputs(got, expected)
    if bad:
        assert answers[0]["error"]["reason"] == "migration failed", answers
        assert "shard 1" in answers[0]["error"]["message"]
        assert versions == {per_key.machine.version}
        assert merged == states
    else:
        assert answers == [{"versions": {"per_key": per_key_marked.machine.version}}]
        assert versions == {per_key_marked.machine.version}
        assert merged == _marked(states)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    ("killed", "stopped"), [("s2", "s01"), ("s01", "s2")], ids=["a-shard", "the-decider"]
)
async def test_a_shard_killed_after_it_prepared_a_migration_ends_the_same(
    nats_server: NatsServer, tmp_path: Path, killed: str, stopped: str
) -> None:
    """Served with the CLI: the process ``stopped`` (SIGSTOP) before the
    migration, so no decision can be made; once every shard of ``killed``
    has prepared and voted, ``killed`` is killed with SIGKILL and started
    again on its state directory (it replays the change, prepares again and
    reuses its vote), then ``stopped`` goes on. The migration commits on
    every shard at its place, as without the kill."""
    change_at = 320
    items = [(i * 7919) % 1000 for i in range(1200)]
    change_id = f"migration-{killed}"
    url = nats_server.url
    procs = Processes(url, tmp_path)
    got: list[Any] = []
    killed_shards = [2] if killed == "s2" else [0, 1]
    for name in PROCESSES:
        procs.start(name)
    pause = procs.procs[stopped]
    os.kill(pause.pid, signal.SIGSTOP)
    try:
        with anyio.fail_after(180):
            async with (
                connect(url) as nc,
                open_source(url, PIPELINE, "number", INT, config=CONFIG) as src,
                open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
                anyio.create_task_group() as tg,
            ):
                inbox = nc.new_inbox()
                sub = await nc.subscribe(inbox)
                decisions = Decisions(nc.jetstream(), PIPELINE)
                await decisions.ensure()

                async def produce() -> None:
                    for i in range(0, len(items), CONFIG.frame_items):
                        if i == change_at:
                            await src.flush()
                            await src.publish_frame(change_frame(MIGRATION, inbox, change_id))
                        await src.send(items[i : i + CONFIG.frame_items])
                    await src.send(EndMsg())

                async def read() -> None:
                    with suppress(anyio.EndOfStream):
                        while True:
                            for m in await sink.receive(1024):
                                if type(m) is list:
                                    got.extend(m)

                tg.start_soon(produce)
                tg.start_soon(read)
                for k in killed_shards:  # prepared and voted, undecided
                    vote = decisions.vote_subject(change_id, k)
                    while await decisions.look(vote) is None:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
                assert await decisions.look(decisions.subject(change_id)) is None
                procs.kill(killed)
                procs.start(killed)
                os.kill(pause.pid, signal.SIGCONT)
                answer = json.loads((await sub.next_msg(timeout=60)).data)
    finally:
        os.kill(pause.pid, signal.SIGCONT)
        procs.stop_all()
    assert {n: p.returncode for n, p in procs.procs.items()} == dict.fromkeys(PROCESSES, 0)
    assert procs.live_kills == 1
    assert answer == {"versions": {"per_key": per_key_marked.machine.version}}
    expected, states = model(items, twice_from=change_at)
    _check_outputs(got, expected)
    stores = _stores(tmp_path)
    merged: dict[int, Any] = {}
    for k in range(SHARDS):
        version, state = stores[f"{PIPELINE}.per_key.shard{k}"]["per_key"]
        assert version == per_key_marked.machine.version
        merged.update(decode_value(per_key_marked.machine.state, state))
    assert merged == _marked(states)
