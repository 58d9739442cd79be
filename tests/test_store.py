"""State stores: what is saved comes back, in both stores, and bad files are refused.

The SQLite store is checked against files that are not stores (not SQLite,
another application's database, a newer format, a corrupt page), each
refused with a StoreError naming the file, and none overwritten.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop.errors import StoreError
from arrowloop.store import APPLICATION_ID, MemoryStore, SqliteStore, StageRecord, StateStore

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_new_store_is_empty_and_keeps_what_it_is_given(tmp_path: Path, kind: str) -> None:
    store: StateStore = MemoryStore() if kind == "memory" else SqliteStore(tmp_path / "s.db")
    assert store.load() is None
    store.save_stage(StageRecord("a", "v1", {"kind": "machine"}, {"n": 1}, 0))
    store.save_stage(StageRecord("b", "v2", None, [1, 2], 0))
    store.save_states([("a", {"n": 5}, 4), ("b", [3], 7)])
    store.append_history({"seq": 1, "kind": "upgrade"})
    store.append_history({"seq": 2, "kind": "rollback"})
    store.save_undo([{"stage": "a"}])
    got = store.load()
    assert got is not None
    assert got.stages["a"] == StageRecord("a", "v1", {"kind": "machine"}, {"n": 5}, 4)
    assert got.stages["b"] == StageRecord("b", "v2", None, [3], 7)
    assert [r["seq"] for r in got.history] == [1, 2]
    assert got.undo == [{"stage": "a"}]
    store.close()


def test_a_sqlite_store_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = SqliteStore(path)
    first.save_stage(StageRecord("a", "v1", None, 41, 3))
    first.close()
    second = SqliteStore(path, synchronous="normal")
    got = second.load()
    assert got is not None
    assert got.stages["a"].state == 41
    second.close()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), JSON), min_size=1, max_size=8))
def test_the_last_state_written_is_the_one_read(writes: list[tuple[str, Any]]) -> None:
    store = MemoryStore()
    latest: dict[str, Any] = {}
    for i, (name, state) in enumerate(writes):
        if name not in latest:
            store.save_stage(StageRecord(name, "v", None, state, i))
        else:
            store.save_states([(name, state, i)])
        latest[name] = state
    got = store.load()
    assert got is not None
    assert {n: r.state for n, r in got.stages.items()} == latest


def _refused(path: Path) -> StoreError:
    before = path.read_bytes()
    with pytest.raises(StoreError) as info:
        SqliteStore(path)
    assert path.read_bytes() == before  # nothing was written
    assert str(path) in str(info.value)
    return info.value


def test_a_file_that_is_not_sqlite_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, this is not a database" * 100)
    assert "not a SQLite database" in str(_refused(path))


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    assert "another application" in str(_refused(path))


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=99")
    db.commit()
    db.close()
    assert "newer arrowloop" in str(_refused(path))


def test_a_truncated_store_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.db"
    store = SqliteStore(path)
    for i in range(200):
        store.save_stage(StageRecord(f"s{i}", "v", None, "x" * 200, i))
    store.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    err = _refused(path)
    assert err.path == str(path)


def test_the_application_id_marks_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SqliteStore(path).close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    db.close()


def test_a_read_only_store_refuses_writes_with_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "ro.db"
    SqliteStore(path).close()
    store = SqliteStore(path)
    store._db.execute("PRAGMA query_only=ON")  # as a read-only disk would refuse
    with pytest.raises(StoreError, match="failed"):
        store.save_stage(StageRecord("a", "v", None, 1, 0))
    store.close()
