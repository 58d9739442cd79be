"""The server's two protocols, in-process on 127.0.0.1 with real sockets.

The data port: replies in request order with ids echoed, structured errors
that leave the connection usable, version-tagged clients, a client that
stops reading or vanishes never holding up anyone else, backpressure
reaching a client that sends faster than the pipeline drains, and the
connection limit. The control port: token refusals that close the
connection and change nothing, malformed and oversized requests, limits on
what a change may declare. (tests/test_server_e2e.py runs the real process
and the CLI; tests/test_server_load.py upgrades under load.)
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import anyio.to_thread
import orjson
import pytest
from anyio.abc import SocketStream

from arrowloop import statemachine
from arrowloop.cli import ControlClient, DataClient, RemoteError, Unreachable
from arrowloop.endpoints import LineReader
from arrowloop.runtime import stage
from arrowloop.server import (
    ControlLimits,
    Server,
    ServerConfig,
    Token,
    as_supervisor_spec,
    load_object,
    open_server,
)
from arrowloop.supervisor import CodeChange, StageUpgrade, code_change, supervisor
from arrowloop.upgrade import encode_change
from arrowloop.wire import Limits
from examples.counter import Ack, Count, Output, v1, v2, v3

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

TOKEN = Token("a-test-token-of-enough-length", "test")
READ = {"tag": "ReadCount"}
INCR = {"tag": "IncrCount"}
ACK = {"tag": "Ack", "value": {}}


def count(n: int) -> Any:
    """The JSON form of ``Count(n)``."""
    return {"tag": "Count", "value": {"n": n}}


@asynccontextmanager
async def serving(**config: Any) -> AsyncIterator[Server]:
    """The counter service on ephemeral loopback ports."""
    spec = as_supervisor_spec(*load_object("examples.counter.service:pipeline"))
    cfg = ServerConfig(port=0, control_port=0, **config)
    with anyio.fail_after(60):  # a bound against hangs, not a timing check
        async with open_server(spec, TOKEN, cfg) as server:
            yield server


def control(server: Server, token: str | None = TOKEN.value) -> ControlClient:
    """A control client of ``server``."""
    return ControlClient(*server.control_address, token)


async def raw_request(stream: SocketStream, reader: LineReader, req: Any) -> Any:
    """Send one JSON line and read one reply line."""
    await stream.send(orjson.dumps(req) + b"\n")
    line = await reader.receive_line()
    assert line is not None
    return orjson.loads(line)


# -- the data port -----------------------------------------------------------------------


async def test_replies_come_in_request_order_with_ids() -> None:
    async with serving() as server, DataClient(*server.data_address) as client:
        lines = [orjson.dumps({"item": INCR, "id": i}) + b"\n" for i in range(500)]
        lines.append(orjson.dumps({"item": READ, "id": "last"}) + b"\n")
        await client.send_raw(b"".join(lines))
        replies = [await client.reply() for _ in range(501)]
    assert [r.get("id") for r in replies] == [*range(500), "last"]
    assert all(r["output"] == ACK for r in replies[:500])
    assert replies[-1]["output"] == count(500)


async def test_bad_requests_get_one_error_each_and_the_connection_goes_on() -> None:
    async with serving() as server, DataClient(*server.data_address) as client:
        await client.send_raw(
            b"{not json\n"
            b"[1, 2]\n"
            b'{"item": {"tag": "Nope"}, "id": 7}\n'
            b'{"item": 3}\n'
            b'{"id": 8}\n'
            b'{"item": {"tag": "ReadCount"}, "extra": 1}\n'
            b'{"item": {"tag": "ReadCount"}, "version": "0123"}\n'
            b"\n"
            b'{"item": {"tag": "IncrCount"}}\r\n'
            b'{"item": {"tag": "ReadCount"}, "id": "r"}\n'
        )
        replies = [await client.reply() for _ in range(9)]
    errors = [r["error"] for r in replies[:7]]
    assert [e["type"] for e in errors] == [
        "ProtocolError",
        "ProtocolError",
        "ValidationError",
        "ValidationError",
        "ProtocolError",
        "ProtocolError",
        "SupervisorError",
    ]
    assert errors[2]["path"] == "$.item.tag"
    assert replies[2]["id"] == 7  # an error reply still carries the request's id
    assert errors[3]["path"] == "$.item"
    assert errors[4]["path"] == "$.item"
    assert errors[5]["path"] == "$.extra"
    assert replies[7] == {"output": ACK}
    assert replies[8] == {"id": "r", "output": count(1)}  # nothing bad reached the counter


async def test_ids_and_keys_stay_with_their_requests_within_one_read() -> None:
    """One write mixing requests with and without ids and keys: the server
    notes ids and keys only from the first request that has one, and each
    reply still carries its own request's id (a resent key is not applied)."""
    lines = [
        {"item": INCR},
        {"item": INCR, "id": 1},
        {"item": INCR},
        {"item": INCR, "key": "k"},
        {"item": INCR, "id": "b"},
        {"item": INCR, "key": "k"},
        {"item": READ, "id": 2},
    ]
    async with serving() as server, DataClient(*server.data_address) as client:
        await client.send_raw(b"".join(orjson.dumps(line) + b"\n" for line in lines))
        replies = [await client.reply() for _ in lines]
    assert replies == [
        {"output": ACK},
        {"id": 1, "output": ACK},
        {"output": ACK},
        {"output": ACK},
        {"id": "b", "output": ACK},
        {"output": ACK},
        {"id": 2, "output": count(5)},
    ]


