"""Layer 8 (beside the runtime), store: keeping a supervisor's state across restarts.

A :class:`StateStore` records each stage's machine and state and the change
history as JSON data; :class:`SqliteStore` is the embedded default (one file
per supervisor, WAL mode), :class:`MemoryStore` one for tests; a
:class:`Savepoint` is a consistent cut of one, as a versioned JSON file.
docs/durability.md describes the guarantees and the format.
"""

from __future__ import annotations

from arrowloop.store._api import FORMAT, KeyRecord, KeyWrites, StageRecord, StateStore, Stored
from arrowloop.store._memory import MemoryStore
from arrowloop.store._savepoint import (
    SAVEPOINT_FORMAT,
    SAVEPOINT_VERSION,
    Savepoint,
    check_savepoint_name,
    default_savepoint_name,
    read_savepoint,
    seed_store,
    write_savepoint,
)
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
    "Savepoint",
    "SAVEPOINT_FORMAT",
    "SAVEPOINT_VERSION",
    "write_savepoint",
    "read_savepoint",
    "seed_store",
    "default_savepoint_name",
    "check_savepoint_name",
]
