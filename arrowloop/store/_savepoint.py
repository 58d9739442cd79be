"""Savepoint files: a consistent cut of a supervisor's stages, as one JSON file.

A savepoint holds what a store holds (each stage's machine document,
version, state in canonical wire form and items applied; the change
history; the undo stack) for one moment: every stage's state after the
same prefix of items (the supervisor takes the cut, see
``arrowloop/supervisor/_savepoints.py``). Here it is plain JSON data: its
versioned format, writing it atomically without ever replacing a file,
reading it back with one clear :class:`StoreError` for whatever is wrong,
and seeding a store with it. docs/durability.md documents the format.
Part of layer 8 (the store).
"""

from __future__ import annotations

import datetime
import os
import re
from pathlib import Path
from typing import Any, Final

import attrs
import orjson

from arrowloop.errors import StoreError
from arrowloop.store._api import StageRecord, StateStore, Stored
from arrowloop.wire import canonical, digest

__all__ = [
    "SAVEPOINT_FORMAT",
    "SAVEPOINT_VERSION",
    "Savepoint",
    "write_savepoint",
    "read_savepoint",
    "seed_store",
    "default_savepoint_name",
    "check_savepoint_name",
]

#: The ``format`` field of every savepoint file.
SAVEPOINT_FORMAT: Final = "arrowloop-savepoint"
#: The version of the savepoint format this arrowloop writes and the newest it reads.
#: Version 2 records a sharded stage once per replica (``STAGE#i``); a
#: savepoint without one is written as version 1, which older readers take.
SAVEPOINT_VERSION: Final = 2

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@attrs.frozen
class Savepoint:
    """A consistent cut of a supervisor, as plain JSON data.

    Attributes:
        name: the savepoint's name (its file is ``NAME.savepoint.json``).
        supervisor: the name of the supervisor it was taken from.
        taken_at: wall-clock time (seconds since the epoch) of the cut.
        stages: every stage in pipeline order, each state after the same
            prefix of items.
        history: the change-history records (oldest first).
        undo: the undo stack (oldest first), entries as
            ``arrowloop/supervisor/_undo.py`` writes them.
    """

    name: str
    supervisor: str
    taken_at: float
    stages: tuple[StageRecord, ...]
    history: tuple[dict[str, Any], ...] = ()
    undo: tuple[dict[str, Any], ...] = ()

    def stored(self) -> Stored:
        """What a store resumed from this savepoint holds."""
        return Stored({s.stage: s for s in self.stages}, list(self.history), list(self.undo))

    def to_data(self) -> dict[str, Any]:
        """The file's JSON data (with its ``digest``)."""
        body: dict[str, Any] = {
            "format": SAVEPOINT_FORMAT,
            # Only a replica's record needs version 2: an older arrowloop
            # would take it for a stage of another service.
            "version": SAVEPOINT_VERSION if any("#" in s.stage for s in self.stages) else 1,
            "name": self.name,
            "supervisor": self.supervisor,
            "taken_at": self.taken_at,
            "stages": [
                {
                    "stage": s.stage,
                    "version": s.version,
                    "machine": s.machine,
                    "state": s.state,
                    "seq": s.seq,
                }
                for s in self.stages
            ],
            "history": list(self.history),
            "undo": list(self.undo),
        }
        body["digest"] = digest(body)
        return body


def default_savepoint_name(taken_at: float) -> str:
    """A savepoint's name from its time (UTC, to the microsecond)."""
    at = datetime.datetime.fromtimestamp(taken_at, datetime.UTC)
    return "savepoint-" + at.strftime("%Y%m%dT%H%M%S%fZ")


