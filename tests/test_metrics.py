"""Metrics and the dashboard's data: /metrics parses as Prometheus text and
counts what was really done; /api/status and / serve the dashboard.

A real server on loopback with its HTTP side (``serve_http``), real clients
on the data and control ports, and the scrape made with httpx as Prometheus
would make it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from arrowloop.cli import ControlClient, DataClient, RemoteError
from arrowloop.server import (
    Server,
    ServerConfig,
    Token,
    as_supervisor_spec,
    load_object,
    open_server,
    serve_http,
)
from arrowloop.supervisor import code_change
from arrowloop.upgrade import encode_change
from examples.counter import v1, v2
from tests.serving import ROOT, server_env

pytestmark = pytest.mark.anyio

TOKEN = Token("a-test-token-of-enough-length", "test")
INCR = {"tag": "IncrCount"}


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[Server, str]]:
    spec = as_supervisor_spec(*load_object("examples.counter.service:pipeline"))
    with anyio.fail_after(60):  # a bound against hangs, not a timing check
        async with (
            open_server(spec, TOKEN, ServerConfig(port=0, control_port=0)) as server,
            anyio.create_task_group() as tg,
        ):
            host, port = await tg.start(serve_http, server, "127.0.0.1", 0)
            yield server, f"http://{host}:{port}"
            tg.cancel_scope.cancel()


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_count_what_was_done() -> None:
    async with serving() as (server, base):
        async with DataClient(*server.data_address) as client:
            await client.send_raw(b'{"item": {"tag": "IncrCount"}}\n' * 300)
            for _ in range(300):
                await client.reply()
            await client.send_raw(b'{"item": {"tag": "Nope"}}\n')
            bad = await client.reply()
            assert bad["error"]["type"] == "ValidationError"
        change = encode_change(
            code_change("counter", v1.machine.version, v2.machine.machine, v2.migrate)
        )
        async with ControlClient(*server.control_address, TOKEN.value) as ctl:
            await ctl.request("upgrade", change=change)
        async with DataClient(*server.data_address) as client:
            await client.call(INCR)  # ends the upgrade's pause (measured to the next item)
        with pytest.raises(RemoteError):
            async with ControlClient(*server.control_address, "not-the-token-at-all") as wrong:
                await wrong.request("status")
        async with httpx.AsyncClient() as http:
            resp = await http.get(f"{base}/metrics")
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/plain")
        got = _samples(resp.text)

    stage = (("stage", "counter"),)
    assert got[("arrowloop_stage_items_total", stage)] == 301
    assert got[("arrowloop_stage_failures_total", stage)] == 0
    assert got[("arrowloop_stage_upgrades_total", stage)] == 1
    assert got[("arrowloop_stage_upgrade_pause_seconds_count", stage)] == 1
    assert got[("arrowloop_stage_step_seconds_count", stage)] >= 1
    assert got[("arrowloop_stage_batch_items_sum", stage)] == 301
    assert got[("arrowloop_stage_queue_capacity", stage)] > 0
    info = {k: v for k, v in got.items() if k[0] == "arrowloop_stage_version_info"}
    ((_, labels),) = info
    assert dict(labels)["version"] == v2.machine.version
    assert got[("arrowloop_server_requests_total", ())] == 302
    assert got[("arrowloop_server_replies_total", (("outcome", "ok"),))] == 301
    assert got[("arrowloop_server_replies_total", (("outcome", "ValidationError"),))] == 1
    assert got[("arrowloop_server_request_latency_seconds_count", ())] >= 1
    assert got[("arrowloop_server_control_errors_total", (("type", "AuthenticationError"),))] == 1
    assert got[("arrowloop_server_auth_failures_total", ())] == 1
    assert got[("arrowloop_server_connections_accepted_total", (("port", "data"),))] == 2
    assert got[("arrowloop_server_connection_limit", (("port", "control"),))] == 16


async def test_the_dashboard_and_its_status() -> None:
    async with serving() as (server, base), httpx.AsyncClient() as http:
        async with DataClient(*server.data_address) as client:
            for _ in range(5):
                await client.call(INCR)
        page = await http.get(f"{base}/")
        status = (await http.get(f"{base}/api/status")).json()
    assert page.status_code == 200
    assert "<title>arrowloop</title>" in page.text
    assert "/api/status" in page.text  # the page polls it; no external assets
    assert "http://" not in page.text.replace("http://www.w3.org", "")
    (stage,) = status["stages"]
    assert stage["name"] == "counter"
    assert stage["version"] == v1.machine.version
    assert stage["processed"] == 5
    assert status["server"]["replies"] == 5
    assert status["history"] == []


def test_serve_with_an_http_port_serves_metrics(tmp_path: Path) -> None:
    """The CLI: ``serve --http-port 0`` says where, writes it to the ready file,
    and a scrape works while it runs."""
    ready = tmp_path / "ready.json"
    cmd = [sys.executable, "-m", "arrowloop", "serve", "examples.counter.service:pipeline"]
    cmd += ["--port", "0", "--control-port", "0", "--http-port", "0"]
    cmd += ["--ready-file", str(ready), "--token-file", str(tmp_path / "token")]
    with subprocess.Popen(
        cmd, cwd=ROOT, env=server_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    ) as proc:
        try:
            deadline = time.monotonic() + 60
            while not ready.exists():
                assert proc.poll() is None
                assert time.monotonic() < deadline
                time.sleep(0.05)
            info: dict[str, Any] = json.loads(ready.read_text())
            http = info["http"]
            resp = httpx.get(f"http://{http['host']}:{http['port']}/metrics", timeout=10)
            assert resp.status_code == 200
            assert "arrowloop_stage_items_total" in resp.text
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out.decode()
    assert b"dashboard" in out


async def test_status_watch_draws_rates_and_changes() -> None:
    """The live terminal view: the stage, its version, a rate from two polls,
    and the change history."""
    from io import StringIO

    from rich.console import Console

    from arrowloop.cli._watch import watch_status

    async with serving() as (server, _):
        async with DataClient(*server.data_address) as client:
            for _ in range(3):
                await client.call(INCR)
        change = encode_change(
            code_change("counter", v1.machine.version, v2.machine.machine, v2.migrate)
        )
        out = StringIO()
        async with ControlClient(*server.control_address, TOKEN.value) as ctl:
            await ctl.request("upgrade", change=change, requested_by="watcher")
            await watch_status(
                ctl, interval=0.05, count=2, console=Console(file=out, width=140, color_system=None)
            )
    text = out.getvalue()
    assert "counter" in text
    assert v2.machine.version[:12] in text
    assert "items/s" in text
    assert "watcher" in text
    assert "succeeded" in text
