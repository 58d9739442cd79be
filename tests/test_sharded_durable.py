"""Sharded stages with a state store (hypothesis, against a sequential model).

Random schedules of items (some with request keys, resent after restarts),
upgrades and rollbacks that change the sharded stage's state type while
items are still queued, savepoints, restarts from the store (the supervisor
closed and a new one opened on the same store) and cold starts from the
latest savepoint (a fresh store seeded with it). After every step every
reply, the running version, the replicas' states (merged, and each holding
only its own keys), the next stage's count and the history are what a plain
Python model predicts. Plus the store format, and what is refused.
"""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from arrowloop import arrow, statemachine
from arrowloop.errors import StoreError, UpgradeError
from arrowloop.runtime import Ticket, open_pipeline, stage
from arrowloop.runtime._shards import shard_of
from arrowloop.store import (
    FORMAT,
    MemoryStore,
    Savepoint,
    SqliteStore,
    StateStore,
    read_savepoint,
    seed_store,
    write_savepoint,
)
from arrowloop.supervisor import Supervisor, code_change, open_supervisor, supervisor
from tests.profiles import examples

SHARDS = 3
KEYS = "abcdefg"


@statemachine(init={})
def count_v1(
    item: tuple[str, int], state: dict[str, int]
) -> tuple[dict[str, int], tuple[str, int]]:
    """Per key, the running sum."""
    k, v = item
    total = state.get(k, 0) + v
    state[k] = total
    return state, (k, total)


@statemachine(init={})
def count_v2(
    item: tuple[str, int], state: dict[str, tuple[int, int]]
) -> tuple[dict[str, tuple[int, int]], tuple[str, int]]:
    """Per key, the running sum and count; outputs sum + 1000 * count."""
    k, v = item
    total, count = state.get(k, (0, 0))
    state[k] = (total + v, count + 1)
    return state, (k, total + v + 1000 * (count + 1))


@statemachine(init=0)
def tail(item: tuple[str, int], n: int) -> tuple[int, tuple[str, int]]:
    """Passes items on, counting them."""
    return n + 1, item


@arrow
def by_key(item: tuple[str, int]) -> str:
    """The item's key."""
    return item[0]


@arrow
def up(state: dict[str, int]) -> dict[str, tuple[int, int]]:
    """v1 -> v2: no item counted yet."""
    return {k: (v, 0) for k, v in state.items()}


@arrow
def down(state: dict[str, tuple[int, int]]) -> dict[str, int]:
    """v2 -> v1: the sums."""
    return {k: v[0] for k, v in state.items()}


MACHINES = (count_v1, count_v2)


@attrs.define
class Model:
    """What the service should hold."""

    k: int = 0
    state: dict[str, Any] = attrs.Factory(dict)
    seq: int = 0
    undo: list[int] = attrs.Factory(list)
    history: list[str] = attrs.Factory(list)
    #: Request keys applied, with their replies.
    keyed: dict[str, Any] = attrs.Factory(dict)

    def apply(self, item: tuple[str, int]) -> tuple[str, int]:
        k, v = item
        self.seq += 1
        if self.k == 0:
            self.state[k] = self.state.get(k, 0) + v
            return k, self.state[k]
        total, count = self.state.get(k, (0, 0))
        self.state[k] = (total + v, count + 1)
        return k, total + v + 1000 * (count + 1)

    def copy(self) -> Model:
        return Model(
            self.k,
            dict(self.state),
            self.seq,
            list(self.undo),
            list(self.history),
            dict(self.keyed),
        )


def _spec() -> Any:
    return supervisor(
        "shd",
        stage("count", count_v1, shards=SHARDS, shard_key=by_key),
        stage("tail", tail),
    )


async def _check(sup: Supervisor, model: Model) -> None:
    assert sup.pipeline.version("count") == MACHINES[model.k].machine.version
    states = await sup.get_state("count")
    assert len(states) == SHARDS
    for i, s in enumerate(states):
        assert all(shard_of(k, SHARDS) == i for k in s), (i, s)
    assert {k: v for s in states for k, v in s.items()} == model.state
    assert await sup.get_state("tail") == model.seq
    assert [f"{r.kind} {r.result}" for r in await sup.history()] == model.history


