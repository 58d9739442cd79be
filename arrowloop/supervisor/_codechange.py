"""The code-change message and the upgrade history.

A :class:`CodeChange` names one stage or several (a pipeline upgrade), the
version each is expected to be running, the new machine, the state
migration, and optionally the inverse migration (for rollback) and
input/output adapters (so clients of the old version keep working). The
supervisor checks it completely with :func:`check_change` (and the
pipeline's own checks) before anything enters the pipeline. Every change,
refused, failed or applied, leaves an :class:`UpgradeRecord`. Part of
layer 9 (the supervisor); a later layer gives the message its wire form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from arrowloop.arrows import Arrow, Loop
from arrowloop.check import is_subtype
from arrowloop.errors import ArrowloopError, UpgradeError
from arrowloop.frontend import PyFunction, PyMachine
from arrowloop.machine import AnyMachine, Function, Machine, NativeMachine
from arrowloop.runtime import Migration
from arrowloop.typesys import Type

__all__ = [
    "StageUpgrade",
    "CodeChange",
    "code_change",
    "UpgradeRecord",
    "RecordKind",
    "RecordResult",
    "CheckedUpgrade",
    "check_change",
]

#: What a history record is about.
RecordKind = Literal["upgrade", "rollback", "auto-rollback"]
#: How it ended: refused before entering the pipeline, failed in the stage
#: (the migration raised or produced a bad state), or applied.
RecordResult = Literal["succeeded", "refused", "failed"]

#: An adapter: a checked Function or an arrow program (checked against the
#: types it must have). Python callables are not accepted: the checker must
#: be able to prove an adapter's types.
Adapter = Function | PyFunction | Arrow


def _compiled(value: Any) -> Any:
    """A front-end object's compiled form (a ``@statemachine``'s Machine, an
    ``@arrow``'s Function); anything else as it is."""
    if isinstance(value, PyMachine):
        return value.machine
    if isinstance(value, PyFunction):
        return value.function
    return value


@attrs.frozen
class StageUpgrade:
    """One stage's part of a code change.

    Attributes:
        stage: the stage to change.
        expect_version: the version it must be running (the change is
            refused otherwise).
        machine: the new machine (a Loop is built with the stage's types; a
            ``@statemachine`` function stands for the machine it compiled to).
        migrate: old state -> new state; may be omitted when the state type
            is unchanged. Migrations and adapters written with ``@arrow``
            stand for the Function they compiled to.
        inverse: new state -> old state, used by rollback; may be omitted
            when the state type is unchanged (rollback is then refused if it
            changed).
        input_adapter: old input -> new input, for clients of the old
            version (first stage only); omit when the new input type
            accepts every old input.
        output_adapter: new output -> old output, for clients of the old
            version (last stage only); omit when every new output is an old
            output.
    """

    stage: str
    expect_version: str
    machine: AnyMachine | Loop = attrs.field(converter=_compiled)
    migrate: Migration | None = attrs.field(default=None, converter=_compiled)
    inverse: Migration | None = attrs.field(default=None, converter=_compiled)
    input_adapter: Adapter | None = attrs.field(default=None, converter=_compiled)
    output_adapter: Adapter | None = attrs.field(default=None, converter=_compiled)


@attrs.frozen
class CodeChange:
    """A code-change request: one or several stages changed as one cut.

    Attributes:
        upgrades: the stages' parts (each stage at most once).
        requested_by: who asks (recorded in the history).
        change_interface: allow the pipeline's own input or output type to
            change incompatibly (see :meth:`~arrowloop.runtime.Pipeline.upgrade`).
    """

    upgrades: tuple[StageUpgrade, ...]
    requested_by: str = "unknown"
    change_interface: bool = False

    @property
    def stages(self) -> tuple[str, ...]:
        """The stages the change names, in the order given."""
        return tuple(u.stage for u in self.upgrades)


def code_change(
    stage: str,
    expect_version: str,
    machine: AnyMachine | PyMachine | Loop,
    migrate: Migration | None = None,
    *,
    inverse: Migration | None = None,
    input_adapter: Adapter | None = None,
    output_adapter: Adapter | None = None,
    requested_by: str = "unknown",
    change_interface: bool = False,
) -> CodeChange:
    """A code change of one stage (see :class:`StageUpgrade` for the fields)."""
    up = StageUpgrade(
        stage, expect_version, machine, migrate, inverse, input_adapter, output_adapter
    )
    return CodeChange((up,), requested_by, change_interface)


@attrs.frozen
class UpgradeRecord:
    """One entry of a supervisor's upgrade history (plain data).

    Attributes:
        seq: its number, counting from 1 for the supervisor's life.
        kind: ``upgrade``, ``rollback`` or ``auto-rollback``.
        requested_by: who asked (``supervisor`` for an auto-rollback).
        at: wall-clock time (seconds since the epoch) it was decided.
        stages: the stages concerned.
        from_versions: the versions they ran before, in ``stages`` order.
        to_versions: the versions asked for, in ``stages`` order.
        result: ``succeeded``, ``refused`` or ``failed``.
        reason: why it was refused or failed (empty on success).
    """

    seq: int
    kind: RecordKind
    requested_by: str
    at: float
    stages: tuple[str, ...]
    from_versions: tuple[str, ...]
    to_versions: tuple[str, ...]
    result: RecordResult
    reason: str = ""