async def test_an_over_long_line_is_refused_and_skipped() -> None:
    async with serving(max_line=256) as server, DataClient(*server.data_address) as client:
        huge = orjson.dumps({"item": INCR, "id": "x" * 1000}) + b"\n"
        await client.send_raw(huge + orjson.dumps({"item": READ}) + b"\n")
        first, second = await client.reply(), await client.reply()
    assert first["error"]["type"] == "ProtocolError"
    assert first["error"]["expected"] == "a line of at most 256 bytes"
    assert second == {"output": count(0)}


async def test_many_clients_at_once_each_get_their_own_replies() -> None:
    async with serving() as server:
        totals: list[int] = []

        async def client(k: int) -> None:
            async with DataClient(*server.data_address) as c:
                await c.send([INCR] * (k + 1))
                replies = [await c.reply() for _ in range(k + 1)]
                assert all(r == {"output": ACK} for r in replies)
                totals.append(len(replies))

        async with anyio.create_task_group() as tg:
            for k in range(20):
                tg.start_soon(client, k)
        async with DataClient(*server.data_address) as c:
            assert await c.call(READ) == count(sum(range(1, 21)))
    assert sorted(totals) == list(range(1, 21))


async def test_a_client_that_stops_reading_holds_up_nobody_else() -> None:
    async with serving(window=16) as server, DataClient(*server.data_address) as stuck:
        # Far more replies than the socket buffers hold: the server's
        # writer for this connection blocks, its window fills, and its
        # reader stops reading: only this connection waits.
        sender = anyio.create_task_group()
        async with sender:
            sender.start_soon(stuck.send, [INCR] * 200_000)
            async with DataClient(*server.data_address) as other:
                for _ in range(50):
                    assert await other.call(INCR) == ACK
                n = (await other.call(READ))["value"]["n"]
                assert 50 <= n < 200_050
            sender.cancel_scope.cancel()


async def test_a_client_that_takes_no_replies_is_disconnected_after_the_send_timeout() -> None:
    async with serving(window=8, socket_buffer=32768, send_timeout=0.3) as server:
        host, port = server.data_address

        def stuck_client() -> tuple[int, str]:
            """Send until held back, take no reply for a while, then read what
            the server sent before it hung up; how many replies, and how it ended."""
            with socket.socket() as sock:
                # A small receive buffer, set before connecting, so replies
                # back up to the server quickly.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect((host, port))
                sock.settimeout(0.5)
                chunk = (orjson.dumps({"item": INCR}) + b"\n") * 1000
                with contextlib.suppress(TimeoutError, OSError):
                    for _ in range(1000):
                        sock.sendall(chunk)
                time.sleep(1.0)  # well past the send timeout, reading nothing
                sock.settimeout(10)
                received = b""
                try:
                    while data := sock.recv(65536):
                        received += data
                    ended = "closed"
                except ConnectionResetError:
                    ended = "reset"
                except TimeoutError:
                    ended = "still open"
                return received.count(b"\n"), ended

        replies, ended = await anyio.to_thread.run_sync(stuck_client)
        assert ended in ("closed", "reset")
        # It hung up with replies still due: more was processed than received.
        processed = (await server.supervisor.status()).children[0].processed
        assert replies < processed
        async with DataClient(*server.data_address) as other:
            assert await other.call(INCR) == ACK
        async with control(server) as ctl:  # counted down: the connection is gone
            await ctl.request("status")
        assert server.connections["data"] == 0


