"""arrowloop: zero-downtime, typed upgrades of stateful asyncio pipelines.

State machines are written in a small arrow language (or in restricted,
annotated Python that compiles to it), checked, compiled to straight-line
Python, shipped as data, run as stages of supervised asyncio pipelines and
upgraded in-band.
This module holds no logic: it is the curated public API.
"""

from __future__ import annotations

from arrowloop.arrows import (
    Arrow,
    ChangeBudget,
    Loop,
    case,
    compose,
    const,
    copy,
    distribute,
    drop,
    fanout,
    first,
    fold,
    fst,
    get,
    id_,
    if_,
    inject,
    inl,
    inr,
    loop,
    make,
    map_,
    prim,
    primitive,
    proj,
    second,
    set_,
    snd,
    split,
)
from arrowloop.check import check_arrow, check_loop, infer
from arrowloop.errors import (
    ArrowloopError,
    BudgetError,
    CheckError,
    ChildSpecError,
    CompileError,
    DecodeError,
    EscalationError,
    FrontendError,
    LocatedError,
    SupervisorError,
    TypeDefinitionError,
    ValidationError,
)
from arrowloop.frontend import PyFunction, PyMachine, arrow, statemachine
from arrowloop.machine import AnyMachine, Function, Machine, NativeMachine, native
from arrowloop.supervisor import (
    AutoRollback,
    AutoShutdown,
    ChildCounts,
    ChildInfo,
    ChildSpec,
    ChildStatus,
    CodeChange,
    Restart,
    StageUpgrade,
    Strategy,
    Supervisor,
    SupervisorSpec,
    SupervisorStatus,
    UpgradeRecord,
    child,
    code_change,
    open_supervisor,
    supervisor,
)
from arrowloop.typesys import Tagged, Type, from_annotation
from arrowloop.wire import Limits

__version__ = "0.1.0"

__all__ = [
    # arrows
    "Arrow",
    "Loop",
    "id_",
    "fst",
    "snd",
    "proj",
    "copy",
    "drop",
    "const",
    "first",
    "second",
    "split",
    "fanout",
    "compose",
    "inl",
    "inr",
    "inject",
    "case",
    "distribute",
    "if_",
    "make",
    "get",
    "set_",
    "prim",
    "map_",
    "fold",
    "loop",
    "primitive",
    # checking
    "check_arrow",
    "check_loop",
    "infer",
    # machines
    "Machine",
    "NativeMachine",
    "Function",
    "AnyMachine",
    "native",
    # the Python front end
    "statemachine",
    "arrow",
    "PyMachine",
    "PyFunction",
    # supervision
    "Restart",
    "Strategy",
    "AutoRollback",
    "AutoShutdown",
    "ChildSpec",
    "SupervisorSpec",
    "child",
    "supervisor",
    "Supervisor",
    "open_supervisor",
    "CodeChange",
    "StageUpgrade",
    "code_change",
    "UpgradeRecord",
    "ChildStatus",
    "SupervisorStatus",
    "ChildInfo",
    "ChildCounts",
    # types and wire
    "Type",
    "Tagged",
    "from_annotation",
    "Limits",
    "ChangeBudget",
    # errors
    "ArrowloopError",
    "LocatedError",
    "TypeDefinitionError",
    "ValidationError",
    "CheckError",
    "DecodeError",
    "CompileError",
    "BudgetError",
    "FrontendError",
    "SupervisorError",
    "ChildSpecError",
    "EscalationError",
]
