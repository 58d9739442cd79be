"""The HTTP side of a server: Prometheus metrics and a live dashboard.

``serve --http-port N`` (or :func:`serve_http` for an embedded server) runs
a small Starlette application with uvicorn inside the server's own event
loop:

* ``GET /metrics`` - the Prometheus exposition (:mod:`._metrics`);
* ``GET /api/status`` - a JSON snapshot for the dashboard: stages with
  their versions, types, counters and queues, the server's counters, and
  the change history;
* ``GET /`` - the dashboard, one static page shipped in the package (no
  CDN: the machine may be offline) that polls ``/api/status``.

It is read-only: nothing here changes the pipeline, so it needs no token;
code changes stay on the token-authenticated control port. It listens on
loopback unless told otherwise.

Starlette and uvicorn are the optional ``web`` extra
(``pip install 'arrowloop[web]'``); :func:`serve_http` says so when they
are missing.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import socket
import time
from collections.abc import Generator
from typing import Any

import anyio
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from arrowloop.errors import SupervisorError
from arrowloop.server._metrics import metrics_registry
from arrowloop.server._serve import Server
from arrowloop.upgrade import record_data

__all__ = ["dashboard_app", "serve_http", "status_snapshot", "WebUnavailable"]


class WebUnavailable(RuntimeError):
    """The optional web dependencies (Starlette, uvicorn) are not installed."""


def _stage_rows(server: Server) -> list[dict[str, Any]]:
    try:
        stats = server.supervisor.pipeline.statistics()
    except SupervisorError:
        return []
    rows = []
    for s in stats:
        step = s.step_seconds
        rows.append(
            {
                "name": s.name,
                "version": s.version,
                "input_type": s.input_type,
                "output_type": s.output_type,
                "state_type": s.state_type,
                "processed": s.processed,
                "failed": s.failed,
                "queue": s.queue.items,
                "capacity": s.queue.capacity,
                "upgrades": s.upgrades,
                "restarts": s.restarts,
                "step_seconds_mean": step.sum / step.count if step and step.count else None,
                "step_seconds_sum": step.sum if step else 0.0,
                "step_seconds_count": step.count if step else 0,
                "last_pause_seconds": (
                    None if s.last_upgrade_pause_ns is None else s.last_upgrade_pause_ns / 1e9
                ),
            }
        )
    return rows


async def status_snapshot(server: Server) -> dict[str, Any]:
    """What the dashboard shows, as JSON data."""
    sup = server.supervisor
    stats = server.data_stats
    try:
        history = [record_data(r) for r in await sup.history()]
    except SupervisorError:  # stopping
        history = []
    return {
        "time": time.time(),
        "supervisor": sup.name,
        "stages": _stage_rows(server),
        "server": {
            "connections": dict(server.connections),
            "requests": stats.requests,
            "replies": stats.replies,
            "errors": dict(stats.errors),
            "latency_seconds_sum": stats.latency.sum,
            "latency_seconds_count": stats.latency.count,
            "control_errors": dict(server.refusals),
        },
        "history": history[-50:],
    }


def _dashboard_html() -> bytes:
    return (
        importlib.resources.files("arrowloop.server").joinpath("static/dashboard.html").read_bytes()
    )


def dashboard_app(server: Server) -> Any:
    """The Starlette application serving ``/``, ``/api/status`` and ``/metrics``.

    Raises:
        WebUnavailable: Starlette is not installed.
    """
    try:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import Response
        from starlette.routing import Route
    except ImportError as exc:  # pragma: no cover - the web extra is in dev
        raise WebUnavailable(
            "the dashboard and /metrics need the web extra: pip install 'arrowloop[web]'"
        ) from exc
    registry = metrics_registry(server)
    page = _dashboard_html()

    async def index(_: Request) -> Response:
        return Response(page, media_type="text/html; charset=utf-8")

    async def status(_: Request) -> Response:
        body = orjson.dumps(await status_snapshot(server))
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/", index),
            Route("/api/status", status),
            Route("/metrics", metrics),
        ]
    )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve_http(
    server: Server,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    task_status: anyio.abc.TaskStatus[tuple[str, int]] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the dashboard and ``/metrics`` for ``server`` until cancelled.

    Start it with ``await task_group.start(serve_http, server, host, port)``
    to get the bound ``(host, port)`` once it listens.

    Raises:
        WebUnavailable: Starlette or uvicorn is not installed.
        OSError: the port cannot be bound.
    """
    app = dashboard_app(server)
    try:
        import uvicorn
    except ImportError as exc:  # pragma: no cover - the web extra is in dev
        raise WebUnavailable(
            "the dashboard and /metrics need the web extra: pip install 'arrowloop[web]'"
        ) from exc

    class _Embedded(uvicorn.Server):
        # The process's signals belong to whoever runs the arrowloop server
        # (the CLI stops gracefully on SIGTERM); uvicorn must not take them.
        @contextlib.contextmanager
        def capture_signals(self) -> Generator[None, None, None]:
            yield

    sock = _bind(host, port)
    bound = sock.getsockname()
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", access_log=False, timeout_graceful_shutdown=2
    )
    web = _Embedded(config)
    stopped = anyio.Event()

    async def run() -> None:
        # Shielded: on cancellation uvicorn is asked to exit and closes its
        # connections itself, instead of leaving them half torn down.
        with anyio.CancelScope(shield=True):
            try:
                await web.serve(sockets=[sock])
            finally:
                sock.close()
                stopped.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        task_status.started((str(bound[0]), int(bound[1])))
        try:
            await anyio.sleep_forever()
        finally:
            web.should_exit = True
            with anyio.CancelScope(shield=True):
                await stopped.wait()
