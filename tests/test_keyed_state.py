"""A stage whose state is a set or an int-keyed dict runs under a supervisor,
and a store keeps it: a new supervisor on the same store resumes from it
(the state goes through the JSON forms of keyed maps and sets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from arrowloop.errors import StepError
from arrowloop.runtime import stage
from arrowloop.store import SqliteStore
from arrowloop.supervisor import open_supervisor, supervisor
from tests.test_frontend_keys import by_int, dedup

pytestmark = pytest.mark.anyio


async def test_a_set_state_is_kept_by_the_store(tmp_path: Path) -> None:
    """Items seen before a restart are still seen after it."""
    store = SqliteStore(tmp_path / "s.db")
    spec = supervisor("svc", stage("dedup", dedup.machine))
    async with open_supervisor(spec, store=store) as sup:
        assert [await sup.call(x) for x in (3, 1, 3, -2)] == [True, True, False, True]
    async with open_supervisor(spec, store=SqliteStore(tmp_path / "s.db")) as sup:
        assert [await sup.call(x) for x in (1, 3, -2, 7)] == [False, False, False, True]


async def test_an_int_keyed_dict_state_is_kept_by_the_store(tmp_path: Path) -> None:
    """Entries put before a restart are read after it; a failing item changes nothing."""
    store = SqliteStore(tmp_path / "s.db")
    spec = supervisor("svc", stage("kv", by_int.machine))
    async with open_supervisor(spec, store=store) as sup:
        assert await sup.call(("put", 10, 1)) == 1
        assert await sup.call(("put", -2, 5)) == 5
        with pytest.raises(StepError):
            await sup.call(("add", 7, 1))  # absent key: the step fails
    async with open_supervisor(spec, store=SqliteStore(tmp_path / "s.db")) as sup:
        assert await sup.call(("get", 10, 0)) == 1
        assert await sup.call(("get", -2, 0)) == 5
        assert await sup.call(("has", 7, 0)) == 0
