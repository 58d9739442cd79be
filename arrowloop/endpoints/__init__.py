"""Layer 11, endpoints: how items and requests get in and out of a process.

For now the JSON-lines framing the server protocols use (docs/protocol.md):
a bounded line reader that survives an over-long line (pulling from a
stream), the same framing pushed in chunk by chunk (``LineFeed``, for a
connection driven by its transport's callbacks), and a budget bounding what
many readers hold together.
"""

from __future__ import annotations

from arrowloop.endpoints._feed import LineFeed
from arrowloop.endpoints._lines import (
    DEFAULT_MAX_BUFFERED,
    DEFAULT_MAX_LINE,
    READ_CHUNK,
    BufferBudget,
    BufferHolder,
    LineReader,
    LineTooLong,
    describe_json,
)

__all__ = [
    "LineReader",
    "LineFeed",
    "BufferHolder",
    "LineTooLong",
    "BufferBudget",
    "DEFAULT_MAX_LINE",
    "DEFAULT_MAX_BUFFERED",
    "READ_CHUNK",
    "describe_json",
]
