"""The one checker of code changes, and the checked change it produces.

Everything that can be proved about a change before it enters a pipeline is
proved here, once: each named stage exists and runs the expected version,
the new machines check (a :class:`~arrowloop.arrows.Loop` is built with the
stage's types), the migrations map the old state types to the new ones, the
inverses (for rollback) the new to the old, the adapters (for clients of the
old version) the old interface to the new, and the changed pipeline fits
together. The result is a :class:`CheckedChange`: compiled, with the
pipeline's interface before and after and whether clients of it may keep
sending without a pause (``compatible``). Pipelines and supervisors accept
only that; nothing checks a change twice.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from arrowloop.arrows import DEFAULT_BUDGET, Arrow, ChangeBudget, Loop, metered
from arrowloop.check import is_subtype
from arrowloop.errors import (
    ArrowloopError,
    BudgetError,
    CheckError,
    TypeDefinitionError,
    UpgradeError,
)
from arrowloop.frontend import PyFunction, PyMachine
from arrowloop.machine import AnyMachine, Function, Machine, NativeMachine
from arrowloop.runtime._spec import check_chain
from arrowloop.typesys import Type, from_annotation

__all__ = [
    "Migration",
    "Adapter",
    "StageUpgrade",
    "StagePlan",
    "CheckedChange",
    "check_change",
    "check_rollback",
]

#: A state migration: a checked :class:`Function`, an arrow program (checked
#: against the old and new state types), or a plain callable (its result is
#: validated against the new state type).
Migration = Function | Arrow | Callable[[Any], Any]
#: An adapter: a checked Function or an arrow program (checked against the
#: types it must have). Python callables are not accepted: the checker must
#: be able to prove an adapter's types.
Adapter = Function | PyFunction | Arrow
#: A running pipeline as the checker sees it: each stage's name and machine.
Running = Sequence[tuple[str, AnyMachine]]


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
    """One stage's part of a code change, as requested (unchecked).

    Attributes:
        stage: the stage to change.
        expect_version: the version it must be running (the change is
            refused otherwise); ``None`` accepts whatever runs.
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
    expect_version: str | None
    machine: AnyMachine | Loop = attrs.field(converter=_compiled)
    migrate: Migration | None = attrs.field(default=None, converter=_compiled)
    inverse: Migration | None = attrs.field(default=None, converter=_compiled)
    input_adapter: Adapter | None = attrs.field(default=None, converter=_compiled)
    output_adapter: Adapter | None = attrs.field(default=None, converter=_compiled)


@attrs.frozen
class StagePlan:
    """One stage's part of a checked change.

    ``migrate`` and ``inverse`` are compiled (``None``: the state carries
    over unchanged, or for ``inverse``, no inverse was given although the
    state type changes). ``adapt_in`` / ``adapt_out`` are ``None`` for the
    identity; ``serves_in`` / ``serves_out`` say whether clients of the old
    version can be served at all (an adapter was given, or none is needed).
    """

    stage: str
    old: AnyMachine
    new: AnyMachine
    migrate: Callable[[Any], Any] | None
    inverse: Callable[[Any], Any] | None
    adapt_in: Callable[[Any], Any] | None = None
    adapt_out: Callable[[Any], Any] | None = None
    serves_in: bool = True
    serves_out: bool = True

    @property
    def has_inverse(self) -> bool:
        """Whether rollback can restore the old state type."""
        return self.inverse is not None or self.old.state == self.new.state


@attrs.frozen
class CheckedChange:
    """A change proved applicable to the versions in ``plans``.

    Attributes:
        plans: the changed stages, in pipeline order.
        input_before, output_before: the pipeline's interface it was
            checked against; input_after, output_after: the interface it
            installs.
        compatible: every item the pipeline accepted it still accepts, and
            it produces nothing its clients have not seen: items may keep
            flowing in while it is in flight. Otherwise admission pauses
            until it is applied or refused.
    """

    plans: tuple[StagePlan, ...]
    input_before: Type
    output_before: Type
    input_after: Type
    output_after: Type
    compatible: bool

    @property
    def stages(self) -> tuple[str, ...]:
        """The changed stages, in pipeline order."""
        return tuple(p.stage for p in self.plans)

    @property
    def last(self) -> str:
        """The last changed stage in pipeline order (where the cut commits)."""
        return self.plans[-1].stage


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


#: Makes the refusal of one function of a change from a detail (and a cause).
Refuse = Callable[..., UpgradeError]


def _check_fn(fn: Function | Arrow, src: Type, dst: Type, refuse: Refuse) -> Callable[[Any], Any]:
    """A Function's or arrow program's compiled form, proved to map ``src`` to ``dst``."""
    if isinstance(fn, Function):
        # A Function may be wider than needed: it must accept every src
        # value and produce only dst values.
        if not (is_subtype(src, fn.input) and is_subtype(fn.output, dst)):
            raise refuse(f"expected {src!r} -> {dst!r}, found {fn.input!r} -> {fn.output!r}")
        return fn.fn
    try:
        return Function.build(fn, src, dst).fn
    except ArrowloopError as exc:
        raise refuse(f"does not check as {src!r} -> {dst!r}: {exc}", exc) from exc


