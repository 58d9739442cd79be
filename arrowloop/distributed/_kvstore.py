"""A segment's state store on a JetStream key-value bucket (no state directory).

A segment commits its stages' states, its input position and its producers'
watermarks as one unit (_segment.py). A key-value bucket has no transaction
over several keys, so the whole segment is **one value**: the key named
after the segment holds its record (every stage's version, state and item
count, the watermarks' row, the history and the undo stack), and every
commit replaces it whole. Machine documents, which change only with a code
change and are the bulk of a record, are kept under keys of their own
named by version (``<segment>.machine.<version>``): written before the
record that names them and never changed after, so the record stays the
one place a commit lands.

**One writer.** Every write is an ``update`` checked against the revision
this process read or wrote last: if another process wrote the record
since, the broker refuses it and the store raises :class:`StoreError`, so
two processes running one segment can never interleave their states (the
second one's first write, its claim on start, or the first one's next
write fails, whichever comes later). To refuse the second process at once
rather than at its first write, the owner answers on a core NATS subject
(:func:`owner_subject`) for as long as its connection lives; a process that
starts asks there first, and is refused if anyone answers. The broker drops
the subscription with the connection, so a restart after ``kill -9`` takes
over at once.

**Size.** A value is one broker message, at most the broker's
``max_payload`` (1 MiB by default) less its headers. A bigger record (or
machine document) is written in parts first, under keys named by its
digest (``<segment>.part.<digest>.<i>``), and then the value, which names
them: the value stays the one place a commit lands, and a crash between
the two leaves parts no value names, removed when the segment is opened
next. The parts of a record that was replaced are removed once the new one
is written.

**The seam.** The segment calls its store's methods, which are
synchronous, from a worker thread (``anyio.to_thread.run_sync``). This
store hands each broker operation back to the event loop that started the
thread (``anyio.from_thread.run``) and waits for it there: the loop is never
blocked, and nats-py is only used from its own loop.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Final, TypeVar

import anyio.from_thread
import orjson
from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import KeyValueConfig, StorageType
from nats.js.client import JetStreamContext
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    KeyValueError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.kv import KeyValue

# The channel's notion of a broker that is away, and its backoff: one policy.
from arrowloop.distributed._channel import _BACKOFF_MAX, _BACKOFF_MIN, _retryable
from arrowloop.errors import StoreError
from arrowloop.store import KeyRecord, KeyWrites, StageRecord, Stored

__all__ = ["KvStore", "open_kv_store", "bucket_name", "owner_subject", "KV_FORMAT"]

#: The format of a segment's record (its ``format`` field).
KV_FORMAT: Final = 1
#: The field that marks a value naming parts (a value too big for one).
_PARTS: Final = "arrowloop-parts"

#: Bytes of a broker message kept for its headers (the subject, the
#: expected revision): a value may take the rest of ``max_payload``.
_HEADROOM: Final = 1024

T = TypeVar("T")

log = logging.getLogger("arrowloop.distributed")


def bucket_name(pipeline: str) -> str:
    """The bucket holding the records of ``pipeline``'s segments."""
    return f"arrowloop_{pipeline}_state"


def owner_subject(pipeline: str, segment: str) -> str:
    """Where the process running ``segment`` answers (core NATS)."""
    return f"arrowloop.{pipeline}.owner.{segment}"


def _empty() -> dict[str, Any]:
    return {"format": KV_FORMAT, "owner": "", "stages": {}, "history": [], "undo": [], "keys": {}}


