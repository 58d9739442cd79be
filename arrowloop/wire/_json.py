"""Bytes <-> JSON data with limits, and the canonical encoding.

Every document is parsed by :func:`parse`, which enforces the size limit
before parsing and the nesting limit after, and turns every failure into a
:class:`~arrowloop.errors.DecodeError`. :func:`canonical` is the one byte
encoding that hashes are taken over: orjson with sorted keys.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

import attrs
import orjson

from arrowloop.errors import DecodeError

__all__ = ["Limits", "DEFAULT_LIMITS", "parse", "canonical", "digest", "FORMAT", "FORMAT_VERSION"]

#: The ``format`` field of every top-level wire document.
FORMAT: Final = "arrowloop"
#: The wire format version this library writes and reads.
FORMAT_VERSION: Final = 1


@attrs.frozen
class Limits:
    """Limits applied when decoding untrusted documents.

    Attributes:
        max_bytes: largest accepted document, in bytes.
        max_depth: deepest accepted JSON nesting (arrays and objects).
        max_nodes: most program nodes plus type terms in one document.
    """

    max_bytes: int = 4 * 1024 * 1024
    max_depth: int = 256
    max_nodes: int = 200_000


DEFAULT_LIMITS: Final = Limits()


def parse(raw: bytes | bytearray | memoryview | str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Parse one JSON document within ``limits``.

    Raises:
        DecodeError: the payload is too large, not JSON, or nested too deeply.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    size = len(raw)
    if size > limits.max_bytes:
        raise DecodeError(
            f"expected a document of at most {limits.max_bytes} bytes, found {size} bytes",
            path="$",
            expected=f"<= {limits.max_bytes} bytes",
            found=f"{size} bytes",
        )
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(
            f"expected a JSON document, found invalid JSON ({exc})",
            path="$",
            expected="JSON",
            found="invalid JSON",
        ) from None
    check_depth(data, limits.max_depth)
    return data


def check_depth(data: Any, max_depth: int) -> None:
    """Raise :class:`DecodeError` if ``data`` nests deeper than ``max_depth``."""
    # Level by level: no per-node bookkeeping, and a document of depth d
    # costs d passes over lists, not one tuple per node.
    level = [data]
    depth = 1
    while level:
        if depth > max_depth:
            raise DecodeError(
                f"expected nesting of at most {max_depth} levels, found deeper",
                path="$",
                expected=f"<= {max_depth} levels",
                found=f"> {max_depth} levels",
            )
        below: list[Any] = []
        for node in level:
            if isinstance(node, dict):
                below.extend(node.values())
            elif isinstance(node, list):
                below.extend(node)
        level = below
        depth += 1


def canonical(data: Any) -> bytes:
    """The canonical bytes of JSON data: compact, keys sorted, UTF-8."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def digest(data: Any) -> str:
    """SHA-256 (hex) of the canonical bytes of ``data``."""
    return hashlib.sha256(canonical(data)).hexdigest()
