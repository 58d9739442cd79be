"""Counter v1 (re-exported from :mod:`arrowloop.examples.counter.v1`).

Besides the version, it re-exports the message classes the module held when
the version was defined here, for code that imports them from it.
"""

from __future__ import annotations

from arrowloop.examples.counter import Ack, Count, IncrCount, InputV1, Output, ReadCount
from arrowloop.examples.counter.v1 import machine

__all__ = ["machine", "Ack", "Count", "IncrCount", "InputV1", "Output", "ReadCount"]
