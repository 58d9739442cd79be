"""Top-level wire documents: whole machines and pure functions.

A document carries ``"format": "arrowloop"`` and ``"version": 1``; a
document of another version is refused with a clear error rather than
misread. A machine document holds the input, output and state types, the
initial state and the body; a function document (migrations, adapters) holds
input and output types and the program. The two untyped kinds, a loop
document (state type, initial state, body) and an arrow document (just the
program), carry code whose input and output types the receiver supplies: a
loop built with the types of the stage it replaces, a migration checked
from the old state type to the new.
"""

from __future__ import annotations

from typing import Any

from arrowloop.arrows import PRIMITIVES, Arrow, Loop, Registry
from arrowloop.errors import DecodeError
from arrowloop.typesys import Type
from arrowloop.wire._codec import Decoder, encode_arrow, encode_loop, encode_type, json_kind
from arrowloop.wire._json import (
    DEFAULT_LIMITS,
    FORMAT,
    FORMAT_VERSION,
    Limits,
    check_depth,
    parse,
)

__all__ = [
    "encode_machine_doc",
    "decode_machine_doc",
    "encode_function_doc",
    "decode_function_doc",
    "encode_loop_doc",
    "decode_loop_doc",
    "encode_arrow_doc",
    "decode_arrow_doc",
    "document_kind",
    "check_header",
]


def _header(kind: str) -> dict[str, Any]:
    return {"format": FORMAT, "version": FORMAT_VERSION, "kind": kind}


def encode_machine_doc(input: Type, output: Type, loop: Loop) -> dict[str, Any]:
    """The wire document of a machine."""
    lp = encode_loop(loop)
    return {
        **_header("machine"),
        "input": encode_type(input),
        "output": encode_type(output),
        "state": lp["state"],
        "init": lp["init"],
        "body": lp["body"],
    }


def encode_function_doc(input: Type, output: Type, arrow: Arrow) -> dict[str, Any]:
    """The wire document of a pure function (a migration or an adapter)."""
    return {
        **_header("function"),
        "input": encode_type(input),
        "output": encode_type(output),
        "body": encode_arrow(arrow),
    }


def encode_loop_doc(loop: Loop) -> dict[str, Any]:
    """The wire document of a loop without declared input and output types."""
    return {**_header("loop"), **encode_loop(loop)}


def encode_arrow_doc(arrow: Arrow) -> dict[str, Any]:
    """The wire document of a program without declared types."""
    return {**_header("arrow"), "body": encode_arrow(arrow)}


def document_kind(data: Any, path: str = "$") -> str:
    """The ``kind`` of a parsed document whose format and version are right.

    Raises:
        DecodeError: not an arrowloop document of this format version.
    """
    if type(data) is not dict:
        raise DecodeError(
            f"expected an arrowloop document (an object), found {json_kind(data)}",
            path=path,
        )
    kind = data.get("kind")
    check_header(data, kind if type(kind) is str else "document", path)
    assert type(kind) is str
    return kind


def check_header(data: Any, kind: str, path: str = "$") -> dict[str, Any]:
    """Check the ``format``/``version``/``kind`` of a parsed document.

    Raises:
        DecodeError: not an object, another format, version or kind.
    """
    if type(data) is not dict:
        raise DecodeError(
            f"expected an arrowloop {kind} document (an object), found {json_kind(data)}",
            path=path,
        )
    if data.get("format") != FORMAT:
        raise DecodeError(
            f'expected "format": "{FORMAT}", found {data.get("format")!r:.40}',
            path=f"{path}.format",
            expected=FORMAT,
            found=repr(data.get("format"))[:40],
        )
    version = data.get("version")
    if type(version) is not int or version != FORMAT_VERSION:
        raise DecodeError(
            f"expected format version {FORMAT_VERSION}, found {version!r:.40}"
            + (
                " (written by a newer arrowloop)"
                if type(version) is int and version > FORMAT_VERSION
                else ""
            ),
            path=f"{path}.version",
            expected=str(FORMAT_VERSION),
            found=repr(version)[:40],
        )
    if data.get("kind") != kind:
        raise DecodeError(
            f'expected a "{kind}" document, found kind {data.get("kind")!r:.40}',
            path=f"{path}.kind",
            expected=kind,
            found=repr(data.get("kind"))[:40],
        )
    return data


def _data(raw: Any, limits: Limits, depth_checked: bool) -> Any:
    if isinstance(raw, bytes | bytearray | memoryview | str):
        return parse(raw, limits)
    if not depth_checked:
        check_depth(raw, limits.max_depth)
    return raw


def decode_machine_doc(
    raw: Any,
    limits: Limits = DEFAULT_LIMITS,
    registry: Registry = PRIMITIVES,
    *,
    depth_checked: bool = False,
) -> tuple[Type, Type, Loop]:
    """Decode a machine document (bytes, str, or already-parsed data).

    ``depth_checked`` says parsed data was already checked against
    ``limits.max_depth`` (as part of a larger document), so it is not walked
    again.

    Returns ``(input type, output type, loop)``; the program is not yet
    type-checked (the machine layer does that).

    Raises:
        DecodeError: anything malformed, with a JSON path.
    """
    data = check_header(_data(raw, limits, depth_checked), "machine")
    dec = Decoder(limits.max_nodes, registry)
    dec.obj(data, "$", ("format", "version", "kind", "input", "output", "state", "init", "body"))
    input = dec.type(data["input"], "$.input")
    output = dec.type(data["output"], "$.output")
    state = dec.type(data["state"], "$.state")
    init = dec.value(state, data["init"], "$.init")
    body = dec.arrow(data["body"], "$.body")
    return input, output, Loop(body, state, init)


def decode_function_doc(
    raw: Any,
    limits: Limits = DEFAULT_LIMITS,
    registry: Registry = PRIMITIVES,
    *,
    depth_checked: bool = False,
) -> tuple[Type, Type, Arrow]:
    """Decode a function document; returns ``(input type, output type, program)``.

    Raises:
        DecodeError: anything malformed, with a JSON path.
    """
    data = check_header(_data(raw, limits, depth_checked), "function")
    dec = Decoder(limits.max_nodes, registry)
    dec.obj(data, "$", ("format", "version", "kind", "input", "output", "body"))
    input = dec.type(data["input"], "$.input")
    output = dec.type(data["output"], "$.output")
    body = dec.arrow(data["body"], "$.body")
    return input, output, body


def decode_loop_doc(
    raw: Any,
    limits: Limits = DEFAULT_LIMITS,
    registry: Registry = PRIMITIVES,
    *,
    depth_checked: bool = False,
) -> Loop:
    """Decode a loop document (not yet type-checked).

    Raises:
        DecodeError: anything malformed, with a JSON path.
    """
    data = check_header(_data(raw, limits, depth_checked), "loop")
    dec = Decoder(limits.max_nodes, registry)
    dec.obj(data, "$", ("format", "version", "kind", "state", "init", "body"))
    parts = {"kind": "loop", "state": data["state"], "init": data["init"], "body": data["body"]}
    return dec.loop(parts, "$")


def decode_arrow_doc(
    raw: Any,
    limits: Limits = DEFAULT_LIMITS,
    registry: Registry = PRIMITIVES,
    *,
    depth_checked: bool = False,
) -> Arrow:
    """Decode an arrow document (not yet type-checked).

    Raises:
        DecodeError: anything malformed, with a JSON path.
    """
    data = check_header(_data(raw, limits, depth_checked), "arrow")
    dec = Decoder(limits.max_nodes, registry)
    dec.obj(data, "$", ("format", "version", "kind", "body"))
    return dec.arrow(data["body"], "$.body")