@pytest.mark.slow
async def test_backpressure_stops_reading_from_a_client_that_does_not_read() -> None:
    async with (
        serving(window=8, socket_buffer=32768) as server,
        DataClient(*server.data_address) as client,
    ):
        total = 20_000  # about 700 kB of replies: far more than the buffers hold

        async def processed() -> int:
            stats = await server.supervisor.status()
            return stats.children[0].processed

        async with anyio.create_task_group() as tg:
            tg.start_soon(client.send, [INCR] * total)
            # Wait until the server has stopped taking more from this client.
            last = -1
            while (now := await processed()) != last:
                last = now
                await anyio.sleep(0.2)
            assert last < total  # the client is held back, not buffered without bound
            # Reading the replies releases it; nothing was lost on the way.
            for _ in range(total):
                assert await client.reply() == {"output": ACK}
        assert await client.call(READ) == count(total)


async def test_a_client_that_floods_without_reading_is_held_back_not_buffered() -> None:
    """What the server holds for a client is bounded by the socket buffers and
    the window: its sends block long before it could make the server buffer
    what it sends (anyio leaves accepted transports reading; the server
    pauses them)."""
    async with serving(window=8, socket_buffer=32768) as server:
        host, port = server.data_address

        def flood() -> int:
            chunk = (orjson.dumps({"item": INCR}) + b"\n") * 2000  # about 60 kB
            sent = 0
            with socket.create_connection((host, port)) as sock:
                sock.settimeout(1.0)
                try:
                    while sent < 512 * 2**20:
                        sent += sock.send(chunk)
                except TimeoutError:
                    pass  # held back: the server stopped taking more
            return sent

        sent = await anyio.to_thread.run_sync(flood)
    assert sent < 128 * 2**20


async def test_a_client_that_vanishes_loses_nothing_for_others() -> None:
    async with serving() as server:
        async with DataClient(*server.data_address) as gone:
            await gone.send([INCR] * 1000)
        # Its items were admitted in order and are processed although nobody
        # waits for their replies any more.
        async with DataClient(*server.data_address) as other:
            n = 0
            while n < 1000:  # polled through the protocol, as a client would
                n = (await other.call(READ))["value"]["n"]
            assert n == 1000
            assert await other.call(READ) == count(1000)


async def test_connections_over_the_limit_are_told_the_server_is_busy() -> None:
    async with (
        serving(max_connections=1) as server,
        DataClient(*server.data_address) as first,
    ):
        assert await first.call(READ) == count(0)
        async with DataClient(*server.data_address) as second:
            reply = await second.reply()
            assert reply["error"]["type"] == "ServerBusy"
            with pytest.raises(Unreachable):
                await second.reply()  # and closed
        assert await first.call(INCR) == ACK


async def test_clients_tagged_with_an_old_version_are_still_served() -> None:
    async with serving() as server:
        async with control(server) as ctl:
            change = code_change("counter", v1.machine.version, v2.machine.machine, v2.migrate)
            await ctl.request("upgrade", change=encode_change(change))
            change = code_change(
                "counter", v2.machine.version, v3.machine.machine, v3.migrate, inverse=v3.inverse
            )
            await ctl.request("upgrade", change=encode_change(change))
        async with DataClient(*server.data_address) as client:
            old = v1.machine.version
            assert await client.call(INCR, version=old) == ACK
            assert await client.call(READ, version=old) == count(1)
            # ResetCount is not an input of v1: validated against v1's types.
            with pytest.raises(RemoteError) as info:
                await client.call({"tag": "ResetCount"}, version=old)
            assert info.value.type == "ValidationError"
            with pytest.raises(RemoteError) as info:
                await client.call(READ, version="f" * 64)
            assert info.value.type == "SupervisorError"
            assert await client.call({"tag": "ToggleCount"}) == ACK  # a v3 client


