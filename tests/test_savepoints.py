"""Savepoints: a consistent cut of every stage taken in-band, written as a
versioned JSON file atomically, read back or refused with one clear error,
and used to seed a store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from arrowloop.cli._client import RemoteError
from arrowloop.errors import StoreError, SupervisorError
from arrowloop.machine import native
from arrowloop.runtime import stage
from arrowloop.server import ControlLimits
from arrowloop.store import (
    SAVEPOINT_FORMAT,
    SAVEPOINT_VERSION,
    MemoryStore,
    SqliteStore,
    Stored,
    read_savepoint,
    seed_store,
    write_savepoint,
)
from arrowloop.supervisor import code_change, open_supervisor, supervisor
from arrowloop.wire import digest
from examples.counter import Count, IncrCount, ReadCount, v1, v3
from tests.test_server_protocol import control, serving

pytestmark = pytest.mark.anyio


def _add(x: int, total: int) -> tuple[int, int]:
    return total + x, x


def _three() -> Any:
    m = native(_add, 0)
    return supervisor("sums", stage("a", m), stage("b", m), stage("c", m))


async def test_a_savepoint_is_a_cut_after_the_same_items_in_every_stage() -> None:
    """Items keep flowing while the cut is taken; every stage's state is
    the sum of the same first items (1 + 2 + ... + seq), whatever seq is."""
    async with open_supervisor(_three()) as sup:
        tickets = []
        halfway = anyio.Event()

        async def feed() -> None:
            for i in range(1, 301):
                tickets.append(await sup.submit(i))
                if i == 150:
                    halfway.set()
                if i % 7 == 0:
                    await anyio.lowlevel.checkpoint()

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(feed)
                await halfway.wait()
                sp = await sup.savepoint("mid")
            for t in tickets:
                await t.result()
    seqs = {s.stage: s.seq for s in sp.stages}
    assert [s.stage for s in sp.stages] == ["a", "b", "c"]
    assert len(set(seqs.values())) == 1
    n = seqs["a"]
    assert n >= 150
    assert [s.state for s in sp.stages] == [n * (n + 1) // 2] * 3
    assert sp.name == "mid"
    assert sp.supervisor == "sums"


async def test_a_savepoint_records_the_history_and_undo_stack(tmp_path: Path) -> None:
    """The file holds the machines, states, seqs, history and undo stack,
    in a documented format, and reads back equal."""
    async with open_supervisor(supervisor("svc", stage("counter", v1.machine))) as sup:
        await sup.call(IncrCount())
        await sup.code_change(
            code_change(
                "counter",
                v1.machine.version,
                v3.machine.machine,
                v3.migrate,
                inverse=v3.inverse,
                change_interface=True,
            )
        )
        sp = await sup.savepoint()
    path = write_savepoint(sp, tmp_path)
    assert path.parent == tmp_path
    assert path.name == f"{sp.name}.savepoint.json"
    data = orjson.loads(path.read_bytes())
    # No sharded stage: written as version 1, which older readers take.
    assert (data["format"], data["version"]) == (SAVEPOINT_FORMAT, 1)
    assert data["stages"][0]["state"] == [1, False]
    assert data["stages"][0]["version"] == v3.machine.version
    assert data["stages"][0]["machine"]["kind"] == "machine"
    assert [h["kind"] for h in data["history"]] == ["upgrade"]
    assert len(data["undo"]) == 1
    back = read_savepoint(path)
    assert back == sp
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


async def test_a_savepoint_seeds_a_store_and_rollback_works_from_it(tmp_path: Path) -> None:
    async with open_supervisor(supervisor("svc", stage("counter", v1.machine))) as sup:
        for _ in range(5):
            await sup.call(IncrCount())
        await sup.code_change(
            code_change(
                "counter",
                v1.machine.version,
                v3.machine.machine,
                v3.migrate,
                inverse=v3.inverse,
                change_interface=True,
            )
        )
        sp = await sup.savepoint("s1")
    store = SqliteStore(tmp_path / "s.db")
    seed_store(store, read_savepoint(write_savepoint(sp, tmp_path)).stored())
    async with open_supervisor(supervisor("svc", stage("counter", v1.machine)), store=store) as sup:
        assert await sup.get_state("counter") == (5, False)
        await sup.rollback("counter")
        assert await sup.call(ReadCount()) == Count(5)
        assert [r.kind for r in await sup.history()] == ["upgrade", "rollback"]


async def test_a_savepoint_name_is_checked_and_never_reused(tmp_path: Path) -> None:
    async with open_supervisor(supervisor("svc", stage("counter", v1.machine))) as sup:
        with pytest.raises(SupervisorError, match="savepoint name"):
            await sup.savepoint("../evil")
        sp = await sup.savepoint("same")
    first = write_savepoint(sp, tmp_path)
    before = first.read_bytes()
    with pytest.raises(StoreError, match="exists already"):
        write_savepoint(sp, tmp_path)
    assert first.read_bytes() == before


def test_seeding_a_store_that_holds_state_is_refused() -> None:
    store = MemoryStore()
    store.append_history({"seq": 1})
    with pytest.raises(StoreError, match="holds a service's state already"):
        seed_store(store, MemoryStore().load() or _empty())


def _empty() -> Any:
    return Stored({}, [], [])


# -- bad savepoints -------------------------------------------------------------


async def _good(tmp_path: Path) -> Path:
    async with open_supervisor(supervisor("svc", stage("counter", v1.machine))) as sup:
        await sup.call(IncrCount())
        sp = await sup.savepoint("good")
    return write_savepoint(sp, tmp_path)


def _rewrite(data: dict[str, Any], **changes: Any) -> bytes:
    return orjson.dumps({**data, **changes})


@pytest.mark.parametrize(
    ("what", "damage", "problem"),
    [
        ("truncated", lambda raw: raw[: len(raw) // 2], "it is not JSON (truncated or corrupt)"),
        ("empty", lambda raw: b"", "it is not JSON"),
        ("binary", lambda raw: os.urandom(64) + raw, "it is not JSON"),
        (
            "foreign",
            lambda raw: orjson.dumps({"format": "flink", "version": 1}),
            "it is not an arrowloop savepoint",
        ),
        ("a list", lambda raw: b"[1, 2]", "it is not an arrowloop savepoint"),
        (
            "newer",
            lambda raw: _rewrite(orjson.loads(raw), version=SAVEPOINT_VERSION + 1),
            "written by a newer arrowloop",
        ),
        (
            "corrupt",
            lambda raw: raw.replace(b'"seq":1', b'"seq":7'),
            "does not match its digest",
        ),
    ],
)
async def test_a_bad_savepoint_is_refused_with_one_clear_error(
    tmp_path: Path, what: str, damage: Any, problem: str
) -> None:
    """Corrupt, truncated, foreign or newer-format files: one StoreError
    naming the file and the problem; an older savepoint stays usable."""
    good = await _good(tmp_path)
    bad = tmp_path / f"{what}.savepoint.json"
    bad.write_bytes(damage(good.read_bytes()))
    before = bad.read_bytes()
    with pytest.raises(StoreError) as err:
        read_savepoint(bad)
    assert str(bad) in str(err.value)
    assert problem in str(err.value)
    assert err.value.path == str(bad)
    assert bad.read_bytes() == before  # nothing overwritten
    assert read_savepoint(good).stages[0].state == 1


def test_a_missing_savepoint_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="it cannot be read"):
        read_savepoint(tmp_path / "nope.savepoint.json")


async def test_a_malformed_field_is_refused_with_where(tmp_path: Path) -> None:
    """A file with a right digest but a wrong shape (a hand edit that also
    recomputed the digest) names the field."""
    data = orjson.loads((await _good(tmp_path)).read_bytes())
    data["stages"][0]["seq"] = "many"
    del data["digest"]
    data["digest"] = digest(data)
    bad = tmp_path / "shape.savepoint.json"
    bad.write_bytes(orjson.dumps(data))
    with pytest.raises(StoreError, match=r"at \$\.stages\[0\]\.seq: expected int"):
        read_savepoint(bad)


# -- the control op -----------------------------------------------------------------


async def test_the_savepoint_op_writes_a_file_and_replies_with_its_path(tmp_path: Path) -> None:
    async with serving(control=ControlLimits(savepoint_dir=str(tmp_path))) as server:
        await server.supervisor.call(IncrCount())
        async with control(server) as ctl:
            got = await ctl.request("savepoint", name="op")
            with pytest.raises(RemoteError) as err:
                await ctl.request("savepoint", name=7)
            assert err.value.error["path"] == "$.name"
    assert got["path"] == str(tmp_path / "op.savepoint.json")
    assert got["seqs"] == {"counter": 1}
    assert read_savepoint(got["path"]).stages[0].state == 1


async def test_the_savepoint_op_without_a_directory_says_how_to_get_one() -> None:
    async with serving() as server, control(server) as ctl:
        with pytest.raises(RemoteError) as err:
            await ctl.request("savepoint")
    assert err.value.error["type"] == "StoreError"
    assert "--savepoint-dir" in err.value.error["message"]
