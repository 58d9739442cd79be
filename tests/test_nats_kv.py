"""Segments without a state directory: their state in JetStream's key-value
store (``arrowloop/distributed/_kvstore.py``).

Exactly-once across kill -9 of segment processes served with no
``--state-dir`` (as tests/test_nats_kill.py does with one), a second process
running a segment refused (at start, and at its write if it got past that),
a record over the broker's payload limit refused naming the limit, and a
segment resumed on its record in process.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowloop.distributed import (
    bucket_name,
    change_frame,
    connect,
    open_kv_store,
    open_segment,
    open_sink,
    open_source,
)
from arrowloop.errors import StoreError
from arrowloop.runtime import EndMsg
from arrowloop.store import KeyRecord, KeyWrites, MemoryStore, StageRecord
from arrowloop.typesys import INT, STR
from tests.nats_big import BIG
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
from tests.natsserver import NatsServer, nats_server
from tests.profiles import examples
from tests.serving import server_env
from tests.test_nats_kill import CHANGE, OUT_TYPE, ROOT, SEGMENTS, Segments

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

__all__ = ["nats_server"]  # the fixture, imported for pytest


class KvSegments(Segments):
    """The segment processes, served without a state directory."""

    def start(self, name: str) -> None:
        command = [sys.executable, "-m", "arrowloop", "serve", "tests.nats_pipeline:SPEC"]
        command += ["--nats", self.url, "--segment", SEGMENTS[name], *SERVE_ARGS]
        with (self.tmp / f"segment-{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                command, cwd=ROOT, env=server_env(self.tmp), stdout=log, stderr=log
            )


async def _records(url: str) -> dict[str, Any]:
    """Every segment's record in the pipeline's bucket, by segment."""
    async with connect(url) as nc:
        kv = await nc.jetstream().key_value(bucket_name(PIPELINE))
        out = {}
        for key in ("count-total", "check"):
            entry = await kv.get(key)
            assert entry.value is not None
            out[key] = orjson.loads(entry.value)
        return out


@pytest.mark.slow
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_kill_9_of_segments_on_the_kv_store_loses_and_duplicates_nothing(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """Kill -9 of segments with no state directory, restarted: the outputs
    are the sequential model's exactly, the change at its place, and the
    records in the bucket hold the final states and versions."""
    items = [(i * 7919) % 1000 - 500 for i in range(4000)]
    change_at = 2000
    kill_at = {500: "a", 1300: "b", 2300: "a", 3100: "b"}
    url = nats_server.url
    segments = KvSegments(url, tmp_path)
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
                        if i == change_at:
                            await src.flush()
                            await src.publish_frame(change_frame(CHANGE, None))
                        await src.send(items[i : i + CONFIG.frame_items])
                    await src.send(EndMsg())

                tg.start_soon(produce)
                await collect_killing(sink, got, kill_at, segments)
    finally:
        segments.stop_all()
    assert [p.returncode for p in segments.procs.values()] == [0, 0]
    assert segments.live_kills >= 2
    assert "key-value store" in (tmp_path / "segment-a.log").read_text()
    expected = model(items, twice_from=change_at)
    outputs = as_tuples(got)
    lost = len(set(expected) - set(outputs))
    duplicated = len(outputs) - len(set(outputs))
    assert (lost, duplicated) == (0, 0)
    assert outputs == expected
    _, n, t, h = expected[-1]
    records = await _records(url)
    stages = {k: v for r in records.values() for k, v in r["stages"].items()}
    assert {k: stages[k]["state"] for k in ("count", "total", "check")} == {
        "count": n,
        "total": t,
        "check": h,
    }
    assert stages["total"]["version"] == total_twice.machine.version


async def test_a_segment_resumes_from_its_kv_record(nats_server: NatsServer) -> None:
    """Stopped and started again in process with no state directory, a
    segment goes on from the state and position it committed."""
    url = nats_server.url
    items = list(range(1, 41))
    kw: dict[str, Any] = {"pipeline": PIPELINE, "config": CONFIG}
    async with open_source(url, PIPELINE, "count", INT, config=CONFIG) as src:
        await src.send(items[:20])
        await src.flush()
    async with open_segment(SPEC, ["count", "total", "check"], url, **kw) as seg:
        assert seg.store.location == f"nats kv {bucket_name(PIPELINE)}/count-total-check"
        with anyio.fail_after(30):
            while seg.committed < 2:  # noqa: ASYNC110 - the segment sets no event for tests
                await anyio.sleep(0.01)
    async with open_source(url, PIPELINE, "count", INT, config=CONFIG) as src:
        await src.send(items[20:])
        await src.send(EndMsg())
    async with open_segment(SPEC, ["count", "total", "check"], url, **kw) as seg:
        assert seg.committed == 2
        with anyio.fail_after(30):
            await seg.finished.wait()
    got: list[Any] = []
    async with open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink:
        with anyio.fail_after(30):
            while True:
                try:
                    for m in await sink.receive(1024):
                        if type(m) is list:
                            got.extend(m)
                except anyio.EndOfStream:
                    break
    assert as_tuples(got) == model(items)


async def test_a_second_process_of_a_segment_is_refused(nats_server: NatsServer) -> None:
    """Without a state directory, a second process running the same segment
    is refused at start (the first answers on the owner subject); free again
    once the first has stopped."""
    kw: dict[str, Any] = {"pipeline": PIPELINE, "config": CONFIG}
    async with open_segment(SPEC, ["count"], nats_server.url, **kw):
        with pytest.raises(StoreError, match="another process runs this segment"):
            async with open_segment(SPEC, ["count"], nats_server.url, **kw):
                pass
    async with open_segment(SPEC, ["count"], nats_server.url, **kw):
        pass


async def test_a_write_after_another_process_wrote_is_refused(nats_server: NatsServer) -> None:
    """Two writers that got past the start (both claimed before either
    answered): the revision check refuses the one whose write comes second."""
    async with connect(nats_server.url) as nc:
        store = await open_kv_store(nc, "race", "a")
        kv = await nc.jetstream().key_value(bucket_name("race"))
        entry = await kv.get("a")
        assert entry.value is not None
        await kv.put("a", entry.value)  # another process's write
        record = StageRecord("a", "v", None, 1, 1)
        with pytest.raises(StoreError, match="two processes run this segment"):
            await anyio.to_thread.run_sync(store.save_stages, [record])


async def test_a_record_over_one_value_is_written_in_parts(nats_server: NatsServer) -> None:
    """A record bigger than what one value holds is written in parts first,
    then a value naming them (the commit); it reads back whole in the next
    process, and the parts of a replaced record are removed."""
    async with connect(nats_server.url) as nc:
        store = await open_kv_store(nc, "big", "a")
        assert store.limit == nc.max_payload - 1024
        await anyio.to_thread.run_sync(store.save_stages, [StageRecord("a", "v", None, "small", 1)])
        kv = await nc.jetstream().key_value(bucket_name("big"))
        entry = await kv.get("a")
        assert entry.value is not None
        # The largest record one value holds, headers and all, the broker takes.
        largest = store.limit - (len(entry.value) - len('"small"') + 2)
        await anyio.to_thread.run_sync(store.save_states, [("a", "y" * largest, 2)])
        entry = await kv.get("a")
        assert entry.value is not None
        assert len(entry.value) == nc.max_payload - 1024
        big = "x" * (3 * nc.max_payload)
        await anyio.to_thread.run_sync(store.save_states, [("a", big, 3)])
        head = orjson.loads((await kv.get("a")).value or b"")
        assert head["arrowloop-parts"] == 4
        parts = [k for k in await kv.keys() if ".part." in k]
        assert len(parts) == 4
    async with connect(nats_server.url) as nc:
        again = await open_kv_store(nc, "big", "a")
        stored = again.load()
        assert stored is not None
        assert (stored.stages["a"].state, stored.stages["a"].seq) == (big, 3)
        await anyio.to_thread.run_sync(again.save_states, [("a", "small again", 4)])
        kv = await nc.jetstream().key_value(bucket_name("big"))
        assert [k for k in await kv.keys() if ".part." in k] == []


_states = st.one_of(
    st.integers(-5, 5), st.text(max_size=3), st.lists(st.integers(0, 3), max_size=3)
)
_names = st.sampled_from(["a", "b", "c#0", "~watermarks"])
_keys = st.builds(
    KeyWrites,
    put=st.lists(
        st.tuples(
            _names,
            st.builds(KeyRecord, st.sampled_from(["k1", "k2", "k3"]), st.just("v"), _states),
        ),
        max_size=3,
    ),
    drop=st.lists(st.tuples(_names, st.sampled_from(["k1", "k2"])), max_size=2),
)
_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("stages"),
            st.lists(
                st.builds(
                    StageRecord,
                    _names,
                    st.sampled_from(["v1", "v2"]),
                    st.sampled_from([None, {"kind": "machine", "n": 1}]),
                    _states,
                    st.integers(0, 9),
                ),
                min_size=1,
                max_size=3,
            ),
            st.none() | st.lists(st.fixed_dictionaries({"kind": st.just("undo")}), max_size=2),
            st.none() | _keys,
        ),
        st.tuples(
            st.just("states"),
            st.lists(st.tuples(_names, _states, st.integers(0, 9)), max_size=3),
            st.none() | _keys,
        ),
        st.tuples(st.just("history"), st.integers(1, 99)),
    ),
    max_size=8,
)


def _apply(store: Any, op: tuple[Any, ...], known: set[str]) -> None:
    if op[0] == "stages":
        store.save_stages(op[1], op[2], op[3])
        known.update(r.stage for r in op[1])
    elif op[0] == "states":
        # Only stages recorded whole before (as the segment does).
        states = [s for s in op[1] if s[0] in known]
        store.save_states(states, op[2])
    else:
        store.append_history({"seq": op[1], "event": "x"})


@settings(
    max_examples=examples(25),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=_ops, limit=st.sampled_from([None, 48]))
def test_the_kv_store_keeps_what_the_memory_store_keeps(
    nats_server: NatsServer, ops: list[tuple[Any, ...]], limit: int | None
) -> None:
    """Any sequence of writes: the key-value store loads what MemoryStore
    does, in this process and in the next one (opened on the bucket anew),
    with values of at most 48 bytes too (most records in parts)."""
    segment = f"s{next(_SEGMENTS)}"

    async def main() -> None:
        with anyio.fail_after(60):
            await check()

    async def check() -> None:
        mem = MemoryStore()
        known: set[str] = set()
        async with connect(nats_server.url) as nc:
            store = await open_kv_store(nc, "model", segment, limit=limit)

            def run() -> None:
                for op in ops:
                    _apply(mem, op, set(known))
                    _apply(store, op, known)

            await anyio.to_thread.run_sync(run)
            assert store.load() == mem.load()
        async with connect(nats_server.url) as nc:
            again = await open_kv_store(nc, "model", segment, limit=limit)
            assert await anyio.to_thread.run_sync(again.load) == mem.load()
            kv = await nc.jetstream().key_value(bucket_name("model"))
            left = [k for k in await kv.keys() if k.startswith(f"{segment}.part.")]
            named = orjson.loads((await kv.get(segment)).value or b"")
            assert len(left) == named.get("arrowloop-parts", 0)  # the rest removed

    anyio.run(main)


_SEGMENTS = itertools.count()


async def test_a_segment_whose_state_outgrows_one_value_goes_on(
    nats_server: NatsServer,
) -> None:
    """A segment whose state passes the broker's max_payload goes on (its
    record in parts) and is resumed from it whole."""
    url = nats_server.url
    chunk = "x" * 100_000
    async with open_source(url, "big", "keep", STR, config=CONFIG) as src:
        for _ in range(12):  # one frame each: the state passes 1 MiB at the 11th
            await src.send([chunk])
            await src.flush()
        await src.send(EndMsg())
    with anyio.fail_after(60):
        async with open_segment(BIG, ["keep"], url, pipeline="big", config=CONFIG) as seg:
            await seg.finished.wait()
    got: list[Any] = []
    async with open_sink(url, "big", "out", INT, config=CONFIG) as sink:
        with anyio.fail_after(30):
            while True:
                try:
                    for m in await sink.receive(1024):
                        if type(m) is list:
                            got.extend(m)
                except anyio.EndOfStream:
                    break
    assert got == [100_000 * i for i in range(1, 13)]
    async with connect(url) as nc:
        store = await open_kv_store(nc, "big", "keep")
        stored = store.load()
        assert stored is not None
        assert stored.stages["keep"].state == chunk * 12


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_serve_without_a_state_dir_says_where_its_state_is(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """``serve --nats`` without ``--state-dir`` while another process runs
    the segment: refused (exit status 2) with the message, no traceback."""
    url = nats_server.url
    command = [sys.executable, "-m", "arrowloop", "serve", "tests.nats_big:BIG", "--nats", url]
    async with open_segment(BIG, ["keep"], url, pipeline="BIG", config=CONFIG):
        done = await anyio.run_process(
            command, cwd=ROOT, env=server_env(tmp_path), check=False, stderr=subprocess.STDOUT
        )
    out = done.stdout.decode()
    assert done.returncode == 2, out
    assert "another process runs this segment (pid" in out
    assert "Traceback" not in out
    async with open_source(url, "BIG", "keep", STR, config=CONFIG) as src:
        await src.send(EndMsg())
    done = await anyio.run_process(
        command, cwd=ROOT, env=server_env(tmp_path), check=False, stderr=subprocess.STDOUT
    )
    out = done.stdout.decode()
    assert done.returncode == 0, out
    assert "nats kv arrowloop_BIG_state/keep (the broker's key-value store)" in out


@pytest.mark.slow
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_broker_restart_stalls_the_kv_store_then_it_goes_on(
    nats_server: NatsServer,
) -> None:
    """The broker stopped and started again mid-stream under a segment on
    the key-value store: its writes wait (as publishes do), then go on, with
    nothing lost, duplicated or reordered."""
    items = [(i * 31) % 997 - 400 for i in range(3000)]
    url = nats_server.url
    got: list[Any] = []
    with anyio.fail_after(180):
        async with (
            open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
            open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
            open_segment(
                SPEC, ["count", "total", "check"], url, pipeline=PIPELINE, config=CONFIG
            ) as seg,
            anyio.create_task_group() as tg,
        ):

            async def produce() -> None:
                for i in range(0, len(items), CONFIG.frame_items):
                    await src.send(items[i : i + CONFIG.frame_items])
                await src.send(EndMsg())

            tg.start_soon(produce)
            restarted = False
            try:
                while True:
                    for m in await sink.receive(1024):
                        if type(m) is list:
                            got.extend(m)
                    if not restarted and len(got) >= 800:
                        restarted = True
                        nats_server.stop()
                        await anyio.sleep(0.5)  # traffic runs into the stopped broker
                        nats_server.start()
            except anyio.EndOfStream:
                pass
            await seg.finished.wait()
    assert restarted
    assert as_tuples(got) == model(items)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_write_while_the_broker_is_away_waits_for_it(nats_server: NatsServer) -> None:
    """A commit made while the broker is stopped waits (tried again with
    backoff) and lands once it is back: the segment stalls, it does not stop."""
    async with connect(nats_server.url) as nc:
        store = await open_kv_store(nc, "away", "a")
        await anyio.to_thread.run_sync(store.save_stages, [StageRecord("a", "v", None, 1, 1)])
        nats_server.stop()

        async def commit() -> None:
            await anyio.to_thread.run_sync(store.save_states, [("a", 2, 2)])

        async with anyio.create_task_group() as tg:
            tg.start_soon(commit)
            with anyio.fail_after(30):
                while store.waits == 0:  # noqa: ASYNC110 - the store sets no event for tests
                    await anyio.sleep(0.01)
            nats_server.start()
        stored = store.load()
        assert stored is not None
        assert stored.stages["a"].state == 2
    async with connect(nats_server.url) as nc:
        again = await open_kv_store(nc, "away", "a")
        stored = again.load()
        assert stored is not None
        assert (stored.stages["a"].state, stored.stages["a"].seq) == (2, 2)
