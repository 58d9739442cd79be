"""Layer 4, compiler: checked programs to Python functions, and the reference interpreter."""

from __future__ import annotations

from arrowloop.compiler._codegen import (
    CACHE_SIZE,
    cache_info,
    compile_arrow,
    compile_loop,
    compile_owned,
    generated_source,
    owned_step,
)
from arrowloop.compiler._interp import interpret, interpret_step
from arrowloop.compiler._ownership import copier as state_copier
from arrowloop.compiler._ownership import mutable, undo

__all__ = [
    "compile_arrow",
    "compile_loop",
    "compile_owned",
    "owned_step",
    "undo",
    "state_copier",
    "mutable",
    "generated_source",
    "cache_info",
    "CACHE_SIZE",
    "interpret",
    "interpret_step",
]
