"""The counter served over HTTP by a Starlette application, upgraded live.

The application's lifespan runs the counter service under arrowloop's
server (:func:`~arrowloop.server.open_server`): the supervisor, the
token-authenticated control port, so that ``python -m arrowloop upgrade``,
``rollback``, ``status`` and the rest work against it as against ``serve``,
and the TCP data port. Its HTTP routes call the same supervisor:

* ``POST /call`` with ``{"item": <JSON item>}`` (and optionally
  ``"version"``, the version the client was written for) answers
  ``{"output": <JSON output>}``, or ``{"error": {...}}`` with a 4xx or 5xx
  status, as the data port would (docs/protocol.md);
* ``GET /status`` answers the supervisor's status as the control port's
  ``status`` does.

Run it with uvicorn (``pip install 'arrowloop[asgi]'``)::

    uvicorn examples.asgi_service.app:app

The module-level ``app`` serves :mod:`arrowloop.examples.counter.service`
with the control port on 127.0.0.1:7401, its token where ``serve`` keeps it
(``ARROWLOOP_TOKEN``, ``ARROWLOOP_TOKEN_FILE`` or the default token file,
made on first start) and the TCP data port on a free loopback port;
``ARROWLOOP_CONTROL_PORT`` and ``ARROWLOOP_DATA_PORT`` choose other ports.
:func:`create_app` builds one for another spec or other ports.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from arrowloop.errors import (
    PipelineClosed,
    StepError,
    SupervisorError,
    ValidationError,
    error_data,
)
from arrowloop.examples.counter.service import pipeline as counter_service
from arrowloop.server import (
    DEFAULT_CONTROL_PORT,
    Server,
    ServerConfig,
    open_server,
    server_token,
)
from arrowloop.supervisor import SupervisorSpec
from arrowloop.upgrade import status_data

__all__ = ["create_app", "app"]

#: HTTP status per error type; anything else is the server's fault (500).
_STATUS: dict[type[Exception], int] = {
    ValidationError: 422,  # the item is not an input of the version named
    SupervisorError: 409,  # the version named cannot be served
    StepError: 500,  # the machine failed on the item (the stage keeps its state)
    PipelineClosed: 503,  # shutting down
}


def _json(data: Any, status: int = 200) -> Response:
    # orjson, as the data port: the same JSON forms, and no float surprises.
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _error(exc: Exception) -> Response:
    status = next((s for t, s in _STATUS.items() if isinstance(exc, t)), 500)
    return _json({"error": error_data(exc)}, status)


async def _call(request: Request) -> Response:
    server: Server = request.state.server
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        return _json({"error": {"type": "ProtocolError", "message": str(exc)}}, 400)
    if type(body) is not dict or "item" not in body:
        message = 'expected an object {"item": ...}'
        return _json({"error": {"type": "ProtocolError", "message": message}}, 400)
    version = body.get("version")
    try:
        # The item's JSON form is decoded through the client view of
        # ``version`` when it is admitted, so a request that meets an upgrade
        # is decoded and answered with one set of types (as on the data port).
        ticket = await server.supervisor.submit(body["item"], version=version, decode=True)
        output = await ticket.result()
    except Exception as exc:
        return _error(exc)
    assert ticket.view is not None  # decode=True always admits through a view
    return _json({"output": ticket.view.encode(output)})


async def _status(request: Request) -> Response:
    server: Server = request.state.server
    return _json(status_data(await server.supervisor.status()))


def create_app(
    spec: SupervisorSpec = counter_service,
    *,
    token_file: Path | None = None,
    config: ServerConfig | None = None,
) -> Starlette:
    """A Starlette application serving ``spec`` over HTTP, with arrowloop's
    control port beside it (``config``: ports and limits, as for ``serve``;
    ``token_file``: where the control token is, made on first start)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        # The token is read (or made) at start-up, as ``serve`` does, so a
        # bad token file stops the application before it takes requests.
        token = server_token(token_file)
        async with open_server(spec, token, config or ServerConfig(port=0)) as server:
            app.state.arrowloop = server  # for tests and operators' tooling
            yield {"server": server}
        # Leaving the block drains the pipeline: uvicorn runs the lifespan's
        # shutdown after the HTTP requests in flight have been answered.

    return Starlette(
        routes=[Route("/call", _call, methods=["POST"]), Route("/status", _status)],
        lifespan=lifespan,
    )


def _env_port(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


app = create_app(
    config=ServerConfig(
        port=_env_port("ARROWLOOP_DATA_PORT", 0),
        control_port=_env_port("ARROWLOOP_CONTROL_PORT", DEFAULT_CONTROL_PORT),
    )
)
