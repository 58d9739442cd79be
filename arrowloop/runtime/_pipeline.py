"""Linear pipelines: building them (checked), running them, upgrading them.

``stage("parse", m1) >> stage("count", m2)`` is a :class:`PipelineSpec`,
checked when built: names are unique and each stage's output type is the
next one's input type. :func:`open_pipeline` deploys it on a task group as
an async context manager yielding a :class:`Pipeline`, the handle for
sending items, calling, reading outputs, upgrading and splicing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import attrs
from anyio.abc import TaskGroup

from arrowloop.arrows import Arrow, Loop
from arrowloop.check import is_subtype
from arrowloop.errors import (
    ArrowloopError,
    CheckError,
    PipelineClosed,
    PipelineError,
    TypeDefinitionError,
    UpgradeError,
)
from arrowloop.frontend import PyFunction, PyMachine
from arrowloop.machine import AnyMachine, Function, Machine, NativeMachine
from arrowloop.runtime._channel import ChannelStatistics, MemoryChannel
from arrowloop.runtime._deadletter import DeadLetters, DeadLetterSink
from arrowloop.runtime._envelope import EndMsg, Reply, Routed, SpliceMsg, StageChange, UpgradeMsg
from arrowloop.runtime._output import OutputPort
from arrowloop.runtime._stage import StageActor, StageCrashed, StageSpec, StageStatistics
from arrowloop.typesys import Type, from_annotation, validate

__all__ = [
    "PipelineSpec",
    "pipeline",
    "Pipeline",
    "open_pipeline",
    "Migration",
    "Ticket",
    "Change",
    "ExitHook",
    "NO_STATE",
    "DEFAULT_OUTPUT_CAPACITY",
]

#: A state migration: a checked :class:`Function`, an arrow program (checked
#: against the old and new state types), or a plain callable (its result is
#: validated against the new state type).
Migration = Function | Arrow | Callable[[Any], Any]
#: What :meth:`Pipeline.upgrade_many` takes per stage: a machine, or a
#: machine and its migration (a ``@statemachine`` stands for its machine).
Change = AnyMachine | PyMachine | Loop | tuple[AnyMachine | PyMachine | Loop, Migration | None]

DEFAULT_OUTPUT_CAPACITY: Final = 1024


class _NoState:
    """The type of :data:`NO_STATE`."""

    def __repr__(self) -> str:
        return "NO_STATE"


#: The default of :meth:`Pipeline.restart_stage`'s ``state``: the initial state.
NO_STATE: Final = _NoState()

#: Called (synchronously, from the stage's task) when a supervised stage
#: stops: with the StageCrashed error, or None at end of stream.
ExitHook = Callable[[str, BaseException | None], None]


class Ticket:
    """The pending output of an item sent with :meth:`Pipeline.submit`.

    Await :meth:`result` once; call :meth:`forget` instead if the output is
    no longer wanted (the item is processed either way).
    """

    __slots__ = ("_after", "_pending", "_reply")

    def __init__(
        self,
        reply: Reply,
        pending: set[Reply],
        after: Callable[[Any], Any] | None = None,
    ) -> None:
        self._reply = reply
        self._pending = pending
        self._after = after

    @property
    def done(self) -> bool:
        """Whether the output (or the error) has arrived."""
        return self._reply.done

    def then(self, after: Callable[[Any], Any]) -> Ticket:
        """A ticket whose result is ``after`` applied to this one's."""
        first = self._after
        if first is not None:

            def both(value: Any) -> Any:
                return after(first(value))

            return Ticket(self._reply, self._pending, both)
        return Ticket(self._reply, self._pending, after)

    async def result(self) -> Any:
        """Wait for the item's output.

        Raises:
            StepError: a stage failed on this item (it is in the dead letters).
            PipelineClosed: the pipeline closed before the item got through.
        """
        try:
            value = await self._reply.wait()
        finally:
            self._pending.discard(self._reply)
        return value if self._after is None else self._after(value)

    def forget(self) -> None:
        """Give up on the output (the pipeline stops tracking it)."""
        self._pending.discard(self._reply)


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


