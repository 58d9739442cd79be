"""Introspection records: a supervisor's status as plain, frozen data.

What :meth:`Supervisor.status` returns; made of strings, numbers and
tuples so a later layer can send it over the wire as it is. Part of layer 9
(the supervisor).
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["ChildStatus", "SupervisorStatus", "ChildInfo", "ChildCounts"]

#: A child's state in a listing: OTP's pid, ``restarting`` or ``undefined``.
ChildState = Literal["running", "restarting", "terminated"]


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
        queue_depth: stages: items waiting in its channel (and, for a
            terminated stage, the batch it holds unstepped).
        processed: stages: items it has stepped.
        failed: stages: items it crashed on.
        upgrades: stages: code changes applied to it (rollbacks included).
        supervisor: nested supervisors: their own status, while running.
        state: ``running``, ``restarting`` (between a crash and the end of
            its restart) or ``terminated`` (not restarted, or stopped by
            ``terminate_child``).
        abandoned: stages: items answered with PipelineClosed (or dropped,
            if plain) because the stage was stopped for good while its
            pipeline closed.
        shutdown: its shutdown spec (seconds; ``None`` is infinity).
        significant: whether its ending may stop the supervisor.
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
    state: ChildState = "running"
    abandoned: int = 0
    shutdown: float | None = None
    significant: bool = False


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


@attrs.frozen
class ChildInfo:
    """One child in :meth:`Supervisor.which_children` (OTP's ``{Id, Child,
    Type, Modules}``).

    Attributes:
        name: the child's id.
        state: ``running``, ``restarting`` or ``terminated`` (OTP's pid,
            ``restarting``, ``undefined``).
        kind: ``stage`` (OTP's worker) or ``supervisor``.
        restart: its restart type.
        shutdown: its shutdown spec (seconds; ``None`` is infinity).
        version: stages: the version of the machine it runs (OTP's
            modules); ``None`` for supervisors (OTP's ``dynamic``).
        significant: whether its ending may stop the supervisor.
    """

    name: str
    state: ChildState
    kind: Literal["stage", "supervisor"]
    restart: str
    shutdown: float | None
    version: str | None
    significant: bool = False


@attrs.frozen
class ChildCounts:
    """What :meth:`Supervisor.count_children` returns (OTP's proplist).

    Attributes:
        specs: every child spec the supervisor holds.
        active: children running now.
        supervisors: nested supervisor specs.
        stages: stage specs (OTP's workers).
    """

    specs: int
    active: int
    supervisors: int
    stages: int
