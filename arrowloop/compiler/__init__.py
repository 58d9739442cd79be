"""Layer 4, compiler: checked programs to Python functions, and the reference interpreter."""

from __future__ import annotations

from arrowloop.compiler._codegen import (
    CACHE_SIZE,
    cache_info,
    compile_arrow,
    compile_loop,
    generated_source,
)
from arrowloop.compiler._interp import interpret, interpret_step

__all__ = [
    "compile_arrow",
    "compile_loop",
    "generated_source",
    "cache_info",
    "CACHE_SIZE",
    "interpret",
    "interpret_step",
]
