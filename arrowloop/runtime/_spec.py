"""What a pipeline is made of, checked as it is built: stages and their order.

``stage("parse", m1) >> stage("count", m2)`` is a :class:`PipelineSpec`:
names are unique identifiers and each stage accepts everything the previous
one produces. A spec is plain data; :func:`~arrowloop.runtime.open_pipeline`
runs it.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Final

import attrs

from arrowloop.check import is_subtype
from arrowloop.errors import CheckError, PipelineError
from arrowloop.frontend import PyFunction, PyMachine
from arrowloop.machine import AnyMachine, Function, Machine, NativeMachine
from arrowloop.runtime._channel import DEFAULT_CAPACITY
from arrowloop.typesys import BoolT, IntT, StrT, TupleT, Type, check_name

__all__ = [
    "OnStepError",
    "StageSpec",
    "stage",
    "PipelineSpec",
    "pipeline",
    "check_chain",
    "DEFAULT_BATCH_LIMIT",
]

DEFAULT_BATCH_LIMIT: Final = 256


class OnStepError(enum.Enum):
    """What a stage does when its step raises on an item.

    Either way the item goes to the dead letters and its caller gets a
    :class:`~arrowloop.errors.StepError`: a step is a pure function, so its
    failure is the item's fault and says nothing about the state.
    """

    #: Keep the state the stage had before the item and go on (the default).
    KEEP = "keep"
    #: Treat it as a crash of the stage: under a supervisor, the stage stops
    #: and is restarted by its strategy (counting towards the restart
    #: intensity); without one, its state is reset to the initial state.
    RESTART = "restart"


def _on_step_error(value: Any) -> OnStepError:
    if isinstance(value, OnStepError):
        return value
    try:
        return OnStepError(value)
    except ValueError:
        raise ValueError(
            f"expected on_step_error to be 'keep' or 'restart' (OnStepError), found {value!r}"
        ) from None


def _check_machine(machine: object) -> AnyMachine:
    if isinstance(machine, PyMachine):  # a @statemachine function: run what it compiled to
        return machine.machine
    if not isinstance(machine, Machine | NativeMachine):
        raise TypeError(
            f"expected a Machine (Machine.build(...)), a @statemachine function or a "
            f"NativeMachine (native(...)), found {type(machine).__name__}"
        )
    return machine


def _shard_key(value: Any) -> Function | None:
    if value is None or isinstance(value, Function):
        return value
    if isinstance(value, PyFunction):  # an @arrow function: route by what it compiled to
        return value.function
    raise TypeError(
        f"expected shard_key to be an @arrow function (or a Function), found "
        f"{type(value).__name__}: a key function must be pure data, so that it can be "
        "checked and sent to another process"
    )


def is_key_type(t: Type) -> bool:
    """Whether values of ``t`` can route items to shards: bools, ints,
    strings, and tuples of these (their canonical form is fixed; see
    ``_shards.shard_of``)."""
    if isinstance(t, BoolT | IntT | StrT):
        return True
    return isinstance(t, TupleT) and all(is_key_type(e) for e in t.items)


def _positive(name: str) -> Callable[[Any, Any, Any], None]:
    def check(_: Any, __: Any, value: Any) -> None:
        if type(value) is not int or value < 1:
            raise ValueError(f"expected {name} to be an integer >= 1, found {value!r}")

    return check


@attrs.frozen
class StageSpec:
    """A named stage of a pipeline: its machine and channel settings.

    Attributes:
        name: unique within the pipeline (an identifier).
        machine: what it runs at start.
        capacity: most items queued in its input channel.
        batch_limit: most items it takes from a backlog in one go.
        on_step_error: what a step that raises does to the stage
            (:class:`OnStepError`; ``"keep"`` or ``"restart"`` also accepted).
        max_state_size: if set, a step whose new state is larger (one per
            scalar, per character, per element; see ``_budget.py``) fails
            like a raising step, and the stage keeps its state. ``None``:
            no budget (and no cost). Steps are never preempted.
        shards: how many replicas run the stage (with ``shard_key``); each
            owns the state of the keys routed to it (see ``_shards.py``).
        shard_key: an ``@arrow`` function of the item giving its key (a
            bool, int, str or a tuple of these): items with one key go to one
            replica, in order. ``None``: the stage is not sharded.
    """

    name: str = attrs.field(validator=lambda _, __, v: check_name(v, "stage name"))
    machine: AnyMachine = attrs.field(converter=_check_machine)
    capacity: int = attrs.field(default=DEFAULT_CAPACITY, validator=_positive("capacity"))
    batch_limit: int = attrs.field(default=DEFAULT_BATCH_LIMIT, validator=_positive("batch_limit"))
    on_step_error: OnStepError = attrs.field(default=OnStepError.KEEP, converter=_on_step_error)
    max_state_size: int | None = attrs.field(default=None)

    @max_state_size.validator
    def _check_budget(self, attribute: Any, value: Any) -> None:
        if value is not None and (type(value) is not int or value < 1):
            raise ValueError(f"expected max_state_size to be an integer >= 1, found {value!r}")

    shards: int = attrs.field(default=1, validator=_positive("shards"), kw_only=True)
    shard_key: Function | None = attrs.field(default=None, converter=_shard_key, kw_only=True)

    def __attrs_post_init__(self) -> None:
        key = self.shard_key
        if key is None:
            if self.shards != 1:
                raise ValueError(
                    f"stage {self.name!r}: shards={self.shards} needs a shard_key (an @arrow "
                    "function of the item) to route items by"
                )
            return
        if not is_subtype(self.machine.input, key.input):
            raise CheckError(
                f"stage {self.name!r}: its shard_key takes {key.input!r}, which does not accept "
                f"the stage's input type {self.machine.input!r}",
                path="shard_key",
                expected=repr(self.machine.input),
                found=repr(key.input),
            )
        if not is_key_type(key.output):
            raise CheckError(
                f"stage {self.name!r}: its shard_key returns {key.output!r}; a key is a bool, "
                "int, str or a tuple of these",
                path="shard_key",
                expected="bool, int, str or a tuple of these",
                found=repr(key.output),
            )
        if self.on_step_error is OnStepError.RESTART:
            raise ValueError(
                f"stage {self.name!r}: a sharded stage cannot have on_step_error='restart' yet "
                "(its replicas would restart one by one); use 'keep'"
            )

    @property
    def sharded(self) -> bool:
        """Whether the stage runs as replicas routed by ``shard_key``."""
        return self.shard_key is not None

    def __rshift__(self, other: Any) -> Any:
        return PipelineSpec((self,)) >> other


def stage(
    name: str,
    machine: AnyMachine | PyMachine,
    *,
    capacity: int = DEFAULT_CAPACITY,
    batch_limit: int = DEFAULT_BATCH_LIMIT,
    on_step_error: OnStepError | str = OnStepError.KEEP,
    max_state_size: int | None = None,
    shards: int = 1,
    shard_key: PyFunction | Function | None = None,
) -> StageSpec:
    """A stage named ``name`` running ``machine`` (``stage("a", m1) >> stage("b", m2)``).

    With ``shard_key`` (an ``@arrow`` function of the item), the stage runs
    ``shards`` replicas, each owning the state of its keys (see
    docs/runtime.md, "Sharded stages"); ``capacity`` is then each replica's.

    Raises:
        TypeDefinitionError: ``name`` is not an identifier.
        TypeError: ``machine`` is not a machine, or ``shard_key`` not an
            ``@arrow`` function.
        ValueError: ``capacity``, ``batch_limit``, ``max_state_size`` or
            ``shards`` is not a positive integer, ``on_step_error`` is not a
            policy, ``shards`` is above 1 without a ``shard_key``, or a
            sharded stage asks for the restart policy.
        CheckError: ``shard_key`` does not accept the stage's input type, or
            does not return a key type.
    """
    return StageSpec(
        name,
        machine,
        capacity,
        batch_limit,
        on_step_error,
        max_state_size,
        shards=shards,
        shard_key=shard_key,
    )


@attrs.frozen
class PipelineSpec:
    """A checked linear sequence of stages.

    Raises (on construction):
        PipelineError: no stages, or two stages with one name.
        CheckError: a stage's input type differs from the previous stage's
            output type (``path`` is ``stages[i]``).
    """

    stages: tuple[StageSpec, ...]

    def __attrs_post_init__(self) -> None:
        if not self.stages:
            raise PipelineError("expected at least one stage, found none")
        seen: set[str] = set()
        for s in self.stages:
            if not isinstance(s, StageSpec):
                raise PipelineError(f"expected stages made by stage(...), found {type(s).__name__}")
            if s.name in seen:
                raise PipelineError(f"expected unique stage names, found {s.name!r} twice")
            seen.add(s.name)
        check_chain([(s.name, s.machine.input, s.machine.output) for s in self.stages])

    @property
    def input(self) -> Type:
        """The type of the items the pipeline accepts."""
        return self.stages[0].machine.input

    @property
    def output(self) -> Type:
        """The type of the items the pipeline produces."""
        return self.stages[-1].machine.output

    def __rshift__(self, other: StageSpec | PipelineSpec) -> PipelineSpec:
        if isinstance(other, StageSpec):
            return PipelineSpec((*self.stages, other))
        if isinstance(other, PipelineSpec):
            return PipelineSpec((*self.stages, *other.stages))
        return NotImplemented


def check_chain(chain: list[tuple[str, Type, Type]]) -> None:
    """Check that each stage accepts everything the previous stage produces.

    (Its input type is the previous output type, or a wider one: see
    :func:`~arrowloop.check.is_subtype`.)

    Raises:
        CheckError: at ``stages[i]`` for the first mismatch.
    """
    for i in range(1, len(chain)):
        prev_name, _, prev_out = chain[i - 1]
        name, inp, _ = chain[i]
        if not is_subtype(prev_out, inp):
            raise CheckError(
                f"stage {name!r} expects input {inp!r}, but stage {prev_name!r} "
                f"produces {prev_out!r}",
                path=f"stages[{i}]",
                expected=repr(prev_out),
                found=repr(inp),
            )


def pipeline(*stages: StageSpec) -> PipelineSpec:
    """A pipeline of ``stages`` in order (checked; see :class:`PipelineSpec`)."""
    return PipelineSpec(tuple(stages))
