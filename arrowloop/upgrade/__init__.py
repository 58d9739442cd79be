"""Layer 10, upgrade: code changes and introspection as wire data.

The wire form of a :class:`~arrowloop.supervisor.CodeChange` (machines,
migrations, inverses and adapters as wire documents, decoded within limits
and checked at the receiving end), and the JSON forms of a supervisor's
status, history and a stage's state. The control protocol (layer 12)
carries these; see docs/protocol.md.
"""

from __future__ import annotations

from arrowloop.upgrade._change import (
    MAX_RECORD_TYPES,
    MAX_REQUESTER,
    MAX_STAGES,
    decode_change,
    encode_change,
    function_doc,
    machine_doc,
)
from arrowloop.upgrade._report import record_data, state_data, status_data

__all__ = [
    "encode_change",
    "decode_change",
    "machine_doc",
    "function_doc",
    "MAX_STAGES",
    "MAX_RECORD_TYPES",
    "MAX_REQUESTER",
    "status_data",
    "record_data",
    "state_data",
]