async def test_a_stopping_server_answers_every_request_it_admitted() -> None:
    stop = anyio.Event()

    async def run_server(*, task_status: anyio.abc.TaskStatus[Server]) -> None:
        async with serving(window=64) as server:
            task_status.started(server)
            await stop.wait()

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            server: Server = await tg.start(run_server)
            async with DataClient(*server.data_address) as client:
                # Far more than one read's worth: some are still unread when it stops.
                flood = (orjson.dumps({"item": INCR}) + b"\n") * 200_000
                tg.start_soon(client.send_raw, flood)
                assert await client.reply() == {"output": ACK}
                stop.set()
                replies, closed = 1, ""
                while not closed:
                    try:
                        assert await client.reply() == {"output": ACK}
                        replies += 1
                    except Unreachable as exc:
                        closed = str(exc)
                assert "closed the connection" in closed
                tg.cancel_scope.cancel()  # the rest of the flood has nowhere to go
    # Every increment the counter made was answered, and it stopped early.
    assert server.supervisor.pipeline.state("counter") == replies
    assert replies < 200_000


# -- the control port --------------------------------------------------------------------


async def test_a_wrong_or_missing_token_is_refused_and_the_connection_closed() -> None:
    async with serving() as server:
        for token in ("not-the-right-token-at-all", None):
            async with control(server, token) as ctl:
                with pytest.raises(RemoteError) as info:
                    await ctl.request("rollback", stage="counter")
                assert info.value.type == "AuthenticationError"
                with pytest.raises(Unreachable):
                    await ctl.request("status")
        async with control(server) as ctl:
            assert await ctl.request("history") == []


async def test_malformed_control_requests_are_refused_and_change_nothing() -> None:
    async with serving() as server:
        stream = await anyio.connect_tcp(*server.control_address)
        async with stream:
            reader = LineReader(stream)
            await stream.send(b"{nope\n")
            line = await reader.receive_line()
            assert line is not None
            assert orjson.loads(line)["error"]["type"] == "ProtocolError"
            token = TOKEN.value
            cases: list[tuple[dict[str, Any], str]] = [
                ({"token": token, "op": "launch"}, "$.op"),
                ({"token": token, "op": "status", "extra": 1}, "$.extra"),
                ({"token": token, "op": "rollback"}, "$.stage"),
                ({"token": token, "op": "upgrade", "change": 5}, "$.change"),
                ({"token": token, "op": "upgrade", "change": {"format": "x"}}, "$.change.format"),
            ]
            for req, path in cases:
                reply = await raw_request(stream, reader, {**req, "id": 9})
                assert reply["ok"] is False
                assert reply["id"] == 9
                assert reply["error"]["path"] == path, reply
            reply = await raw_request(stream, reader, {"token": token, "op": "status", "id": [1]})
            assert reply["error"]["path"] == "$.id"
            assert "id" not in reply
            reply = await raw_request(stream, reader, {"token": token, "op": "get_state"})
            assert reply["error"]["type"] == "ProtocolError"
            reply = await raw_request(
                stream, reader, {"token": token, "op": "get_state", "stage": "nope"}
            )
            assert reply["error"]["type"] == "SupervisorError"
            reply = await raw_request(
                stream, reader, {"token": token, "op": "get_state", "stage": "counter"}
            )
            assert reply["result"] == {
                "stage": "counter",
                "version": v1.machine.version,
                "state_type": {"kind": "int"},
                "state": 0,
            }
        async with control(server) as ctl:
            assert await ctl.request("history") == []


