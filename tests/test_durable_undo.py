"""The undo stack in the store: rollback works after a restart, through the
recorded inverse migrations, and the stack is written in the same
transaction as the change's stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from arrowloop.errors import UpgradeError
from arrowloop.runtime import stage
from arrowloop.store import MemoryStore, SqliteStore, StateStore
from arrowloop.supervisor import SupervisorSpec, code_change, open_supervisor, supervisor
from examples.counter import Count, IncrCount, ReadCount, ToggleCount, v1, v2, v3

pytestmark = pytest.mark.anyio


def _spec() -> SupervisorSpec:
    return supervisor("svc", stage("counter", v1.machine))


def _store(kind: str, tmp_path: Path) -> StateStore:
    return MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.db")


def _reopen(store: StateStore, tmp_path: Path) -> StateStore:
    if isinstance(store, SqliteStore):
        store.close()
        return SqliteStore(tmp_path / "s.db")
    return store


async def _upgrade_twice(store: StateStore) -> None:
    async with open_supervisor(_spec(), store=store) as sup:
        for _ in range(3):
            await sup.call(IncrCount())
        await sup.code_change(
            code_change(
                "counter", v1.machine.version, v2.machine.machine, v2.migrate, inverse=v2.inverse
            )
        )
        await sup.call(IncrCount())
        await sup.code_change(
            code_change(
                "counter", v2.machine.version, v3.machine.machine, v3.migrate, inverse=v3.inverse
            )
        )
        await sup.call(ToggleCount())
        assert await sup.get_state("counter") == (4, True)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_rollback_after_a_restart_migrates_the_state_back(tmp_path: Path, kind: str) -> None:
    """Two upgrades (the second changes the state type), a restart, then two
    rollbacks: each migrates the state back through its recorded inverse."""
    store = _store(kind, tmp_path)
    await _upgrade_twice(store)
    store = _reopen(store, tmp_path)
    async with open_supervisor(_spec(), store=store) as sup:
        assert sup.pipeline.version("counter") == v3.machine.version
        assert await sup.rollback("counter") == {"counter": v2.machine.version}
        assert await sup.get_state("counter") == 4
    store = _reopen(store, tmp_path)
    async with open_supervisor(_spec(), store=store) as sup:
        assert sup.pipeline.version("counter") == v2.machine.version
        assert await sup.rollback("counter") == {"counter": v1.machine.version}
        assert await sup.call(ReadCount()) == Count(4)
        with pytest.raises(UpgradeError, match="no recorded code change to roll back"):
            await sup.rollback("counter")
        kinds = [(r.kind, r.result) for r in await sup.history()]
    assert kinds[:4] == [
        ("upgrade", "succeeded"),
        ("upgrade", "succeeded"),
        ("rollback", "succeeded"),
        ("rollback", "succeeded"),
    ]


async def test_clients_of_an_old_version_are_served_after_a_restart() -> None:
    """The adapters of a recorded change come back with the undo stack."""
    store = MemoryStore()
    await _upgrade_twice(store)
    async with open_supervisor(_spec(), store=store) as sup:
        assert await sup.call(ReadCount(), version=v1.machine.version) == Count(4)


async def test_the_undo_stack_is_written_with_the_change() -> None:
    """One transaction holds the change's stages and the undo stack."""
    writes: list[tuple[list[str], Any]] = []

    class Watching(MemoryStore):
        def save_stages(self, records: Any, undo: Any = None, keys: Any = None) -> None:
            writes.append(([r.version for r in records], undo))
            super().save_stages(records, undo, keys)

        def save_undo(self, undo: Any) -> None:  # pragma: no cover - must not be used
            raise AssertionError("the undo stack was written on its own")

    store = Watching()
    await _upgrade_twice(store)
    changes = [(v, u) for v, u in writes if u is not None]
    assert [v for v, _ in changes] == [[v2.machine.version], [v3.machine.version]]
    assert [len(u) for _, u in changes] == [1, 2]
    got = store.load()
    assert got is not None
    assert len(got.undo) == 2


async def test_a_change_with_a_python_migration_is_not_kept_for_after_a_restart() -> None:
    """A plain callable has no wire document: rollback of that change is
    refused after a restart (the stage runs what a kept entry did not install)."""
    store = MemoryStore()
    async with open_supervisor(_spec(), store=store) as sup:
        await sup.code_change(
            code_change(
                "counter",
                v1.machine.version,
                v3.machine.machine,
                lambda n: (n, False),
                inverse=lambda s: s[0],
                change_interface=True,
            )
        )
    got = store.load()
    assert got is not None
    assert got.undo == []
    async with open_supervisor(_spec(), store=store) as sup:
        with pytest.raises(UpgradeError, match="no recorded code change to roll back"):
            await sup.rollback("counter")
