"""A supervisor's link to its state store: resuming from it, writing to it.

On start, what the store recorded decides what each stage runs: the
recorded machine (compiled from its recorded wire document, so a served
module with newer code does not silently replace an upgraded stage), its
recorded state and how many items it had applied. A fresh store is seeded
with the spec's machines and initial states. While running, the pipeline's
persist hook lands here: states are encoded on the loop (they are the
stages' live values) and written in a worker thread, one write at a time;
a stage whose machine changed since its last write is written whole
(machine document and state) in the same transaction as the others, and
with a change's stages goes the undo stack as it is once the change is
applied (so a crash cannot leave the way back out of step with what runs).

docs/durability.md describes the guarantees.
"""

from __future__ import annotations

from typing import Any

import anyio
import attrs

from arrowloop.errors import StoreError
from arrowloop.machine import AnyMachine, Machine
from arrowloop.runtime import (
    CheckedChange,
    Recorded,
    Seeded,
    StageSpec,
    replica_name,
    split_replica,
)
from arrowloop.store import KeyRecord, KeyWrites, StageRecord, StateStore, Stored
from arrowloop.supervisor._undo import decode_undo
from arrowloop.typesys import Type, json_writer
from arrowloop.wire import decode_value, encode_value

__all__ = ["Durability", "Resumed", "stage_record"]


@attrs.frozen
class Resumed:
    """One stage as it resumes from the store."""

    machine: AnyMachine
    state: Any
    seq: int
    #: The request keys it had applied: ``(key, version, output)``, oldest first.
    keys: list[tuple[str, str, Recorded]] = attrs.field(factory=list)
    #: A sharded stage: per replica, its state, items applied and request
    #: keys (``state`` and ``seq`` are then the list of states and the sum).
    replicas: list[Seeded] | None = None


def _fresh(spec: StageSpec) -> list[StageRecord]:
    """What a stage starts with in a store: its initial state, one record
    per replica of a sharded stage."""
    m = spec.machine
    names = (
        [replica_name(spec.name, i) for i in range(spec.shards)] if spec.sharded else [spec.name]
    )
    return [stage_record(n, m, m.init, 0) for n in names]


def stage_record(stage: str, machine: AnyMachine, state: Any, seq: int) -> StageRecord:
    """One stage as a store (or a savepoint) records it."""
    doc = machine.to_wire_data() if isinstance(machine, Machine) else None
    return StageRecord(stage, machine.version, doc, encode_value(machine.state, state), seq)


def _key_writes(keys: dict[str, dict[str, tuple[str, Type, Any] | None]]) -> KeyWrites:
    # Encoded on the loop, like the states (the outputs are live values), by
    # the data port's writers (encode_value's result, made once per type):
    # one output per keyed request is the keyed path's main cost.
    writes = KeyWrites()
    put, drop = writes.put, writes.drop
    last: Type | None = None
    write = None
    for stage, changes in keys.items():
        for key, change in changes.items():
            if change is None:
                drop.append((stage, key))
                continue
            version, out_type, out = change
            if out_type is not last:
                last, write = out_type, json_writer(out_type)
            assert write is not None
            put.append((stage, KeyRecord(key, version, write(out, "output"))))
    return writes


def _recorded(stage: str, rec: KeyRecord) -> tuple[str, str, Recorded]:
    """A remembered output as it reloads: decoded, with the output type the
    stage runs, only if its key is sent again."""
    path = f"$.keys.{stage}[{rec.key!r:.80}].output"
    return rec.key, rec.version, Recorded(lambda t: decode_value(t, rec.output, path))


