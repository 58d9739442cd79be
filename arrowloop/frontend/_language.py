"""The whole translator: the statement translator and the layers added on top.

Part of the Python front end. :class:`Language` stacks, bottom up, the
statement translator (:mod:`arrowloop.frontend._stmts`), strings and
f-strings (``_strings.py``), ``raise``/``assert`` (``_failures.py``),
narrowing (``_narrowing.py``), record methods and factory defaults
(``_methods.py``), more of the standard library (``_stdlib.py``,
``_strmore.py``), and
module-level containers and helper functions (``_globals.py``) and ``while``
loops (``_whiles.py``); each layer overrides a few methods and defers to the
one below for the rest.
"""

from __future__ import annotations

from arrowloop.frontend._whiles import Whiles

__all__ = ["Language"]


class Language(Whiles):
    """The translator the decorators use."""
