"""The counter service: counter v1 as the one stage of a supervised pipeline.

Serve it with::

    python -m arrowloop serve arrowloop.examples.counter.service:pipeline

then upgrade it live with ``python -m arrowloop upgrade arrowloop/examples/counter/v2.py``.
"""

from __future__ import annotations

from arrowloop.examples.counter import v1
from arrowloop.runtime import stage
from arrowloop.supervisor import AutoRollback, child, supervisor

__all__ = ["pipeline"]

#: One stage. A step that raises fails that item only: the item goes to the
#: dead letters, its caller gets the error, and the stage keeps its count
#: (``stage(..., on_step_error="restart")`` would restart it instead). A new
#: version that fails on more than three items within ten seconds of the
#: upgrade is rolled back automatically.
pipeline = supervisor(
    "counter_service",
    child(stage("counter", v1.machine), auto_rollback=AutoRollback(3, 10.0)),
    intensity=5,
    period=10.0,
)
