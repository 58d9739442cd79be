"""The whole translator: the statement translator and the layers added on top.

Part of the Python front end. :class:`Language` stacks, bottom up, the
statement translator (:mod:`arrowloop.frontend._stmts`), strings and
f-strings (``_strings.py``), ``raise``/``assert`` (``_failures.py``),
narrowing (``_narrowing.py``), record methods and factory defaults
(``_methods.py``), more of the standard library (``_stdlib.py``,
``_strmore.py``), module-level containers and helper functions
(``_globals.py``), ``while`` loops (``_whiles.py``), ``map``/``filter``,
sets and ``default=`` in builtins (``_iteration.py``) and types taken from
context (``_inference.py``); each layer overrides a few methods and defers
to the one below for the rest.
"""

from __future__ import annotations

from arrowloop.frontend._inference import Inference

__all__ = ["Language"]


class Language(Inference):
    """The translator the decorators use."""
