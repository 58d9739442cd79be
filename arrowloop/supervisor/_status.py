"""Introspection records: a supervisor's status as plain, frozen data.

What :meth:`Supervisor.status` returns; made of strings, numbers and
tuples so a later layer can send it over the wire as it is. Part of layer 9
(the supervisor).
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["ChildStatus", "SupervisorStatus"]


@attrs.frozen
class ChildStatus:
    """One child of a supervisor.

    Attributes:
        name: the child's name.
        kind: ``stage`` or ``supervisor``.
        restart: its restart type (``permanent``, ``transient``, ``temporary``).
        running: whether it runs now (a child that was not restarted does not).
        restarts: how often the supervisor restarted (or reset) it.
        version: stages: the version (content hash) of the machine it runs.
        state_type: stages: its state type, rendered.
        queue_depth: stages: items waiting in its channel.
        processed: stages: items it has stepped.
        failed: stages: items it crashed on.
        upgrades: stages: code changes applied to it (rollbacks included).
        supervisor: nested supervisors: their own status, while running.
    """

    name: str
    kind: Literal["stage", "supervisor"]
    restart: str
    running: bool
    restarts: int
    version: str | None = None
    state_type: str | None = None
    queue_depth: int = 0
    processed: int = 0
    failed: int = 0
    upgrades: int = 0
    supervisor: SupervisorStatus | None = None


@attrs.frozen
class SupervisorStatus:
    """A supervisor and its children (in start order)."""

    name: str
    strategy: str
    intensity: int
    period: float
    running: bool
    children: tuple[ChildStatus, ...]
    history: int
