"""The counter example, kept importable as ``examples.counter``.

The counter ships inside the package, as :mod:`arrowloop.examples.counter`,
so that the demo runs wherever arrowloop is installed. This package and its
modules re-export it: the classes are the same objects (one record type has
one class per process), and ``examples/counter/v2.py`` still works as an
upgrade file.
"""

from __future__ import annotations

from arrowloop.examples import counter as _counter
from arrowloop.examples.counter import *  # noqa: F403 - the same names, the same objects

__all__ = list(_counter.__all__)
