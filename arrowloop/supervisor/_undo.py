"""The undo stack's entries as wire documents, so rollback works after a restart.

An entry of a :class:`~arrowloop.supervisor._changes.ChangeBook`'s undo
stack is a :class:`~arrowloop.runtime.CheckedChange`: compiled code. Its
document keeps what compiling it again takes: per changed stage the old
and new machines (wire documents; ``null`` for a native machine, found
again by version among the served machines), the migration and its
inverse and the adapters as function documents, and whether clients of the
old version are served; plus the pipeline's interface before and after.

A change whose migration, inverse or adapter is a plain Python callable
has no document (:func:`encode_undo` returns ``None``): it can be rolled
back while the process lives, not after a restart. Part of layer 9.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from arrowloop.arrows import Arrow
from arrowloop.machine import AnyMachine, Function, Machine
from arrowloop.runtime import CheckedChange, StagePlan, StageUpgrade
from arrowloop.typesys import Type
from arrowloop.wire import decode_type, encode_function_doc, encode_type

__all__ = ["UNDO_KIND", "encode_undo", "decode_undo"]

#: The ``kind`` of an undo entry's document.
UNDO_KIND: Final = "undo"

_PARTS: Final = ("migrate", "inverse", "input_adapter", "output_adapter")


def _function_doc(part: Any, src: Type, dst: Type) -> dict[str, Any] | bool | None:
    """A migration's or adapter's document; ``None`` if absent, ``False`` if
    it has none (a plain callable)."""
    if part is None:
        return None
    if isinstance(part, Function):
        return part.to_wire_data()
    if isinstance(part, Arrow):
        return encode_function_doc(src, dst, part)
    return False


def encode_undo(
    upgrades: tuple[StageUpgrade, ...], checked: CheckedChange
) -> dict[str, Any] | None:
    """The document of the undo entry ``checked`` (the check of ``upgrades``),
    or ``None`` if a part of it is plain Python."""
    parts = {u.stage: u for u in upgrades}
    stages = []
    for p in checked.plans:
        u = parts[p.stage]
        old, new = p.old, p.new
        docs: dict[str, Any] = {}
        for name, src, dst in (
            ("migrate", old.state, new.state),
            ("inverse", new.state, old.state),
            ("input_adapter", old.input, new.input),
            ("output_adapter", new.output, old.output),
        ):
            doc = _function_doc(getattr(u, name), src, dst)
            if doc is False:
                return None
            docs[name] = doc
        stages.append(
            {
                "stage": p.stage,
                "old_version": old.version,
                "new_version": new.version,
                "old": old.to_wire_data() if isinstance(old, Machine) else None,
                "new": new.to_wire_data() if isinstance(new, Machine) else None,
                **docs,
                "serves_in": p.serves_in,
                "serves_out": p.serves_out,
            }
        )
    return {
        "kind": UNDO_KIND,
        "stages": stages,
        "interface": [
            encode_type(t)
            for t in (
                checked.input_before,
                checked.output_before,
                checked.input_after,
                checked.output_after,
            )
        ],
        "compatible": checked.compatible,
    }


def _machine(doc: Any, version: str, served: Mapping[str, AnyMachine], where: str) -> AnyMachine:
    known = served.get(version)
    if known is not None:
        return known  # the served code is the recorded one: nothing to compile
    if doc is None:
        raise ValueError(
            f"at {where}: the native machine {version[:12]} is not served, and only the "
            "module that defines it can provide it"
        )
    machine = Machine.from_wire(doc, budget=None)
    if machine.version != version:
        raise ValueError(
            f"at {where}: the machine has version {machine.version[:12]}, not {version[:12]}"
        )
    return machine


def _compiled(doc: Any) -> Any:
    return None if doc is None else Function.from_wire(doc, budget=None).fn


def decode_undo(doc: Any, served: Mapping[str, AnyMachine]) -> CheckedChange:
    """The undo entry a document of :func:`encode_undo` describes, compiled
    again (its parts were checked when the change was made).

    Args:
        doc: the document.
        served: the served machines by version (used as they are; a
            native machine can only come from there).

    Raises:
        ValueError, DecodeError, CheckError: the document cannot be used.
    """
    if not isinstance(doc, dict) or doc.get("kind") != UNDO_KIND:
        raise ValueError(f"expected an undo entry (kind {UNDO_KIND!r}), found {str(doc)[:60]}")
    plans = []
    for i, s in enumerate(doc["stages"]):
        where = f"$.stages[{i}]"
        adapt_in = _compiled(s["input_adapter"])
        adapt_out = _compiled(s["output_adapter"])
        plans.append(
            StagePlan(
                s["stage"],
                _machine(s["old"], s["old_version"], served, f"{where}.old"),
                _machine(s["new"], s["new_version"], served, f"{where}.new"),
                _compiled(s["migrate"]),
                _compiled(s["inverse"]),
                adapt_in,
                adapt_out,
                bool(s["serves_in"]),
                bool(s["serves_out"]),
            )
        )
    in_before, out_before, in_after, out_after = (
        decode_type(t, f"$.interface[{i}]") for i, t in enumerate(doc["interface"])
    )
    return CheckedChange(
        tuple(plans), in_before, out_before, in_after, out_after, bool(doc["compatible"])
    )
