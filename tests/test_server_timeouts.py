"""Idle and pre-authentication timeouts: a connection cannot sit on a port.

Unauthenticated control connections are closed at the auth deadline even if
they keep sending junk; idle connections (nothing sent, no reply owed) are
closed on both ports; a client that keeps working is never cut off.
"""

from __future__ import annotations

import anyio
import orjson
import pytest

from arrowloop.endpoints import LineReader
from arrowloop.server import ServerConfig
from tests.test_server_protocol import TOKEN, serving

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

SHORT = 0.3  # seconds: small so the tests are quick; they check that it happens


async def _closed_by_server(stream: anyio.abc.SocketStream) -> bool:
    """Read until the server closes the connection (True) or 10 s pass (False)."""
    with anyio.move_on_after(10):
        try:
            while await stream.receive():
                pass
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError):
            pass
        return True
    return False


async def test_an_idle_data_connection_is_closed() -> None:
    """A data connection that sends nothing is closed after the idle timeout."""
    async with serving(idle_timeout=SHORT) as server:
        stream = await anyio.connect_tcp(*server.data_address)
        async with stream:
            assert await _closed_by_server(stream)
        assert server.connections["data"] == 0


async def test_a_busy_data_connection_is_not_cut_off() -> None:
    """Requests keep a data connection open past the idle timeout."""
    async with serving(idle_timeout=SHORT) as server:
        stream = await anyio.connect_tcp(*server.data_address)
        async with stream:
            reader = LineReader(stream)
            for _ in range(4):
                await stream.send(b'{"item": {"tag": "IncrCount"}}\n')
                assert orjson.loads(await reader.receive_line() or b"{}") == {
                    "output": {"tag": "Ack", "value": {}}
                }
                await anyio.sleep(SHORT / 2)
            await stream.send(b'{"item": {"tag": "ReadCount"}}\n')
            reply = orjson.loads(await reader.receive_line() or b"{}")
        assert reply == {"output": {"tag": "Count", "value": {"n": 4}}}


async def test_an_unauthenticated_control_connection_is_closed_at_the_deadline() -> None:
    """Junk lines without the token do not keep a control connection open."""
    async with serving(auth_timeout=SHORT, idle_timeout=None) as server:
        stream = await anyio.connect_tcp(*server.control_address)
        async with stream:
            reader = LineReader(stream)
            closed = False
            with anyio.move_on_after(10):
                while True:
                    try:
                        await stream.send(b"{not json\n")
                        line = await reader.receive_line()
                    except (anyio.BrokenResourceError, ConnectionError):
                        line = None
                    if line is None:
                        closed = True
                        break
                    await anyio.sleep(SHORT / 3)
            assert closed


async def test_an_authenticated_control_connection_lives_until_idle() -> None:
    """With the token, requests go on past the auth deadline; idleness then closes it."""
    async with serving(auth_timeout=SHORT, idle_timeout=2 * SHORT) as server:
        stream = await anyio.connect_tcp(*server.control_address)
        async with stream:
            reader = LineReader(stream)
            for _ in range(4):
                req = {"token": TOKEN.value, "op": "history"}
                await stream.send(orjson.dumps(req) + b"\n")
                reply = orjson.loads(await reader.receive_line() or b"{}")
                assert reply["ok"] is True
                await anyio.sleep(SHORT / 2)  # past the auth deadline in all
            assert await _closed_by_server(stream)


def test_timeouts_are_checked() -> None:
    """Timeouts must be positive numbers of seconds or None."""
    with pytest.raises(ValueError, match="idle_timeout"):
        ServerConfig(idle_timeout=0)
    with pytest.raises(ValueError, match="auth_timeout"):
        ServerConfig(auth_timeout=-1.0)