def _check_state_map(
    stage: str, what: str, fn: Migration | None, src: Type, dst: Type
) -> Callable[[Any], Any] | None:
    """A migration (``what="migration"``) or inverse, compiled; ``None`` if absent."""

    def refuse(detail: str, cause: BaseException | None = None) -> UpgradeError:
        err = UpgradeError(
            f"refused: the {what} for stage {stage!r} {detail}",
            stage=stage,
            reason=f"{what} types",
        )
        err.__cause__ = cause
        return err

    if fn is None:
        if what == "migration" and src != dst:
            raise refuse(f"is missing: the state type changes from {src!r} to {dst!r}")
        return None
    if isinstance(fn, Function | Arrow):
        return _check_fn(fn, src, dst, refuse)
    if callable(fn):
        _check_annotations(fn, src, dst, refuse)
        return fn
    raise refuse(f"expected a Function, an Arrow or a callable, found {type(fn).__name__}")


def _check_annotations(fn: Callable[[Any], Any], old: Type, new: Type, refuse: Refuse) -> None:
    try:
        hints = typing.get_type_hints(fn)
        params = list(inspect.signature(fn).parameters)
    except (NameError, TypeError, ValueError):
        return  # unannotated or opaque callables are checked by validating their result

    def typed(key: str) -> Type | None:
        ann = hints.get(key)
        if ann is None or ann is Any or ann is object:
            return None  # unannotated: the migrated state is validated instead
        try:
            return from_annotation(ann)
        except TypeDefinitionError as exc:
            raise refuse(f"is annotated with a type arrowloop does not know: {exc}", exc) from exc

    got = typed(params[0]) if params else None
    if got is not None and got != old:
        raise refuse(f"takes {got!r}, expected {old!r}")
    got = typed("return")
    if got is not None and got != new:
        raise refuse(f"returns {got!r}, expected {new!r}")


def _check_adapter(
    u: StageUpgrade, what: str, fn: Any, src: Type, dst: Type, allowed: bool, where: str
) -> tuple[Callable[[Any], Any] | None, bool]:
    if fn is None:
        return None, is_subtype(src, dst)
    if not allowed:
        raise _refuse(
            u.stage, what, f"an {what} adapts the pipeline's {where}: give it to that stage"
        )
    if not isinstance(fn, Function | Arrow):
        raise _refuse(
            u.stage,
            f"{what} types",
            f"expected the {what} as a Function or an Arrow (its types must be provable), "
            f"found {type(fn).__name__}",
        )

    def refuse(detail: str, cause: BaseException | None = None) -> UpgradeError:
        return _refuse(u.stage, f"{what} types", f"the {what} {detail}", cause)

    return _check_fn(fn, src, dst, refuse), True


def _finish(running: Running, plans: list[StagePlan], change_interface: bool) -> CheckedChange:
    """Order the plans, check the new cut fits together and classify it."""
    new = {p.stage: p.new for p in plans}
    chain = [(n, new.get(n, m).input, new.get(n, m).output) for n, m in running]
    try:
        check_chain(chain)
    except CheckError as exc:
        raise UpgradeError(
            f"refused: the upgraded pipeline would not fit together: {exc}",
            stage=",".join(p.stage for p in plans),
            reason="types",
        ) from exc
    order = {n: i for i, (n, _) in enumerate(running)}
    plans.sort(key=lambda p: order[p.stage])
    in_before, out_before = running[0][1].input, running[-1][1].output
    in_after, out_after = chain[0][1], chain[-1][2]
    compatible = is_subtype(in_before, in_after) and is_subtype(out_after, out_before)
    if not compatible and not change_interface:
        widens = is_subtype(in_before, in_after)
        what, now, to = (
            ("output", out_before, out_after) if widens else ("input", in_before, in_after)
        )
        raise UpgradeError(
            f"refused: the pipeline's {what} type would change incompatibly from "
            f"{now!r} to {to!r}; pass change_interface=True if its clients are ready",
            stage=running[-1][0] if widens else running[0][0],
            reason="interface change",
        )
    return CheckedChange(tuple(plans), in_before, out_before, in_after, out_after, compatible)


