"""Building a change document from what the user points the CLI at.

A machine comes from a Python module (a ``@statemachine`` function, a
``Machine`` or a ``Loop`` of combinators) or from a wire JSON file; so do
migrations and adapters (an ``@arrow`` function, a ``Function`` or an
``Arrow``). A module given without ``:NAME`` is an *upgrade file*: its
``machine`` is sent with its ``migrate``, ``inverse``, ``input_adapter``
and ``output_adapter`` where it defines them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import attrs

from arrowloop.errors import DecodeError
from arrowloop.server import TargetError, load_module, load_object
from arrowloop.upgrade import function_doc, machine_doc
from arrowloop.wire import FORMAT, FORMAT_VERSION, Limits, document_kind, parse

__all__ = ["ChangeOptions", "build_change", "read_change_file", "FUNCTION_PARTS", "NONE"]

#: The optional parts of a stage's change, as module attributes and flags.
FUNCTION_PARTS: Final = ("migrate", "inverse", "input_adapter", "output_adapter")
#: What a flag takes to mean "leave this part out".
NONE: Final = "none"


@attrs.frozen
class ChangeOptions:
    """What the user asked for (``parts``: flag value per part, or ``None``
    to take the upgrade file's own)."""

    source: str
    stage: str
    expect_version: str
    parts: dict[str, str | None] = attrs.field(factory=dict)
    requested_by: str = "cli"
    change_interface: bool = False


def _read_json(path: str, limits: Limits) -> Any:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise TargetError(f"cannot read {path}: {exc}") from None
    if len(raw) > limits.max_bytes:
        raise TargetError(f"{path} is {len(raw)} bytes; at most {limits.max_bytes} can be sent")
    try:
        return parse(raw, limits)
    except DecodeError as exc:
        raise TargetError(f"{path}: {exc}") from None


def _is_json(ref: str) -> bool:
    return ref.endswith(".json")


def _function_doc(ref: str, what: str, limits: Limits) -> dict[str, Any] | None:
    if ref == NONE:
        return None
    if _is_json(ref):
        data = _read_json(ref, limits)
        kind = _kind(data, ref)
        if kind not in ("function", "arrow"):
            raise TargetError(f"{ref} is a {kind} document; the {what} must be a function")
        return data  # type: ignore[no-any-return]
    obj, _ = load_object(ref)
    try:
        return function_doc(obj)
    except TypeError as exc:
        raise TargetError(f"{ref} cannot be the {what}: {exc}") from None


def _kind(data: Any, ref: str) -> str:
    try:
        return document_kind(data)
    except DecodeError as exc:
        raise TargetError(f"{ref}: {exc}") from None


def build_change(opts: ChangeOptions, limits: Limits | None = None) -> dict[str, Any]:
    """The change document for ``opts`` (checked locally as far as it can be).

    Raises:
        TargetError: a module, attribute or file cannot be used (the message
            says which and why).
    """
    lim = limits or Limits()
    stage_change: dict[str, Any] = {"stage": opts.stage, "expect_version": opts.expect_version}
    source = opts.source
    defaults: Any = None
    if _is_json(source):
        data = _read_json(source, lim)
        kind = _kind(data, source)
        if kind == "change":
            raise TargetError(f"{source} is a whole change document: send it with --change-file")
        if kind not in ("machine", "loop"):
            raise TargetError(f"{source} is a {kind} document; expected a machine or a loop")
        stage_change["machine"] = data
    else:
        module_ref, sep, _ = source.rpartition(":")
        if sep and len(module_ref) > 1:
            obj, _ = load_object(source)
        else:
            defaults = load_module(source)
            obj = getattr(defaults, "machine", None)
            if obj is None:
                raise TargetError(
                    f"{source} defines no 'machine': name the machine as {source}:NAME"
                )
        try:
            stage_change["machine"] = machine_doc(obj)
        except TypeError as exc:
            raise TargetError(f"{source} cannot be sent: {exc}") from None
    for part in FUNCTION_PARTS:
        ref = opts.parts.get(part)
        doc: dict[str, Any] | None
        if ref is not None:
            doc = _function_doc(ref, part.replace("_", " "), lim)
        elif defaults is not None and getattr(defaults, part, None) is not None:
            try:
                doc = function_doc(getattr(defaults, part))
            except TypeError as exc:
                raise TargetError(f"{source}: its {part} cannot be sent: {exc}") from None
        else:
            doc = None
        if doc is not None:
            stage_change[part] = doc
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": "change",
        "requested_by": opts.requested_by,
        "change_interface": opts.change_interface,
        "stages": [stage_change],
    }


def read_change_file(path: str, limits: Limits | None = None) -> dict[str, Any]:
    """A whole change document from a JSON file (several stages at once).

    Raises:
        TargetError: unreadable, not JSON, or not a change document.
    """
    data = _read_json(path, limits or Limits())
    kind = _kind(data, path)
    if kind != "change":
        raise TargetError(f"{path} is a {kind} document; expected a change document")
    return data  # type: ignore[no-any-return]
