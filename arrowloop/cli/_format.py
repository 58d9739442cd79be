"""Readable renderings of control results and replies for the terminal.

Every string a client or a server could have chosen (who asked for a change,
a refusal's reason, names, error messages) is printed with its control
characters escaped: a terminal must not be driven by what was sent to it.
"""

from __future__ import annotations

import re
import time
from typing import Any, Final

import orjson

__all__ = [
    "printable",
    "short",
    "show_json",
    "show_status",
    "show_history",
    "show_state",
    "show_error",
]

# C1 controls: JSON allows them raw, some terminals act on them (0x9b is CSI).
_C1: Final = re.compile("[\x80-\x9f]")


def printable(text: object) -> str:
    """``text`` as one line with every unprintable character escaped (``\\x1b``, ``\\n``)."""
    s = str(text)
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in s)


def short(version: str | None) -> str:
    """The first 12 hex digits of a version (how versions are shown)."""
    return "-" if not version else printable(version[:12])


def show_json(data: Any) -> str:
    """Compact JSON, as on the wire (C1 controls escaped as ``\\u0080``...)."""
    text = orjson.dumps(data).decode()
    return _C1.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def show_status(status: dict[str, Any], indent: str = "") -> list[str]:
    """A supervisor's status, one line per child."""
    lines = [
        f"{indent}supervisor {printable(status['name'])}: {printable(status['strategy'])}, "
        f"{'running' if status['running'] else 'stopped'}, "
        f"intensity {status['intensity']} per {status['period']:g} s, "
        f"{status['history']} change(s) in history"
    ]
    for c in status["children"]:
        # `state` (running, restarting, terminated) is absent from older servers.
        state = printable(c.get("state") or ("running" if c["running"] else "stopped"))
        if c["kind"] == "stage":
            lines.append(
                f"{indent}  stage {printable(c['name'])}: {state}, "
                f"version {short(c['version'])}, "
                f"state {printable(c['state_type'])}, "
                f"processed {c['processed']}, failed {c['failed']}, "
                f"queued {c['queue_depth']}, restarts {c['restarts']}, upgrades {c['upgrades']}"
            )
        else:
            lines.append(
                f"{indent}  supervisor {printable(c['name'])}: {state}, restarts {c['restarts']}"
            )
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
            f"{printable(s)} {short(a)} -> {short(b)}"
            for s, a, b in zip(r["stages"], r["from_versions"], r["to_versions"], strict=False)
        )
        kind, result, who = (printable(r[k]) for k in ("kind", "result", "requested_by"))
        line = f"#{r['seq']} {at} {kind} {result}: {moves} (by {who})"
        if r.get("reason"):
            line += f"\n    reason: {printable(r['reason'])}"
        lines.append(line)
    return lines


def show_state(result: dict[str, Any]) -> list[str]:
    """A stage's state and version."""
    where = f"stage {printable(result['stage'])} (version {short(result['version'])})"
    return [f"{where}: {show_json(result['state'])}"]


def show_error(error: dict[str, Any]) -> list[str]:
    """An error reply: its message, then where and what was expected."""
    lines = [f"{printable(error.get('type', 'Error'))}: {printable(error.get('message', ''))}"]
    cause = error.get("cause")
    if isinstance(cause, dict):
        why = f"{printable(cause.get('type', 'Error'))}: {printable(cause.get('message', ''))}"
        lines.append(f"  because {why}")
    return lines
