"""The control port: authenticated code changes, rollback and introspection.

One JSON request per line, one reply per line, handled one at a time per
connection. Every request carries the token; a request without the right
token is refused (and the connection closed) before anything else is
looked at. A request is decoded and checked completely before the
supervisor acts on it, so a malformed, oversized or ill-typed request
changes nothing. A change document is first held against the running
versions (a stale one is refused before any program in it is decoded),
then decoded, checked and compiled within the change budget in a worker
thread, one change at a time per supervisor: the event loop goes on
serving the data port meanwhile.
"""

from __future__ import annotations

import functools
import math
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import anyio
import attrs
import orjson
from anyio.abc import ByteStream

from arrowloop.arrows import deferred_full_collections
from arrowloop.endpoints import BufferBudget, LineReader, LineTooLong, describe_json
from arrowloop.errors import (
    AuthenticationError,
    ProtocolError,
    StoreError,
    UpgradeError,
    error_data,
)
from arrowloop.server._auth import Token, check_token
from arrowloop.server._guards import AuthThrottle
from arrowloop.store import write_savepoint
from arrowloop.supervisor import Supervisor
from arrowloop.upgrade import decode_change, record_data, state_data, status_data
from arrowloop.wire import DEFAULT_LIMITS, Limits

__all__ = ["ControlLimits", "OPERATIONS", "serve_control_connection"]

#: The operations of the control protocol.
OPERATIONS: Final = (
    "upgrade",
    "rollback",
    "status",
    "history",
    "get_state",
    "savepoint",
    "auth",
)


@attrs.frozen
class ControlLimits:
    """Limits on control requests.

    Attributes:
        max_request: longest request line, in bytes.
        max_unauthenticated: longest request line before one with the right
            token has been seen on the connection (an unauthenticated
            client cannot make the server buffer or parse megabytes; a
            client with a big first request authenticates first, with
            ``{"op": "auth"}``).
        program: limits on each machine or function document inside a change.
        max_record_types: most distinct record types one change may declare.
        savepoint_dir: where the ``savepoint`` operation writes its files
            (``None``: the operation is refused; ``serve --state-dir`` uses
            the state directory's ``savepoints/``).

    What decoding one change document may cost is the supervisor's
    ``change_budget`` (its spec), which also bounds its check of the change.
    """

    max_request: int = 4 * 1024 * 1024
    max_unauthenticated: int = attrs.field(default=64 * 1024)
    program: Limits = DEFAULT_LIMITS
    max_record_types: int = 64
    savepoint_dir: str | None = None

    @max_unauthenticated.validator
    def _check_unauthenticated(self, attribute: Any, value: Any) -> None:
        # An auth request with the longest token must always fit.
        if type(value) is not int or value < 4096:
            raise ValueError(f"expected max_unauthenticated >= 4096 bytes, found {value!r}")


def _bad(path: str, expected: str, found: str) -> ProtocolError:
    return ProtocolError(
        f"expected {expected}, found {found}", path=path, expected=expected, found=found
    )


