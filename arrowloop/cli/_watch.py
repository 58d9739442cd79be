"""``status --watch``: a live terminal view of a running server.

Polls the control port's ``status`` and ``history`` once per interval and
redraws, with ``rich``, a table of the stages (version, items per second
since the last poll, queue, failures, restarts, upgrades) and the last
changes. Rates are differences between two polls, as on the dashboard.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any, Protocol

import anyio
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = ["watch_status", "render_status", "Requests"]


class Requests(Protocol):
    """What the view polls: a control client, or a distributed pipeline's
    segments gathered through the broker (``status --nats --watch``)."""

    async def request(self, op: str, **fields: Any) -> Any:
        """The result of the control operation ``op``."""


def _stages(status: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for child in status.get("children", []):
        name = f"{path}{child['name']}"
        if child.get("kind") == "stage":
            yield name, child
        elif child.get("supervisor"):
            yield from _stages(child["supervisor"], f"{name}/")


def render_status(
    status: dict[str, Any],
    history: list[dict[str, Any]],
    before: dict[str, Any] | None = None,
    seconds: float = 1.0,
) -> Group:
    """The watch view of one poll (``before``: the previous poll's status)."""
    previous = dict(_stages(before)) if before is not None else {}
    title = f"supervisor {status.get('name', '?')}"
    if "segments" in status:  # a distributed pipeline (a segment's port, or --nats)
        title = f"pipeline {status.get('name', '?')} ({status.get('strategy', '')})"
    table = Table(title=title, expand=True)
    for column in ("stage", "version", "items/s", "queue", "processed", "failed", "restarts"):
        table.add_column(column, justify="left" if column in ("stage", "version") else "right")
    table.add_column("upgrades", justify="right")
    for name, child in _stages(status):
        old = previous.get(name)
        rate = "-"
        if old is not None and seconds > 0:
            rate = f"{max(0, child['processed'] - old['processed']) / seconds:,.0f}"
        table.add_row(
            Text(name, style="bold" if child.get("running") else "dim"),
            Text(str(child.get("version") or "-")[:12], style="cyan"),
            rate,
            str(child.get("queue_depth", 0)),
            f"{child.get('processed', 0):,}",
            str(child.get("failed", 0)),
            str(child.get("restarts", 0)),
            str(child.get("upgrades", 0)),
        )
    changes = Table(title="last changes", expand=True)
    for column in ("#", "kind", "by", "stages", "result", "reason"):
        changes.add_column(column)
    for r in history[-5:]:
        style = "green" if r["result"] == "succeeded" else "red"
        changes.add_row(
            str(r["seq"]),
            r["kind"],
            r["requested_by"],
            ", ".join(r["stages"]),
            Text(r["result"], style=style),
            r.get("reason", "")[:80],
        )
    return Group(table, changes)


async def watch_status(
    ctl: Requests,
    interval: float = 1.0,
    count: int | None = None,
    console: Console | None = None,
) -> None:
    """Redraw the view every ``interval`` seconds (``count`` times, or until
    interrupted)."""
    before: dict[str, Any] | None = None
    at = time.monotonic()
    shown = 0
    with Live(console=console or Console(), auto_refresh=False) as live:
        while count is None or shown < count:
            status = await ctl.request("status")
            history = await ctl.request("history")
            now = time.monotonic()
            live.update(render_status(status, history, before, now - at), refresh=True)
            before, at = status, now
            shown += 1
            if count is None or shown < count:
                await anyio.sleep(interval)