class Service:
    """The supervisor's store, reopened or replaced at will."""

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

    def reopen(self) -> None:
        if isinstance(self.store, SqliteStore):
            self.store.close()
            self.store = SqliteStore(self.store.path, synchronous="normal")

    def seed(self, savepoint: Savepoint) -> None:
        if isinstance(self.store, SqliteStore):
            self.store.close()
        self.store = self._new_store()
        seed_store(self.store, savepoint.stored())

    def close(self) -> None:
        if isinstance(self.store, SqliteStore):
            self.store.close()


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
                        item = (KEYS[x * 5 % len(KEYS)], x)
                        key = f"r{x}" if x % 3 == 0 else None
                        expected = model.apply(item)
                        if key is not None:
                            model.keyed[key] = (item, expected)
                        pending.append((await sup.submit(item, key=key), expected))
                    continue
                if op == "resend":
                    # Every keyed request again: answered as the first
                    # time, applied by no stage again.
                    for key, (item, expected) in model.keyed.items():
                        pending.append((await sup.submit(item, key=key), expected))
                elif op == "upgrade" and model.k == 0:
                    await sup.code_change(
                        code_change("count", count_v1.machine.version, count_v2, up, inverse=down)
                    )
                    model.state = {k: (v, 0) for k, v in model.state.items()}
                    model.undo.append(0)
                    model.k = 1
                    model.history.append("upgrade succeeded")
                elif op == "rollback" and model.undo:
                    back = model.undo.pop()
                    assert await sup.rollback("count") == {"count": count_v1.machine.version}
                    model.state = {k: v[0] for k, v in model.state.items()}
                    model.k = back
                    model.history.append("rollback succeeded")
                elif op == "savepoint":
                    taken += 1
                    sp = await sup.savepoint(f"sp{taken}")
                    names = [s.stage for s in sp.stages]
                    assert names == [f"count#{i}" for i in range(SHARDS)] + ["tail"]
                    assert sum(s.seq for s in sp.stages[:SHARDS]) == model.seq
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
            model.keyed.clear()  # a savepoint carries no request keys
        else:
            service.reopen()
    async with open_supervisor(_spec(), store=service.store) as sup:
        await _check(sup, model)
    service.close()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("items"), st.integers(1, 6)),
        st.sampled_from(
            ["upgrade", "upgrade", "rollback", "savepoint", "restart", "restore", "resend"]
        ),
    ),
    min_size=4,
    max_size=14,
)
#: Every kind of step: an upgrade and a rollback with items queued, a
#: restart, a rollback after it, a savepoint and a cold start from it.
TOUR: list[Any] = [
    ("items", 6),
    "upgrade",
    ("items", 5),
    "savepoint",
    ("items", 4),
    "restart",
    "resend",
    "rollback",
    ("items", 3),
    "restore",
    "resend",
    ("items", 2),
    "rollback",
    "upgrade",
    "restart",
]


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(script=ops)
@example(script=TOUR)
def test_a_durable_sharded_stage_matches_the_model(kind: str, script: list[Any]) -> None:
    """Replies, versions, per-shard states and history equal the sequential
    model's across state-type-changing upgrades, rollbacks, savepoints,
    restarts and cold starts, with resent request keys applied once."""
    with tempfile.TemporaryDirectory() as tmp:

        async def main() -> None:
            with anyio.fail_after(60):
                await _script(kind, script, Path(tmp))

        anyio.run(main)


