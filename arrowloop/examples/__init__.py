"""Worked examples that ship with arrowloop.

:mod:`arrowloop.examples.counter` is the counter of the README and the
docs, which ``python -m arrowloop demo`` serves and upgrades. The examples
sit above every layer: they use the library as an application would, and
nothing in the library imports them (the demo names them only as
``MODULE:NAME`` strings for its server and CLI processes).
"""

from __future__ import annotations

__all__: list[str] = []
