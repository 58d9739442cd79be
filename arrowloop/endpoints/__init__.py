"""Layer 11, endpoints: how items and requests get in and out of a process.

For now the JSON-lines framing the server protocols use (docs/protocol.md):
a bounded line reader that survives an over-long line, and a budget bounding
what many readers hold together.
"""

from __future__ import annotations

from arrowloop.endpoints._lines import (
    DEFAULT_MAX_BUFFERED,
    DEFAULT_MAX_LINE,
    READ_CHUNK,
    BufferBudget,
    LineReader,
    LineTooLong,
    describe_json,
)

__all__ = [
    "LineReader",
    "LineTooLong",
    "BufferBudget",
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_BUFFERED",
    "READ_CHUNK",
    "describe_json",
]
