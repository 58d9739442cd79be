"""Layer 9, supervisor: OTP-style supervision of pipelines and code changes.

Children (the stages of one pipeline, and nested supervisors) with restart
types and shutdown timeouts, administered at run time (start, terminate,
restart, delete, list); strategies one-for-one, one-for-all and
rest-for-one; restart intensity with escalation; code changes checked
before they enter the pipeline, with a bounded history, rollback,
auto-rollback and adapters for clients of older versions; status as data.
See docs/supervision.md.

The package shares its name with its :func:`supervisor` factory, which the
top-level API also exports. So that ``import arrowloop.supervisor as s`` (and
``arrowloop.supervisor`` as an attribute) is always this module, the
top-level package binds the module, not the function, and the module is
callable, forwarding to the factory: ``from arrowloop import supervisor``
followed by ``supervisor("name", ...)`` keeps working (docs/architecture.md).
"""

from __future__ import annotations

import sys

from arrowloop.supervisor._codechange import (
    CodeChange,
    RecordKind,
    RecordResult,
    StageUpgrade,
    UpgradeRecord,
    code_change,
)
from arrowloop.supervisor._intensity import Clock
from arrowloop.supervisor._module import CallableModule as _CallableModule
from arrowloop.supervisor._spec import (
    DEFAULT_SHUTDOWN,
    AutoRollback,
    AutoShutdown,
    ChildSpec,
    Restart,
    RestartName,
    Strategy,
    StrategyName,
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
    "RestartName",
    "StrategyName",
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

sys.modules[__name__].__class__ = _CallableModule
