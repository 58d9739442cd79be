"""The embedded default store: one SQLite database file per supervisor.

The file is marked as arrowloop's (SQLite's ``application_id``) and carries
the format version (``user_version``), so a foreign or newer file is refused
before anything is written to it. It runs in WAL mode: a commit appends to
the log, readers never block writers, and a process killed at any moment
leaves the last committed transaction intact. ``synchronous`` chooses what
a commit survives: ``full`` (the default) syncs the log at every commit and
survives power loss; ``normal`` syncs only at checkpoints and survives a
crash of the process (``kill -9``) but may lose the last commits on power
loss, for several times the commit rate.

Tables: ``stages`` (name, version, machine document, state, seq), ``history``
(seq, record), ``meta`` (the undo stack), ``keys`` (each stage's window of
request keys: stage, key, version, output; oldest first by rowid). JSON
columns hold canonical orjson text. A sharded stage has one row per replica
in ``stages`` (and in ``keys``), named ``STAGE#i`` (format 3). A file of an
older format (1: before request keys; 2: before replicas' rows) is brought
forward in place when it is opened.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any, Final, Literal

import orjson

from arrowloop.errors import StoreError
from arrowloop.store._api import FORMAT, KeyRecord, KeyWrites, StageRecord, Stored

__all__ = ["SqliteStore", "APPLICATION_ID"]

#: SQLite's application_id of an arrowloop store ("ARLP").
APPLICATION_ID: Final = 0x41524C50

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS stages (
    name TEXT PRIMARY KEY,
    version TEXT NOT NULL,
    machine TEXT,
    state TEXT NOT NULL,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY,
    record TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

_SAVE_UNDO: Final = "INSERT OR REPLACE INTO meta (key, value) VALUES ('undo', ?)"

#: Format 2: the request keys each stage remembers (a rowid table, so the
#: rowid orders a window oldest first; a replaced row moves to the end).
_KEYS_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS keys (
    stage TEXT NOT NULL,
    key TEXT NOT NULL,
    version TEXT NOT NULL,
    output TEXT NOT NULL,
    PRIMARY KEY (stage, key)
)
"""


def _fail(path: Path, problem: str, found: str) -> StoreError:
    return StoreError(
        f"cannot use the state store {path}: {problem}",
        path=str(path),
        expected=f"an arrowloop state database of format {FORMAT} or older",
        found=found,
    )