async def test_an_oversized_control_request_is_refused_and_the_connection_goes_on() -> None:
    limits = ControlLimits(max_request=4096, program=Limits(max_bytes=4096))
    async with serving(control=limits) as server, control(server) as ctl:
        change = encode_change(
            code_change("counter", v1.machine.version, v2.machine.machine, v2.migrate)
        )
        change["requested_by"] = "x" * 5000
        assert (await ctl.request("auth"))["authenticated"] is True
        with pytest.raises(RemoteError) as info:
            await ctl.request("upgrade", change=change)
        assert info.value.type == "ProtocolError"
        assert info.value.error["expected"] == "a request of at most 4096 bytes"
        status = await ctl.request("status")
        assert status["children"][0]["version"] == v1.machine.version
        assert await ctl.request("history") == []


async def test_a_big_first_request_needs_the_token_first() -> None:
    """Before the token is verified, lines over the small limit are refused and the
    connection closed; after it, the full limit applies (the CLI client authenticates
    first by itself)."""
    async with serving(control=ControlLimits(max_unauthenticated=4096)) as server:
        stream = await anyio.connect_tcp(*server.control_address)
        async with stream:
            reader = LineReader(stream)
            big = {"token": TOKEN.value, "op": "history", "id": "x" * 200, "pad": "y" * 5000}
            reply = await raw_request(stream, reader, big)
            assert reply["error"]["type"] == "ProtocolError"
            assert "before the token is verified" in reply["error"]["expected"]
            assert await reader.receive_line() is None  # closed
        change = encode_change(
            code_change(
                "counter",
                v1.machine.version,
                v3.machine.machine,
                v3.migrate,
                inverse=v3.inverse,
                change_interface=True,
            )
        )
        async with control(server) as ctl:
            assert len(orjson.dumps(change)) > 4096
            versions = await ctl.request("upgrade", change=change)
        assert versions == {"versions": {"counter": v3.machine.version}}


async def test_too_many_record_types_in_one_change_are_refused() -> None:
    async with serving(control=ControlLimits(max_record_types=2)) as server, control(server) as ctl:
        change = encode_change(
            code_change("counter", v1.machine.version, v2.machine.machine, v2.migrate)
        )
        with pytest.raises(RemoteError) as info:
            await ctl.request("upgrade", change=change)
        assert info.value.type == "DecodeError"
        assert "at most 2 distinct record types" in info.value.error["message"]
        assert await ctl.request("history") == []


async def test_an_ill_typed_machine_document_is_refused_at_its_path() -> None:
    async with serving() as server, control(server) as ctl:
        change = encode_change(
            code_change("counter", v1.machine.version, v2.machine.machine, v2.migrate)
        )
        machine = change["stages"][0]["machine"]
        machine["output"] = {"kind": "int"}  # the body produces Count | Ack, not int
        with pytest.raises(RemoteError) as info:
            await ctl.request("upgrade", change=change)
        assert info.value.type == "CheckError"
        assert info.value.error["path"].startswith("$.change.stages[0].machine")
        state = await ctl.request("get_state", stage="counter")
        assert state["version"] == v1.machine.version


async def test_upgrade_rollback_history_and_state_over_the_control_port() -> None:
    async with serving() as server, control(server) as ctl:
        async with DataClient(*server.data_address) as client:
            await client.send([INCR] * 3)
            assert [await client.reply() for _ in range(3)] == [{"output": ACK}] * 3
        for m, prev in ((v2, v1), (v3, v2)):
            change = code_change(
                "counter", prev.machine.version, m.machine.machine, m.migrate, inverse=m.inverse
            )
            result = await ctl.request("upgrade", change=encode_change(change))
            assert result == {"versions": {"counter": m.machine.version}}
        state = await ctl.request("get_state", stage="counter")
        assert state["state"] == [3, False]
        assert state["state_type"] == {
            "kind": "tuple",
            "items": [{"kind": "int"}, {"kind": "bool"}],
        }
        result = await ctl.request("rollback", stage="counter", requested_by="ops")
        # The request's requested_by names who asked, over the document's.
        change = code_change("counter", v2.machine.version, v2.machine.machine, requested_by="doc")
        await ctl.request("upgrade", change=encode_change(change), requested_by="alice")
        assert result == {"versions": {"counter": v2.machine.version}}
        assert (await ctl.request("get_state", stage="counter"))["state"] == 3
        history = await ctl.request("history")
        assert [(r["kind"], r["result"], r["requested_by"]) for r in history] == [
            ("upgrade", "succeeded", "unknown"),
            ("upgrade", "succeeded", "unknown"),
            ("rollback", "succeeded", "ops"),
            ("upgrade", "succeeded", "alice"),
        ]
        with pytest.raises(RemoteError) as info:
            await ctl.request("rollback", stage="nope")
        assert info.value.type in ("UpgradeError", "SupervisorError")


