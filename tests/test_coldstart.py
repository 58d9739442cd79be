"""Starting from a savepoint (``serve --from-savepoint``): cold upgrades go
through the supervisor's checker and typed migrations in memory; the
result replaces a state directory only when told to; a savepoint of
another pipeline is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from arrowloop.cli._coldstart import cold_start, install
from arrowloop.cli._commands import UsageError
from arrowloop.errors import StoreError
from arrowloop.runtime import stage
from arrowloop.store import SqliteStore, write_savepoint
from arrowloop.supervisor import SupervisorSpec, open_supervisor, supervisor
from examples.counter import IncrCount, v1, v2, v3

pytestmark = pytest.mark.anyio

V2 = "examples/counter/v2.py"
V3 = "examples/counter/v3.py"


def _spec(name: str = "counter") -> SupervisorSpec:
    return supervisor("svc", stage(name, v1.machine))


async def _savepoint(tmp_path: Path, n: int = 3) -> str:
    async with open_supervisor(_spec()) as sup:
        for _ in range(n):
            await sup.call(IncrCount())
        sp = await sup.savepoint(f"n{n}")
    return str(write_savepoint(sp, tmp_path / "savepoints"))


async def test_cold_upgrades_apply_in_order_with_their_migrations(tmp_path: Path) -> None:
    cold = await cold_start(_spec(), await _savepoint(tmp_path), [V2, V3])
    assert [list(u.values()) for u in cold.upgrades] == [
        [v2.machine.version],
        [v3.machine.version],
    ]
    stored = cold.store.load()
    assert stored is not None
    assert stored.stages["counter"].state == [3, False]
    assert [h["requested_by"] for h in stored.history] == ["cold-upgrade"] * 2
    assert len(stored.undo) == 2


async def test_a_cold_upgrade_that_does_not_check_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"--upgrade .*v2\.py: refused: the migration"):
        await cold_start(_spec(), await _savepoint(tmp_path), [V3, V2])


async def test_a_savepoint_of_other_stages_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="are not the served pipeline's"):
        await cold_start(_spec("other"), await _savepoint(tmp_path), [])


async def test_installing_over_state_is_refused_unless_replacing(tmp_path: Path) -> None:
    db = tmp_path / "state" / "svc.db"
    cold = await cold_start(_spec(), await _savepoint(tmp_path, 3), [])
    stored = cold.store.load()
    assert stored is not None
    install(stored, db, fsync="normal", replace=False)  # absent: seeded
    other = (await cold_start(_spec(), await _savepoint(tmp_path, 5), [])).store.load()
    assert other is not None
    with pytest.raises(StoreError, match="holds a service's state already"):
        install(other, db, fsync="normal", replace=False)
    store = SqliteStore(db)
    kept = store.load()
    store.close()
    assert kept is not None
    assert kept.stages["counter"].state == 3
    install(other, db, fsync="normal", replace=True)
    store = SqliteStore(db)
    replaced = store.load()
    store.close()
    assert replaced is not None
    assert replaced.stages["counter"].state == 5
    assert sorted(p.name for p in db.parent.iterdir()) == ["svc.db"]
