"""What a state store keeps, and the interface every store implements.

A store holds, for one supervisor, what it takes to resume after the
process is gone: per stage the machine it runs (its wire document, when it
has one, and its version), its state in the canonical wire form, and how
many items it had applied; the change history; and the undo stack that
rollback uses. Everything is plain JSON data here: the supervisor turns
machines, states and records into it and back, so a store knows nothing of
types and can be inspected with any SQLite or JSON tool.

Stores are synchronous (a write returns once it is durable); the
supervisor calls them from a worker thread, one call at a time.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import attrs

__all__ = ["StageRecord", "KeyRecord", "KeyWrites", "Stored", "StateStore", "FORMAT"]

#: The version of the stores' format; a store of a newer format is refused,
#: an older one is brought forward in place (format 2 added request keys;
#: format 3 records a sharded stage once per replica, as ``STAGE#i``, which
#: an older arrowloop would take for a stage of another service).
FORMAT: Final = 3


@attrs.frozen
class StageRecord:
    """One stage as recorded.

    Attributes:
        stage: its name.
        version: the version of the machine it runs.
        machine: the machine's wire document (``None`` for a native machine,
            which only runs in the process that defines it).
        state: its state, in the canonical wire form of the machine's state type.
        seq: how many items it had applied when the state was recorded.
    """

    stage: str
    version: str
    machine: dict[str, Any] | None
    state: Any
    seq: int


@attrs.frozen
class KeyRecord:
    """One request key a stage applied, with the output it produced.

    Attributes:
        key: the client's request key.
        version: the version of the machine that applied it.
        output: the output, in the canonical wire form of that machine's
            output type.
    """

    key: str
    version: str
    output: Any


@attrs.frozen
class KeyWrites:
    """Changes to the stages' windows of request keys, written in the same
    transaction as their states.

    Attributes:
        put: ``(stage, record)`` for each key applied since the last write,
            oldest first.
        drop: ``(stage, key)`` for each key that left a window (the oldest
            go first when a window is full).
    """

    put: list[tuple[str, KeyRecord]] = attrs.field(factory=list)
    drop: list[tuple[str, str]] = attrs.field(factory=list)


@attrs.frozen
class Stored:
    """Everything a store holds for one supervisor (``keys``: each stage's
    window of request keys, oldest first)."""

    stages: dict[str, StageRecord]
    history: list[dict[str, Any]]
    undo: list[dict[str, Any]]
    keys: dict[str, list[KeyRecord]] = attrs.field(factory=dict)


class StateStore(Protocol):
    """A place that keeps a supervisor's state across process restarts."""

    @property
    def location(self) -> str:
        """Where the store is, for messages (a file path, or ``memory``)."""

    def load(self) -> Stored | None:
        """What was recorded, or ``None`` for a store never written.

        Raises:
            StoreError: the store cannot be read.
        """

    def save_stage(self, record: StageRecord) -> None:
        """Record one stage's machine and state (a new version, or a restart)."""

    def save_stages(
        self,
        records: list[StageRecord],
        undo: list[dict[str, Any]] | None = None,
        keys: KeyWrites | None = None,
    ) -> None:
        """Record several stages whole in one transaction (a change of
        several stages, or seeding a fresh store), with ``keys``' changes;
        with ``undo``, the undo stack is replaced in that same transaction
        (a change and the way back from it are durable together)."""

    def save_states(
        self, states: list[tuple[str, Any, int]], keys: KeyWrites | None = None
    ) -> None:
        """Record ``(stage, state, seq)`` for several stages in one transaction
        (group commit: one call per batch), with the request keys applied and
        dropped since the last write (``keys``) in the same transaction."""

    def append_history(self, record: dict[str, Any]) -> None:
        """Add a change-history record."""

    def save_undo(self, undo: list[dict[str, Any]]) -> None:
        """Replace the undo stack."""

    def close(self) -> None:
        """Release the store (later calls fail)."""
