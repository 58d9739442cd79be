"""Request keys: each stage applies an item of a given key at most once
(among its most recent keys) and answers a resent key with the output it
produced the first time; the keys are committed with the state and reload
from the store. The kill -9 test is in tests/test_durable_server.py, the
property test against a sequential model in tests/test_request_keys_model.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from arrowloop.errors import ReplyUnavailable, StepError, ValidationError
from arrowloop.machine import native
from arrowloop.runtime import Recorded, Ticket, open_pipeline, stage
from arrowloop.store import FORMAT, KeyRecord, KeyWrites, MemoryStore, SqliteStore, StageRecord
from arrowloop.supervisor import open_supervisor, supervisor

pytestmark = pytest.mark.anyio


def _count(x: int, n: int) -> tuple[int, int]:
    return n + x, n + x


def _double(x: int, n: int) -> tuple[int, int]:
    return n + 1, 2 * x


def _picky(x: int, n: int) -> tuple[int, int]:
    if x == 7 and n == 0:
        raise ValueError("not at zero")
    return n + x, n + x


def _label(x: int, n: int) -> tuple[int, str]:
    return n + x, f"n={n + x}"


COUNT = native(_count, 0)


async def _results(tickets: list[Ticket | Exception]) -> list[Any]:
    out: list[Any] = []
    for t in tickets:
        if isinstance(t, Ticket):
            try:
                out.append(await t.result())
            except Exception as exc:
                out.append(exc)
        else:
            out.append(t)
    return out


async def test_a_resent_key_gets_the_first_reply_and_is_not_applied_again() -> None:
    """The second copy of a key is answered with the first output; the state moved once."""
    async with open_pipeline(stage("c", COUNT)) as p:
        assert await p.call(5, key="a") == 5
        assert await p.call(5, key="a") == 5
        assert await p.call(1, key="b") == 6
        assert await p.call(5, key="a") == 5
        assert await p.call(1) == 7  # no key: applied every time
        assert await p.call(1) == 8
        assert p.statistics()[0].processed == 4


async def test_duplicates_in_one_batch_and_across_batches_apply_once() -> None:
    """In-flight duplicates (one batch, or queued behind the first) are applied once."""
    async with open_pipeline(stage("c", COUNT)) as p:
        first = await p.submit_many([1, 2, 1, 3], keys=["a", "b", "a", None])
        second = await p.submit_many([2, 2], keys=["b", "c"])
        assert await _results(first) == [1, 3, 1, 6]
        assert await _results(second) == [3, 8]
        assert p.state("c") == 8


async def test_each_stage_applies_what_it_has_not_applied() -> None:
    """A stage that applied a key passes its remembered output on; a stage
    after it that did not (a crash came between their commits) applies it."""
    async with open_pipeline(stage("a", COUNT) >> stage("b", native(_double, 0))) as p:
        # Stage a remembers k (output 40) but its state does not show it
        # (as reloaded from a store); stage b never saw k.
        p.seed("a", 0, 0, keys=[("k", COUNT.version, Recorded(lambda t: 40))])
        assert await p.call(3, key="k") == 80  # a emits 40 unchanged, b applies it
        assert p.state("a") == 0
        assert p.state("b") == 1
        assert await p.call(3, key="k") == 80  # now both remember it
        assert p.state("b") == 1


async def test_a_failed_step_is_not_remembered_so_a_resend_retries() -> None:
    """A keyed item whose step fails is not remembered: sending the key again applies it."""
    async with open_pipeline(stage("c", native(_picky, 0))) as p:
        with pytest.raises(StepError):
            await p.call(7, key="k")
        assert await p.call(1) == 1
        assert await p.call(7, key="k") == 8
        assert await p.call(7, key="k") == 8


async def test_an_output_type_changed_since_gives_reply_unavailable() -> None:
    """After an upgrade that changed the output type, a key applied before
    gets one clear error and is not applied again; a key applied after is
    answered as usual."""
    old, new = COUNT, native(_label, 0)
    async with open_pipeline(stage("c", old)) as p:
        assert await p.call(2, key="a") == 2
        # Queued behind the upgrade: a new key, and the old key again.
        await p.upgrade("c", new, change_interface=True)
        tickets = await p.submit_many([3, 2, 3], keys=["b", "a", "b"])
        out = await _results(tickets)
        assert out[0] == out[2] == "n=5"
        err = out[1]
        assert isinstance(err, ReplyUnavailable)
        assert err.key == "a"
        assert err.version == old.version
        assert old.version[:12] in str(err)
        assert "no longer available" in str(err)
        assert p.state("c") == 5


async def test_a_remembered_output_that_still_fits_survives_an_upgrade() -> None:
    """An upgrade that keeps the output type keeps the remembered replies."""
    async with open_pipeline(stage("c", COUNT)) as p:
        assert await p.call(2, key="a") == 2
        await p.upgrade("c", native(_double, 0))
        assert await p.call(2, key="a") == 2


async def test_the_window_is_bounded_oldest_first() -> None:
    """Beyond ``request_keys`` keys the oldest is forgotten (and applies again)."""
    async with open_pipeline(stage("c", COUNT), request_keys=2) as p:
        for key in ("a", "b", "c"):
            await p.call(1, key=key)
        assert await p.call(1, key="c") == 3  # remembered
        assert await p.call(1, key="a") == 4  # forgotten: applied again
        assert len(p._actors[0].keys) == 2


async def test_bad_keys_are_refused() -> None:
    """A key must be a string of 1 to 256 characters."""
    async with open_pipeline(stage("c", COUNT)) as p:
        for bad in ("", "x" * 257, 5):
            with pytest.raises(ValidationError, match="request key"):
                await p.call(1, key=bad)  # type: ignore[arg-type]
        out = await p.submit_many([1, 1], keys=["", "ok"])
        assert isinstance(out[0], ValidationError)
        assert await _results(out[1:]) == [1]
        with pytest.raises(ValueError, match="one per item"):
            await p.submit_many([1, 1], keys=["a"])
    with pytest.raises(ValueError, match="request_keys"):
        async with open_pipeline(stage("c", COUNT), request_keys=0):
            pass


# -- the store ----------------------------------------------------------------


def _spec() -> Any:
    return supervisor("svc", stage("a", COUNT), stage("b", native(_double, 0)))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_keys_reload_from_the_store(tmp_path: Path, kind: str) -> None:
    """A restarted supervisor answers a key applied before with its first reply."""
    store = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.db")
    async with open_supervisor(_spec(), store=store) as sup:
        assert await sup.call(4, key="x") == 8
        assert await sup.call(1, key="y") == 10
    async with open_supervisor(_spec(), store=store) as sup:
        assert await sup.call(4, key="x") == 8
        assert await sup.call(1, key="y") == 10
        assert sup.pipeline.state("a") == 5
        assert sup.pipeline.state("b") == 2
        assert await sup.call(1, key="z") == 12


async def test_eviction_is_reflected_in_the_store(tmp_path: Path) -> None:
    """The store holds exactly each stage's window, oldest first."""
    store = SqliteStore(tmp_path / "s.db")
    async with open_supervisor(_spec(), store=store, request_keys=2) as sup:
        tickets = await sup.submit_many([1, 1, 1], keys=["a", "b", "c"])
        await _results(tickets)
        await sup.call(1, key="d")
    got = store.load()
    assert got is not None
    assert {s: [k.key for k in ks] for s, ks in got.keys.items()} == {
        "a": ["c", "d"],
        "b": ["c", "d"],
    }
    assert got.keys["b"][0] == KeyRecord("c", native(_double, 0).version, 6)


