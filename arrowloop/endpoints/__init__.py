"""Layer 11, endpoints: how items and requests get in and out of a process.

For now the JSON-lines framing the server protocols use (docs/protocol.md):
a bounded line reader that survives an over-long line.
"""

from __future__ import annotations

from arrowloop.endpoints._lines import DEFAULT_MAX_LINE, READ_CHUNK, LineReader, LineTooLong

__all__ = ["LineReader", "LineTooLong", "DEFAULT_MAX_LINE", "READ_CHUNK"]