def check_change(
    running: Running,
    upgrades: Sequence[StageUpgrade],
    *,
    change_interface: bool = False,
    budget: ChangeBudget | None = DEFAULT_BUDGET,
) -> CheckedChange:
    """Check a requested change against the machines running now.

    Args:
        running: each stage's name and running machine, in pipeline order.
        upgrades: the requested parts, each stage at most once.
        change_interface: allow the pipeline's own input or output type to
            change incompatibly (its clients are ready for it).
        budget: what building the parts (loops and arrows are checked and
            compiled here) may cost; ``None`` for no limit.

    Raises:
        UpgradeError: refused; ``reason`` says why (``empty``, ``duplicate``,
            ``unknown stage``, ``version mismatch``, ``not a machine``,
            ``types``, ``migration types``, ``inverse types``, ``input
            adapter types``, ``output adapter types``, ``interface change``,
            ``budget``: its ``__cause__`` is the
            :class:`~arrowloop.errors.BudgetError`).
    """
    try:
        with metered(budget):
            return _check_change(running, upgrades, change_interface)
    except UpgradeError as exc:
        if isinstance(exc.__cause__, BudgetError):
            exc.reason = "budget"
        raise
    except BudgetError as exc:
        raise UpgradeError(
            f"refused: {exc}", stage=",".join(u.stage for u in upgrades), reason="budget"
        ) from exc


def _check_change(
    running: Running, upgrades: Sequence[StageUpgrade], change_interface: bool
) -> CheckedChange:
    if not upgrades:
        raise UpgradeError(
            "expected at least one stage to change, found none", stage="", reason="empty"
        )
    machines = dict(running)
    first, last = running[0][0], running[-1][0]
    plans: list[StagePlan] = []
    seen: set[str] = set()
    for u in upgrades:
        if not isinstance(u, StageUpgrade):
            raise UpgradeError(
                f"expected a StageUpgrade per stage, found {u!r:.80}", stage="", reason="empty"
            )
        if u.stage in seen:
            raise _refuse(u.stage, "duplicate", "named twice in one change")
        seen.add(u.stage)
        old = machines.get(u.stage)
        if old is None:
            raise UpgradeError(
                f"refused: no stage named {u.stage!r}; the stages are {[n for n, _ in running]}",
                stage=u.stage,
                reason="unknown stage",
            )
        if u.expect_version is not None and u.expect_version != old.version:
            raise _refuse(
                u.stage,
                "version mismatch",
                f"expected to replace version {u.expect_version[:12]}, "
                f"found {old.version[:12]} running",
            )
        new = _as_machine(u, old)
        migrate = _check_state_map(u.stage, "migration", u.migrate, old.state, new.state)
        inverse = _check_state_map(u.stage, "inverse", u.inverse, new.state, old.state)
        adapt_in, serves_in = _check_adapter(
            u, "input adapter", u.input_adapter, old.input, new.input, u.stage == first, "input"
        )
        adapt_out, serves_out = _check_adapter(
            u, "output adapter", u.output_adapter, new.output, old.output, u.stage == last, "output"
        )
        plans.append(
            StagePlan(
                u.stage, old, new, migrate, inverse, adapt_in, adapt_out, serves_in, serves_out
            )
        )
    return _finish(running, plans, change_interface)


def check_rollback(running: Running, applied: CheckedChange) -> CheckedChange:
    """The change undoing ``applied``: its old machines back, through its inverses.

    Nothing of ``applied`` is checked again (its inverses were proved with
    it); what is checked is that its stages still run what it installed and
    that the restored cut fits the stages around it. A downgrade may narrow
    the pipeline's interface back, so it is never refused for that (it is
    simply not ``compatible``, and admission pauses while it is in flight).

    Raises:
        UpgradeError: ``changed since`` (a stage runs something else now),
            ``no inverse`` (the state type changed and no inverse was
            given), ``types`` (the restored machines no longer fit).
    """
    machines = dict(running)
    plans: list[StagePlan] = []
    for p in applied.plans:
        now = machines.get(p.stage)
        if now is None or now.version != p.new.version:
            found = "no such stage" if now is None else now.version[:12]
            raise UpgradeError(
                f"refused: stage {p.stage!r} runs {found}, not "
                f"{p.new.version[:12]} which the change being rolled back installed",
                stage=p.stage,
                reason="changed since",
            )
        if not p.has_inverse:
            raise UpgradeError(
                f"refused: stage {p.stage!r} cannot be rolled back from {p.new.version[:12]} to "
                f"{p.old.version[:12]}: the state type changed from {p.old.state!r} to "
                f"{p.new.state!r} and no inverse migration was supplied with that change",
                stage=p.stage,
                reason="no inverse",
            )
        plans.append(StagePlan(p.stage, p.new, p.old, p.inverse, p.migrate))
    return _finish(running, plans, True)


def as_upgrades(
    changes: Mapping[str, Any], expect_versions: Mapping[str, str] | None
) -> list[StageUpgrade]:
    """:meth:`Pipeline.upgrade_many`'s mapping form as :class:`StageUpgrade` parts."""
    out = []
    for name, change in changes.items():
        machine, migrate = change if isinstance(change, tuple) else (change, None)
        expected = None if expect_versions is None else expect_versions.get(name)
        out.append(StageUpgrade(name, expected, machine, migrate))
    return out