async def test_a_refused_write_forgets_the_keys_it_carried() -> None:
    """Keys whose batch was not made durable were not applied: a resend applies them."""
    store = MemoryStore()
    async with open_supervisor(supervisor("svc", stage("c", COUNT)), store=store) as sup:
        assert await sup.call(1, key="a") == 1
        store.closed = True  # every write fails now
        with pytest.raises(StepError, match="durable"):
            await sup.call(1, key="b")
        store.closed = False
        assert await sup.call(1, key="b") == 2
        assert await sup.call(1, key="a") == 1


async def test_reloaded_output_that_no_longer_fits_is_unavailable() -> None:
    """A key reloaded from the store under an older output type gets ReplyUnavailable."""
    async with open_pipeline(stage("c", native(_label, 0))) as p:
        p.seed("c", 0, 0, keys=[("k", "0" * 64, Recorded(lambda t: _decode_int(t, 3)))])
        with pytest.raises(ReplyUnavailable, match="0000000000"):
            await p.call(1, key="k")
        assert p.state("c") == 0


def _decode_int(t: Any, value: int) -> Any:
    from arrowloop.wire import decode_value

    return decode_value(t, value, "$")


def test_a_format_1_store_is_brought_forward(tmp_path: Path) -> None:
    """A store written before request keys opens, keeps its data and gains the keys table."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(
        """
        CREATE TABLE stages (name TEXT PRIMARY KEY, version TEXT NOT NULL, machine TEXT,
                             state TEXT NOT NULL, seq INTEGER NOT NULL);
        CREATE TABLE history (seq INTEGER PRIMARY KEY, record TEXT NOT NULL);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO stages VALUES ('c', 'v1', NULL, '7', 3);
        PRAGMA application_id=1095912528;
        PRAGMA user_version=1;
        """
    )
    db.close()
    store = SqliteStore(path)
    got = store.load()
    assert got is not None
    assert got.stages["c"] == StageRecord("c", "v1", None, 7, 3)
    assert got.keys == {}
    store.save_states([("c", 8, 4)], KeyWrites(put=[("c", KeyRecord("k", "v1", 8))]))
    store.close()
    again = SqliteStore(path)
    got = again.load()
    assert got is not None
    assert got.keys == {"c": [KeyRecord("k", "v1", 8)]}
    assert got.stages["c"].state == 8
    again.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == FORMAT == 3