class SqliteStore:
    """A :class:`~arrowloop.store.StateStore` in one SQLite file.

    Opening checks the file: a new or empty file becomes a store; a file
    that is not SQLite, another application's database, or a store of a
    newer format is refused (:class:`StoreError`, nothing written).
    """

    def __init__(
        self, path: str | Path, *, synchronous: Literal["full", "normal"] = "full"
    ) -> None:
        self.path = Path(path)
        if synchronous not in ("full", "normal"):
            raise ValueError(f"expected synchronous 'full' or 'normal', found {synchronous!r}")
        self.synchronous = synchronous
        # One connection, used from whichever worker thread the caller is in,
        # one call at a time (the lock makes that so even if it is not).
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise _fail(self.path, "it cannot be opened", str(exc)) from None
        try:
            self._check_and_init()
        except BaseException:
            self._db.close()
            raise

    @property
    def location(self) -> str:
        """The database file."""
        return str(self.path)

    def _check_and_init(self) -> None:
        db = self._db
        try:
            app = db.execute("PRAGMA application_id").fetchone()[0]
            fmt = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise _fail(
                self.path, "it is not a SQLite database (or it is corrupt)", str(exc)
            ) from None
        if app == 0 and tables == 0:
            self._create()
            return
        if app != APPLICATION_ID:
            raise _fail(
                self.path,
                "it is another application's database",
                f"application_id {app:#x} with {tables} objects",
            )
        if fmt > FORMAT:
            raise _fail(
                self.path,
                f"it was written by a newer arrowloop (format {fmt}; this one reads {FORMAT})",
                f"format {fmt}",
            )
        self._configure()
        try:
            check = db.execute("PRAGMA quick_check").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise _fail(self.path, "it is corrupt", str(exc)) from None
        if check != "ok":
            raise _fail(self.path, "it is corrupt", str(check)[:200])
        if fmt < FORMAT:
            self._forward(fmt)

    def _forward(self, fmt: int) -> None:
        """Bring an older format forward in place, in one transaction (a
        crash leaves the old format, which is brought forward next time)."""
        try:
            with self._transaction():
                if fmt < 2:
                    self._db.execute(_KEYS_SCHEMA)  # format 1 -> 2: request keys
                # 2 -> 3: replicas' records are rows of ``stages`` like any
                # other (named STAGE#i); no table changes, only the mark.
                self._db.execute(f"PRAGMA user_version={FORMAT}")
        except sqlite3.Error as exc:
            raise _fail(
                self.path, f"bringing it from format {fmt} to {FORMAT} failed", str(exc)
            ) from None

    def _configure(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self.synchronous.upper()}")

    def _create(self) -> None:
        db = self._db
        self._configure()
        with self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(_KEYS_SCHEMA)
            db.execute(f"PRAGMA application_id={APPLICATION_ID}")
            db.execute(f"PRAGMA user_version={FORMAT}")

    class _Tx:
        def __init__(self, store: SqliteStore) -> None:
            self.store = store

        def __enter__(self) -> None:
            self.store._db.execute("BEGIN IMMEDIATE")

        def __exit__(self, kind: object, exc: object, tb: object) -> None:
            db = self.store._db
            if kind is None:
                db.execute("COMMIT")
            else:
                db.execute("ROLLBACK")

    def _transaction(self) -> SqliteStore._Tx:
        return SqliteStore._Tx(self)

    def _write(self, what: str, work: Any) -> None:
        with self._lock:
            try:
                with self._transaction():
                    work(self._db)
            except sqlite3.Error as exc:  # disk full, read-only, I/O error
                raise _fail(self.path, f"{what} failed", str(exc)) from None

    def load(self) -> Stored | None:
        """What was recorded, or ``None`` for a store never written."""
        with self._lock:
            try:
                rows = self._db.execute(
                    "SELECT name, version, machine, state, seq FROM stages"
                ).fetchall()
                history = self._db.execute("SELECT record FROM history ORDER BY seq").fetchall()
                undo = self._db.execute("SELECT value FROM meta WHERE key = 'undo'").fetchone()
                keys = self._db.execute(
                    "SELECT stage, key, version, output FROM keys ORDER BY rowid"
                ).fetchall()
            except sqlite3.Error as exc:
                raise _fail(self.path, "reading it failed", str(exc)) from None
        if not rows and not history:
            return None
        try:
            stages = {
                name: StageRecord(
                    name,
                    version,
                    None if machine is None else orjson.loads(machine),
                    orjson.loads(state),
                    seq,
                )
                for name, version, machine, state, seq in rows
            }
            windows: dict[str, list[KeyRecord]] = {}
            for stage, key, version, output in keys:
                windows.setdefault(stage, []).append(KeyRecord(key, version, orjson.loads(output)))
            return Stored(
                stages,
                [orjson.loads(r) for (r,) in history],
                [] if undo is None else orjson.loads(undo[0]),
                windows,
            )
        except orjson.JSONDecodeError as exc:
            raise _fail(self.path, "a record in it is not JSON", str(exc)) from None

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
        ``keys``' changes), in one transaction."""
        rows = [
            (
                r.stage,
                r.version,
                None if r.machine is None else orjson.dumps(r.machine).decode(),
                orjson.dumps(r.state).decode(),
                r.seq,
            )
            for r in records
        ]
        undo_text = None if undo is None else orjson.dumps(undo).decode()

        write_keys = _key_writer(keys)

        def work(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR REPLACE INTO stages (name, version, machine, state, seq) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            if undo_text is not None:
                db.execute(_SAVE_UNDO, (undo_text,))
            write_keys(db)

        self._write("recording stages", work)

    def save_states(
        self, states: list[tuple[str, Any, int]], keys: KeyWrites | None = None
    ) -> None:
        """Record the states of several stages (and ``keys``' changes) in one
        transaction."""
        rows = [(orjson.dumps(state).decode(), seq, name) for name, state, seq in states]
        write_keys = _key_writer(keys)

        def work(db: sqlite3.Connection) -> None:
            db.executemany("UPDATE stages SET state = ?, seq = ? WHERE name = ?", rows)
            write_keys(db)

        self._write("recording states", work)

    def append_history(self, record: dict[str, Any]) -> None:
        """Add a change-history record (keyed by its ``seq``)."""
        text = orjson.dumps(record).decode()
        self._write(
            "recording the history",
            lambda db: db.execute(
                "INSERT OR REPLACE INTO history (seq, record) VALUES (?, ?)",
                (record["seq"], text),
            ),
        )

    def save_undo(self, undo: list[dict[str, Any]]) -> None:
        """Replace the undo stack."""
        text = orjson.dumps(undo).decode()
        self._write(
            "recording the undo stack",
            lambda db: db.execute(_SAVE_UNDO, (text,)),
        )

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


def _key_writer(keys: KeyWrites | None) -> Any:
    """What writes ``keys``' changes inside a transaction (encoded before it)."""
    if keys is None or not (keys.put or keys.drop):
        return lambda db: None
    drops = list(keys.drop)
    puts = [(stage, r.key, r.version, orjson.dumps(r.output).decode()) for stage, r in keys.put]

    def write(db: sqlite3.Connection) -> None:
        # Drops first: a key dropped and applied again in one batch stays.
        db.executemany("DELETE FROM keys WHERE stage = ? AND key = ?", drops)
        db.executemany(
            "INSERT OR REPLACE INTO keys (stage, key, version, output) VALUES (?, ?, ?, ?)",
            puts,
        )

    return write
