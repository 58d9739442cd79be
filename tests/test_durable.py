"""Durable state through a supervisor: a store keeps each stage's machine and
state and the change history; a new supervisor on the same store resumes
from them. The kill -9 test against the real server is
tests/test_durable_server.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arrowloop.errors import StoreError
from arrowloop.runtime import stage
from arrowloop.store import MemoryStore, SqliteStore, StateStore
from arrowloop.supervisor import code_change, open_supervisor, supervisor
from examples.counter import Ack, Count, IncrCount, ReadCount, v1, v2

pytestmark = pytest.mark.anyio


def _spec() -> object:
    return supervisor("svc", stage("counter", v1.machine))


async def _count(store: StateStore) -> tuple[int, str, list[str]]:
    async with open_supervisor(_spec(), store=store) as sup:  # type: ignore[arg-type]
        out = await sup.call(ReadCount())
        version = sup.pipeline.version("counter")
        history = [str(r.kind) for r in await sup.history()]
    assert isinstance(out, Count)
    return out.n, version, history


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_state_versions_and_history_resume(tmp_path: Path, kind: str) -> None:
    store: StateStore = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.db")
    async with open_supervisor(_spec(), store=store) as sup:  # type: ignore[arg-type]
        for _ in range(7):
            assert await sup.call(IncrCount()) == Ack()
        await sup.code_change(
            code_change("counter", v1.machine.version, v2.machine.machine, v2.migrate)
        )
        assert await sup.call(IncrCount()) == Ack()
    n, version, history = await _count(store)
    assert n == 8
    assert version == v2.machine.version  # the recorded version, not the served v1
    assert history == ["upgrade"]
    # And again: the reads did not change anything.
    assert (await _count(store))[0] == 8


async def test_a_fresh_store_is_seeded_with_the_served_code(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    n, version, history = await _count(store)
    assert (n, version, history) == (0, v1.machine.version, [])
    got = store.load()
    assert got is not None
    assert got.stages["counter"].version == v1.machine.version


async def test_a_store_that_cannot_be_used_stops_the_start(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = SqliteStore(path)
    async with open_supervisor(_spec(), store=store) as sup:  # type: ignore[arg-type]
        await sup.call(IncrCount())
    store.close()
    import sqlite3

    db = sqlite3.connect(path)
    db.execute("UPDATE stages SET state = '\"not a count\"'")
    db.commit()
    db.close()
    err: BaseException | None = None
    try:
        await _count(SqliteStore(path))
    except BaseException as exc:  # maybe inside the task groups' exception groups
        err = exc
        while isinstance(err, BaseExceptionGroup):
            err = err.exceptions[0]
    assert isinstance(err, StoreError)
    assert "recorded state of stage 'counter'" in str(err)


async def test_a_change_is_answered_once_its_history_record_is_durable() -> None:
    """The upgrade's reply waits for its history record's write, not only
    for its machines and states."""
    import threading

    import anyio

    class SlowHistory(MemoryStore):
        def __init__(self) -> None:
            super().__init__()
            self.entered = threading.Event()
            self.release = threading.Event()

        def append_history(self, record: dict[str, Any]) -> None:
            self.entered.set()
            assert self.release.wait(30)
            super().append_history(record)

    store = SlowHistory()
    answered: list[object] = []
    async with open_supervisor(_spec(), store=store) as sup:  # type: ignore[arg-type]
        change = code_change("counter", v1.machine.version, v2.machine.machine, v2.migrate)

        async def upgrade() -> None:
            answered.append(await sup.code_change(change))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(upgrade)
                await anyio.to_thread.run_sync(store.entered.wait)
                await anyio.sleep(0.05)
                assert answered == []  # committed, but its record is not written yet
                store.release.set()
    assert answered == [{"counter": v2.machine.version}]
    got = store.load()
    assert got is not None
    assert [r["kind"] for r in got.history] == ["upgrade"]
