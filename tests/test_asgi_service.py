"""The embedding example (examples/asgi_service): a Starlette application that owns
a supervised pipeline in its lifespan, run under uvicorn and called with httpx,
keeps answering every request while its control port upgrades and rolls back
the counter."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

from arrowloop.cli import ChangeOptions, ControlClient, build_change
from arrowloop.server import Server, ServerConfig, load_token
from examples.asgi_service.app import create_app

pytestmark = [pytest.mark.anyio, pytest.mark.e2e]

CLIENTS = 4
#: Requests each client has answered before the next control step is taken.
STEP = 25


class _Uvicorn:
    """The application under a real uvicorn server on a free loopback port."""

    def __init__(self, tmp: Path) -> None:
        self.token_file = tmp / "token"
        self.app = create_app(
            token_file=self.token_file, config=ServerConfig(port=0, control_port=0)
        )
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.socket = socket.socket()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[str]:
        """Serve on a socket listening already (requests made before the lifespan
        has started wait in the backlog); yield the base URL; stop at the end."""
        with self.socket:
            self.socket.bind(("127.0.0.1", 0))
            self.socket.listen()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.server.serve, [self.socket])
                yield f"http://127.0.0.1:{self.socket.getsockname()[1]}"
                # uvicorn answers what is in flight, then runs the lifespan's
                # shutdown, which stops arrowloop's server.
                self.server.should_exit = True

    @property
    def arrowloop(self) -> Server:
        server: Server = self.app.state.arrowloop
        return server

    def control(self) -> ControlClient:
        token = load_token(self.token_file)
        assert token is not None
        host, port = self.arrowloop.control_address
        return ControlClient(host, port, token.value)


async def _versions(ctl: ControlClient) -> str:
    status = await ctl.request("status")
    version: str = status["children"][0]["version"]
    return version


@pytest.mark.slow
async def test_http_requests_survive_an_upgrade_and_a_rollback(tmp_path: Path) -> None:
    """Four HTTP clients send increments while the control port upgrades the counter
    to v2 and rolls it back: every request is answered with Ack, none fails, and the
    count is the number of increments."""
    svc = _Uvicorn(tmp_path)
    answered = [0] * CLIENTS
    failed: list[Any] = []
    stop = anyio.Event()
    progress = anyio.Condition()

    async def client(i: int, base: str) -> None:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            while not stop.is_set():
                reply = await http.post("/call", json={"item": {"tag": "IncrCount"}})
                if reply.status_code != 200 or reply.json() != {
                    "output": {"tag": "Ack", "value": {}}
                }:
                    failed.append((reply.status_code, reply.text))
                answered[i] += 1
                async with progress:
                    progress.notify_all()

    async def after_more_traffic() -> None:
        target = min(answered) + STEP
        async with progress:
            while min(answered) < target and not failed:
                await progress.wait()

    async with svc.running() as base:
        async with anyio.create_task_group() as clients:
            for i in range(CLIENTS):
                clients.start_soon(client, i, base)
            await after_more_traffic()  # the lifespan has started the server
            async with svc.control() as ctl:
                v1 = await _versions(ctl)
                change = build_change(ChangeOptions("arrowloop.examples.counter.v2", "counter", v1))
                upgraded = await ctl.request("upgrade", change=change)
                await after_more_traffic()
                rolled = await ctl.request("rollback", stage="counter")
                await after_more_traffic()
            stop.set()
        async with httpx.AsyncClient(base_url=base) as http:
            count = (await http.post("/call", json={"item": {"tag": "ReadCount"}})).json()
            status = (await http.get("/status")).json()

    assert failed == []
    assert upgraded["versions"]["counter"] != v1
    assert rolled == {"versions": {"counter": v1}}
    assert count == {"output": {"tag": "Count", "value": {"n": sum(answered)}}}
    assert [c["upgrades"] for c in status["children"]] == [2]


async def test_http_errors_carry_the_error_object(tmp_path: Path) -> None:
    """A bad item is a 422 with the data port's error object; a bad body is a 400."""
    svc = _Uvicorn(tmp_path)
    async with svc.running() as base, httpx.AsyncClient(base_url=base) as http:
        bad_item = await http.post("/call", json={"item": {"tag": "Fly"}})
        bad_body = await http.post("/call", content=b"[1]")
    assert bad_item.status_code == 422
    error = bad_item.json()["error"]
    assert (error["type"], error["path"]) == ("ValidationError", "$.item.tag")
    assert bad_body.status_code == 400
    assert bad_body.json()["error"]["type"] == "ProtocolError"