@attrs.frozen
class CheckedUpgrade:
    """A stage's part of a change after the supervisor's checks.

    ``adapt_in`` / ``adapt_out`` are ``None`` for the identity; ``serves_in``
    / ``serves_out`` say whether clients of the old version can be served at
    all (an adapter was given, or none is needed).
    """

    stage: str
    old: AnyMachine
    new: AnyMachine
    migrate: Migration | None
    inverse: Migration | None
    adapt_in: Callable[[Any], Any] | None
    adapt_out: Callable[[Any], Any] | None
    serves_in: bool
    serves_out: bool


def _refuse(
    stage: str, reason: str, detail: str, cause: BaseException | None = None
) -> UpgradeError:
    err = UpgradeError(f"refused: stage {stage!r}: {detail}", stage=stage, reason=reason)
    err.__cause__ = cause
    return err


def _as_machine(u: StageUpgrade, old: AnyMachine) -> AnyMachine:
    m = u.machine
    if isinstance(m, Loop):
        try:
            return Machine.build(m, old.input, old.output)
        except ArrowloopError as exc:
            raise _refuse(u.stage, "types", f"the new machine does not check: {exc}", exc) from exc
    if not isinstance(m, Machine | NativeMachine):
        raise _refuse(
            u.stage,
            "not a machine",
            f"expected a Machine, NativeMachine or Loop, found {type(m).__name__}",
        )
    return m


def _check_fn(
    stage: str, what: str, fn: Function | Arrow, src: Type, dst: Type
) -> Callable[[Any], Any]:
    # A Function may be wider than needed: it must accept every src value and
    # produce only dst values.
    if isinstance(fn, Function):
        if not (is_subtype(src, fn.input) and is_subtype(fn.output, dst)):
            raise _refuse(
                stage,
                f"{what} types",
                f"the {what} must map {src!r} to {dst!r}, found {fn.input!r} -> {fn.output!r}",
            )
        return fn.fn
    try:
        return Function.build(fn, src, dst).fn
    except ArrowloopError as exc:
        raise _refuse(
            stage, f"{what} types", f"the {what} does not check as {src!r} -> {dst!r}: {exc}", exc
        ) from exc


def _check_adapter(
    u: StageUpgrade, what: str, fn: Any, src: Type, dst: Type, allowed: bool, where: str
) -> tuple[Callable[[Any], Any] | None, bool]:
    if fn is None:
        return None, is_subtype(src, dst)
    if not allowed:
        raise _refuse(
            u.stage, f"{what}", f"an {what} adapts the pipeline's {where}: give it to that stage"
        )
    if not isinstance(fn, Function | Arrow):
        raise _refuse(
            u.stage,
            f"{what} types",
            f"expected the {what} as a Function or an Arrow (its types must be provable), "
            f"found {type(fn).__name__}",
        )
    return _check_fn(u.stage, what, fn, src, dst), True


def check_change(
    change: CodeChange, running: Mapping[str, AnyMachine], first: str, last: str
) -> list[CheckedUpgrade]:
    """The supervisor's checks of a code change, before the pipeline's own.

    Checks that every named stage exists and runs the expected version,
    builds Loop machines, and proves the types of the inverse migration
    (new state -> old state) and of the adapters (old input -> new input on
    the first stage, new output -> old output on the last). The pipeline
    then checks the machines' fit and the migrations
    (:meth:`~arrowloop.runtime.Pipeline.check_upgrade`).

    Args:
        change: the request.
        running: the machine each stage of the pipeline runs now.
        first: the pipeline's first stage; last: its last stage.

    Raises:
        UpgradeError: refused; ``reason`` says why (``unknown stage``,
            ``version mismatch``, ``types``, ``inverse types``,
            ``input adapter types``, ...).
    """
    if not isinstance(change, CodeChange) or not change.upgrades:
        raise UpgradeError(
            f"expected a CodeChange naming at least one stage, found {change!r:.80}",
            stage="",
            reason="empty",
        )
    out: list[CheckedUpgrade] = []
    seen: set[str] = set()
    for u in change.upgrades:
        if u.stage in seen:
            raise _refuse(u.stage, "duplicate", "named twice in one change")
        seen.add(u.stage)
        old = running.get(u.stage)
        if old is None:
            raise UpgradeError(
                f"refused: no stage named {u.stage!r}; the stages are {sorted(running)}",
                stage=u.stage,
                reason="unknown stage",
            )
        if u.expect_version != old.version:
            raise _refuse(
                u.stage,
                "version mismatch",
                f"expected to replace version {u.expect_version[:12]}, "
                f"found {old.version[:12]} running",
            )
        new = _as_machine(u, old)
        inverse = u.inverse
        if isinstance(inverse, Function | Arrow):
            _check_fn(u.stage, "inverse", inverse, new.state, old.state)
        elif inverse is not None and not callable(inverse):
            raise _refuse(
                u.stage,
                "inverse types",
                f"expected the inverse as a Function, an Arrow or a callable, "
                f"found {type(inverse).__name__}",
            )
        adapt_in, serves_in = _check_adapter(
            u, "input adapter", u.input_adapter, old.input, new.input, u.stage == first, "input"
        )
        adapt_out, serves_out = _check_adapter(
            u, "output adapter", u.output_adapter, new.output, old.output, u.stage == last, "output"
        )
        out.append(
            CheckedUpgrade(
                u.stage, old, new, u.migrate, inverse, adapt_in, adapt_out, serves_in, serves_out
            )
        )
    return out
