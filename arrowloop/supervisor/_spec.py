"""Child and supervisor specs: what a supervisor runs, checked before it runs.

Like OTP's ``supervisor:check_childspecs``, every field is validated before
anything starts, and a bad field is a :class:`~arrowloop.errors.ChildSpecError`
naming it (``children[1].shutdown: expected ..., found ...``). Part of layer
9 (the supervisor).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable
from typing import Any, Final, Literal, TypeAlias

import attrs

from arrowloop.arrows import DEFAULT_BUDGET, ChangeBudget
from arrowloop.errors import ChildSpecError
from arrowloop.machine import AnyMachine
from arrowloop.runtime import PipelineSpec, StageSpec
from arrowloop.typesys import check_name

__all__ = [
    "Restart",
    "Strategy",
    "AutoShutdown",
    "RestartName",
    "StrategyName",
    "AutoRollback",
    "ChildSpec",
    "SupervisorSpec",
    "child",
    "supervisor",
    "DEFAULT_SHUTDOWN",
]

#: Seconds a child gets to stop before it is cancelled (OTP's default 5000 ms).
DEFAULT_SHUTDOWN: Final = 5.0
#: Most code-change records a supervisor keeps (older ones are dropped).
DEFAULT_HISTORY: Final = 256
#: Most control requests waiting in a supervisor's mailbox.
DEFAULT_MAILBOX: Final = 64


class Restart(enum.Enum):
    """When a child that stopped is restarted (OTP's restart types)."""

    #: Always restarted, whether it crashed or stopped normally.
    PERMANENT = "permanent"
    #: Restarted only when it crashed (an abnormal exit).
    TRANSIENT = "transient"
    #: Never restarted; its exits do not count towards the restart intensity.
    TEMPORARY = "temporary"


class Strategy(enum.Enum):
    """Which children a restart concerns (OTP's strategies)."""

    #: Only the child that stopped.
    ONE_FOR_ONE = "one_for_one"
    #: Every child.
    ONE_FOR_ALL = "one_for_all"
    #: The child that stopped and every child after it in start order (for a
    #: pipeline: the stage and everything downstream of it).
    REST_FOR_ONE = "rest_for_one"


class AutoShutdown(enum.Enum):
    """Whether a supervisor stops itself when significant children end
    (OTP's ``auto_shutdown``)."""

    #: Never (the default): significant children are not special.
    NEVER = "never"
    #: When any significant child ends by itself and is not restarted.
    ANY_SIGNIFICANT = "any_significant"
    #: When every significant child has ended and none is restarted.
    ALL_SIGNIFICANT = "all_significant"


#: A :class:`Restart` by its value, as in OTP's child specs (``"transient"``).
RestartName: TypeAlias = Literal["permanent", "transient", "temporary"]
#: A :class:`Strategy` by its value, as in OTP's supervisor flags (``"rest_for_one"``).
StrategyName: TypeAlias = Literal["one_for_one", "one_for_all", "rest_for_one"]


def _fail(path: str, expected: str, value: Any) -> ChildSpecError:
    return ChildSpecError(
        f"expected {expected}, found {value!r}", path=path, expected=expected, found=repr(value)
    )


def _member(kind: type[enum.Enum], field: str, value: object) -> Any:
    """``value`` as a member of ``kind``: a member, or the string of one (the
    names users know from OTP); anything else is refused with where the enum
    lives, since a bare string is what people try first."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        for member in kind:
            if member.value == value:
                return member
    choices = ", ".join(repr(m.value) for m in kind)
    name = kind.__name__
    raise _fail(field, f"a {name} (from arrowloop import {name}) or one of {choices}", value)


def _as_restart(value: object) -> Restart:
    return _member(Restart, "restart", value)  # type: ignore[no-any-return]


def _as_strategy(value: object) -> Strategy:
    return _member(Strategy, "strategy", value)  # type: ignore[no-any-return]


def _non_negative_number(path: str, value: Any, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    ok = type(value) in (int, float) and math.isfinite(value) and value >= 0
    if not ok:
        what = "a number of seconds >= 0" + (" or None (no limit)" if allow_none else "")
        raise _fail(path, what, value)


@attrs.frozen
class AutoRollback:
    """Downgrade a freshly upgraded stage that keeps crashing.

    If the stage crashes more than ``crashes`` times within ``period``
    seconds of its latest code change, the supervisor rolls that change back
    (with its inverse migration) and records an ``auto-rollback`` in the
    history.

    Raises:
        ChildSpecError: ``crashes`` is not an int >= 0 or ``period`` not a
            number >= 0.
    """

    crashes: int
    period: float

    def __attrs_post_init__(self) -> None:
        if type(self.crashes) is not int or self.crashes < 0:
            raise _fail("auto_rollback.crashes", "an int >= 0", self.crashes)
        _non_negative_number("auto_rollback.period", self.period, allow_none=False)


#: A snapshot hook: given the machine a stage restarts with, the state to
#: restart from (validated against the machine's state type). An ``async``
#: hook is awaited on the event loop; a plain function runs in a worker
#: thread, so a slow snapshot store never freezes the supervisor.
RestoreHook = Callable[[AnyMachine], Any]


@attrs.frozen
class ChildSpec:
    """One child of a supervisor: a pipeline stage or a nested supervisor.

    Attributes:
        start: what to run: a :class:`~arrowloop.runtime.StageSpec` (the
            child's name is the stage's) or a :class:`SupervisorSpec`.
        restart: when it is restarted (:class:`Restart`, or its value:
            ``"transient"``).
        shutdown: seconds it gets to stop before it is cancelled; ``0`` is
            OTP's ``brutal_kill``, ``None`` is ``infinity``.
        restore: stages only: a snapshot hook giving the state a restarted
            stage (or a stage of a restarted supervisor) starts from instead
            of its machine's initial state; ``async def`` or plain (run in a
            worker thread).
        auto_rollback: stages only: roll back a fresh code change that keeps
            crashing (:class:`AutoRollback`).
        significant: whether its ending (not restarted, not terminated by
            the supervisor) may stop the supervisor (see
            :class:`AutoShutdown`); only for transient and temporary
            children, as in OTP.

    Raises:
        ChildSpecError: a field is invalid (its name is the error's ``path``).
    """

    start: StageSpec | SupervisorSpec
    restart: Restart = attrs.field(default=Restart.PERMANENT, converter=_as_restart)
    shutdown: float | None = DEFAULT_SHUTDOWN
    restore: RestoreHook | None = None
    auto_rollback: AutoRollback | None = None
    significant: bool = False

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.start, StageSpec | SupervisorSpec):
            raise _fail("start", "a StageSpec (stage(...)) or a SupervisorSpec", self.start)
        _non_negative_number("shutdown", self.shutdown, allow_none=True)
        if self.restore is not None and not callable(self.restore):
            raise _fail("restore", "a callable (machine) -> state, or None", self.restore)
        if self.auto_rollback is not None and not isinstance(self.auto_rollback, AutoRollback):
            raise _fail("auto_rollback", "an AutoRollback or None", self.auto_rollback)
        if self.is_supervisor and (self.restore is not None or self.auto_rollback is not None):
            raise _fail("restore", "no restore or auto_rollback for a nested supervisor", "set")
        if type(self.significant) is not bool:
            raise _fail("significant", "True or False", self.significant)
        if self.significant and self.restart is Restart.PERMANENT:
            raise _fail("significant", "a transient or temporary child", "a permanent one")

    @property
    def name(self) -> str:
        """The child's name: its stage's or its supervisor's."""
        return self.start.name

    @property
    def is_supervisor(self) -> bool:
        """Whether the child is a nested supervisor (else a stage)."""
        return isinstance(self.start, SupervisorSpec)


def child(
    start: StageSpec | SupervisorSpec,
    *,
    restart: Restart | RestartName = Restart.PERMANENT,
    shutdown: float | None = DEFAULT_SHUTDOWN,
    restore: RestoreHook | None = None,
    auto_rollback: AutoRollback | None = None,
    significant: bool = False,
) -> ChildSpec:
    """A child spec (see :class:`ChildSpec` for the fields).

    Raises:
        ChildSpecError: a field is invalid.
    """
    return ChildSpec(start, restart, shutdown, restore, auto_rollback, significant)


@attrs.frozen
class SupervisorSpec:
    """A supervisor: its children, strategy and restart intensity.

    The stage children come first, in pipeline order: together they are one
    pipeline, checked like any :class:`~arrowloop.runtime.PipelineSpec`, and
    they start together; nested supervisors follow and start in order. The
    list order is the start order that ``rest_for_one`` uses, and children
    stop in reverse order.

    Attributes:
        name: the supervisor's name (an identifier).
        children: child specs (a bare StageSpec or SupervisorSpec is taken
            as a permanent child with the default shutdown).
        strategy: :class:`Strategy`, or its value (``"rest_for_one"``).
        intensity: most restarts allowed within ``period`` seconds; one more
            and the supervisor terminates its children and escalates.
        period: the window, in seconds.
        mailbox: most control requests queued for the supervisor.
        history_limit: most code-change records (and rollback steps) kept.
        auto_shutdown: whether it stops when significant children end
            (:class:`AutoShutdown`).
        change_budget: what checking and compiling one code change may cost
            (:class:`~arrowloop.arrows.ChangeBudget`); ``None`` for no limit.

    Raises:
        ChildSpecError: a field or a child is invalid, two children share a
            name, or a stage comes after a nested supervisor.
        CheckError: the stages do not fit together as a pipeline.
    """

    name: str
    children: tuple[ChildSpec, ...]
    strategy: Strategy = attrs.field(default=Strategy.ONE_FOR_ONE, converter=_as_strategy)
    intensity: int = 1
    period: float = 5.0
    mailbox: int = DEFAULT_MAILBOX
    history_limit: int = DEFAULT_HISTORY
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER
    change_budget: ChangeBudget | None = DEFAULT_BUDGET

    def __attrs_post_init__(self) -> None:
        try:
            check_name(self.name, "supervisor name")
        except Exception as exc:
            raise _fail("name", "an identifier", self.name) from exc
        if not isinstance(self.children, tuple):
            raise _fail("children", "a tuple of child specs", self.children)
        if not isinstance(self.auto_shutdown, AutoShutdown):
            raise _fail("auto_shutdown", "an AutoShutdown", self.auto_shutdown)
        if type(self.intensity) is not int or self.intensity < 0:
            raise _fail("intensity", "an int >= 0", self.intensity)
        _non_negative_number("period", self.period, allow_none=False)
        if self.period == 0:
            raise _fail("period", "a number of seconds > 0", self.period)
        for field in ("mailbox", "history_limit"):
            v = getattr(self, field)
            if type(v) is not int or v < 1:
                raise _fail(field, "an int >= 1", v)
        if self.change_budget is not None and not isinstance(self.change_budget, ChangeBudget):
            raise _fail("change_budget", "a ChangeBudget or None", self.change_budget)
        seen: set[str] = set()
        after_supervisor = False
        for i, c in enumerate(self.children):
            if not isinstance(c, ChildSpec):
                raise _fail(f"children[{i}]", "a ChildSpec (child(...))", c)
            if c.name in seen:
                raise _fail(f"children[{i}].name", "unique child names", c.name)
            seen.add(c.name)
            if c.is_supervisor:
                after_supervisor = True
            elif after_supervisor:
                raise ChildSpecError(
                    f"expected the stages first, in pipeline order, found stage {c.name!r} "
                    f"after a nested supervisor; move it up",
                    path=f"children[{i}]",
                    expected="stages before nested supervisors",
                    found=c.name,
                )
        stages = self.stages
        if stages:
            PipelineSpec(tuple(c.start for c in stages))  # type: ignore[misc]

    @property
    def stages(self) -> tuple[ChildSpec, ...]:
        """The stage children, in pipeline order."""
        return tuple(c for c in self.children if not c.is_supervisor)


def supervisor(
    name: str,
    *children: ChildSpec | StageSpec | SupervisorSpec,
    strategy: Strategy | StrategyName = Strategy.ONE_FOR_ONE,
    intensity: int = 1,
    period: float = 5.0,
    mailbox: int = DEFAULT_MAILBOX,
    history_limit: int = DEFAULT_HISTORY,
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
    change_budget: ChangeBudget | None = DEFAULT_BUDGET,
) -> SupervisorSpec:
    """A supervisor spec; bare stages and supervisors become permanent children.

    Raises:
        ChildSpecError: a field or a child is invalid (see :class:`SupervisorSpec`).
        CheckError: the stages do not fit together as a pipeline.
    """
    kids = tuple(c if isinstance(c, ChildSpec) else child(c) for c in children)
    return SupervisorSpec(
        name,
        kids,
        strategy,
        intensity,
        period,
        mailbox,
        history_limit,
        auto_shutdown,
        change_budget,
    )
