"""The Python front end: state machines and pure functions written in plain Python.

Sits above :mod:`arrowloop.machine` (it produces machines) and below the
runtime. ``@statemachine(init=...)`` and ``@arrow`` read an annotated
function's source with :mod:`ast` (never running it), translate it to the
arrow language by passing the local names as a tuple, simplify the result,
then check and compile it. docs/python-subset.md lists what is supported.
"""

from __future__ import annotations

from arrowloop.frontend._api import arrow, statemachine
from arrowloop.frontend._objects import PyFunction, PyMachine

__all__ = ["statemachine", "arrow", "PyMachine", "PyFunction"]
