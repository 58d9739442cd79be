"""The wire form of a code change: what a remote upgrade request carries.

A change document names each stage to change, the version it must be
running, the new machine and the migrations and adapters, all as wire
documents (data, never Python). Decoding checks every part that can be
checked without the running pipeline (shape, limits, each machine's and
function's own types); the supervisor then checks the parts against the
running versions before anything enters the pipeline.

Machines travel as machine documents (with their types) or loop documents
(built with the types of the stage they replace); migrations, inverses and
adapters as function documents (with their types) or arrow documents
(checked against the types they must have).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

from arrowloop.arrows import (
    DEFAULT_BUDGET,
    PRIMITIVES,
    Arrow,
    ChangeBudget,
    Loop,
    Registry,
    metered,
)
from arrowloop.errors import (
    BudgetError,
    CheckError,
    DecodeError,
    LocatedError,
    TypeDefinitionError,
    UpgradeError,
    ValidationError,
)
from arrowloop.frontend import PyFunction, PyMachine
from arrowloop.machine import Function, Machine, NativeMachine
from arrowloop.supervisor import CodeChange, StageUpgrade
from arrowloop.wire import (
    DEFAULT_LIMITS,
    FORMAT,
    FORMAT_VERSION,
    Limits,
    check_depth,
    check_header,
    decode_arrow_doc,
    decode_function_doc,
    decode_loop_doc,
    decode_machine_doc,
    document_kind,
    encode_arrow_doc,
    encode_loop_doc,
    json_kind,
)

__all__ = [
    "MAX_STAGES",
    "MAX_RECORD_TYPES",
    "MAX_REQUESTER",
    "encode_change",
    "decode_change",
    "machine_doc",
    "function_doc",
]

#: Most stages one change document may name.
MAX_STAGES: Final = 64
#: Most distinct record types one change document may declare: each new
#: record type takes a slot in the process-wide class table, so one request
#: must not be able to fill it.
MAX_RECORD_TYPES: Final = 64
#: Longest ``requested_by``.
MAX_REQUESTER: Final = 200

_VERSION = re.compile(r"[0-9a-f]{64}")
_STAGE_FIELDS: Final = (
    "stage",
    "expect_version",
    "machine",
    "migrate",
    "inverse",
    "input_adapter",
    "output_adapter",
)
_FUNCTION_FIELDS: Final = ("migrate", "inverse", "input_adapter", "output_adapter")


def machine_doc(machine: Machine | PyMachine | Loop) -> dict[str, Any]:
    """The wire document of a machine to send (a loop travels without types).

    Raises:
        TypeError: a native machine (in-process only) or another object.
    """
    if isinstance(machine, PyMachine):
        machine = machine.machine
    if isinstance(machine, Machine):
        return machine.to_wire_data()
    if isinstance(machine, Loop):
        return encode_loop_doc(machine)
    if isinstance(machine, NativeMachine):
        raise TypeError(
            "a native machine wraps a Python callable and can only be upgraded in-process; "
            "write it in the arrow language or the Python subset to send it"
        )
    raise TypeError(f"expected a Machine, a @statemachine or a Loop, found {type(machine)!r}")


def function_doc(fn: Function | PyFunction | Arrow | None) -> dict[str, Any] | None:
    """The wire document of a migration or adapter (``None`` stays ``None``).

    Raises:
        TypeError: a plain Python callable (it has no wire form) or another object.
    """
    if fn is None:
        return None
    if isinstance(fn, PyFunction):
        fn = fn.function
    if isinstance(fn, Function):
        return fn.to_wire_data()
    if isinstance(fn, Arrow):
        return encode_arrow_doc(fn)
    hint = " (plain Python callables cannot be sent)" if callable(fn) else ""
    raise TypeError(
        f"expected a Function, an @arrow function or an arrow program, found {type(fn)!r}{hint}"
    )


def encode_change(change: CodeChange) -> dict[str, Any]:
    """The wire document of ``change`` (JSON data).

    Raises:
        TypeError: a part has no wire form (a native machine, a Python callable).
    """
    stages = []
    for u in change.upgrades:
        entry: dict[str, Any] = {
            "stage": u.stage,
            "expect_version": u.expect_version,
            "machine": machine_doc(u.machine),  # type: ignore[arg-type]
        }
        for name in _FUNCTION_FIELDS:
            doc = function_doc(getattr(u, name))
            if doc is not None:
                entry[name] = doc
        stages.append(entry)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": "change",
        "requested_by": change.requested_by,
        "change_interface": change.change_interface,
        "stages": stages,
    }


def _fail(path: str, expected: str, found: str) -> DecodeError:
    return DecodeError(
        f"expected {expected}, found {found}", path=path, expected=expected, found=found
    )


def _show(value: Any) -> str:
    # In JSON's terms: the reader may be a client in another language.
    return repr(value)[:40] if not isinstance(value, dict | list) else json_kind(value)


def _rebase(exc: LocatedError, prefix: str) -> LocatedError:
    """The same error with its path placed under ``prefix`` (a JSON path)."""
    path = exc.path
    if path == "$" or not path:
        new_path = prefix
    elif path.startswith("$"):
        new_path = prefix + path[1:]
    else:  # a program path from the checker (body.case[IncrCount])
        new_path = f"{prefix}: {path}"
    if isinstance(exc, BudgetError):
        assert exc.found is not None
        return BudgetError(limit=exc.limit, value=exc.value, found=exc.found, path=new_path)
    cls = type(exc)
    if cls not in (DecodeError, CheckError, ValidationError, TypeDefinitionError):
        cls = DecodeError
    return cls(exc.message, path=new_path, expected=exc.expected, found=exc.found)


def _count_record_types(data: Any, limit: int, path: str) -> None:
    """Refuse a document declaring more than ``limit`` distinct record types
    (``data`` is already depth-checked)."""
    seen: set[str] = set()
    stack: list[Any] = [data]
    while stack:
        node = stack.pop()
        if type(node) is dict:
            if node.get("kind") == "record" and "fields" in node:
                seen.add(repr((node.get("name"), node.get("fields"))))
                if len(seen) > limit:
                    raise _fail(
                        _path_to(data, node, path),
                        f"at most {limit} distinct record types in one change",
                        f"more ({len(seen)} so far)",
                    )
            stack.extend(node.values())
        elif type(node) is list:
            stack.extend(node)


def _path_to(data: Any, target: Any, path: str) -> str:
    """The JSON path of the node ``target`` (by identity) inside ``data``;
    worked out only for an error, so the common walk builds no paths."""
    stack: list[tuple[Any, str]] = [(data, path)]
    while stack:
        node, at = stack.pop()
        if node is target:
            return at
        if type(node) is dict:
            stack.extend((v, f"{at}.{k}") for k, v in node.items())
        elif type(node) is list:
            stack.extend((v, f"{at}[{i}]") for i, v in enumerate(node))
    return path  # pragma: no cover - target is always inside data


def _decode_part(
    data: Any, path: str, decoders: Mapping[str, Callable[[Any], Any]], what: str
) -> Any:
    """Decode one wire document inside a change with the decoder for its
    kind; errors are placed under ``path``."""
    try:
        kind = document_kind(data)  # "$" here: _rebase places it under ``path``
        decode = decoders.get(kind)
        if decode is not None:
            return decode(data)
    except (DecodeError, CheckError, TypeDefinitionError, BudgetError) as exc:
        raise _rebase(exc, path) from None
    raise _fail(f"{path}.kind", what, repr(kind)[:40])


def _decode_machine(data: Any, path: str, limits: Limits, registry: Registry) -> Machine | Loop:
    def machine(doc: Any) -> Machine:
        input, output, lp = decode_machine_doc(doc, limits, registry, depth_checked=True)
        return Machine.build(lp, input, output, registry=registry)

    def loop(doc: Any) -> Loop:
        return decode_loop_doc(doc, limits, registry, depth_checked=True)

    decoders = {"machine": machine, "loop": loop}
    result: Machine | Loop = _decode_part(data, path, decoders, 'a "machine" or "loop" document')
    return result


def _decode_function(data: Any, path: str, limits: Limits, registry: Registry) -> Function | Arrow:
    def function(doc: Any) -> Function:
        input, output, body = decode_function_doc(doc, limits, registry, depth_checked=True)
        return Function.build(body, input, output, registry=registry)

    def arrow(doc: Any) -> Arrow:
        return decode_arrow_doc(doc, limits, registry, depth_checked=True)

    decoders = {"function": function, "arrow": arrow}
    result: Function | Arrow = _decode_part(
        data, path, decoders, 'a "function" or "arrow" document'
    )
    return result


def _stage_head(data: Any, path: str) -> tuple[str, str]:
    """The stage a stage change names and the version it expects (nothing
    else of it is looked at)."""
    if type(data) is not dict:
        raise _fail(path, "an object (one stage's change)", _show(data))
    unknown = [k for k in data if k not in _STAGE_FIELDS]
    if unknown:
        raise _fail(
            f"{path}.{unknown[0]:.40}",
            f"only the fields {list(_STAGE_FIELDS)}",
            f"the field {unknown[0]!r:.40}",
        )
    stage = data.get("stage")
    if type(stage) is not str or not stage.isidentifier():
        raise _fail(f"{path}.stage", "a stage name (an identifier)", _show(stage))
    expect = data.get("expect_version")
    if type(expect) is not str or not _VERSION.fullmatch(expect):
        raise _fail(
            f"{path}.expect_version",
            "the running version to replace (64 lowercase hex digits)",
            _show(expect),
        )
    if "machine" not in data:
        raise _fail(f"{path}.machine", "the new machine (a machine or loop document)", "nothing")
    return stage, expect


def _check_running(heads: list[tuple[str, str]], running: Mapping[str, str]) -> None:
    """Refuse a change naming a stage that does not run, or a version that
    does not run there, the way the supervisor would (before anything is
    decoded: a stale change costs almost nothing)."""
    for stage, expect in heads:
        now = running.get(stage)
        if now is None:
            raise UpgradeError(
                f"refused: no stage named {stage!r}; the stages are {list(running)}",
                stage=stage,
                reason="unknown stage",
            )
        if now != expect:
            raise UpgradeError(
                f"refused: stage {stage!r}: expected to replace version {expect[:12]}, "
                f"found {now[:12]} running",
                stage=stage,
                reason="version mismatch",
            )


def _decode_stage(data: Any, path: str, limits: Limits, registry: Registry) -> StageUpgrade:
    stage, expect = _stage_head(data, path)
    machine = _decode_machine(data["machine"], f"{path}.machine", limits, registry)
    fns: dict[str, Function | Arrow | None] = {}
    for name in _FUNCTION_FIELDS:
        doc = data.get(name)
        fns[name] = (
            None if doc is None else _decode_function(doc, f"{path}.{name}", limits, registry)
        )
    return StageUpgrade(
        stage,
        expect,
        machine,
        fns["migrate"],
        fns["inverse"],
        fns["input_adapter"],
        fns["output_adapter"],
    )


def decode_change(
    data: Any,
    *,
    limits: Limits = DEFAULT_LIMITS,
    registry: Registry = PRIMITIVES,
    max_record_types: int = MAX_RECORD_TYPES,
    path: str = "$",
    running: Mapping[str, str] | None = None,
    budget: ChangeBudget | None = DEFAULT_BUDGET,
) -> CodeChange:
    """Decode and check a change document (already parsed JSON data).

    Every machine and function document is decoded within ``limits`` and
    checked against its own declared types, all within ``budget`` (``None``:
    no budget); the result still has to pass the supervisor's checks against
    the running versions. With ``running`` (each running stage's version),
    the stages named and the versions they expect are checked first, before
    any program is decoded.

    Raises:
        DecodeError: the document is malformed, too big, names a stage twice
            or declares too many record types (``path`` says where).
        UpgradeError: ``running`` was given and a named stage does not run
            there (``unknown stage``) or runs another version (``version
            mismatch``).
        CheckError: a machine or function does not have its declared types.
        BudgetError: decoding, checking and compiling it would cost more
            than ``budget`` allows.
    """
    check_depth(data, limits.max_depth)  # before anything walks or renders it
    check_header(data, "change", path)
    allowed = ("format", "version", "kind", "requested_by", "change_interface", "stages")
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise _fail(
            f"{path}.{unknown[0]:.40}",
            f"only the fields {list(allowed)}",
            f"the field {unknown[0]!r:.40}",
        )
    who = data.get("requested_by", "unknown")
    if type(who) is not str or not who or len(who) > MAX_REQUESTER:
        raise _fail(
            f"{path}.requested_by", f"a non-empty string of at most {MAX_REQUESTER}", _show(who)
        )
    iface = data.get("change_interface", False)
    if type(iface) is not bool:
        raise _fail(f"{path}.change_interface", "a boolean", _show(iface))
    stages = data.get("stages")
    if type(stages) is not list or not 1 <= len(stages) <= MAX_STAGES:
        found = f"an array of {len(stages)}" if type(stages) is list else _show(stages)
        raise _fail(f"{path}.stages", f"an array of 1 to {MAX_STAGES} stage changes", found)
    heads = [_stage_head(s, f"{path}.stages[{i}]") for i, s in enumerate(stages)]
    names = [stage for stage, _ in heads]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise _fail(f"{path}.stages[{i}].stage", "each stage named once", repr(name))
    if running is not None:
        _check_running(heads, running)
    _count_record_types(stages, max_record_types, f"{path}.stages")
    with metered(budget):
        ups = tuple(
            _decode_stage(s, f"{path}.stages[{i}]", limits, registry) for i, s in enumerate(stages)
        )
    return CodeChange(ups, who, iface)
