"""Durable state against a sequential model (hypothesis).

Random schedules of items, upgrades and rollbacks that change the stage's
input, output and state types while items are still queued, savepoints,
restarts from the store (the supervisor closed and a new one opened on the
same store) and starts from the latest savepoint (a fresh store seeded
with it). After every step the running version, the state, the history
and every reply are what a plain Python model of the versions predicts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from arrowloop.runtime import Ticket, stage
from arrowloop.store import (
    MemoryStore,
    Savepoint,
    SqliteStore,
    StateStore,
    read_savepoint,
    seed_store,
    write_savepoint,
)
from arrowloop.supervisor import Supervisor, code_change, open_supervisor, supervisor
from tests.durable_machines import (
    CHANGES,
    MACHINES,
    item_for,
    model_inverse,
    model_migrate,
    model_step,
)
from tests.profiles import examples

ops = st.lists(
    st.one_of(
        st.tuples(st.just("items"), st.integers(1, 4)),
        st.sampled_from(["upgrade", "upgrade", "rollback", "savepoint", "restart", "restore"]),
    ),
    min_size=4,
    max_size=14,
)
#: A schedule that goes through every kind of step (always run first).
TOUR: list[Any] = [
    ("items", 3),
    "upgrade",
    ("items", 2),
    "upgrade",
    ("items", 2),
    "savepoint",
    "restart",
    ("items", 1),
    "rollback",
    "restore",
    ("items", 2),
    "rollback",
    "rollback",
    "restart",
    "upgrade",
]


@attrs.define
class Model:
    """What the service should hold: the running version, the state, the
    items applied, the undo stack (versions changed from) and the history."""

    k: int = 0
    state: Any = 0
    seq: int = 0
    undo: list[int] = attrs.Factory(list)
    history: list[str] = attrs.Factory(list)

    def apply(self, item: Any) -> Any:
        self.state, out = model_step(self.k, item, self.state)
        self.seq += 1
        return out

    def copy(self) -> Model:
        return Model(self.k, self.state, self.seq, list(self.undo), list(self.history))


def _version(k: int) -> str:
    return MACHINES[k].machine.version


def _spec() -> Any:
    return supervisor("model", stage("s", MACHINES[0]))


class Service:
    """The supervisor under test, closed and reopened on its store at will."""

    def __init__(self, kind: str, where: Path) -> None:
        self.kind = kind
        self.where = where
        self.opened = 0
        self.store = self._new_store()

    def _new_store(self) -> StateStore:
        if self.kind == "memory":
            return MemoryStore()
        self.opened += 1
        return SqliteStore(self.where / f"s{self.opened}.db", synchronous="normal")

    def reopen_store(self) -> None:
        if isinstance(self.store, SqliteStore):
            self.store.close()
            self.store = SqliteStore(self.store.path, synchronous="normal")

    def seed(self, savepoint: Savepoint) -> None:
        if isinstance(self.store, SqliteStore):
            self.store.close()
        self.store = self._new_store()
        seed_store(self.store, savepoint.stored())


async def _check(sup: Supervisor, model: Model) -> None:
    assert sup.pipeline.version("s") == _version(model.k)
    assert await sup.get_state("s") == model.state
    got = [f"{r.kind} {r.result}" for r in await sup.history()]
    assert got == model.history


async def _script(kind: str, script: list[Any], where: Path) -> None:
    model = Model()
    saved: tuple[Path, Model] | None = None
    service = Service(kind, where)
    x = taken = 0
    pending: list[tuple[Ticket, Any]] = []

    async def settle() -> None:
        for ticket, expected in pending:
            assert await ticket.result() == expected
        pending.clear()

    steps = iter(script)
    while True:
        async with open_supervisor(_spec(), store=service.store) as sup:
            await _check(sup, model)
            reopen = None
            for op in steps:
                if isinstance(op, tuple):
                    # Submitted, not awaited: they are queued when the next
                    # change enters behind them.
                    for _ in range(op[1]):
                        x += 1
                        item = item_for(model.k, x)
                        pending.append((await sup.submit(item), model.apply(item)))
                    continue
                elif op == "upgrade" and model.k < 2:
                    migrate, inverse, adapt = CHANGES[model.k]
                    await sup.code_change(
                        code_change(
                            "s",
                            _version(model.k),
                            MACHINES[model.k + 1],
                            migrate,
                            inverse=inverse,
                            input_adapter=adapt,
                            change_interface=True,
                        )
                    )
                    model.state = model_migrate(model.k, model.state)
                    model.undo.append(model.k)
                    model.k += 1
                    model.history.append("upgrade succeeded")
                elif op == "rollback" and model.undo:
                    back = model.undo.pop()
                    assert await sup.rollback("s") == {"s": _version(back)}
                    model.state = model_inverse(back, model.state)
                    model.k = back
                    model.history.append("rollback succeeded")
                elif op == "savepoint":
                    taken += 1
                    sp = await sup.savepoint(f"sp{taken}")
                    assert [s.seq for s in sp.stages] == [model.seq]  # after every item sent
                    saved = (write_savepoint(sp, where / "savepoints"), model.copy())
                elif op in ("restart", "restore"):
                    reopen = op
                    break
                await settle()
                await _check(sup, model)
            await settle()
        if reopen is None:
            break
        if reopen == "restore" and saved is not None:
            service.seed(read_savepoint(saved[0]))
            model = saved[1].copy()
        else:
            service.reopen_store()
    async with open_supervisor(_spec(), store=service.store) as sup:
        await _check(sup, model)
    if isinstance(service.store, SqliteStore):
        service.store.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(
    max_examples=examples(40),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(script=ops)
@example(script=TOUR)
def test_durable_service_matches_the_model(kind: str, script: list[Any]) -> None:
    """States, versions, history and replies equal the sequential model's
    across type-changing upgrades, rollbacks, savepoints and restarts."""
    with tempfile.TemporaryDirectory() as tmp:

        async def main() -> None:
            with anyio.fail_after(60):
                await _script(kind, script, Path(tmp))

        anyio.run(main)
