"""Running pipelines: the handle for sending, receiving, upgrading, splicing.

:func:`open_pipeline` deploys a :class:`~arrowloop.runtime.PipelineSpec` on
a task group as an async context manager yielding a :class:`Pipeline`.
Everything that enters goes through the pipeline's door (``_admission.py``:
the admission rule across interface changes); changes arrive checked
(``_checked.py``) and travel in-band; tickets (``_ticket.py``) carry the
outputs of submitted items back through the client view they were admitted
with (``_view.py``).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from itertools import repeat
from typing import Any, Final

import anyio
import attrs
from anyio.abc import TaskGroup

from arrowloop.arrows import Loop
from arrowloop.check import is_subtype
from arrowloop.errors import PipelineClosed, PipelineError, UpgradeError
from arrowloop.frontend import PyMachine
from arrowloop.machine import AnyMachine
from arrowloop.runtime._admission import GONE, Door, closed
from arrowloop.runtime._channel import (
    ChannelStatistics,
    ReceiveChannel,
    SendChannel,
    open_channel,
)
from arrowloop.runtime._checked import (
    CheckedChange,
    Migration,
    as_upgrades,
    check_change,
)
from arrowloop.runtime._deadletter import DeadLetters, DeadLetterSink
from arrowloop.runtime._envelope import (
    Calls,
    CutMsg,
    EndMsg,
    KeyedCalls,
    Reply,
    SpliceMsg,
    StageChange,
    UpgradeMsg,
)
from arrowloop.runtime._keys import DEFAULT_REQUEST_KEYS, Recorded, check_key, check_window
from arrowloop.runtime._output import OutputPort
from arrowloop.runtime._shards import ShardedActor, replica_name
from arrowloop.runtime._spec import PipelineSpec, StageSpec
from arrowloop.runtime._stage import Persist, StageActor, StageCrashed, StageStatistics
from arrowloop.runtime._ticket import Ticket
from arrowloop.runtime._view import ClientView
from arrowloop.typesys import Type, validate

__all__ = [
    "Pipeline",
    "open_pipeline",
    "Change",
    "ExitHook",
    "FailureHook",
    "ViewSource",
    "Seeded",
    "NO_STATE",
    "DEFAULT_OUTPUT_CAPACITY",
]

#: What :meth:`Pipeline.upgrade_many` takes per stage: a machine, or a
#: machine and its migration (a ``@statemachine`` stands for its machine).
Change = AnyMachine | PyMachine | Loop | tuple[AnyMachine | PyMachine | Loop, Migration | None]
#: One replica as :meth:`Pipeline.seed_shards` starts it: its state, the
#: items it had applied, and its request keys (``(key, version, output)``).
Seeded = tuple[Any, int, list[tuple[str, str, Recorded]] | None]
#: Resolves a client's view when its item is admitted (see :meth:`Pipeline.submit`).
ViewSource = Callable[[], ClientView]

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
#: Called (synchronously, from the stage's task) with the stage's name when
#: a step fails on an item and the stage goes on.
FailureHook = Callable[[str], None]


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
        on_failure: FailureHook | None = None,
        persist: Persist | None = None,
        request_keys: int = DEFAULT_REQUEST_KEYS,
    ) -> None:
        self._persist = persist
        self._request_keys = check_window(request_keys)
        self.dead_letters: DeadLetterSink = DeadLetters() if dead_letters is None else dead_letters
        # A supervisor passes on_exit: stages with the restart policy then
        # stop on a failing step and it decides about restarts.
        self._on_exit = on_exit
        self._on_failure = on_failure
        self.validate_inputs = validate_inputs
        self._pending: set[Reply] = set()
        self._port = OutputPort(output_capacity, self._pending)
        self._actors: list[StageActor] = []
        channels = [open_channel(s.capacity) for s in spec.stages]
        for i, s in enumerate(spec.stages):
            outbox: SendChannel = channels[i + 1][0] if i + 1 < len(channels) else self._port
            self._actors.append(self._actor_of(s, channels[i][1], outbox))
        self._door = Door(channels[0][0])
        self._tg: TaskGroup | None = None
        self._buffer: deque[Any] = deque()
        self._control_lock = anyio.Lock()
        self._own_view: ClientView | None = None
        # Set per stage once it has passed end of stream on (or was abandoned).
        self._finished: dict[str, anyio.Event] = {}

    def _actor_of(self, spec: StageSpec, inbox: ReceiveChannel, outbox: SendChannel) -> StageActor:
        return (ShardedActor if spec.sharded else StageActor)(
            spec,
            inbox,
            outbox,
            self.dead_letters,
            supervised=self._on_exit is not None,
            on_failure=self._on_failure,
            persist=self._persist,
            request_keys=self._request_keys,
        )

    # -- introspection --------------------------------------------------------

    @property
    def input(self) -> Type:
        """The type of the items the pipeline accepts now."""
        return self._actors[0].machine.input

    @property
    def output(self) -> Type:
        """The type of the items the pipeline produces now."""
        return self._actors[-1].machine.output

    def view(self) -> ClientView:
        """The pipeline's own interface now, as a :class:`ClientView`."""
        # Cached while the types it holds are the ones running.
        v = self._own_view
        if v is None or v.input is not self.input or v.output is not self.output:
            v = self._own_view = ClientView(None, self.input, self.output)
        return v

    @property
    def closing(self) -> bool:
        """Whether the pipeline is closing (or closed): nothing more enters."""
        return self._door.closing

    @property
    def admission_paused(self) -> bool:
        """Whether an interface-changing change in flight holds new items back."""
        return self._door.paused

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

    def shards(self, stage: str) -> int | None:
        """How many replicas run ``stage`` if it is sharded (its :meth:`state`
        is then the list of their states, shard ``i`` at index ``i``), else None."""
        actor = self._actor(stage)
        return len(actor.replicas) if isinstance(actor, ShardedActor) else None

    def running(self) -> list[tuple[str, AnyMachine]]:
        """Each stage's name and the machine it runs now, in order."""
        return [(a.name, a.machine) for a in self._actors]

    def state(self, stage: str) -> Any:
        """The current state of ``stage`` (like OTP's ``sys:get_state``): a
        copy that later steps do not change (for a sharded stage, the list of
        its replicas' states, see :meth:`shards`)."""
        return self._actor(stage).state_copy()

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

    async def send(self, item: Any) -> None:
        """Send ``item`` in, waiting while the first stage's channel is full.

        Raises:
            PipelineClosed: the pipeline is closing (the item did not enter).
            ValidationError: ``item`` is not of the input type (if validating).
        """
        door = self._door
        if door.shut:
            await door.wait_open()
        if self.validate_inputs:
            validate(self.input, item, "item")
        try:  # Door.put_nowait inlined: this is the per-item path
            door.entry.send_nowait([item])
        except anyio.WouldBlock:
            await door.put([item])
        except GONE:
            raise closed() from None

    def send_nowait(self, item: Any) -> None:
        """Send ``item`` in now, or raise ``anyio.WouldBlock`` if the channel
        is full or admission is paused by an interface change in flight."""
        self._door.check_open()
        if self.validate_inputs:
            validate(self.input, item, "item")
        self._door.put_nowait([item])

    def _check_batch(self, items: list[Any]) -> list[Any]:
        if self.validate_inputs:
            t = self.input
            for i, item in enumerate(items):
                validate(t, item, f"items[{i}]")
        return items if type(items) is list else list(items)

    async def send_batch(self, items: list[Any]) -> None:
        """Send several items as one batch (the cheapest way in).

        The list is handed over: do not reuse it.
        """
        if self._door.shut:
            await self._door.wait_open()
        items = self._check_batch(items)
        if items:
            await self._door.put(items)

    def send_batch_nowait(self, items: list[Any]) -> None:
        """Send several items as one batch now, or raise ``anyio.WouldBlock``.

        The list is handed over: do not reuse it.
        """
        self._door.check_open()
        items = self._check_batch(items)
        if items:
            self._door.put_nowait(items)

    async def call(self, item: Any, *, key: str | None = None) -> Any:
        """Send ``item`` and wait for its output (``key``: see :meth:`submit`).

        Raises:
            StepError: a stage failed on this item (it is in the dead letters).
            PipelineClosed: the pipeline closed before the item got through.
            ValidationError: ``item`` is not of the input type (if validating).
        """
        ticket = await self.submit(item, key=key)
        return await ticket.result()

    async def submit(
        self,
        item: Any,
        *,
        view: ViewSource | None = None,
        decode: bool = False,
        key: str | None = None,
    ) -> Ticket:
        """Send ``item`` in and return a :class:`Ticket` for its output.

        Returns once the item is in the first stage's channel (waiting while
        it is full), so items submitted one after another by one task enter
        in that order; their outputs are collected later with
        :meth:`Ticket.result`. This is how a connection pipelines requests
        without a task per request.

        ``view`` resolves the client's :class:`ClientView` at the moment of
        admission (a supervisor's view of an older version, with adapters);
        the item is checked against (or, with ``decode=True``, built from
        its JSON form with) the view's input type and adapted in, and the
        ticket's result is adapted out. Without one, the pipeline's own
        types are used. The item then enters before any change that would
        make the view wrong.

        ``key`` is the client's request key (a string of 1 to 256
        characters): each stage applies an item of a given key at most once
        among its most recent ``request_keys`` keys, and answers a key it
        has applied with the output it produced then (docs/durability.md).

        Raises:
            PipelineClosed: the pipeline is closing (the item did not enter).
            ValidationError: ``item`` does not fit the input type, or ``key``
                is not a usable request key.
        """
        if key is not None:
            check_key(key)
        if self._door.shut:
            await self._door.wait_open()
        if view is None:
            v = None
            if decode:
                item = self.view().decode(item)
            elif self.validate_inputs:
                validate(self.input, item, "item")
        else:
            v = view()
            item = v.decode(item) if decode else v.admit(item)
        pending = self._pending
        ticket = Ticket(item, pending, v, key)
        pending.add(ticket)
        try:
            await self._door.put(ticket if key is None else KeyedCalls((ticket,)))
        except BaseException:
            pending.discard(ticket)
            raise
        return ticket

    async def submit_many(
        self,
        items: Sequence[Any],
        *,
        view: ViewSource | None = None,
        decode: bool = False,
        keys: Sequence[str | None] | None = None,
    ) -> list[Ticket | Exception]:
        """Send several items in together; a ticket or an error for each, in order.

        The batch form of :meth:`submit`, for a connection that read many
        requests at once: the view is resolved once, each item is checked
        (or decoded) and adapted in on its own, and those that fit enter as
        one message, in order, each with its own ticket. An item that does
        not fit gets its :class:`~arrowloop.errors.ValidationError` in its
        place (or whatever its input adapter raised) instead of a ticket and
        does not enter; the others still do. ``keys``, if given, has one
        request key (or ``None``) per item (see :meth:`submit`); a bad key
        is that item's :class:`~arrowloop.errors.ValidationError`.

        Raises:
            PipelineClosed: the pipeline is closing (no item entered).
        """
        door = self._door
        if door.shut:
            await door.wait_open()
        out, calls = self._tickets(items, self.view() if view is None else view(), decode, keys)
        if not calls:
            return out
        pending = self._pending
        pending.update(calls)
        try:
            await door.put(calls)
        except BaseException:
            pending.difference_update(calls)
            raise
        return out

    def submit_many_nowait(
        self,
        items: Sequence[Any],
        *,
        view: ViewSource | None = None,
        decode: bool = False,
        keys: Sequence[str | None] | None = None,
    ) -> list[Ticket | Exception] | None:
        """:meth:`submit_many` without waiting: ``None`` (and nothing done,
        not even decoding) when the items could not enter at once, because
        a change holds the door, the pipeline is closing or the first
        channel has no room for them; call :meth:`submit_many` then.

        For a caller that must not wait (a protocol's ``data_received``):
        the check and the entry happen in one step, so nothing can take the
        room in between.
        """
        door = self._door
        if not door.can_enter(len(items)):
            return None
        out, calls = self._tickets(items, self.view() if view is None else view(), decode, keys)
        if calls:
            self._pending.update(calls)
            door.put_nowait(calls)  # cannot block: checked above, nothing ran since
        return out

    def _tickets(
        self,
        items: Sequence[Any],
        v: ClientView,
        decode: bool,
        keys: Sequence[str | None] | None,
    ) -> tuple[list[Ticket | Exception], Calls]:
        """A ticket or an error for each item, and the message of the tickets."""
        take = v.decoder() if decode else v.admit
        where = "$.item" if decode else "item"
        out: list[Ticket | Exception] = []
        # Only a batch with keys takes the stages' keyed path.
        key_of: Iterable[str | None] = repeat(None)
        if keys is not None and any(k is not None for k in keys):
            if len(keys) != len(items):
                raise ValueError(f"expected {len(items)} keys (one per item), found {len(keys)}")
            key_of = keys
        pending = self._pending
        give = out.append
        if type(key_of) is repeat:
            # No keys: the common batch, in a loop of its own. Tickets go in
            # ``out`` only; the message is a copy of it (made in C) when every
            # item fitted, as is usual.
            refused = 0
            for item in items:
                try:
                    value = take(item, where)
                except Exception as exc:  # this item's fault: the batch goes on
                    give(exc)
                    refused += 1
                    continue
                give(Ticket(value, pending, v))
            return out, Calls(out if not refused else [t for t in out if type(t) is Ticket])
        calls = KeyedCalls()
        enter = calls.append
        for item, key in zip(items, key_of, strict=False):  # keys: checked above
            try:
                value = take(item, where)
                if key is not None:
                    check_key(key, "keys")
            except Exception as exc:  # this item's fault: the batch goes on
                give(exc)
                continue
            ticket = Ticket(value, pending, v, key)
            enter(ticket)
            give(ticket)
        return out, calls

    # -- receiving ------------------------------------------------------------

    async def receive(self) -> Any:
        """The next output of a plain ``send``.

        Raises:
            anyio.EndOfStream: the pipeline closed and every output was read.
        """
        if not self._buffer:
            try:
                messages = await self._port.outputs.receive(1 << 16)
            except GONE:
                raise anyio.EndOfStream from None
            for m in messages:
                self._buffer.extend(m)
        return self._buffer.popleft()

    async def receive_batch(self) -> list[Any]:
        """All outputs waiting now (at least one; waits if none).

        Raises:
            anyio.EndOfStream: the pipeline closed and every output was read.
        """
        if self._buffer:
            return self._take_buffer()
        try:
            return _concat(await self._port.outputs.receive(1 << 16))
        except GONE:
            raise anyio.EndOfStream from None

    def receive_batch_nowait(self) -> list[Any]:
        """All outputs waiting now, without waiting.

        Raises:
            anyio.WouldBlock: no output is waiting.
            anyio.EndOfStream: the pipeline closed and every output was read.
        """
        if self._buffer:
            return self._take_buffer()
        try:
            return _concat(self._port.outputs.receive_nowait(1 << 16))
        except GONE:
            raise anyio.EndOfStream from None

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
        changes: Mapping[str, Change] | CheckedChange,
        *,
        expect_versions: Mapping[str, str] | None = None,
        change_interface: bool = False,
    ) -> dict[str, str]:
        """Upgrade several stages at once, as one consistent cut.

        The types between stages may change (stage k's output and stage
        k+1's input together). Every item is processed either by all the old
        machines or by all the new ones. The pipeline's own input and output
        types may change only with ``change_interface=True``. ``changes`` may
        also be a change checked already (:meth:`check`).

        Returns the new version of each changed stage.

        Raises:
            UpgradeError: refused or failed; nothing changed.
        """
        if not isinstance(changes, CheckedChange):
            changes = self.check(
                changes, expect_versions=expect_versions, change_interface=change_interface
            )
        return await self.apply(changes)

    def check(
        self,
        changes: Mapping[str, Change],
        *,
        expect_versions: Mapping[str, str] | None = None,
        change_interface: bool = False,
    ) -> CheckedChange:
        """Check a change against the machines running now (see
        :func:`~arrowloop.runtime.check_change`), without applying it.

        Raises:
            UpgradeError: the change would be refused.
            PipelineClosed: the pipeline is closing.
        """
        if self._door.closing:
            raise PipelineClosed("the pipeline is closing: no more upgrades are accepted")
        return check_change(
            self.running(),
            as_upgrades(changes, expect_versions),
            change_interface=change_interface,
        )

    async def apply(
        self, change: CheckedChange, *, on_commit: Callable[[], None] | None = None
    ) -> dict[str, str]:
        """Send a checked change in-band and wait for it to apply.

        An incompatible change (``change.compatible`` false) pauses
        admission from now until it is applied or refused: items admitted
        before enter before it, later ones are checked against the types
        that won. ``on_commit`` is called in the same step as the commit
        (before any later item is stepped or admitted), for records that
        must never lag behind what runs.

        Returns the new version of each changed stage.

        Raises:
            UpgradeError: failed in a stage (``stale``: another change got
                there first; ``migration failed``; ``invalid migrated
                state``); nothing changed.
            PipelineClosed: the pipeline is closing.
        """
        if self._door.closing:
            raise PipelineClosed("the pipeline is closing: no more upgrades are accepted")
        if not isinstance(change, CheckedChange):
            raise TypeError(
                f"expected a CheckedChange (Pipeline.check(...)), found {type(change).__name__}"
            )
        for p in change.plans:
            key = self._actor(p.stage).spec.shard_key
            if key is not None and not is_subtype(p.new.input, key.input):
                # The router computes keys with the old key function.
                raise UpgradeError(
                    f"refused: stage {p.stage!r} is sharded by a key function taking "
                    f"{key.input!r}, which does not accept the new input type {p.new.input!r}",
                    stage=p.stage,
                    reason="types",
                )
        prepared = {
            p.stage: StageChange(p.stage, p.new, p.migrate, p.old.version) for p in change.plans
        }
        door = self._door
        # An incompatible change pauses admission until it is decided
        # (whoever decides it: a stage, or the teardown failing it).
        resume = door.pause() if not change.compatible else None
        pending = self._pending

        def decided() -> None:
            pending.discard(reply)
            if resume is not None:
                resume()

        reply = Reply(decided)
        msg = UpgradeMsg(prepared, change.last, reply, on_commit)
        pending.add(reply)
        try:
            if resume is not None:
                await door.admitted_in()  # items admitted before it go first
            await door.put(msg)
        except BaseException as exc:
            reply.fail(exc)  # never entered: decided now
            raise
        result: dict[str, str] = await reply.wait()
        return result

    async def cut(self, *, per_shard: bool = False) -> list[tuple[str, AnyMachine, Any, int]]:
        """A consistent cut: each stage's ``(name, machine, state, items
        applied)``, every state after exactly the items admitted before
        this call and none after, in pipeline order. A sharded stage is
        noted once, its state the list of its replicas' states and its
        count theirs added up; with ``per_shard``, once per replica, as a
        store records it (named by :func:`replica_name`).

        Taken in-band, as an upgrade travels: a marker enters behind the
        items admitted so far and each stage notes its machine and state
        as the marker passes, then goes on; traffic is not paused. (With
        a store, each noted state is the durable one.) The marker waits
        behind a stage that is paused or restarting, as items do.

        Raises:
            PipelineClosed: the pipeline is closing (or closed meanwhile).
        """
        if self._door.closing:
            raise PipelineClosed("the pipeline is closing: no cut can be taken")
        pending = self._pending

        def decided() -> None:
            pending.discard(reply)

        reply = Reply(decided)
        pending.add(reply)
        try:
            await self._door.put(CutMsg(reply, per_shard=per_shard))
        except BaseException as exc:
            reply.fail(exc)
            raise
        result: list[tuple[str, AnyMachine, Any, int]] = await reply.wait()
        return result

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
        sender, inbox = open_channel(spec.capacity)
        actor = self._actor_of(spec, inbox, self._door.entry)
        self._spawn(actor)
        self._actors.insert(0, actor)
        self._door.entry = sender

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
            sender, inbox = open_channel(spec.capacity)
            actor = self._actor_of(spec, inbox, self._port)
            self._spawn(actor)
            reply = Reply()
            self._pending.add(reply)
            try:
                await self._door.put(SpliceMsg(self._actors[-1].name, sender, reply))
                await reply.wait()
            finally:
                self._pending.discard(reply)
            self._actors.append(actor)

    def _check_splice(self, spec: StageSpec, have: Type, want: Type, what: str, where: str) -> None:
        if self._door.closing:
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
        # Running from now on, not from when its task first runs: a restart
        # or reset in between must apply to this actor, not replace it.
        actor.running = True
        self._tg.start_soon(self._run_actor, actor, name=f"arrowloop stage {actor.name}")

    async def _run_actor(self, actor: StageActor) -> None:
        actor.alive = True
        try:
            with anyio.CancelScope() as scope:
                actor.scope = scope
                try:
                    await actor.run()
                except StageCrashed as exc:
                    actor.running = False
                    if self._on_exit is None:  # pragma: no cover - only supervised actors exit
                        raise
                    self._on_exit(actor.name, exc)  # may abandon it: reaped below
                else:
                    self._stage_finished(actor.name)
                    if self._on_exit is not None:
                        self._on_exit(actor.name, None)
        finally:
            actor.alive = False
        if actor.abandoning:
            await self._reap(actor)

    def _stage_finished(self, stage: str) -> None:
        self._finished.setdefault(stage, anyio.Event()).set()

    def abandon(self, stage: str) -> None:
        """Stop ``stage`` for good while the pipeline closes (a shutdown
        timeout ran out, or it crashed while closing).

        Its actor is cancelled if it runs; end of stream is passed on
        downstream (the stages after it finish with what they hold); what it
        held, what is queued for it and whatever still reaches it is
        answered: callers get :class:`PipelineClosed`, plain items are
        dropped, and both are counted in its statistics' ``abandoned``.
        Doing it twice, or to a stage that has finished, does nothing.

        Raises:
            UpgradeError: there is no stage of that name.
        """
        actor = self._actor(stage)
        finished = self._finished.get(stage)
        if actor.abandoning or (finished is not None and finished.is_set()):
            return
        actor.abandoning = True
        actor.running = False
        if actor.alive:
            assert actor.scope is not None
            actor.scope.cancel()  # its task reaps once the actor has stopped
        else:
            assert self._tg is not None
            self._tg.start_soon(self._reap, actor, name=f"arrowloop stage {stage} (closed)")

    async def _reap(self, actor: StageActor) -> None:
        self._stage_finished(actor.name)
        err = PipelineClosed(
            f"the pipeline stopped stage {actor.name!r} while closing, before this request "
            "got through it"
        )
        held = actor.leftover + ([actor.unsent] if actor.unsent else [])
        actor.leftover, actor.unsent = [], []
        self._answer(actor, held, err)
        with contextlib.suppress(*GONE):
            await actor.outbox.send(EndMsg())
        while True:
            try:
                messages = await actor.inbox.receive(1 << 16)
            except (anyio.EndOfStream, *GONE):
                return
            if self._answer(actor, messages, err):
                return

    def _answer(self, actor: StageActor, messages: list[Any], err: PipelineClosed) -> bool:
        """Answer what reached a stopped stage; whether end of stream was among it."""
        end = False
        for m in messages:
            tm = type(m)
            if tm is list:
                actor.abandoned += len(m)
            elif tm is Ticket:
                actor.abandoned += 1
                m.fail(err)
            elif tm is Calls or tm is KeyedCalls:
                actor.abandoned += len(m)
                for r in m:
                    r.fail(err)
            elif tm is UpgradeMsg:
                m.failure = (actor.name, "closed", err)
                m.decided.set()
                m.reply.fail(err)
            elif tm is SpliceMsg or tm is CutMsg:
                m.reply.fail(err)
            elif tm is EndMsg:
                end = True
        return end

    def pause_stage(self, stage: str) -> None:
        """Hold ``stage``: it finishes the batch in hand, then steps nothing
        until :meth:`restart_stage` resumes it; items queue in its channel
        (and, once that is full, upstream). Used by a supervisor's
        ``terminate_child``.

        Raises:
            UpgradeError: there is no stage of that name.
        """
        self._actor(stage).pause()

    def is_paused(self, stage: str) -> bool:
        """Whether ``stage`` is paused (see :meth:`pause_stage`)."""
        return self._actor(stage).paused

    def is_running(self, stage: str) -> bool:
        """Whether the actor of ``stage`` is running (not crashed or finished)."""
        return self._actor(stage).running

    def seed(
        self,
        stage: str,
        state: Any,
        applied: int = 0,
        keys: list[tuple[str, str, Recorded]] | None = None,
    ) -> None:
        """Start ``stage`` from ``state`` (a supervisor resuming from its
        store), counting ``applied`` items as already stepped, with the
        request keys it had applied (``(key, version, output)``, oldest first).

        Raises:
            UpgradeError: there is no stage of that name.
            ValidationError: ``state`` is not of the stage's state type.
            RuntimeError: the stage has stepped items already.
            PipelineError: the stage is sharded (see :meth:`seed_shards`).
        """
        actor = self._actor(stage)
        if isinstance(actor, ShardedActor):
            actor.seed(state, applied)  # refused, saying why
        self._seed_one(stage, actor, state, applied, keys)

    def seed_shards(self, stage: str, replicas: Sequence[Seeded]) -> None:
        """Start the sharded ``stage``'s replicas from their recorded states
        (a supervisor resuming from its store): per shard, in order, its
        ``(state, items applied, request keys)`` as :meth:`seed` takes them.

        Raises:
            UpgradeError: there is no stage of that name.
            PipelineError: the stage is not sharded, or has another number
                of replicas.
            ValidationError: a state is not of the stage's state type.
            RuntimeError: the stage has stepped items already.
        """
        actor = self._actor(stage)
        if not isinstance(actor, ShardedActor) or len(actor.replicas) != len(replicas):
            raise PipelineError(
                f"stage {stage!r} runs {self.shards(stage) or 'unsharded'} replicas, "
                f"not {len(replicas)}: its recorded shards cannot be seeded"
            )
        for i, (replica, (state, applied, keys)) in enumerate(
            zip(actor.replicas, replicas, strict=True)
        ):
            self._seed_one(replica_name(stage, i), replica, state, applied, keys)

    @staticmethod
    def _seed_one(
        stage: str,
        actor: StageActor,
        state: Any,
        applied: int,
        keys: list[tuple[str, str, Recorded]] | None,
    ) -> None:
        validate(actor.machine.state, state, f"state of stage {stage!r}")
        if actor.processed or actor.failed:
            raise RuntimeError(f"stage {stage!r} has stepped items: it cannot be seeded")
        actor.seed(state, applied)
        if keys:
            actor.keys.load(keys)

    def restart_stage(self, stage: str, *, state: Any = NO_STATE) -> None:
        """Restart ``stage`` with the initial state of its current machine.

        A crashed stage gets a new actor on the same channels, which first
        delivers what the old one held (the outputs it had not sent and the
        rest of its batch), so no queued item is lost. A running stage is
        reset in place between two batches (a paused one is resumed so).
        Used by supervisors.

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
            old.resume()
            return
        spec = attrs.evolve(old.spec, machine=old.machine)
        new = self._actor_of(spec, old.inbox, old.outbox)
        new.take_over(old)
        if state is not NO_STATE:
            new.state = state
        new.running = True
        self._actors[self._actors.index(old)] = new
        self._spawn(new)

    async def close(
        self,
        *,
        shutdown: Mapping[str, float | None] | None = None,
        discard_outputs: bool = False,
    ) -> None:
        """Stop accepting items, let everything in flight drain, stop the stages.

        Plain outputs already produced stay readable with ``receive``, unless
        ``discard_outputs`` (nobody will read them: a stage is then never
        held up by a full output channel).

        Args:
            shutdown: seconds each named stage gets, from now, to pass end of
                stream on; one that has not is stopped for good
                (:meth:`abandon`): ``0`` at once, ``None`` never. Stages
                not named wait as long as it takes.
            discard_outputs: drop plain outputs from now on.
        """
        if discard_outputs:
            self._port.start_discarding()
        budgets = {} if shutdown is None else dict(shutdown)
        for name in budgets:
            self._actor(name)  # an unknown name is a caller's bug: say so now
        if not budgets:
            if not self._door.closing:
                await self._door.seal(EndMsg())
            await self._port.finished.wait()
            return
        async with anyio.create_task_group() as tg:
            for name, budget in budgets.items():
                if budget is not None:
                    tg.start_soon(self._deadline, name, budget)
            if not self._door.closing:
                await self._door.seal(EndMsg())
            await self._port.finished.wait()
            tg.cancel_scope.cancel()

    async def _deadline(self, stage: str, budget: float) -> None:
        finished = self._finished.setdefault(stage, anyio.Event())
        if budget > 0:
            with anyio.move_on_after(budget):
                await finished.wait()
        if not finished.is_set():
            self.abandon(stage)

    def _teardown(self) -> None:
        self._door.close_now()
        for reply in list(self._pending):
            reply.fail(PipelineClosed("the pipeline stopped before this request completed"))
        self._pending.clear()
        for a in self._actors:
            a.inbox.close()
        self._port.dispose()


def _concat(messages: list[list[Any]]) -> list[Any]:
    first = messages[0]
    for m in messages[1:]:
        first.extend(m)  # the lists were handed over: extending is safe
    return first


@asynccontextmanager
async def open_pipeline(
    spec: PipelineSpec | StageSpec,
    *,
    output_capacity: int = DEFAULT_OUTPUT_CAPACITY,
    dead_letters: DeadLetterSink | None = None,
    validate_inputs: bool = True,
    on_exit: ExitHook | None = None,
    on_failure: FailureHook | None = None,
    persist: Persist | None = None,
    request_keys: int = DEFAULT_REQUEST_KEYS,
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
        on_failure: called with a stage's name each time its step fails on
            an item and it goes on (a supervisor's auto-rollback counts
            these).
        persist: makes stages' states durable (a supervisor's store): a
            stage awaits it with its new state before releasing the outputs
            of a batch, and with every changed stage's new machine and
            migrated state before an upgrade commits. If it raises, the
            outputs are withheld (their callers get the error) and the
            stage goes on from its last durable state.
        request_keys: how many request keys each stage remembers (the most
            recent; see :meth:`Pipeline.submit`).
    """
    if isinstance(spec, StageSpec):
        spec = PipelineSpec((spec,))
    p = Pipeline(
        spec,
        output_capacity=output_capacity,
        dead_letters=dead_letters,
        validate_inputs=validate_inputs,
        on_exit=on_exit,
        on_failure=on_failure,
        persist=persist,
        request_keys=request_keys,
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
