"""The data port's requests and replies: one JSON document per line.

A request line is ``{"item": <value>}`` with optional ``"id"`` (echoed in
the reply), ``"version"`` (the machine version the client was written
for; its items and outputs are adapted) and ``"key"`` (a request key: a
resent key is answered with the first application's reply, see
docs/durability.md). Each request gets exactly one reply line, in request
order: ``{"output": <value>}`` or ``{"error": {...}}``. This module reads
requests and writes replies; ``_dataconn.py`` serves a connection.
"""

from __future__ import annotations

from typing import Any, Final

import anyio
import orjson

from arrowloop.endpoints import LineTooLong, describe_json
from arrowloop.errors import ProtocolError
from arrowloop.runtime import LATENCY_SECONDS, MAX_KEY, Histogram

__all__ = [
    "Drain",
    "DataStats",
    "DEFAULT_WINDOW",
    "MAX_ID",
    "fields_of",
    "id_of",
    "invalid_json",
    "reply_line",
    "too_long",
]

#: Default most requests of one connection in flight at once.
DEFAULT_WINDOW: Final = 256
#: Longest request ``id`` string.
MAX_ID: Final = 256

_REQUEST_FIELDS: Final = ("item", "id", "version", "key")


class DataStats:
    """What a server's data connections have done, counted per batch.

    Attributes:
        requests: request lines read.
        replies: replies written.
        errors: error replies written, by error type.
        latency: seconds from reading a batch of requests to writing the
            reply of its first request, one observation per write.
    """

    __slots__ = ("errors", "latency", "replies", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.replies = 0
        self.errors: dict[str, int] = {}
        self.latency = Histogram(LATENCY_SECONDS)

    def error(self, data: dict[str, Any]) -> None:
        """Count an error reply."""
        kind = str(data.get("type", "InternalError"))
        self.errors[kind] = self.errors.get(kind, 0) + 1


def _protocol_error(path: str, expected: str, found: str) -> ProtocolError:
    return ProtocolError(
        f"expected {expected}, found {found}", path=path, expected=expected, found=found
    )


def _parse(line: bytes) -> tuple[Any, Any, str | None, str | None]:
    """``(id, raw item, version, key)`` of a request line.

    Raises:
        ProtocolError: not JSON, not an object, unknown or ill-typed fields.
    """
    try:
        req = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise invalid_json(exc) from None
    return fields_of(req)


def invalid_json(exc: orjson.JSONDecodeError) -> ProtocolError:
    """The error answering a line that is not JSON."""
    return _protocol_error("$", "a JSON object per line", f"invalid JSON ({exc})")


def fields_of(req: Any) -> tuple[Any, Any, str | None, str | None]:
    """``(id, raw item, version, key)`` of a parsed request (see :func:`_parse`)."""
    if type(req) is not dict:
        raise _protocol_error("$", 'an object {"item": ...}', describe_json(req))
    rid = req.get("id")
    if not (
        rid is None or type(rid) is int or (type(rid) is str and len(rid) <= MAX_ID)
    ):  # an id is echoed back: keep it a small scalar
        raise _protocol_error(
            "$.id", f"an integer or a string of at most {MAX_ID}", describe_json(rid)
        )
    for key in req:
        if key not in _REQUEST_FIELDS:
            raise _protocol_error(
                f"$.{key[:40]}",
                f"only the fields {list(_REQUEST_FIELDS)}",
                f"the field {key!r:.40}",
            )
    if "item" not in req:
        raise _protocol_error("$.item", "the item to send", "nothing")
    version = req.get("version")
    if version is not None and type(version) is not str:
        raise _protocol_error(
            "$.version", "a machine version (a hex string)", describe_json(version)
        )
    rkey = req.get("key")
    if rkey is not None and not (type(rkey) is str and 0 < len(rkey) <= MAX_KEY):
        raise _protocol_error(
            "$.key",
            f"a request key (a string of 1 to {MAX_KEY} characters)",
            f"a string of {len(rkey)} characters" if type(rkey) is str else describe_json(rkey),
        )
    return rid, req["item"], version, rkey


#: orjson's option ending a reply with its newline (no copy to add it).
_LINE: Final = orjson.OPT_APPEND_NEWLINE


def reply_line(rid: Any, output: Any = None, error: dict[str, Any] | None = None) -> bytes:
    """A reply line: the output, or the error, with the request's id if it had one."""
    if error is not None:
        return orjson.dumps(
            {"error": error} if rid is None else {"id": rid, "error": error}, option=_LINE
        )
    return orjson.dumps(
        {"output": output} if rid is None else {"id": rid, "output": output}, option=_LINE
    )


def id_of(line: bytes) -> Any:
    """The request's id if the line has a usable one (for error replies)."""
    try:
        req = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    rid = req.get("id") if type(req) is dict else None
    return rid if type(rid) is int or (type(rid) is str and len(rid) <= MAX_ID) else None


def too_long(exc: LineTooLong) -> ProtocolError:
    """The error answering a line over the limit."""
    return _protocol_error("$", f"a line of at most {exc.limit} bytes", f"{exc.size} bytes")


class Drain:
    """Stops every data connection reading, so a server can shut down
    without dropping a reply: each connection then answers what it has
    admitted and closes."""

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()
        self.draining = False

    def stop_reading(self) -> None:
        """Stop reading requests on every connection, now and from now on."""
        self.draining = True
        for scope in self._scopes:
            scope.cancel()

    def watch(self, scope: anyio.CancelScope) -> None:
        """Register a connection's reading scope (cancelled at once if draining)."""
        self._scopes.add(scope)
        if self.draining:
            scope.cancel()

    def forget(self, scope: anyio.CancelScope) -> None:
        """Unregister a reading scope."""
        self._scopes.discard(scope)