@statemachine(init=0)
def tally(reply: Output, acks: int) -> tuple[int, Output]:
    """Pass replies on, counting the acknowledgements."""
    match reply:
        case Ack():
            return acks + 1, Ack()
        case Count(n):
            return acks, Count(n)


@statemachine(init=0)
def tally_reads(reply: Output, reads: int) -> tuple[int, Output]:
    """Pass replies on, counting the reads instead."""
    match reply:
        case Ack():
            return reads, Ack()
        case Count(n):
            return reads + 1, Count(n)


async def test_a_pipeline_upgrade_changes_two_stages_as_one_cut() -> None:
    spec = supervisor("svc", stage("counter", v1.machine), stage("tally", tally))
    with anyio.fail_after(60):
        async with (
            open_server(spec, TOKEN, ServerConfig(port=0, control_port=0)) as server,
            control(server) as ctl,
            DataClient(*server.data_address) as client,
        ):
            await client.send([INCR, INCR, READ])
            assert [await client.reply() for _ in range(3)][-1] == {"output": count(2)}
            change = CodeChange(
                (
                    StageUpgrade("counter", v1.machine.version, v2.machine, v2.migrate),
                    StageUpgrade("tally", tally.version, tally_reads),
                ),
                requested_by="ops",
            )
            result = await ctl.request("upgrade", change=encode_change(change))
            assert result == {
                "versions": {"counter": v2.machine.version, "tally": tally_reads.version}
            }
            assert await client.call({"tag": "ResetCount"}) == ACK
            assert await client.call(READ) == count(0)
            states = [
                (await ctl.request("get_state", stage=s))["state"] for s in ("counter", "tally")
            ]
            assert states == [0, 3]  # two acks counted before the change, one read after
            (record,) = await ctl.request("history")
            assert record["stages"] == ["counter", "tally"]
            assert record["requested_by"] == "ops"
            # One stage's part refused refuses the whole change: nothing moves.
            stale = CodeChange(
                (
                    StageUpgrade("counter", v2.machine.version, v3.machine, v3.migrate),
                    StageUpgrade("tally", tally.version, tally),
                )
            )
            with pytest.raises(RemoteError, match="expected to replace version"):
                await ctl.request("upgrade", change=encode_change(stale))
            status = await ctl.request("status")
            assert [c["version"] for c in status["children"]] == [
                v2.machine.version,
                tally_reads.version,
            ]


@statemachine(init=0)
def hundred_over(n: int, seen: int) -> tuple[int, int]:
    """100 // n: a step that raises on 0."""
    return seen + 1, 100 // n


async def test_an_item_that_crashes_its_stage_gets_an_error_and_the_rest_go_on() -> None:
    spec = supervisor("svc", stage("div", hundred_over), intensity=5)
    with anyio.fail_after(60):
        async with (
            open_server(spec, TOKEN, ServerConfig(port=0, control_port=0)) as server,
            DataClient(*server.data_address) as client,
            control(server) as ctl,
        ):
            await client.send([2, 0, 4, 5])
            replies = [await client.reply() for _ in range(4)]
            status = await ctl.request("status")
    assert replies[0] == {"output": 50}
    assert replies[1]["error"]["type"] == "StepError"
    assert "ZeroDivisionError" in replies[1]["error"]["message"]
    assert replies[1]["error"]["stage"] == "div"
    assert replies[2:] == [{"output": 25}, {"output": 20}]  # queued behind it, not lost
    (child,) = status["children"]
    # A failing step is the item's fault: the stage keeps its state, no restart.
    assert (child["failed"], child["restarts"], child["running"]) == (1, 0, True)
