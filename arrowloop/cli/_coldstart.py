"""``serve --from-savepoint FILE [--upgrade SOURCE ...]``: starting from a savepoint.

Before any port opens, the savepoint is read (a bad file is refused with
its :class:`~arrowloop.errors.StoreError`) and run in memory under a
supervisor of the served spec: that compiles every recorded machine and
undo entry and decodes every state, exactly as a resume does. Each
``--upgrade`` is then sent to that supervisor as a live upgrade would be
(the same change document the ``upgrade`` command builds, decoded and
checked by the supervisor's one checker, its typed migration run in-band),
in order: a cold upgrade is a hot upgrade made before the service opens.
Only when all of that succeeded is the result written to the state
directory, as a new database file renamed into place: a refused start
writes nothing and replaces nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from arrowloop.cli._commands import UsageError
from arrowloop.cli._load import ChangeOptions, build_change, read_change_file
from arrowloop.errors import ArrowloopError, StoreError
from arrowloop.runtime import split_replica
from arrowloop.server import TargetError
from arrowloop.store import MemoryStore, SqliteStore, Stored, read_savepoint, seed_store
from arrowloop.supervisor import Supervisor, SupervisorSpec, open_supervisor
from arrowloop.upgrade import decode_change

__all__ = ["ColdStart", "cold_start", "install"]


@attrs.frozen
class ColdStart:
    """A savepoint run in memory, cold upgrades applied, ready to serve.

    Attributes:
        store: the memory store holding the result.
        savepoint: the file it came from.
        upgrades: the versions each cold upgrade installed, in order.
    """

    store: MemoryStore
    savepoint: str
    upgrades: tuple[dict[str, str], ...]


def _stage_and_source(given: str, sup: Supervisor) -> tuple[str, str]:
    stages = list(sup.pipeline.stage_names)
    stage, sep, source = given.partition("=")
    if sep and stage in stages:
        return stage, source
    if len(stages) != 1:
        raise UsageError(
            f"--upgrade {given}: the pipeline has stages {stages}; name one as STAGE=SOURCE"
        )
    return stages[0], given


def _change_doc(given: str, sup: Supervisor) -> dict[str, object]:
    if given.endswith(".json"):
        try:
            return read_change_file(given)
        except TargetError:
            pass  # a machine document: one stage's change, built below
    stage, source = _stage_and_source(given, sup)
    expect = sup.pipeline.version(stage)
    return build_change(ChangeOptions(source, stage, expect, {}, requested_by="cold-upgrade"))


async def cold_start(spec: SupervisorSpec, path: str, upgrades: list[str]) -> ColdStart:
    """Read the savepoint at ``path`` and apply ``upgrades`` to it, in memory.

    Raises:
        StoreError: the savepoint cannot be used (bad file, stages that are
            not the served pipeline's, a record that does not decode).
        UsageError: a cold upgrade cannot be built or is refused (the
            checker's error is in the message).
    """
    savepoint = read_savepoint(path)
    served = [c.name for c in spec.stages]
    # A sharded stage is recorded per replica; the supervisor checks their number.
    recorded = list(dict.fromkeys(split_replica(s.stage)[0] for s in savepoint.stages))
    if sorted(served) != sorted(recorded):
        raise StoreError(
            f"cannot use the savepoint {path}: its stages {recorded} are not the served "
            f"pipeline's {served} (a savepoint of another service?)",
            path=path,
            expected=f"stages {served}",
            found=f"stages {recorded}",
        )
    store = MemoryStore()
    seed_store(store, savepoint.stored())
    installed = []
    async with open_supervisor(spec, store=store) as sup:
        p = sup.pipeline
        for given in upgrades:
            try:
                doc = _change_doc(given, sup)
                change = decode_change(
                    doc,
                    running={n: p.version(n) for n in p.stage_names},
                    budget=spec.change_budget,
                )
                installed.append(await sup.code_change(change))
            except (ArrowloopError, TargetError) as exc:
                raise UsageError(
                    f"the start from the savepoint {path} is refused: --upgrade {given}: "
                    f"{exc}; nothing was written"
                ) from exc
    return ColdStart(store, path, tuple(installed))


def _remove(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def install(stored: Stored, db: Path, *, fsync: str, replace: bool) -> None:
    """Write ``stored`` as the store ``db``, atomically: a new file, seeded
    and closed, then renamed into place.

    Raises:
        StoreError: ``db`` holds a service's state and ``replace`` is false
            (it is kept), or a write failed.
    """
    db.parent.mkdir(parents=True, exist_ok=True)
    if db.exists() and not replace:
        existing = SqliteStore(db)  # a foreign or corrupt file is refused here
        try:
            held = existing.load() is not None
        finally:
            existing.close()
        if held:
            raise StoreError(
                f"cannot start from a savepoint into {db}: it holds a service's state already "
                "(it is kept). Start with a fresh --state-dir, or pass --replace-state to "
                "replace that state with the savepoint's",
                path=str(db),
                expected="an empty or absent state store",
                found="a store with stages",
            )
    tmp = db.with_name(f".{db.name}.seeding{os.getpid()}")
    _remove(tmp)
    try:
        store = SqliteStore(tmp, synchronous="normal" if fsync == "normal" else "full")
        try:
            seed_store(store, stored)
        finally:
            store.close()  # checkpoints the log into the file
        _remove(db)
        os.replace(tmp, db)
        fd = os.open(db.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        _remove(tmp)