class Durability:
    """What a supervisor keeps in its store (see the module docstring)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._limiter = anyio.CapacityLimiter(1)  # one write at a time, in order
        self._versions: dict[str, str] = {}
        #: History records loaded from the store (oldest first).
        self.history: list[dict[str, Any]] = []
        #: The undo stack loaded from the store (documents, oldest first).
        self.undo: list[dict[str, Any]] = []
        # The change being applied: its stages' new versions, and the undo
        # stack to write with them.
        self._change: tuple[frozenset[tuple[str, str]], list[dict[str, Any]]] | None = None
        #: History records handed to the writer, and those it has finished.
        self.recorded = 0
        self.written = 0
        self._progress = anyio.Event()

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    async def resume(self, stages: list[StageSpec]) -> dict[str, Resumed]:
        """What each stage resumes with (empty for a fresh store, which is
        then seeded with ``stages`` as they are).

        Raises:
            StoreError: the store cannot be read, or a recorded stage cannot
                be resumed (its machine does not decode, or a native
                machine's recorded version is not the one served).
        """
        stored: Stored | None = await self._call(self.store.load)
        if stored is None:
            seed = [r for s in stages for r in _fresh(s)]
            await self._call(self.store.save_stages, seed)
            self._versions = {r.stage: r.version for r in seed}
            return {}
        self.history = stored.history
        self.undo = stored.undo
        resumed: dict[str, Resumed] = {}
        fresh: list[StageRecord] = []
        for s in stages:
            recs = self._records_of(stored, s)
            if recs is None:  # a stage added to the service since: it starts fresh
                fresh += _fresh(s)
                continue
            machine = self._machine_of(recs[0], s)
            parts: list[Seeded] = []
            for rec in recs:
                if rec.version != recs[0].version:
                    raise self._unusable(
                        f"the records of stage {s.name!r}",
                        ValueError(
                            f"its replicas run versions {rec.version} and {recs[0].version}"
                        ),
                    )
                try:
                    state = decode_value(machine.state, rec.state, f"$.stages.{rec.stage}.state")
                except Exception as exc:
                    raise self._unusable(
                        f"the recorded state of stage {rec.stage!r}", exc
                    ) from None
                keys = [_recorded(rec.stage, k) for k in stored.keys.get(rec.stage, ())]
                parts.append((state, rec.seq, keys))
                self._versions[rec.stage] = machine.version
            if s.sharded:
                resumed[s.name] = Resumed(
                    machine, [p[0] for p in parts], sum(p[1] for p in parts), [], parts
                )
            else:
                one = parts[0]
                resumed[s.name] = Resumed(machine, one[0], one[1], one[2] or [])
        for r in fresh:
            self._versions[r.stage] = r.version
        if fresh:
            await self._call(self.store.save_stages, fresh)
        return resumed

    def _records_of(self, stored: Stored, spec: StageSpec) -> list[StageRecord] | None:
        """The records of ``spec``'s stage (one per replica of a sharded
        stage), or ``None`` if the store has none.

        Raises:
            StoreError: the stage was recorded with another number of
                replicas (or sharded and now not, or the other way round):
                keys would move between shards.
        """
        mine = {}
        for name, rec in stored.stages.items():
            stage, shard = split_replica(name)
            if stage == spec.name:
                mine[shard] = rec
        if not mine:
            return None
        served: list[int | None] = list(range(spec.shards)) if spec.sharded else [None]
        if sorted(mine, key=lambda k: -1 if k is None else k) != served:
            recorded = "unsharded" if None in mine else f"with {len(mine)} shards"
            now = f"with {spec.shards} shards" if spec.sharded else "unsharded"
            raise StoreError(
                f"stage {spec.name!r} was recorded {recorded}, and is served {now}: the state "
                "of its keys cannot be moved between shards (re-sharding is not supported). "
                "Serve it as recorded, or start from a fresh state directory",
                path=self.store.location,
                expected=recorded,
                found=now,
            )
        return [mine[k] for k in served]

    def _machine_of(self, rec: StageRecord, spec: StageSpec) -> AnyMachine:
        if rec.version == spec.machine.version:
            return spec.machine  # the served code is the recorded one
        if rec.machine is None:
            raise StoreError(
                f"stage {rec.stage!r} was recorded running the native machine "
                f"{rec.version[:12]}, which only the module that defines it can provide; the "
                f"served module has {spec.machine.version[:12]}. Serve the module of that "
                "version, or start from a fresh state directory",
                path=self.store.location,
                expected=f"native version {rec.version[:12]}",
                found=spec.machine.version[:12],
            )
        try:
            machine = Machine.from_wire(rec.machine, budget=None)
        except Exception as exc:
            raise self._unusable(f"the recorded machine of stage {rec.stage!r}", exc) from None
        if machine.version != rec.version:
            raise StoreError(
                f"the recorded machine of stage {rec.stage!r} has version "
                f"{machine.version[:12]}, not the recorded {rec.version[:12]}",
                path=self.store.location,
                expected=rec.version[:12],
                found=machine.version[:12],
            )
        return machine

    def undo_entries(
        self, stages: list[StageSpec], limit: int
    ) -> list[tuple[CheckedChange, dict[str, Any]]]:
        """The loaded undo stack compiled again (its latest ``limit``
        entries), machines the served ``stages`` run taken from them.

        Raises:
            StoreError: an entry cannot be used.
        """
        served = {s.machine.version: s.machine for s in stages}
        out = []
        for i, doc in enumerate(self.undo[-limit:] if limit else []):
            try:
                out.append((decode_undo(doc, served), doc))
            except Exception as exc:
                raise self._unusable(f"entry {i} of the recorded undo stack", exc) from None
        return out

    def _unusable(self, what: str, exc: Exception) -> StoreError:
        return StoreError(
            f"{what} in {self.store.location} cannot be used: {type(exc).__name__}: {exc}",
            path=self.store.location,
            expected="a record this arrowloop can decode",
            found=type(exc).__name__,
        )

    def expect_change(self, versions: dict[str, str], undo: list[dict[str, Any]] | None) -> None:
        """Tell the next write of exactly these stages on these new
        ``versions`` (the change being applied) to replace the undo stack
        with ``undo`` in the same transaction; ``None`` forgets it (the
        change was decided)."""
        self._change = None if undo is None else (frozenset(versions.items()), undo)

    async def persist(
        self,
        records: list[tuple[str, AnyMachine, Any, int]],
        keys: dict[str, dict[str, tuple[str, Type, Any] | None]] | None = None,
    ) -> None:
        """The pipeline's persist hook: make these stages' states durable,
        with the changes to their windows of request keys (``keys``).

        Raises:
            StoreError: the store refused the write.
        """
        writes = None if keys is None else _key_writes(keys)
        whole = any(self._versions.get(stage) != m.version for stage, m, _, _ in records)
        if whole:
            full = [stage_record(stage, m, state, seq) for stage, m, state, seq in records]
            undo = None
            change = self._change
            changed = {(split_replica(s)[0], m.version) for s, m, _, _ in records}
            if change is not None and change[0] == changed:
                undo = change[1]
                self._change = None
            await self._call(self.store.save_stages, full, undo, writes)
            for stage, m, _, _ in records:
                self._versions[stage] = m.version
        else:
            states = [
                (stage, encode_value(m.state, state), seq) for stage, m, state, seq in records
            ]
            await self._call(self.store.save_states, states, writes)

    async def append_history(self, record: dict[str, Any]) -> None:
        """Record a change-history entry (counted as written even if the
        store refused it, so nobody waits for it for ever)."""
        try:
            await self._call(self.store.append_history, record)
        finally:
            self.written += 1
            self._progress.set()
            self._progress = anyio.Event()

    async def flushed(self, upto: int) -> None:
        """Wait until the first ``upto`` history records are written."""
        while self.written < upto:
            await self._progress.wait()
