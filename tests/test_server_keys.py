"""Request keys on the data port: a request's optional ``key``, checked as
the protocol says; a resent key is answered with the first reply, on the
same connection or another, with a store or without."""

from __future__ import annotations

from pathlib import Path

import anyio
import orjson
import pytest

from arrowloop.cli import DataClient
from arrowloop.server import ServerConfig, as_supervisor_spec, load_object, open_server
from arrowloop.store import SqliteStore
from tests.test_server_protocol import ACK, INCR, READ, TOKEN, count, serving

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]


def _lines(*reqs: object) -> bytes:
    return b"".join(orjson.dumps(r) + b"\n" for r in reqs)


async def test_a_resent_key_gets_the_first_reply_on_any_connection() -> None:
    """Duplicates in one read, and a resend on another connection, apply once."""
    async with (
        serving() as server,
        DataClient(*server.data_address) as a,
        DataClient(*server.data_address) as b,
    ):
        await a.send_raw(
            _lines(
                {"item": INCR, "key": "i1", "id": 1},
                {"item": INCR, "key": "i1", "id": 2},
                {"item": INCR, "key": "i2"},
                {"item": READ, "key": "r1"},
            )
        )
        replies = [await a.reply() for _ in range(4)]
        assert replies == [
            {"id": 1, "output": ACK},
            {"id": 2, "output": ACK},
            {"output": ACK},
            {"output": count(2)},
        ]
        await b.send_raw(_lines({"item": INCR, "key": "i2"}, {"item": INCR}))
        await b.send_raw(_lines({"item": READ, "key": "r1"}, {"item": READ}))
        assert [await b.reply() for _ in range(4)] == [
            {"output": ACK},
            {"output": ACK},
            {"output": count(2)},  # the first reply of r1, not the count now
            {"output": count(3)},
        ]


async def test_bad_keys_are_protocol_errors() -> None:
    """A key that is not a string of 1 to 256 characters is refused at ``$.key``."""
    async with serving() as server, DataClient(*server.data_address) as client:
        await client.send_raw(
            _lines(
                {"item": INCR, "key": 5, "id": 1},
                {"item": INCR, "key": "", "id": 2},
                {"item": INCR, "key": "x" * 257, "id": 3},
                {"item": INCR, "key": None, "id": 4},
                {"item": READ, "key": "x" * 256, "id": 5},
            )
        )
        replies = [await client.reply() for _ in range(5)]
    for r in replies[:3]:
        assert r["error"]["type"] == "ProtocolError"
        assert r["error"]["path"] == "$.key"
    assert "a string of 257 characters" in replies[2]["error"]["found"]
    assert replies[3] == {"id": 4, "output": ACK}  # null means absent
    assert replies[4] == {"id": 5, "output": count(1)}


async def test_keys_survive_a_restart_of_the_server(tmp_path: Path) -> None:
    """With a store, a key applied before a restart is answered after it."""
    spec = as_supervisor_spec(*load_object("examples.counter.service:pipeline"))
    cfg = ServerConfig(port=0, control_port=0)
    for _ in range(2):
        store = SqliteStore(tmp_path / "s.db")
        with anyio.fail_after(60):
            async with (
                open_server(spec, TOKEN, cfg, store=store, request_keys=10) as server,
                DataClient(*server.data_address) as client,
            ):
                await client.send_raw(
                    _lines({"item": INCR, "key": "once"}, {"item": READ, "key": "read"})
                )
                assert [await client.reply() for _ in range(2)] == [
                    {"output": ACK},
                    {"output": count(1)},
                ]
        store.close()
