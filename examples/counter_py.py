"""The counter example written in plain, annotated Python.

The same three versions and migrations as :mod:`examples.counter` (which
builds them from combinators, and whose message classes these reuse), under
the names the combinator module uses. They are defined one version per file
in ``examples/counter/v1.py``, ``v2.py`` and ``v3.py`` (the files the CLI
sends as upgrades). Each name here is still callable as the Python function
(``counter_v1(ReadCount(), 0)``); the compiled forms are
``counter_v1.machine`` and ``migrate_v2_v3.function``.
"""

from __future__ import annotations

from examples.counter.v1 import machine as counter_v1
from examples.counter.v2 import machine as counter_v2
from examples.counter.v2 import migrate as migrate_v1_v2
from examples.counter.v3 import inverse as migrate_v3_v2
from examples.counter.v3 import machine as counter_v3
from examples.counter.v3 import migrate as migrate_v2_v3

__all__ = [
    "counter_v1",
    "counter_v2",
    "counter_v3",
    "migrate_v1_v2",
    "migrate_v2_v3",
    "migrate_v3_v2",
]
