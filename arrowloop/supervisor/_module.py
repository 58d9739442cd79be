"""The ``arrowloop.supervisor`` package as a callable module.

The package shares its name with its ``supervisor`` factory. The top-level
API binds ``arrowloop.supervisor`` to the package (so ``import
arrowloop.supervisor as s`` gives the module, as Python's import expects),
and the package's class becomes :class:`CallableModule`, so that code written
as ``from arrowloop import supervisor; supervisor("name", ...)`` still makes
a spec. Part of layer 9 (the supervisor).
"""

from __future__ import annotations

import types
from typing import Any

from arrowloop.supervisor._spec import SupervisorSpec, supervisor

__all__ = ["CallableModule"]


class CallableModule(types.ModuleType):
    """A module that, called, makes a supervisor spec (:func:`supervisor`)."""

    def __call__(self, name: str, *children: Any, **options: Any) -> SupervisorSpec:
        """``supervisor(name, *children, **options)``."""
        return supervisor(name, *children, **options)