class KvStore:
    """A :class:`~arrowloop.store.StateStore` of one segment in a JetStream
    key-value bucket (made by :func:`open_kv_store`; see the module docstring).

    Its methods are called from worker threads started by
    ``anyio.to_thread.run_sync`` on the loop that opened it (as the segment
    calls every store), one at a time.
    """

    def __init__(
        self,
        js: JetStreamContext,
        kv: KeyValue,
        bucket: str,
        key: str,
        record: dict[str, Any],
        revision: int | None,
        limit: int,
        machines: dict[str, dict[str, Any]],
        parts: list[str],
    ) -> None:
        self._js = js
        self._kv = kv
        self._bucket = bucket
        self._key = key
        self._record = record
        self._revision = revision
        # The machine documents the record names, by version (read on open).
        self._machines = machines
        # The keys of the parts the record's value names (a record too big
        # for one value), removed once a newer record replaces it.
        self._parts = parts
        #: The largest value written (``max_payload`` less the headers');
        #: anything bigger is written in parts.
        self.limit = limit
        self.closed = False
        #: Values written (records and machine documents).
        self.writes = 0
        #: Writes tried again because the broker was away.
        self.waits = 0

    @property
    def location(self) -> str:
        """The bucket and key, for messages."""
        return f"nats kv {self._bucket}/{self._key}"

    # -- the broker, from the worker thread -------------------------------------

    def _run(self, fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
        if self.closed:
            raise StoreError(
                f"the state store {self.location} is closed",
                path=self.location,
                expected="an open store",
                found="closed",
            )
        return anyio.from_thread.run(fn)

    def _split(self, key: str, data: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
        """The value to write under ``key`` for ``data``, and the parts to
        write before it: ``data`` itself and none if it fits one value,
        else a small head naming parts of at most :attr:`limit` bytes."""
        if len(data) <= self.limit:
            return data, []
        digest = hashlib.sha256(data).hexdigest()
        n = -(-len(data) // self.limit)
        prefix = f"{key}.part.{digest[:32]}"
        head = {
            _PARTS: n,
            "prefix": prefix,
            "size": len(data),
            # Of the record, which names its owner: so the head too tells
            # one writer's value from another's (see _commit's retry).
            "sha256": digest,
        }
        chunks = [data[i * self.limit : (i + 1) * self.limit] for i in range(n)]
        return orjson.dumps(head), [(f"{prefix}.{i}", c) for i, c in enumerate(chunks)]

    async def _put_parts(self, parts: list[tuple[str, bytes]]) -> None:
        for key, chunk in parts:
            # put, not update: a part's key is named by the content it holds.
            await _patiently(functools.partial(self._kv.put, key, chunk))
            self.writes += 1

    def _commit(self, record: dict[str, Any]) -> None:
        """Replace the record with ``record`` if nobody else wrote it since."""
        key, last = self._key, self._revision
        data, parts = self._split(key, orjson.dumps(record))

        async def write() -> int:
            # The parts first: the record's value is the one place a commit
            # lands, and it names them only once they are all there.
            await self._put_parts(parts)
            tried = False

            async def attempt() -> int:
                nonlocal tried
                if tried:
                    self.waits += 1
                tried = True
                if last is None:
                    return await self._kv.create(key, data)
                return await self._kv.update(key, data, last=last)

            try:
                return await _patiently(attempt)
            except KeyWrongLastSequenceError:
                if self.waits == waits:
                    raise
            # Tried again after the broker was away: the first attempt may
            # have landed with its reply lost. Ours, if the value is ours.
            entry = await _patiently(lambda: self._kv.get(key))
            if entry.value != data or entry.revision is None:
                raise KeyWrongLastSequenceError
            return entry.revision

        waits = self.waits
        try:
            self._revision = self._run(write)
        except KeyWrongLastSequenceError:
            raise self._taken() from None
        except StoreError:
            raise
        except Exception as exc:  # the broker refused
            raise StoreError(
                f"writing the state store {self.location} failed: {type(exc).__name__}: {exc}",
                path=self.location,
                expected="a write the broker confirms",
                found=type(exc).__name__,
            ) from exc
        self._record = record
        self.writes += 1
        old, self._parts = self._parts, [k for k, _ in parts]
        if old and old != self._parts:
            self._run(lambda: _purge(self._js, self._bucket, old))

    def _taken(self) -> StoreError:
        return StoreError(
            f"another process wrote the state store {self.location} since this one read it: "
            "two processes run this segment (each segment runs in one process at a time); "
            "this one stops",
            path=self.location,
            expected=f"revision {self._revision}",
            found="a newer revision",
        )

    def _store_machine(self, version: str, doc: dict[str, Any]) -> None:
        if version in self._machines:
            return  # a version's document never changes
        key = f"{self._key}.machine.{version}"
        data, parts = self._split(key, orjson.dumps(doc))

        async def put() -> int:
            await self._put_parts(parts)
            return await _patiently(lambda: self._kv.put(key, data))  # the same value again

        self._run(put)
        self._machines[version] = copy.deepcopy(doc)
        self.writes += 1

    # -- the StateStore interface -----------------------------------------------

    def load(self) -> Stored | None:
        """What was recorded (as read on open, and written since: this
        process is the one writer), or ``None``. Reads nothing from the broker."""
        r = self._record
        if not r["stages"] and not r["history"]:
            return None

        docs = self._machines
        return Stored(
            {
                name: StageRecord(
                    name,
                    s["version"],
                    copy.deepcopy(docs[s["version"]]) if s["machine"] else None,
                    copy.deepcopy(s["state"]),
                    s["seq"],
                )
                for name, s in r["stages"].items()
            },
            list(r["history"]),
            list(r["undo"]),
            {
                stage: [KeyRecord(k, v, o) for k, v, o in window]
                for stage, window in r["keys"].items()
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
        """Record several stages whole (machines first, then the record)."""
        for rec in records:
            if rec.machine is not None:
                self._store_machine(rec.version, rec.machine)
        r = self._next()
        for rec in records:
            r["stages"][rec.stage] = {
                "version": rec.version,
                "machine": rec.machine is not None,
                "state": rec.state,
                "seq": rec.seq,
            }
        if undo is not None:
            r["undo"] = copy.deepcopy(undo)
        _write_keys(r, keys)
        self._commit(r)

    def save_states(
        self, states: list[tuple[str, Any, int]], keys: KeyWrites | None = None
    ) -> None:
        """Record the states of several stages in one write."""
        r = self._next()
        for name, state, seq in states:
            r["stages"][name] = {**r["stages"][name], "state": state, "seq": seq}
        _write_keys(r, keys)
        self._commit(r)

    def append_history(self, record: dict[str, Any]) -> None:
        """Add a change-history record (keyed by its ``seq``)."""
        r = self._next()
        # Keyed by its seq, as the other stores keep it: a record written
        # again replaces itself.
        kept = [h for h in r["history"] if h.get("seq") != record["seq"]]
        r["history"] = sorted([*kept, record], key=lambda h: h["seq"])
        self._commit(r)

    def save_undo(self, undo: list[dict[str, Any]]) -> None:
        """Replace the undo stack."""
        r = self._next()
        r["undo"] = copy.deepcopy(undo)
        self._commit(r)

    def close(self) -> None:
        """Stop accepting writes (the connection is the segment's to close)."""
        self.closed = True

    def _next(self) -> dict[str, Any]:
        # A shallow copy: the parts a write changes are replaced, not
        # changed in place, so a refused write leaves the record as it was.
        r = dict(self._record)
        r["stages"] = dict(r["stages"])
        r["keys"] = dict(r["keys"])
        return r


async def _patiently(op: Callable[[], Awaitable[T]]) -> T:
    """``op()``, tried again with backoff while the broker is away (as a
    channel's publish is: a restarting broker stalls the segment, it does
    not stop it); any other failure is raised."""
    delay = _BACKOFF_MIN
    while True:
        try:
            return await op()
        except KeyValueError:
            raise  # the broker answered (a wrong revision, a missing key)
        except Exception as exc:
            if not _retryable(exc):
                raise
            log.debug("state store: a write waits: %s", exc)
            await anyio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)


async def _purge(js: JetStreamContext, bucket: str, keys: list[str]) -> None:
    """Remove the parts of a record no longer named, leaving nothing behind
    (a purge of the bucket's stream by subject, not the key-value purge,
    which keeps a marker per key for ever). Best effort: a part left over
    costs space until the next open removes it, nothing else."""
    for key in keys:
        try:
            await js.purge_stream(f"KV_{bucket}", subject=f"$KV.{bucket}.{key}")
        except Exception as exc:  # the broker is away: the next open cleans up
            log.debug("state store: a part was not removed: %s", exc)
            return


async def _orphans(kv: KeyValue, segment: str, named: list[str]) -> list[str]:
    """Parts of the segment's record that no record names (left by a crash
    between writing the parts and the record)."""
    try:
        keys = await kv.keys()
    except NoKeysError:
        return []
    prefix = f"{segment}.part."
    kept = set(named)
    return [k for k in keys if k.startswith(prefix) and k not in kept]


async def _read(kv: KeyValue, value: bytes) -> tuple[bytes, list[str]]:
    """The data a value holds (its parts put together, if it names some),
    and the keys of those parts.

    Raises:
        StoreError: a part is missing or the parts do not make the data the
            value names (the bucket was changed by hand).
    """
    head = orjson.loads(value)
    if not isinstance(head, dict) or _PARTS not in head:
        return value, []
    keys = [f"{head['prefix']}.{i}" for i in range(head[_PARTS])]
    chunks = []
    for key in keys:
        try:
            chunk = (await kv.get(key)).value
        except KeyNotFoundError:
            chunk = None
        if chunk is None:
            raise StoreError(
                f"the state store is missing the part {key} of a value",
                path=key,
                expected="every part of a value",
                found="no such key",
            )
        chunks.append(chunk)
    data = b"".join(chunks)
    if hashlib.sha256(data).hexdigest() != head["sha256"]:
        raise StoreError(
            f"the parts {head['prefix']}.* do not make the value that names them",
            path=head["prefix"],
            expected=f"sha256 {head['sha256'][:12]}",
            found=f"sha256 {hashlib.sha256(data).hexdigest()[:12]}",
        )
    return data, keys


def _write_keys(r: dict[str, Any], keys: KeyWrites | None) -> None:
    if keys is None:
        return
    windows = r["keys"]
    for stage, key in keys.drop:
        windows[stage] = [e for e in windows.get(stage, []) if e[0] != key]
    for stage, rec in keys.put:
        window = [e for e in windows.get(stage, []) if e[0] != rec.key]
        windows[stage] = [*window, [rec.key, rec.version, rec.output]]


async def open_kv_store(
    nc: Client, pipeline: str, segment: str, *, limit: int | None = None
) -> KvStore:
    """The key-value store of ``segment`` of ``pipeline``, claimed by this process.

    Makes the pipeline's bucket if there is none (file storage, one value
    per key kept), reads the segment's record, and claims it: asks the
    owner's subject, answers it from now on, and writes the record with
    this process as its owner, checked against the revision read. Values
    bigger than ``limit`` bytes (by default what the broker's
    ``max_payload`` leaves after the headers) are written in parts.

    Raises:
        StoreError: another process runs the segment (it answered, or
            claimed the record first), or the record is not one this
            arrowloop reads.
    """
    subject = owner_subject(pipeline, segment)
    location = f"nats kv {bucket_name(pipeline)}/{segment}"
    try:
        reply = await nc.request(subject, b"", timeout=0.5)
    except (NoRespondersError, NatsTimeout):
        reply = None
    if reply is not None:
        raise StoreError(
            f"another process runs this segment ({reply.data.decode(errors='replace')}, "
            f"state in {location}); each segment runs in one process at a time",
            path=location,
            expected="no other process running the segment",
            found=reply.data.decode(errors="replace"),
        )
    me = f"pid {os.getpid()} on {socket.gethostname()}"

    async def answer(msg: Any) -> None:
        await msg.respond(me.encode())

    sub = await nc.subscribe(subject, cb=answer)
    await nc.flush()
    try:
        js = nc.jetstream()
        bucket = bucket_name(pipeline)
        try:
            kv = await js.key_value(bucket)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(bucket=bucket, history=1, storage=StorageType.FILE)
            )
        parts: list[str] = []
        try:
            entry = await kv.get(segment)
            data, parts = await _read(kv, entry.value or b"{}")
            record = orjson.loads(data)
            revision: int | None = entry.revision
        except KeyNotFoundError:
            record, revision = _empty(), None
        if not isinstance(record, dict) or record.get("format") != KV_FORMAT:
            found = record.get("format") if isinstance(record, dict) else type(record).__name__
            raise StoreError(
                f"cannot use the state store {location}: it is not a segment record this "
                f"arrowloop reads (format {found!r:.40}; this one reads {KV_FORMAT})",
                path=location,
                expected=f"a segment record of format {KV_FORMAT}",
                found=f"format {found!r:.40}",
            )
        machines = {}
        for rec in record["stages"].values():
            if rec["machine"] and rec["version"] not in machines:
                entry = await kv.get(f"{segment}.machine.{rec['version']}")
                doc, _ = await _read(kv, entry.value or b"null")
                machines[rec["version"]] = orjson.loads(doc)
        await _purge(js, bucket, await _orphans(kv, segment, parts))
        if limit is None:
            limit = nc.max_payload - _HEADROOM
        store = KvStore(js, kv, bucket, segment, record, revision, limit, machines, parts)
        claimed = {**record, "owner": me}
        await anyio.to_thread.run_sync(store._commit, claimed)
        return store
    except BaseException:
        await sub.unsubscribe()
        raise
