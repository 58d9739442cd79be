"""A store in memory: for tests, and for code that wants the store's
behaviour (commit before reply) without a file."""

from __future__ import annotations

import copy
from typing import Any

import orjson

from arrowloop.store._api import KeyRecord, KeyWrites, StageRecord, Stored

__all__ = ["MemoryStore"]


class MemoryStore:
    """A :class:`~arrowloop.store.StateStore` in this process's memory.

    It keeps what it is given as JSON text, as a file would, so what comes
    back is a copy that shares nothing with the caller's objects. ``commits``
    counts the transactions (a test can check that batches are grouped).
    """

    def __init__(self) -> None:
        self._stages: dict[str, tuple[str, bytes | None, bytes, int]] = {}
        self._history: dict[int, bytes] = {}
        self._undo = b"[]"
        #: Per stage, its request keys in order: key -> (version, output JSON).
        self._keys: dict[str, dict[str, tuple[str, bytes]]] = {}
        self.commits = 0
        self.closed = False

    @property
    def location(self) -> str:
        """Always ``memory``."""
        return "memory"

    def _check(self) -> None:
        if self.closed:
            raise RuntimeError("the store is closed")
        self.commits += 1

    def load(self) -> Stored | None:
        """What was recorded, or ``None`` if nothing was."""
        if not self._stages and not self._history:
            return None
        return Stored(
            {
                name: StageRecord(
                    name, v, None if m is None else orjson.loads(m), orjson.loads(st), seq
                )
                for name, (v, m, st, seq) in self._stages.items()
            },
            [orjson.loads(self._history[k]) for k in sorted(self._history)],
            orjson.loads(self._undo),
            {
                stage: [KeyRecord(k, v, orjson.loads(o)) for k, (v, o) in window.items()]
                for stage, window in self._keys.items()
                if window
            },
        )

    def save_stage(self, record: StageRecord) -> None:
        """Record one stage's machine and state."""
        self.save_stages([record])

    def save_stages(
        self,
        records: list[StageRecord],
        undo: list[dict[str, Any]] | None = None,
        keys: KeyWrites | None = None,
    ) -> None:
        """Record several stages whole (the undo stack, if given, and
        ``keys``' changes), at once."""
        self._check()
        if undo is not None:
            self._undo = orjson.dumps(undo)
        self._write_keys(keys)
        for record in records:
            machine = None if record.machine is None else orjson.dumps(record.machine)
            self._stages[record.stage] = (
                record.version,
                machine,
                orjson.dumps(record.state),
                record.seq,
            )

    def save_states(
        self, states: list[tuple[str, Any, int]], keys: KeyWrites | None = None
    ) -> None:
        """Record the states of several stages (and ``keys``' changes) at once."""
        self._check()
        self._write_keys(keys)
        for name, state, seq in states:
            version, machine, _, _ = self._stages[name]
            self._stages[name] = (version, machine, orjson.dumps(state), seq)

    def _write_keys(self, keys: KeyWrites | None) -> None:
        if keys is None:
            return
        for stage, key in keys.drop:
            self._keys.get(stage, {}).pop(key, None)
        for stage, r in keys.put:
            window = self._keys.setdefault(stage, {})
            window.pop(r.key, None)  # a key applied again goes to the end, as in SQLite
            window[r.key] = (r.version, orjson.dumps(r.output))

    def append_history(self, record: dict[str, Any]) -> None:
        """Add a change-history record."""
        self._check()
        self._history[record["seq"]] = orjson.dumps(record)

    def save_undo(self, undo: list[dict[str, Any]]) -> None:
        """Replace the undo stack."""
        self._check()
        self._undo = orjson.dumps(copy.deepcopy(undo))

    def close(self) -> None:
        """Stop accepting writes."""
        self.closed = True