class Pipeline:
    """A running pipeline (made by :func:`open_pipeline`).

    Items sent in go through every stage in order; ``call`` returns the
    output for one item; plain ``send`` outputs are read with ``receive`` or
    ``async for``. Upgrades travel in-band with the items.
    """

    def __init__(
        self,
        spec: PipelineSpec,
        *,
        output_capacity: int = DEFAULT_OUTPUT_CAPACITY,
        dead_letters: DeadLetterSink | None = None,
        validate_inputs: bool = True,
        on_exit: ExitHook | None = None,
    ) -> None:
        self.dead_letters: DeadLetterSink = DeadLetters() if dead_letters is None else dead_letters
        # A supervisor passes on_exit: stages then stop on a crash and it
        # decides about restarts; without one, a stage resumes after a crash.
        self._on_exit = on_exit
        self.validate_inputs = validate_inputs
        self._port = OutputPort(output_capacity)
        self._actors: list[StageActor] = []
        inboxes = [MemoryChannel(s.capacity) for s in spec.stages]
        for i, s in enumerate(spec.stages):
            outbox = inboxes[i + 1] if i + 1 < len(inboxes) else self._port
            self._actors.append(
                StageActor(
                    s, inboxes[i], outbox, self.dead_letters, exit_on_crash=on_exit is not None
                )
            )
        self._entry = inboxes[0]
        self._tg: TaskGroup | None = None
        self._closing = False
        self._pending: set[Reply] = set()
        self._buffer: deque[Any] = deque()
        self._control_lock = anyio.Lock()

    # -- introspection --------------------------------------------------------

    @property
    def input(self) -> Type:
        """The type of the items the pipeline accepts now."""
        return self._actors[0].machine.input

    @property
    def output(self) -> Type:
        """The type of the items the pipeline produces now."""
        return self._actors[-1].machine.output

    @property
    def stage_names(self) -> list[str]:
        """The stages, in order."""
        return [a.name for a in self._actors]

    def version(self, stage: str) -> str:
        """The version of the machine ``stage`` runs now."""
        return self._actor(stage).machine.version

    def machine(self, stage: str) -> AnyMachine:
        """The machine ``stage`` runs now (its types, initial state, version)."""
        return self._actor(stage).machine

    def state(self, stage: str) -> Any:
        """The current state of ``stage`` (like OTP's ``sys:get_state``)."""
        return self._actor(stage).state

    def statistics(self) -> list[StageStatistics]:
        """A snapshot of every stage, in order."""
        return [a.statistics() for a in self._actors]

    def output_statistics(self) -> ChannelStatistics:
        """A snapshot of the channel holding plain outputs for ``receive``."""
        return self._port.statistics()

    @property
    def discarded_outputs(self) -> int:
        """Plain outputs dropped because nobody would read them any more."""
        return self._port.discarded

    def _actor(self, name: str) -> StageActor:
        for a in self._actors:
            if a.name == name:
                return a
        raise UpgradeError(
            f"no stage named {name!r}; the stages are {self.stage_names}",
            stage=name,
            reason="unknown stage",
        )

    # -- sending --------------------------------------------------------------

    def _admit(self, item: Any, validated: bool = False) -> None:
        if self._closing:
            raise PipelineClosed("the pipeline is closing: no more items are accepted")
        if self.validate_inputs and not validated:
            validate(self.input, item, "item")

    async def send(self, item: Any) -> None:
        """Send ``item`` in, waiting while the first stage's channel is full.

        Raises:
            PipelineClosed: the pipeline is closing.
            ValidationError: ``item`` is not of the input type (if validating).
        """
        self._admit(item)
        entry = self._entry
        try:
            entry.send_nowait([item])
        except anyio.WouldBlock:
            await entry.send([item])

    def send_nowait(self, item: Any) -> None:
        """Send ``item`` in now, or raise ``anyio.WouldBlock`` if the channel is full."""
        self._admit(item)
        self._entry.send_nowait([item])

    def _admit_batch(self, items: list[Any]) -> list[Any]:
        if self._closing:
            raise PipelineClosed("the pipeline is closing: no more items are accepted")
        if self.validate_inputs:
            t = self.input
            for i, item in enumerate(items):
                validate(t, item, f"items[{i}]")
        return items if type(items) is list else list(items)

    async def send_batch(self, items: list[Any]) -> None:
        """Send several items as one batch (the cheapest way in).

        The list is handed over: do not reuse it.
        """
        items = self._admit_batch(items)
        if not items:
            return
        entry = self._entry
        try:
            entry.send_nowait(items)
        except anyio.WouldBlock:
            await entry.send(items)

    def send_batch_nowait(self, items: list[Any]) -> None:
        """Send several items as one batch now, or raise ``anyio.WouldBlock``.

        The list is handed over: do not reuse it.
        """
        items = self._admit_batch(items)
        if items:
            self._entry.send_nowait(items)

    async def call(self, item: Any) -> Any:
        """Send ``item`` and wait for its output.

        Raises:
            StepError: a stage failed on this item (it is in the dead letters).
            PipelineClosed: the pipeline closed before the item got through.
            ValidationError: ``item`` is not of the input type (if validating).
        """
        ticket = await self.submit(item)
        return await ticket.result()

    async def submit(self, item: Any, *, validated: bool = False) -> Ticket:
        """Send ``item`` in and return a :class:`Ticket` for its output.

        Returns once the item is in the first stage's channel (waiting while
        it is full), so items submitted one after another by one task enter
        in that order; their outputs are collected later with
        :meth:`Ticket.result`. This is how a connection pipelines requests
        without a task per request. ``validated=True`` says the caller has
        already checked ``item`` against :attr:`input` in this same step
        (the server builds it from JSON with that type), so it is not
        validated twice.

        Raises:
            PipelineClosed: the pipeline is closing.
            ValidationError: ``item`` is not of the input type (if validating).
        """
        self._admit(item, validated)
        reply = Reply()
        self._pending.add(reply)
        try:
            await self._entry.send(Routed(item, reply))
        except BaseException:
            self._pending.discard(reply)
            raise
        return Ticket(reply, self._pending)

    # -- receiving ------------------------------------------------------------

    async def receive(self) -> Any:
        """The next output of a plain ``send``.

        Raises:
            anyio.EndOfStream: the pipeline closed and every output was read.
        """
        if not self._buffer:
            for m in await self._port.outputs.receive(1 << 16):
                self._buffer.extend(m)
        return self._buffer.popleft()

    async def receive_batch(self) -> list[Any]:
        """All outputs waiting now (at least one; waits if none).

        Raises:
            anyio.EndOfStream: the pipeline closed and every output was read.
        """
        if self._buffer:
            return self._take_buffer()
        return _concat(await self._port.outputs.receive(1 << 16))

    def receive_batch_nowait(self) -> list[Any]:
        """All outputs waiting now, without waiting.

        Raises:
            anyio.WouldBlock: no output is waiting.
            anyio.EndOfStream: the pipeline closed and every output was read.
        """
        if self._buffer:
            return self._take_buffer()
        return _concat(self._port.outputs.receive_nowait(1 << 16))

    def _take_buffer(self) -> list[Any]:
        out = list(self._buffer)
        self._buffer.clear()
        return out

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        while True:
            try:
                batch = await self.receive_batch()
            except anyio.EndOfStream:
                return
            for x in batch:
                yield x

    # -- upgrades -------------------------------------------------------------

    async def upgrade(
        self,
        stage: str,
        machine: AnyMachine | PyMachine | Loop,
        migrate: Migration | None = None,
        *,
        expect_version: str | None = None,
        change_interface: bool = False,
    ) -> str:
        """Replace the machine of ``stage`` in-band; returns the new version.

        The new machine must have the stage's input and output types (a
        :class:`~arrowloop.arrows.Loop` is built into a machine with them);
        ``migrate`` maps the old state type to the new one (may be omitted
        when the state type is unchanged). Everything is checked before the
        upgrade enters the pipeline; the migration runs in the stage between
        two items and its result is validated before it is committed. The
        pipeline may come to accept more inputs or produce fewer kinds of
        output; anything else needs ``change_interface=True``.

        Raises:
            UpgradeError: refused (with the reason) or failed in the stage;
                in both cases the stage keeps its old machine and state.
        """
        versions = await self.upgrade_many(
            {stage: (machine, migrate)},
            expect_versions=None if expect_version is None else {stage: expect_version},
            change_interface=change_interface,
        )
        return versions[stage]

    async def upgrade_many(
        self,
        changes: Mapping[str, Change],
        *,
        expect_versions: Mapping[str, str] | None = None,
        change_interface: bool = False,
    ) -> dict[str, str]:
        """Upgrade several stages at once, as one consistent cut.

        The types between stages may change (stage k's output and stage
        k+1's input together). Every item is processed either by all the old
        machines or by all the new ones. The pipeline's own input and output
        types may change only with ``change_interface=True``.

        Returns the new version of each changed stage.

        Raises:
            UpgradeError: refused or failed; nothing changed.
        """
        prepared = self._prepare_upgrade(changes, expect_versions, change_interface)
        last = [a.name for a in self._actors if a.name in prepared][-1]
        reply = Reply()
        msg = UpgradeMsg(prepared, last, reply)
        self._pending.add(reply)
        try:
            await self._entry.send(msg)
            result: dict[str, str] = await reply.wait()
            return result
        finally:
            self._pending.discard(reply)

    def check_upgrade(
        self,
        changes: Mapping[str, Change],
        *,
        expect_versions: Mapping[str, str] | None = None,
        change_interface: bool = False,
    ) -> None:
        """Run every check :meth:`upgrade_many` runs before sending, and stop there.

        For supervisors, which refuse a bad change before anything enters
        the pipeline (what can still fail afterwards is the migration, in
        the stage, and a concurrent upgrade getting there first).

        Raises:
            UpgradeError: the change would be refused.
        """
        self._prepare_upgrade(changes, expect_versions, change_interface)

    def _prepare_upgrade(
        self,
        changes: Mapping[str, Change],
        expect_versions: Mapping[str, str] | None,
        change_interface: bool,
    ) -> dict[str, StageChange]:
        if self._closing:
            raise PipelineClosed("the pipeline is closing: no more upgrades are accepted")
        if not changes:
            raise UpgradeError(
                "expected at least one stage to change, found none", stage="", reason="empty"
            )
        prepared: dict[str, StageChange] = {}
        for name, change in changes.items():
            actor = self._actor(name)
            machine, migrate = change if isinstance(change, tuple) else (change, None)
            machine = self._as_machine(name, actor, machine)
            expected = None if expect_versions is None else expect_versions.get(name)
            if expected is not None and expected != actor.machine.version:
                raise UpgradeError(
                    f"stage {name!r}: expected to replace version {expected[:12]}, "
                    f"found {actor.machine.version[:12]} running",
                    stage=name,
                    reason="version mismatch",
                )
            fn = self._check_migration(name, actor.machine.state, machine.state, migrate)
            prepared[name] = StageChange(name, machine, fn, actor.machine.version)
        chain = []
        for a in self._actors:
            m = prepared[a.name].machine if a.name in prepared else a.machine
            chain.append((a.name, m.input, m.output))
        try:
            check_chain(chain)
        except CheckError as exc:
            raise UpgradeError(
                f"refused: the upgraded pipeline would not fit together: {exc}",
                stage=",".join(prepared),
                reason="types",
            ) from exc
        if not change_interface:
            self._same_interface(chain)
        return prepared

    def _same_interface(self, chain: list[tuple[str, Type, Type]]) -> None:
        # Clients keep working if the pipeline accepts at least what it
        # accepted and produces nothing they have not seen before.
        for what, ok, now, new in (
            ("input", is_subtype(self.input, chain[0][1]), self.input, chain[0][1]),
            ("output", is_subtype(chain[-1][2], self.output), self.output, chain[-1][2]),
        ):
            if not ok:
                raise UpgradeError(
                    f"refused: the pipeline's {what} type would change incompatibly from "
                    f"{now!r} to {new!r}; pass change_interface=True if its clients are ready",
                    stage=chain[0][0] if what == "input" else chain[-1][0],
                    reason="interface change",
                )

    @staticmethod
    def _as_machine(name: str, actor: StageActor, machine: Any) -> AnyMachine:
        if isinstance(machine, PyMachine):
            machine = machine.machine
        if isinstance(machine, Loop):
            try:
                return Machine.build(machine, actor.machine.input, actor.machine.output)
            except ArrowloopError as exc:
                raise UpgradeError(
                    f"refused: the new machine for stage {name!r} does not check: {exc}",
                    stage=name,
                    reason="types",
                ) from exc
        if not isinstance(machine, Machine | NativeMachine):
            raise UpgradeError(
                f"expected a Machine, NativeMachine or Loop for stage {name!r}, "
                f"found {type(machine).__name__}",
                stage=name,
                reason="not a machine",
            )
        m: AnyMachine = machine
        return m

    @staticmethod
    def _check_migration(
        name: str, old: Type, new: Type, migrate: Migration | None
    ) -> Callable[[Any], Any] | None:
        def refuse(detail: str, cause: BaseException | None = None) -> UpgradeError:
            err = UpgradeError(
                f"refused: the migration for stage {name!r} {detail}",
                stage=name,
                reason="migration types",
            )
            err.__cause__ = cause
            return err

        if migrate is None:
            if old != new:
                raise refuse(f"is missing: the state type changes from {old!r} to {new!r}")
            return None
        if isinstance(migrate, PyFunction):  # checked like the Function it compiled to
            migrate = migrate.function
        if isinstance(migrate, Function):
            if migrate.input != old or migrate.output != new:
                raise refuse(
                    f"expected {old!r} -> {new!r}, found {migrate.input!r} -> {migrate.output!r}"
                )
            return migrate.fn
        if isinstance(migrate, Arrow):
            try:
                return Function.build(migrate, old, new).fn
            except ArrowloopError as exc:
                raise refuse(f"does not check as {old!r} -> {new!r}: {exc}", exc) from exc
        if callable(migrate):
            _check_annotations(migrate, old, new, refuse)
            return migrate
        raise refuse(f"expected a Function, an Arrow or a callable, found {type(migrate).__name__}")

    # -- splicing -------------------------------------------------------------

    async def prepend(self, spec: StageSpec) -> None:
        """Put a new first stage in front; items sent from now on go through it.

        Raises:
            UpgradeError: its output type is not the current input type, or
                its name is taken.
        """
        self._check_splice(
            spec, spec.machine.output, self.input, "output", "input of the first stage"
        )
        assert self._tg is not None
        inbox = MemoryChannel(spec.capacity)
        actor = StageActor(
            spec, inbox, self._entry, self.dead_letters, exit_on_crash=self._on_exit is not None
        )
        self._spawn(actor)
        self._actors.insert(0, actor)
        self._entry = inbox

    async def append(self, spec: StageSpec) -> None:
        """Add a new last stage; outputs of items that reach the current last
        stage after this call go through it.

        Raises:
            UpgradeError: its input type is not the current output type, or
                its name is taken.
        """
        self._check_splice(
            spec, spec.machine.input, self.output, "input", "output of the last stage"
        )
        assert self._tg is not None
        async with self._control_lock:
            inbox = MemoryChannel(spec.capacity)
            actor = StageActor(
                spec, inbox, self._port, self.dead_letters, exit_on_crash=self._on_exit is not None
            )
            self._spawn(actor)
            reply = Reply()
            self._pending.add(reply)
            try:
                await self._entry.send(SpliceMsg(self._actors[-1].name, inbox, reply))
                await reply.wait()
            finally:
                self._pending.discard(reply)
            self._actors.append(actor)

    def _check_splice(self, spec: StageSpec, have: Type, want: Type, what: str, where: str) -> None:
        if self._closing:
            raise PipelineClosed("the pipeline is closing")
        if any(a.name == spec.name for a in self._actors):
            raise UpgradeError(
                f"a stage named {spec.name!r} exists already", stage=spec.name, reason="name taken"
            )
        ok = is_subtype(have, want) if what == "output" else is_subtype(want, have)
        if not ok:
            raise UpgradeError(
                f"refused: stage {spec.name!r} has {what} type {have!r}, "
                f"expected {want!r} (the {where})",
                stage=spec.name,
                reason="types",
            )

    # -- life cycle -----------------------------------------------------------

    def _start(self, tg: TaskGroup) -> None:
        self._tg = tg
        for a in self._actors:
            self._spawn(a)

    def _spawn(self, actor: StageActor) -> None:
        assert self._tg is not None
        self._tg.start_soon(self._run_actor, actor, name=f"arrowloop stage {actor.name}")

    async def _run_actor(self, actor: StageActor) -> None:
        try:
            await actor.run()
        except StageCrashed as exc:
            actor.running = False
            if self._on_exit is None:  # pragma: no cover - only supervised actors exit
                raise
            self._on_exit(actor.name, exc)
            return
        if self._on_exit is not None:
            self._on_exit(actor.name, None)

    def is_running(self, stage: str) -> bool:
        """Whether the actor of ``stage`` is running (not crashed or finished)."""
        return self._actor(stage).running

    def restart_stage(self, stage: str, *, state: Any = NO_STATE) -> None:
        """Restart ``stage`` with the initial state of its current machine.

        A crashed stage gets a new actor on the same channels, which first
        delivers what the old one held (the outputs it had not sent and the
        rest of its batch), so no queued item is lost. A running stage is
        reset in place between two batches. Used by supervisors.

        Args:
            stage: the stage's name.
            state: start from this state instead of the initial one (a
                supervisor's snapshot hook). A running stage uses it only if
                no upgrade reaches it before the reset applies.

        Raises:
            UpgradeError: there is no stage of that name.
            ValidationError: ``state`` is not of the stage's state type.
        """
        old = self._actor(stage)
        if state is not NO_STATE:
            validate(old.machine.state, state, f"restart state of stage {stage!r}")
        if old.running:
            if state is NO_STATE:
                old.reset()
            else:
                old.reset(state, old.machine.version)
            return
        spec = StageSpec(old.name, old.machine, old.inbox.capacity, old.batch_limit)
        new = StageActor(
            spec, old.inbox, old.outbox, self.dead_letters, exit_on_crash=old.exit_on_crash
        )
        new.take_over(old)
        if state is not NO_STATE:
            new.state = state
        new.running = True
        self._actors[self._actors.index(old)] = new
        self._spawn(new)

    async def close(self) -> None:
        """Stop accepting items, let everything in flight drain, stop the stages.

        Plain outputs already produced stay readable with ``receive``.
        """
        if not self._closing:
            self._closing = True
            await self._entry.send(EndMsg())
        await self._port.finished.wait()

    def _teardown(self) -> None:
        self._closing = True
        for reply in list(self._pending):
            reply.fail(PipelineClosed("the pipeline stopped before this request completed"))
        self._pending.clear()
        for a in self._actors:
            a.inbox.dispose()
        self._port.dispose()


