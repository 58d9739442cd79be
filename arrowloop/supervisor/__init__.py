"""Layer 9, supervisor: OTP-style supervision of pipelines and code changes.

Children (the stages of one pipeline, and nested supervisors) with restart
types and shutdown timeouts, administered at run time (start, terminate,
restart, delete, list); strategies one-for-one, one-for-all and
rest-for-one; restart intensity with escalation; code changes checked
before they enter the pipeline, with a bounded history, rollback,
auto-rollback and adapters for clients of older versions; status as data.
See docs/supervision.md.
"""

from __future__ import annotations

from arrowloop.supervisor._codechange import (
    CodeChange,
    RecordKind,
    RecordResult,
    StageUpgrade,
    UpgradeRecord,
    code_change,
)
from arrowloop.supervisor._intensity import Clock
from arrowloop.supervisor._spec import (
    DEFAULT_SHUTDOWN,
    AutoRollback,
    AutoShutdown,
    ChildSpec,
    Restart,
    Strategy,
    SupervisorSpec,
    child,
    supervisor,
)
from arrowloop.supervisor._status import ChildCounts, ChildInfo, ChildStatus, SupervisorStatus
from arrowloop.supervisor._supervisor import Supervisor, open_supervisor

__all__ = [
    # specs
    "Restart",
    "Strategy",
    "AutoRollback",
    "AutoShutdown",
    "ChildSpec",
    "SupervisorSpec",
    "child",
    "supervisor",
    "DEFAULT_SHUTDOWN",
    "Clock",
    # running
    "Supervisor",
    "open_supervisor",
    # code changes
    "CodeChange",
    "StageUpgrade",
    "code_change",
    "UpgradeRecord",
    "RecordKind",
    "RecordResult",
    # introspection
    "ChildStatus",
    "SupervisorStatus",
    "ChildInfo",
    "ChildCounts",
]