def test_a_store_records_each_replica_as_a_row(tmp_path: Path) -> None:
    """Format 3: one ``stages`` row per replica (``count#i``), each with the
    state of its own keys and the items it applied."""

    async def main() -> None:
        store = SqliteStore(tmp_path / "s.db")
        async with open_supervisor(_spec(), store=store) as sup:
            for i, k in enumerate("abcabcd"):
                await sup.call((k, i))
        store.close()

    anyio.run(main)
    db = sqlite3.connect(tmp_path / "s.db")
    rows = dict(db.execute("SELECT name, seq FROM stages").fetchall())
    assert db.execute("PRAGMA user_version").fetchone()[0] == FORMAT == 3
    assert set(rows) == {"count#0", "count#1", "count#2", "tail"}
    assert sum(rows[f"count#{i}"] for i in range(SHARDS)) == rows["tail"] == 7


def test_a_format_2_store_is_brought_forward(tmp_path: Path) -> None:
    """A store written before replicas' rows (format 2) opens as format 3,
    in place, with what it held."""
    path = tmp_path / "old.db"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=2")
    db.execute("INSERT INTO stages VALUES ('c', 'v1', NULL, '7', 3)")
    db.commit()
    db.close()
    store = SqliteStore(path)
    got = store.load()
    store.close()
    assert got is not None
    assert got.stages["c"].state == 7
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3


@pytest.mark.anyio
async def test_another_number_of_shards_is_refused() -> None:
    """A store recorded with 3 replicas refuses a start with 2, or unsharded:
    keys would move between shards."""
    store = MemoryStore()
    async with open_supervisor(_spec(), store=store) as sup:
        await sup.call(("a", 1))
    for start in (
        stage("count", count_v1, shards=2, shard_key=by_key),
        stage("count", count_v1),
    ):
        err: BaseException | None = None
        try:
            async with open_supervisor(supervisor("shd", start, stage("tail", tail)), store=store):
                pass
        except BaseException as exc:  # inside the task groups' exception groups
            err = exc
            while isinstance(err, BaseExceptionGroup):
                err = err.exceptions[0]
        assert isinstance(err, StoreError)
        assert "re-sharding is not supported" in str(err)


@pytest.mark.anyio
async def test_a_refused_write_withholds_the_replicas_replies() -> None:
    """A store that refuses: the replica's callers get the error, the state
    stays the durable one, and the stage goes on."""
    fail = False
    written: list[Any] = []

    async def persist(records: Any, keys: Any = None) -> None:
        if fail:
            raise OSError("disk full")
        written.append([r[0] for r in records])

    async with open_pipeline(
        stage("count", count_v1, shards=2, shard_key=by_key), persist=persist
    ) as p:
        assert await p.call(("a", 1)) == ("a", 1)
        assert ["count#" + str(shard_of("a", 2))] in written
        fail = True
        with pytest.raises(Exception, match="could not make its state durable"):
            await p.call(("a", 1))
        fail = False
        assert await p.call(("a", 5)) == ("a", 6)


@pytest.mark.anyio
async def test_a_change_the_store_refuses_leaves_every_replica_on_its_code() -> None:
    """The merge writes every replica's migrated state in one write before
    the change is decided: refused, the change fails whole (``not durable``)
    and every replica keeps its code and state."""
    refuse = False
    writes: list[list[str]] = []

    async def persist(records: Any, keys: Any = None) -> None:
        if refuse and any(m.version == count_v2.machine.version for _, m, _, _ in records):
            raise OSError("read-only disk")
        writes.append([r[0] for r in records])

    async with open_pipeline(
        stage("count", count_v1, shards=3, shard_key=by_key), persist=persist
    ) as p:
        for k in "abcdef":
            await p.call((k, 1))
        refuse = True
        with pytest.raises(UpgradeError, match="could not be made durable") as info:
            await p.upgrade("count", count_v2, up)
        assert info.value.reason == "not durable"
        assert p.version("count") == count_v1.machine.version
        assert await p.call(("a", 1)) == ("a", 2)
        refuse = False
        await p.upgrade("count", count_v2, up)
        assert sorted(writes[-1]) == ["count#0", "count#1", "count#2"]  # one write, all of them
        assert await p.call(("a", 1)) == ("a", 3 + 1000)