def _field(req: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = req.get(name)
    if type(value) is not kind:
        found = "nothing" if value is None else describe_json(value)
        raise _bad(f"$.{name}", what, found)
    return value


def _requester(req: dict[str, Any], default: str) -> str:
    who = req.get("requested_by", default)
    if type(who) is not str or not who or len(who) > 200:
        raise _bad("$.requested_by", "a non-empty string of at most 200", repr(who)[:40])
    return who


Handler = Callable[[Any, dict[str, Any], ControlLimits], Awaitable[Any]]


# One change document decoded at a time per supervisor: several control
# connections cannot take every core (or every worker thread) between them.
_decoding: weakref.WeakKeyDictionary[Supervisor, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _decoder_of(sup: Supervisor) -> anyio.CapacityLimiter:
    limiter = _decoding.get(sup)
    if limiter is None:
        limiter = _decoding[sup] = anyio.CapacityLimiter(1)
    return limiter


#: Most JSON values in a change document decoded on the event loop itself
#: (a counter's change is a few hundred; bigger ones go to a worker thread).
SMALL_CHANGE: Final = 4000


def _small(doc: Any) -> bool:
    """Whether ``doc`` holds at most ``SMALL_CHANGE`` JSON values (stops
    counting there; 0: no document is small)."""
    limit = SMALL_CHANGE
    if limit <= 0:
        return False
    stack = [doc]
    seen = 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > limit:
            return False
        if type(value) is dict:
            stack.extend(value.values())
        elif type(value) is list:
            stack.extend(value)
    return True


class _Stale(Exception):
    """A change refused as stale, with what the history records of it."""

    def __init__(self, error: UpgradeError, stages: tuple[str, ...], who: str) -> None:
        super().__init__(str(error))
        self.error = error
        self.stages = stages
        self.who = who


def _decode_taken(decode: Callable[[Any], Any], holder: list[Any]) -> Any:
    """``decode`` the document in ``holder``, taking it out: with no other
    reference left, it is freed in the thread that runs this (millions of
    objects take milliseconds to free, which the data port would wait).

    Raises:
        _Stale: the change is stale (refused before its programs are decoded).
    """
    doc = holder.pop()
    try:
        return decode(doc)
    except UpgradeError as exc:
        stages = tuple(s["stage"] for s in doc["stages"])
        raise _Stale(exc, stages, doc.get("requested_by", "unknown")) from None
    finally:
        del doc


async def _upgrade(sup: Supervisor, req: dict[str, Any], limits: ControlLimits) -> Any:
    change_doc = _field(req, "change", dict, "a change document (an object)")
    p = sup.pipeline
    decode = functools.partial(
        decode_change,
        limits=limits.program,
        max_record_types=limits.max_record_types,
        path="$.change",
        running={name: p.version(name) for name in p.stage_names},
        budget=sup.spec.change_budget,
    )
    # The parsed document may be millions of objects: let it go once it is
    # decoded, before the supervisor checks the change (collections scan
    # what is alive).
    del req["change"]
    small = _small(change_doc)
    holder = [change_doc]
    del change_doc  # the decoder holds the only reference
    try:
        if small:
            # A few milliseconds on the loop cost less than a thread hop:
            # under load the loop then waits for the GIL at every switch.
            change = _decode_taken(decode, holder)
        else:
            change = await anyio.to_thread.run_sync(
                _decode_taken, decode, holder, limiter=_decoder_of(sup), abandon_on_cancel=True
            )
    except _Stale as stale:  # refused before decoding, recorded as the supervisor would
        who = _requester(req, stale.who) if "requested_by" in req else stale.who
        sup.record_refused(stale.stages, who, stale.error)
        raise stale.error from stale.error.__cause__
    if "requested_by" in req:  # the request's own word wins over the document's
        change = attrs.evolve(change, requested_by=_requester(req, "control"))
    versions = await sup.code_change(change)
    return {"versions": versions}


async def _rollback(sup: Supervisor, req: dict[str, Any], limits: ControlLimits) -> Any:
    stage = _field(req, "stage", str, "the stage to roll back (a string)")
    versions = await sup.rollback(stage, requested_by=_requester(req, "control"))
    return {"versions": versions}


async def _status(sup: Supervisor, req: dict[str, Any], limits: ControlLimits) -> Any:
    return status_data(await sup.status())


async def _history(sup: Supervisor, req: dict[str, Any], limits: ControlLimits) -> Any:
    return [record_data(r) for r in await sup.history()]


async def _get_state(sup: Supervisor, req: dict[str, Any], limits: ControlLimits) -> Any:
    stage = _field(req, "stage", str, "the stage whose state to read (a string)")
    await sup.get_state(stage)  # ordered with control requests; raises for an unknown stage
    p = sup.pipeline
    # Machine and state read in one step, so they belong together.
    return state_data(stage, p.machine(stage), p.state(stage))


async def _savepoint(sup: Supervisor, req: dict[str, Any], limits: ControlLimits) -> Any:
    name = req.get("name")
    if name is not None and type(name) is not str:
        raise _bad("$.name", "a savepoint name (a string) or nothing", describe_json(name))
    directory = limits.savepoint_dir
    if directory is None:
        raise StoreError(
            "this server has no savepoint directory: serve it with --state-dir (savepoints go "
            "to its savepoints/) or --savepoint-dir DIR",
            path="savepoint",
            expected="a savepoint directory",
            found="none",
        )
    savepoint = await sup.savepoint(name)
    # Written (and synced) off the event loop: the data port goes on meanwhile.
    path = await anyio.to_thread.run_sync(write_savepoint, savepoint, directory)
    return {
        "path": str(path),
        "name": savepoint.name,
        "taken_at": savepoint.taken_at,
        "seqs": {s.stage: s.seq for s in savepoint.stages},
    }


async def _auth(sup: Supervisor, req: dict[str, Any], limits: ControlLimits) -> Any:
    # The token was checked before any handler runs: saying so is all.
    return {"authenticated": True, "max_request": limits.max_request}


_HANDLERS: Final[dict[str, Handler]] = {
    "auth": _auth,
    "upgrade": _upgrade,
    "rollback": _rollback,
    "status": _status,
    "history": _history,
    "get_state": _get_state,
    "savepoint": _savepoint,
}
_FIELDS: Final = ("id", "token", "op", "change", "stage", "requested_by", "name")
#: Requests at least this long are handled with full collections deferred.
_BIG_REQUEST: Final = 64 * 1024
#: What a wait for a request line gives when its deadline passed.
_TIMED_OUT: Final = b"\x00timed out"


def _reply(rid: Any, result: Any = None, error: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {} if rid is None else {"id": rid}
    if error is None:
        body.update(ok=True, result=result)
    else:
        body.update(ok=False, error=error)
    return orjson.dumps(body) + b"\n"


async def _handle(
    sup: Any,
    token: Token,
    line: bytes,
    limits: ControlLimits,
    throttle: AuthThrottle | None = None,
    address: str | None = None,
    handlers: Mapping[str, Handler] = _HANDLERS,
) -> tuple[bytes, bool, bool]:
    """The reply to one request line, whether to keep the connection, and
    whether the request carried the right token."""
    if len(line) < _BIG_REQUEST:
        return await _answer(sup, token, line, limits, throttle, address, handlers)
    # Parsed on the loop (the token comes first): a big request is millions
    # of objects, and a full collection while it is alive would scan them
    # all with the loop stopped.
    with deferred_full_collections():
        return await _answer(sup, token, line, limits, throttle, address, handlers)


#: Request lines longer than this (in bytes) are parsed in a worker thread:
#: parsing takes about 25 ms per MiB, which the data port would wait. Above
#: ``max_unauthenticated``'s default, so only a client that has shown the
#: token can make the server parse in a thread.
BIG_LINE: Final = 256 * 1024


def _parse_big(line: bytes) -> Any:
    """A big request line parsed (called in a worker thread)."""
    return orjson.loads(line)


async def _answer(
    sup: Any,
    token: Token,
    line: bytes,
    limits: ControlLimits,
    throttle: AuthThrottle | None,
    address: str | None,
    handlers: Mapping[str, Handler],
) -> tuple[bytes, bool, bool]:
    try:
        if len(line) > BIG_LINE:
            req = await anyio.to_thread.run_sync(
                _parse_big, line, limiter=_decoder_of(sup), abandon_on_cancel=True
            )
        else:
            req = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        err = _bad("$", "a JSON object per line", f"invalid JSON ({exc})")
        return _reply(None, error=error_data(err)), True, False
    if type(req) is not dict:
        err = _bad("$", "an object", describe_json(req))
        return _reply(None, error=error_data(err)), True, False
    rid = given_id = req.get("id")
    bad_id = not (rid is None or type(rid) is int or (type(rid) is str and len(rid) <= 256))
    if bad_id:
        rid = None
    try:
        check_token(req.get("token"), token)
    except AuthenticationError as exc:
        delay = throttle.failed(address) if throttle is not None else 0.0
        if delay > 0:
            # Slow the guesses of an address that keeps failing; a right
            # token (checked above) is never delayed.
            exc = AuthenticationError(
                f"{exc} (wrong tokens keep coming from your address: each refusal "
                f"is now delayed by {delay:.2f} s)"
            )
            await anyio.sleep(delay)
        return _reply(rid, error=error_data(exc)), False, False
    try:
        if bad_id:  # as on the data port: an id is echoed back, so keep it a small scalar
            raise _bad("$.id", "an integer or a string of at most 256", describe_json(given_id))
        unknown = [k for k in req if k not in _FIELDS]
        if unknown:
            raise _bad(
                f"$.{unknown[0][:40]}",
                f"only the fields {list(_FIELDS)}",
                f"the field {unknown[0]!r:.40}",
            )
        op = req.get("op")
        handler = handlers.get(op) if type(op) is str else None
        if handler is None:
            raise _bad("$.op", f"one of {list(OPERATIONS)}", repr(op)[:40])
        result = await handler(sup, req, limits)
    except Exception as exc:
        return _reply(rid, error=error_data(exc)), True, True
    return _reply(rid, result), True, True


async def serve_control_connection(
    sup: Supervisor | Any,
    stream: ByteStream,
    token: Token,
    limits: ControlLimits,
    *,
    auth_timeout: float | None = None,
    idle_timeout: float | None = None,
    budget: BufferBudget | None = None,
    throttle: AuthThrottle | None = None,
    address: str | None = None,
    refusals: dict[str, int] | None = None,
    handlers: Mapping[str, Handler] | None = None,
) -> None:
    """Serve one control connection: requests one at a time, in order.

    The connection is closed after a refused token (so a client cannot
    try tokens on one connection), when the supervisor stops, when no
    request with the right token has come ``auth_timeout`` seconds after it
    opened (an unauthenticated connection cannot sit on the port), and
    after ``idle_timeout`` seconds without a request once authenticated.
    Refusals of wrong tokens from an ``address`` that keeps sending them
    are delayed by ``throttle``; ``budget`` may evict the connection (it is
    then closed) when the server's readers hold too much together. Error
    replies are counted by type in ``refusals``. ``handlers`` replaces what
    each operation does (a distributed pipeline's segment passes its own,
    and itself as ``sup``: ``arrowloop.distributed``); the protocol stays.
    """
    scope = anyio.CancelScope()
    reader = LineReader(
        stream,
        min(limits.max_unauthenticated, limits.max_request),
        budget=budget,
        on_evict=scope.cancel,
    )
    try:
        with scope:
            await _serve_requests(
                sup,
                stream,
                reader,
                token,
                limits,
                throttle,
                address,
                auth_timeout,
                idle_timeout,
                {} if refusals is None else refusals,
                _HANDLERS if handlers is None else handlers,
            )
    finally:
        reader.release()


async def _serve_requests(
    sup: Any,
    stream: ByteStream,
    reader: LineReader,
    token: Token,
    limits: ControlLimits,
    throttle: AuthThrottle | None,
    address: str | None,
    auth_timeout: float | None,
    idle_timeout: float | None,
    refusals: dict[str, int],
    handlers: Mapping[str, Handler],
) -> None:
    authed = False
    auth_deadline = None if auth_timeout is None else anyio.current_time() + auth_timeout
    while True:
        if authed:
            deadline = None if idle_timeout is None else anyio.current_time() + idle_timeout
        else:
            deadline = auth_deadline
        try:
            line: bytes | None = _TIMED_OUT
            with anyio.move_on_after(
                math.inf if deadline is None else deadline - anyio.current_time()
            ):
                line = await reader.receive_line()
            if line is _TIMED_OUT:
                return  # closed: unauthenticated too long, or idle
        except LineTooLong as exc:
            if authed:
                err = _bad("$", f"a request of at most {exc.limit} bytes", f"{exc.size} bytes")
            else:  # nobody known sends this much: answer once, then close
                err = _bad(
                    "$",
                    f"a request of at most {exc.limit} bytes before the token is verified "
                    '(send {"op": "auth", "token": ...} first)',
                    f"{exc.size} bytes",
                )
            reply, keep = _reply(None, error=error_data(err)), authed
        else:
            if line is None:
                return
            if not line.strip():
                continue
            reply, keep, ok = await _handle(sup, token, line, limits, throttle, address, handlers)
            if ok and not authed:
                authed = True
                reader.max_line = limits.max_request
        if b'"ok":false' in reply:
            kind = str(orjson.loads(reply)["error"].get("type"))
            refusals[kind] = refusals.get(kind, 0) + 1
        try:
            await stream.send(reply)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return
        if not keep:
            return
