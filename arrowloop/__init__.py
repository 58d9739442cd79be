"""arrowloop: zero-downtime, typed upgrades of stateful asyncio pipelines.

State machines are written in a small arrow language (or, later, restricted
Python), checked, compiled to straight-line Python, and shipped as data.
This module holds no logic: it is the curated public API.
"""

from __future__ import annotations

from arrowloop.arrows import (
    Arrow,
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
    CheckError,
    CompileError,
    DecodeError,
    LocatedError,
    TypeDefinitionError,
    ValidationError,
)
from arrowloop.machine import AnyMachine, Function, Machine, NativeMachine, native
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
    # types and wire
    "Type",
    "Tagged",
    "from_annotation",
    "Limits",
    # errors
    "ArrowloopError",
    "LocatedError",
    "TypeDefinitionError",
    "ValidationError",
    "CheckError",
    "DecodeError",
    "CompileError",
]