def _concat(messages: list[list[Any]]) -> list[Any]:
    first = messages[0]
    for m in messages[1:]:
        first.extend(m)  # the lists were handed over: extending is safe
    return first


def _check_annotations(
    fn: Callable[[Any], Any], old: Type, new: Type, refuse: Callable[[str], UpgradeError]
) -> None:
    import inspect
    import typing

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
            raise refuse(f"is annotated with a type arrowloop does not know: {exc}") from exc

    got = typed(params[0]) if params else None
    if got is not None and got != old:
        raise refuse(f"takes {got!r}, expected the old state type {old!r}")
    got = typed("return")
    if got is not None and got != new:
        raise refuse(f"returns {got!r}, expected the new state type {new!r}")


@asynccontextmanager
async def open_pipeline(
    spec: PipelineSpec | StageSpec,
    *,
    output_capacity: int = DEFAULT_OUTPUT_CAPACITY,
    dead_letters: DeadLetterSink | None = None,
    validate_inputs: bool = True,
    on_exit: ExitHook | None = None,
) -> AsyncIterator[Pipeline]:
    """Deploy ``spec`` on a task group for the duration of an ``async with``.

    Leaving the block normally closes the pipeline gracefully: everything in
    flight drains (callers get their replies), and plain outputs nobody read
    are discarded (counted in ``discarded_outputs``). Leaving it by an
    exception or cancellation cancels the stages at once. Either way no task
    outlives the block and pending callers get :class:`PipelineClosed`.

    Args:
        spec: the pipeline (or a single stage).
        output_capacity: most plain outputs queued for ``receive``.
        dead_letters: where failed items go (default: a bounded ring).
        validate_inputs: check every item sent in against the input type.
        on_exit: for supervisors: stages then stop when a step raises and
            this is called with the stage's name and the error (or ``None``
            when the stage reached end of stream); see
            :meth:`Pipeline.restart_stage`.
    """
    if isinstance(spec, StageSpec):
        spec = PipelineSpec((spec,))
    p = Pipeline(
        spec,
        output_capacity=output_capacity,
        dead_letters=dead_letters,
        validate_inputs=validate_inputs,
        on_exit=on_exit,
    )
    error: BaseException | None = None
    try:
        async with anyio.create_task_group() as tg:
            p._start(tg)
            try:
                yield p
            except BaseException as exc:
                # Stop the stages now, and re-raise the caller's own exception
                # afterwards rather than wrapped in the task group's group.
                error = exc
                tg.cancel_scope.cancel()
            else:
                p._port.start_discarding()
                await p.close()
    finally:
        p._teardown()
    if error is not None:
        raise error
