"""Readable renderings of control results and replies for the terminal."""

from __future__ import annotations

import time
from typing import Any

import orjson

__all__ = ["short", "show_json", "show_status", "show_history", "show_state", "show_error"]


def short(version: str | None) -> str:
    """The first 12 hex digits of a version (how versions are shown)."""
    return "-" if not version else version[:12]


def show_json(data: Any) -> str:
    """Compact JSON, as on the wire."""
    return orjson.dumps(data).decode()


def show_status(status: dict[str, Any], indent: str = "") -> list[str]:
    """A supervisor's status, one line per child."""
    lines = [
        f"{indent}supervisor {status['name']}: {status['strategy']}, "
        f"{'running' if status['running'] else 'stopped'}, "
        f"intensity {status['intensity']} per {status['period']:g} s, "
        f"{status['history']} change(s) in history"
    ]
    for c in status["children"]:
        state = "running" if c["running"] else "stopped"
        if c["kind"] == "stage":
            lines.append(
                f"{indent}  stage {c['name']}: {state}, version {short(c['version'])}, "
                f"state {c['state_type']}, processed {c['processed']}, failed {c['failed']}, "
                f"queued {c['queue_depth']}, restarts {c['restarts']}, upgrades {c['upgrades']}"
            )
        else:
            lines.append(f"{indent}  supervisor {c['name']}: {state}, restarts {c['restarts']}")
            if c.get("supervisor"):
                lines.extend(show_status(c["supervisor"], indent + "    "))
    return lines


def show_history(records: list[dict[str, Any]]) -> list[str]:
    """The history, one line per record, oldest first."""
    if not records:
        return ["no code changes yet"]
    lines = []
    for r in records:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r["at"]))
        moves = ", ".join(
            f"{s} {short(a)} -> {short(b)}"
            for s, a, b in zip(r["stages"], r["from_versions"], r["to_versions"], strict=False)
        )
        line = f"#{r['seq']} {at} {r['kind']} {r['result']}: {moves} (by {r['requested_by']})"
        if r.get("reason"):
            line += f"\n    reason: {r['reason']}"
        lines.append(line)
    return lines


def show_state(result: dict[str, Any]) -> list[str]:
    """A stage's state and version."""
    where = f"stage {result['stage']} (version {short(result['version'])})"
    return [f"{where}: {show_json(result['state'])}"]


def show_error(error: dict[str, Any]) -> list[str]:
    """An error reply: its message, then where and what was expected."""
    lines = [f"{error.get('type', 'Error')}: {error.get('message', '')}"]
    cause = error.get("cause")
    if isinstance(cause, dict):
        lines.append(f"  because {cause.get('type', 'Error')}: {cause.get('message', '')}")
    return lines
