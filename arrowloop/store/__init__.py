"""Layer 8 (beside the runtime), store: keeping a supervisor's state across restarts.

A :class:`StateStore` records each stage's machine and state and the change
history as JSON data; :class:`SqliteStore` is the embedded default (one file
per supervisor, WAL mode), :class:`MemoryStore` one for tests.
docs/durability.md describes the guarantees and the format.
"""

from __future__ import annotations

from arrowloop.store._api import FORMAT, KeyRecord, KeyWrites, StageRecord, StateStore, Stored
from arrowloop.store._memory import MemoryStore
from arrowloop.store._sqlite import APPLICATION_ID, SqliteStore

__all__ = [
    "StateStore",
    "StageRecord",
    "KeyRecord",
    "KeyWrites",
    "Stored",
    "SqliteStore",
    "MemoryStore",
    "FORMAT",
    "APPLICATION_ID",
]
