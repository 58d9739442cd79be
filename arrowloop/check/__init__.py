"""Layer 3, check: type inference and checking for arrow programs."""

from __future__ import annotations

from arrowloop.check._checker import (
    MAX_NESTING,
    Typed,
    TypedLoop,
    check_arrow,
    check_loop,
    has_type_vars,
    infer,
)
from arrowloop.check._compat import is_subtype
from arrowloop.check._unify import Subst
from arrowloop.check._widen import widening

__all__ = [
    "Typed",
    "TypedLoop",
    "infer",
    "check_arrow",
    "check_loop",
    "has_type_vars",
    "Subst",
    "is_subtype",
    "widening",
    "MAX_NESTING",
]