def check_savepoint_name(name: str) -> str:
    """``name`` if it can name a savepoint file.

    Raises:
        ValueError: it cannot (the message says what can).
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"expected a savepoint name of letters, digits, '.', '_' or '-' (at most 100, "
            f"not starting with '.', '_' or '-'), found {name!r:.60}"
        )
    return name


def write_savepoint(savepoint: Savepoint, directory: str | Path) -> Path:
    """Write ``savepoint`` as ``DIRECTORY/NAME.savepoint.json``; its path.

    Atomic and never replacing: the bytes go to a temporary file that is
    synced, then linked to its name (which fails if that name is taken) and
    the directory synced; a crash leaves either no savepoint or a whole one.

    Raises:
        StoreError: the name is taken, or the file cannot be written.
    """
    where = Path(directory)
    path = where / f"{check_savepoint_name(savepoint.name)}.savepoint.json"
    data = canonical(savepoint.to_data())
    tmp = where / f".{savepoint.name}.{os.getpid()}.tmp"
    try:
        where.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise StoreError(
                f"cannot write the savepoint {path}: a savepoint of that name exists "
                "already (it is kept); choose another name",
                path=str(path),
                expected="a new savepoint name",
                found="an existing file",
            ) from None
        _sync_dir(where)
    except OSError as exc:
        raise StoreError(
            f"cannot write the savepoint {path}: {exc.strerror or exc}",
            path=str(path),
            expected="a writable savepoint directory",
            found=type(exc).__name__,
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _refuse(path: Path, problem: str, found: str) -> StoreError:
    return StoreError(
        f"cannot use the savepoint {path}: {problem}",
        path=str(path),
        expected=f"an arrowloop savepoint of format {SAVEPOINT_VERSION} or older",
        found=found,
    )


def _get(data: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ValueError(f"at {where}.{key}: expected {_kinds(kind)}, found {_show(value)}")
    return value


def _kinds(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _show(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"


def read_savepoint(path: str | Path) -> Savepoint:
    """Read and check a savepoint file.

    Raises:
        StoreError: naming the file and the problem: it cannot be read, is
            not JSON (truncated or corrupt), is not an arrowloop savepoint
            (foreign), was written by a newer arrowloop, its digest does
            not match its content (corrupt), or a field is malformed.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise _refuse(p, f"it cannot be read ({exc.strerror or exc})", type(exc).__name__) from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _refuse(p, "it is not JSON (truncated or corrupt)", str(exc)[:200]) from None
    if not isinstance(data, dict) or data.get("format") != SAVEPOINT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise _refuse(p, "it is not an arrowloop savepoint", f"format {found!r:.60}")
    version = data.get("version")
    if type(version) is not int or version < 1:
        raise _refuse(p, "its format version is malformed", _show(version))
    if version > SAVEPOINT_VERSION:
        raise _refuse(
            p,
            f"it was written by a newer arrowloop (savepoint format {version}; this one "
            f"reads {SAVEPOINT_VERSION})",
            f"format {version}",
        )
    body = {k: v for k, v in data.items() if k != "digest"}
    if data.get("digest") != digest(body):
        raise _refuse(
            p, "its content does not match its digest (it is corrupt)", _show(data.get("digest"))
        )
    try:
        return _decode(data)
    except ValueError as exc:
        raise _refuse(p, f"it is malformed: {exc}", "a malformed field") from None


def _decode(data: dict[str, Any]) -> Savepoint:
    stages = []
    for i, s in enumerate(_get(data, "stages", list, "$")):
        where = f"$.stages[{i}]"
        if not isinstance(s, dict):
            raise ValueError(f"at {where}: expected an object, found {_show(s)}")
        if "state" not in s:
            raise ValueError(f"at {where}.state: expected a state, found nothing")
        machine = s.get("machine")
        if machine is not None and not isinstance(machine, dict):
            raise ValueError(f"at {where}.machine: expected an object or null, found {_show(s)}")
        seq = _get(s, "seq", int, where)
        if seq < 0:
            raise ValueError(f"at {where}.seq: expected a count, found {seq}")
        stages.append(
            StageRecord(
                _get(s, "stage", str, where),
                _get(s, "version", str, where),
                machine,
                s["state"],
                seq,
            )
        )
    history = _get(data, "history", list, "$")
    undo = _get(data, "undo", list, "$")
    for key, entries in (("history", history), ("undo", undo)):
        for i, e in enumerate(entries):
            if not isinstance(e, dict):
                raise ValueError(f"at $.{key}[{i}]: expected an object, found {_show(e)}")
    return Savepoint(
        _get(data, "name", str, "$"),
        _get(data, "supervisor", str, "$"),
        float(_get(data, "taken_at", (int, float), "$")),
        tuple(stages),
        tuple(history),
        tuple(undo),
    )


def seed_store(store: StateStore, stored: Stored) -> None:
    """Write ``stored`` (a savepoint's, or another store's) into an empty store.

    The stages and the undo stack go in one transaction, then the history.

    Raises:
        StoreError: the store is not empty (nothing is written), or a write failed.
    """
    if store.load() is not None:
        raise StoreError(
            f"cannot start {store.location} from a savepoint: it holds a service's state "
            "already (it is kept); start from a fresh state directory, or tell it to replace "
            "that state",
            path=store.location,
            expected="an empty store",
            found="a store with stages",
        )
    for record in stored.history:
        store.append_history(record)
    store.save_stages(list(stored.stages.values()), undo=stored.undo)
