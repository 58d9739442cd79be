"""The stage actor: one task that steps a machine over its input channel.

The actor owns nothing but its machine and state; its channels belong to the
pipeline, so queued items outlive a crash. The loop is written for speed:
plain items arrive in lists and are stepped in a tight loop with the step
function and the state in local variables; envelopes (calls with a reply
route, upgrades, splices, end of stream) arrive as messages of their own. A step
that raises loses only that item: it goes to the dead-letter sink with its
error, its caller (if any) gets a :class:`~arrowloop.errors.StepError`, and
the stage carries on with its state as it was before that item.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import Any, NoReturn, Protocol

import anyio
import anyio.lowlevel
import attrs

from arrowloop.compiler import undo
from arrowloop.errors import StepError, UpgradeError, ValidationError
from arrowloop.machine import AnyMachine, Machine, NativeMachine
from arrowloop.runtime._budget import with_budget
from arrowloop.runtime._channel import ChannelStatistics, ReceiveChannel, SendChannel, size
from arrowloop.runtime._deadletter import DeadLetter, DeadLetterSink
from arrowloop.runtime._envelope import (
    Calls,
    Control,
    CutMsg,
    EndMsg,
    KeyedCalls,
    SpliceMsg,
    UpgradeMsg,
)
from arrowloop.runtime._histogram import (
    BATCH_SIZES,
    PAUSE_SECONDS,
    STEP_SECONDS,
    Histogram,
    HistogramSnapshot,
)
from arrowloop.runtime._keys import DEFAULT_REQUEST_KEYS, Change, KeyWindow
from arrowloop.runtime._spec import OnStepError, StageSpec
from arrowloop.runtime._ticket import Ticket
from arrowloop.typesys import validate

log = logging.getLogger("arrowloop.runtime")

__all__ = ["StageStatistics", "StageActor", "StageCrashed", "Persist", "decide", "persist_change"]


class Persist(Protocol):
    """Makes ``(stage, machine, state, items applied)`` durable, for several
    stages in one go, with the changes to their windows of request keys
    (``keys``: per stage, each key applied with its version, output type and
    output, or ``None`` for a key dropped) in the same transaction; raises if
    it cannot (the store's error)."""

    def __call__(
        self,
        records: list[tuple[str, AnyMachine, Any, int]],
        keys: dict[str, dict[str, Change]] | None = None,
    ) -> Awaitable[None]:
        """Write, and return once it is durable."""


@attrs.frozen
class StageStatistics:
    """A snapshot of one running stage."""

    name: str
    version: str
    portable: bool
    input_type: str
    output_type: str
    state_type: str
    processed: int
    failed: int
    upgrades: int
    queue: ChannelStatistics
    last_upgrade_pause_ns: int | None
    restarts: int = 0
    #: Items answered with PipelineClosed (or dropped, if plain) because the
    #: stage was stopped for good while its pipeline closed.
    abandoned: int = 0
    #: Items the actor holds unstepped (the batch a paused stage received).
    held: int = 0
    #: Seconds per step (each wake-up's mean), items per wake-up, and the
    #: pauses upgrades caused, as histograms.
    step_seconds: HistogramSnapshot | None = None
    batch_sizes: HistogramSnapshot | None = None
    upgrade_pauses: HistogramSnapshot | None = None


class StageCrashed(Exception):
    """A supervised stage stopped because its step raised on ``item``.

    Raised out of :meth:`StageActor.run` only when the actor exits on
    crashes (under a supervisor); the error itself is ``__cause__``.
    """

    def __init__(self, stage: str, item: Any, error: BaseException) -> None:
        super().__init__(
            f"stage {stage!r} crashed on {item!r:.80}: {type(error).__name__}: {error}"
        )
        self.stage = stage
        self.item = item
        self.error = error


def _native_step(machine: NativeMachine) -> Callable[[Any, Any], tuple[Any, Any]]:
    # Native steps are unchecked Python: catch a wrong return shape here,
    # naming the bad value (OTP's bad_return_value), rather than letting it
    # surface as a confusing unpacking error or a corrupted state.
    raw = machine.step

    def step(item: Any, state: Any) -> tuple[Any, Any]:
        result = raw(item, state)
        if type(result) is not tuple or len(result) != 2:
            raise TypeError(
                f"bad return value: expected a pair (state, output), found {result!r:.80}"
            )
        return result

    return step


def decide(stage: str, msg: UpgradeMsg) -> None:
    """Commit what every other changed stage prepared for ``msg`` and answer
    it: the last changed stage's part, once its own commit is done."""
    for other in msg.commits:
        other()
    # Whoever keeps records of what runs (a supervisor) updates them in this
    # same step, so no client sees the new code unrecorded.
    if msg.on_commit is not None:
        try:
            msg.on_commit()
        except Exception:  # a bookkeeping bug must not kill the stage
            log.exception("stage %s: the commit hook of an upgrade failed", stage)
    msg.decided.set()
    msg.reply.set(dict(msg.versions))


async def persist_change(stage: str, msg: UpgradeMsg, persist: Persist | None) -> bool:
    """Make every changed stage's new machine and migrated state durable in
    one write, before the change commits (by its last changed ``stage``).

    Returns whether the change may commit: if the store refuses, the change
    fails whole (``not durable``) and every stage keeps its code.
    """
    if persist is None:
        return True
    try:
        await persist(msg.durable)
    except Exception as exc:
        err = UpgradeError(
            f"stage {stage!r}: the change could not be made durable "
            f"({type(exc).__name__}: {exc}); every stage keeps its code",
            stage=stage,
            reason="not durable",
        )
        msg.failure = (stage, "not durable", err)
        msg.decided.set()
        msg.reply.fail(err)
        return False
    return True


class StageActor:
    """The running form of a stage (created and owned by a pipeline)."""

    def __init__(
        self,
        spec: StageSpec,
        inbox: ReceiveChannel,
        outbox: SendChannel,
        dead: DeadLetterSink,
        *,
        supervised: bool = False,
        on_failure: Callable[[str], None] | None = None,
        persist: Persist | None = None,
        request_keys: int = DEFAULT_REQUEST_KEYS,
    ) -> None:
        self.name = spec.name
        # A replica of a sharded stage (see _shards.py): never the one to
        # decide an upgrade, since its siblings must have prepared too.
        self.shard = False
        # The name its state is recorded under in a store: the stage's, or
        # for a replica its own (``_shards.replica_name``).
        self.record = spec.name
        # The request keys applied recently (see _keys.py); with a store,
        # committed with the state.
        self.keys = KeyWindow(request_keys, tracking=persist is not None)
        # With a store: the state is made durable before any output that
        # depends on it leaves the stage (see _release).
        self.persist = persist
        self._persisted = 0  # items applied as of the last durable state
        # Items of the batch in hand applied before the control message
        # being handled (``processed`` counts them only at the batch's end).
        self._applied_in_batch = 0
        # Messages stepped but not sent on yet (see _release).
        self._outgoing: list[Any] = []
        self.not_durable = 0  # outputs withheld because the store refused
        self.spec = spec
        restart = spec.on_step_error is OnStepError.RESTART
        # A failing step is the item's fault: by default the stage keeps its
        # state and goes on. With the restart policy it is a crash: under a
        # supervisor the actor ends (OTP style) and is restarted; alone, the
        # stage resets its state in place.
        self.exit_on_crash = restart and supervised
        self.reset_on_crash = restart and not supervised
        # Told of every failing item the actor goes on after (not of crashes,
        # which end the actor and reach the supervisor as its exit).
        self.on_failure = None if self.exit_on_crash else on_failure
        # What a crashed actor was holding: the rest of its batch, and outputs
        # not yet sent. Its successor takes them over, so nothing is lost.
        self.leftover: list[Any] = []
        self.unsent: list[Any] = []
        self.reset_requested = False
        self.reset_to: tuple[Any, str] | None = None
        self.restarts = 0
        self.running = False
        # Paused by its supervisor (terminate_child): the actor holds the
        # batch it receives next, unstepped, until it is resumed.
        self.paused = False
        self._resumed: anyio.Event | None = None
        # Set when the stage is stopped for good while the pipeline closes:
        # what reaches it is then answered with PipelineClosed and counted.
        self.abandoning = False
        self.abandoned = 0
        self.scope: anyio.CancelScope | None = None
        self.alive = False  # whether its task is still running
        self.batch_limit = spec.batch_limit
        self.inbox = inbox
        self.outbox = outbox
        self.dead = dead
        self.machine: AnyMachine = spec.machine
        # A portable machine's step updates the state in place (see
        # Machine.owned_step): the actor owns its state, so a state handed
        # to it (the initial one, a migrated or restored one) is copied
        # before the first step, and one handed out is a copy.
        self._log: list[Any] | None = None
        self._copy: Callable[[Any], Any] | None = None
        self._adopted = False
        self._state: Any = spec.machine.init
        self._durable_state: Any = self._state
        self.step = self._step_of(spec.machine)
        self.processed = 0
        self.failed = 0
        self.upgrades = 0
        self.last_upgrade_pause_ns: int | None = None
        self._pause_t0: int | None = None
        # One observation per wake-up, never per item: the loop stays tight.
        self.step_seconds = Histogram(STEP_SECONDS)
        self.batch_sizes = Histogram(BATCH_SIZES)
        self.upgrade_pauses = Histogram(PAUSE_SECONDS)

    def _step_of(self, machine: AnyMachine) -> Callable[[Any, Any], tuple[Any, Any]]:
        self._log = None
        self._copy = None
        # Only stages with a budget pay for measuring their state; they keep
        # the step that never updates in place (a step over the budget must
        # leave the state as it was).
        budget = self.spec.max_state_size
        if isinstance(machine, Machine) and budget is None:
            step, self._log = machine.owned_step()
            self._copy = machine.copy_state
            return step
        step = _native_step(machine) if isinstance(machine, NativeMachine) else machine.step
        return step if budget is None else with_budget(step, budget)

    @property
    def state(self) -> Any:
        """The stage's state (its own: do not change it; see :meth:`state_copy`)."""
        return self._state

    @state.setter
    def state(self, value: Any) -> None:
        # From outside: copied before a step may update it in place.
        self._state = value
        self._adopted = False
        if self._log:
            self._log.clear()

    def _own_state(self) -> Any:
        """The state, made the actor's own (copied once if it came from outside)."""
        if not self._adopted:
            if self._copy is not None:
                self._state = self._copy(self._state)
            self._adopted = True
        return self._state

    def state_copy(self) -> Any:
        """The state as of now, that later steps do not change."""
        if self._adopted and self._copy is not None:
            return self._copy(self._state)
        return self._state

    def statistics(self) -> StageStatistics:
        """A snapshot of this stage."""
        m = self.machine
        return StageStatistics(
            self.name,
            m.version,
            m.portable,
            repr(m.input),
            repr(m.output),
            repr(m.state),
            self.processed,
            self.failed,
            self.upgrades,
            self.inbox.statistics(),
            self.last_upgrade_pause_ns,
            self.restarts,
            self.abandoned,
            sum(size(m) for m in self.leftover) if self.paused else 0,
            self.step_seconds.snapshot(),
            self.batch_sizes.snapshot(),
            self.upgrade_pauses.snapshot(),
        )

    def take_over(self, previous: StageActor) -> None:
        """Inherit what a crashed predecessor held (its unsent outputs and the
        rest of its batch) and its counters; its state is not inherited."""
        self.unsent, previous.unsent = previous.unsent, []
        self.keys = previous.keys  # what was applied stays applied
        self.leftover, previous.leftover = previous.leftover, []
        self.processed = previous.processed
        self.failed = previous.failed
        self.upgrades = previous.upgrades
        self.abandoned = previous.abandoned
        self.restarts = previous.restarts + 1
        self.last_upgrade_pause_ns = previous.last_upgrade_pause_ns
        self.step_seconds = previous.step_seconds
        self.batch_sizes = previous.batch_sizes
        self.upgrade_pauses = previous.upgrade_pauses

    def reset(self, state: Any = None, version: str | None = None) -> None:
        """Restart in place: the initial state of the current machine.

        Used by one-for-all and rest-for-one restarts of stages that did not
        crash themselves; applied between two batches, so nothing is lost.
        With ``version``, ``state`` is used instead of the initial state if
        the stage still runs that version when the reset applies (an upgrade
        may get there first; its state type may differ).
        """
        self.reset_requested = True
        self.reset_to = (state, version) if version is not None else None

    def pause(self) -> None:
        """Step nothing more until :meth:`resume`; the batch in hand is finished
        and the next one is held, unstepped (so nothing queued is lost)."""
        self.paused = True

    def resume(self) -> None:
        """Go on after :meth:`pause` (with a reset requested first, if any)."""
        self.paused = False
        if self._resumed is not None:
            self._resumed.set()
            self._resumed = None

    async def _hold(self, messages: list[Any]) -> None:
        self.leftover = messages
        while self.paused:
            self._resumed = anyio.Event()
            await self._resumed.wait()

    # -- the loop -------------------------------------------------------------

    async def run(self) -> None:
        """Step items until end of stream (the task body)."""
        inbox = self.inbox
        receive_nowait = inbox.receive_nowait
        limit = self.batch_limit
        self.running = True
        if self.unsent:
            held, self.unsent = self.unsent, []
            await self._send(held)
        while True:
            # Fast path first: a coroutine is only made when we must wait.
            if self.leftover:
                messages, self.leftover = self.leftover, []
            elif inbox.queued:
                if inbox.senders_waiting and inbox.queued <= limit:
                    # About to run dry while senders wait: let them refill the
                    # inbox first. Without a yield every stage drains its
                    # inbox before its feeders run, and the pipeline empties
                    # (an upgrade's pause then lasts a whole refill).
                    await anyio.lowlevel.checkpoint()
                    if not inbox.queued:
                        continue  # taken or torn down meanwhile: wait as usual
                messages = receive_nowait(limit)
            else:
                try:
                    messages = await inbox.receive(limit)
                except anyio.EndOfStream:
                    self.running = False
                    return
            if self.paused:
                await self._hold(messages)
                continue
            if self._pause_t0 is not None:
                self._end_pause()
            if self.reset_requested:
                self.reset_requested = False
                to, self.reset_to = self.reset_to, None
                if to is not None and to[1] == self.machine.version:
                    self.state = to[0]
                else:
                    self.state = self.machine.init
                self._durable_state = self.state  # restored from the store, or the initial
                self.restarts += 1
            persist = self.persist
            step = self.step
            state = self._own_state()
            outs: list[Any] = []  # plain outputs not yet sent
            done = 0
            t0 = perf_counter_ns()
            rest = iter(messages)
            m: Any = None
            try:
                for m in rest:
                    tm = type(m)
                    if tm is list:
                        # The hot loop: plain items only, nothing to dispatch on.
                        append = outs.append
                        items = iter(m)
                        for x in items:
                            try:
                                state, y = step(x, state)
                            except Exception as exc:
                                self._crash(x, exc, None)
                                if self.reset_on_crash:
                                    state = self._reset_after_crash()
                                if self.exit_on_crash:
                                    left = list(items)
                                    done += len(m) - len(left) - 1
                                    await self._exit(
                                        state,
                                        done,
                                        outs,
                                        ([left] if left else []) + list(rest),
                                        x,
                                        exc,
                                    )
                                done -= 1
                                continue
                            append(y)
                        done += len(m)
                    elif tm is Calls:
                        # A connection's batch of requests: stepped in one go
                        # and passed on as one message, after the outputs
                        # before it.
                        # The message goes on as it is unless a step fails:
                        # then the calls stepped so far are copied out and
                        # the failing ones (answered already) left behind.
                        passed: Calls | None = None
                        for i, r in enumerate(m):
                            try:
                                state, r.value = step(r.value, state)
                            except Exception as exc:
                                if passed is None:
                                    passed = Calls(m[:i])
                                self._crash(r.value, exc, r)
                                if self.reset_on_crash:
                                    state = self._reset_after_crash()
                                if self.exit_on_crash:
                                    left = Calls(m[i + 1 :])
                                    self._queue_out(outs, passed)
                                    outs = []
                                    await self._exit(
                                        state,
                                        done + len(passed),
                                        [],
                                        ([left] if left else []) + list(rest),
                                        r.value,
                                        exc,
                                    )
                                continue
                            if passed is not None:
                                passed.append(r)
                        if passed is None:
                            passed = m
                        done += len(passed)
                        self._queue_out(outs, passed)
                        outs = []
                        if persist is None:
                            state, _ = await self._release(state, done)
                    elif tm is KeyedCalls:
                        self._queue_out(outs)
                        outs = []
                        state, done = await self._keyed(m, state, done, rest)
                    elif tm is Ticket:
                        try:
                            state, m.value = step(m.value, state)
                        except Exception as exc:
                            self._crash(m.value, exc, m)
                            if self.reset_on_crash:
                                state = self._reset_after_crash()
                            if self.exit_on_crash:
                                await self._exit(state, done, outs, list(rest), m.value, exc)
                            continue
                        done += 1
                        self._queue_out(outs, m)
                        outs = []
                        if persist is None:
                            state, _ = await self._release(state, done)
                    else:
                        self._queue_out(outs)
                        outs = []
                        state, _ = await self._release(state, done)
                        self._state = state
                        if tm is EndMsg:
                            self.processed += done
                            await self.outbox.send(m)
                            self.running = False
                            return
                        if tm is CutMsg:
                            # Everything before the marker is applied (and,
                            # with a store, durable), nothing after it.
                            # A copy: later steps update the state in place.
                            m.stages.append(
                                (self.name, self.machine, self.state_copy(), self.processed + done)
                            )
                        self._applied_in_batch = done
                        await self._control(m)
                        step = self.step
                        state = self._own_state()
                        if self._pause_t0 is not None and m is not messages[-1]:
                            self._end_pause()
                if persist is not None and (outs or self._outgoing):
                    # With a store, the whole wake-up is made durable in one
                    # write (group commit), then its outputs go in order.
                    self._queue_out(outs)
                    outs = []
                    state, _ = await self._release(state, done)
            except anyio.get_cancelled_exc_class():
                # Stopped for good mid-batch (the pipeline closes): keep what
                # it still held, so it is answered and counted, not lost.
                self.leftover = self._unreleased(outs, m) + list(rest)
                raise
            self._state = state
            if persist is None and self._log:
                self._log.clear()  # no going back past a batch without a store
            self.processed += done
            if done:
                self.step_seconds.observe((perf_counter_ns() - t0) / done / 1e9)
                self.batch_sizes.observe(done)
            if outs:
                outbox = self.outbox
                try:
                    outbox.send_nowait(outs)
                except anyio.WouldBlock:
                    self.unsent = outs
                    await outbox.send(outs)
                    self.unsent = []

    def seed(self, state: Any, applied: int) -> None:
        """Start from ``state``, already durable, after ``applied`` items."""
        self.state = state
        self._durable_state = state
        self.processed = applied
        self._persisted = applied

    def _queue_out(self, *messages: Any) -> None:
        """Queue ``messages`` (empty batches skipped) for the next :meth:`_release`."""
        outgoing = self._outgoing
        for m in messages:
            if m:
                outgoing.append(m)

    async def _release(self, state: Any, done: int) -> tuple[Any, bool]:
        """Send the queued messages on, in order, once the ``state`` they
        depend on is durable (with a store, see _durable).

        Without a store every batch is released as soon as it is stepped;
        with one, a wake-up's batches are released together, at its end or
        before a control message, so the whole wake-up is one write.

        Returns the state to go on with and whether they were sent.
        """
        outgoing = self._outgoing
        if self.persist is not None:
            state, ok = await self._durable(state, done, outgoing)
            if not ok:
                outgoing.clear()
                return state, False
        while outgoing:
            await self._send(outgoing[0])
            del outgoing[0]  # only once sent: a stage stopped meanwhile keeps the rest
        return state, True

    def _unreleased(self, outs: list[Any], m: Any) -> list[Any]:
        """What a stage stopped mid-batch still holds, in order: the queued
        messages not sent yet, its plain outputs, and the unanswered calls of
        the message it was on (those not queued already)."""
        kept: list[Any] = []
        queued: set[int] = set()
        for q in self._outgoing:
            tq = type(q)
            if tq is list:
                kept.append(q)
            elif tq is Ticket:
                queued.add(id(q))
                if not q.done:
                    kept.append(q)
            else:  # Calls, KeyedCalls
                queued.update(id(r) for r in q)
                unanswered = tq(r for r in q if not r.done)
                if unanswered:
                    kept.append(unanswered)
        self._outgoing = []
        if outs:
            kept.append(outs)
        tm = type(m)
        if tm is Ticket and not m.done and id(m) not in queued:
            kept.append(m)
        elif tm is Calls or tm is KeyedCalls:
            unanswered = tm(r for r in m if not r.done and id(r) not in queued)
            if unanswered:
                kept.append(unanswered)
        return kept

    async def _durable(self, state: Any, done: int, messages: list[Any]) -> tuple[Any, bool]:
        """Make ``state`` durable before ``messages`` (outputs that depend on
        it) leave the stage: one write per release point, so per batch.

        Returns the state to go on with and whether the messages may go. If
        the store refuses, their callers get its error, plain outputs are
        withheld (counted in ``not_durable``), and the stage goes on from its
        last durable state: nothing is ever answered that is not durable.
        """
        log = self._log
        keys = self.keys.take()
        if state is self._durable_state and keys is None and not log:
            return state, True  # nothing changed since the last write
        seq = self.processed + done
        assert self.persist is not None
        try:
            records = [(self.record, self.machine, state, seq)]
            # Keys only when there are some: hooks written before keys still fit.
            await (
                self.persist(records)
                if keys is None
                else self.persist(records, {self.record: keys})
            )
        except Exception as exc:
            if keys is not None:
                self.keys.undo(keys)
            self._withhold(messages, exc)
            if log:
                # The steps since the last write updated it in place.
                undo(log, 0)
            self.state = self._durable_state
            return self._own_state(), False
        if log:
            log.clear()
        self._persisted = seq
        self._durable_state = state
        return state, True

    def _withhold(self, messages: list[Any], exc: Exception) -> None:
        err = StepError(
            f"stage {self.name!r} could not make its state durable, so these items were not "
            f"applied: {type(exc).__name__}: {exc}",
            stage=self.name,
            version=self.machine.version,
            item=None,
        )
        err.__cause__ = exc
        log.warning("stage %s: the store refused a write: %s", self.name, exc)
        for m in messages:
            tm = type(m)
            if tm is list:
                self.not_durable += len(m)
            elif tm is Ticket:
                m.fail(err)
            elif tm is Calls or tm is KeyedCalls:
                for r in m:
                    r.fail(err)

    async def _keyed(self, m: KeyedCalls, state: Any, done: int, rest: Any) -> tuple[Any, int]:
        """Step a batch of calls some of which carry request keys (the slow
        path of the Calls branch in :meth:`run`); returns the state and the
        count of items applied. A key applied already is not stepped: its
        remembered output goes on. A failing step remembers nothing, so the
        client may send the key again."""
        step = self.step
        window = self.keys
        machine = self.machine
        version = machine.version
        passed = KeyedCalls()
        calls = iter(m)
        for r in calls:
            key = r.key
            if key is not None:
                entry = window.entries.get(key)
                if entry is not None:
                    try:
                        r.value = window.replay(self.name, key, entry, version, machine.output)
                    except Exception as exc:
                        r.fail(exc)
                        continue
                    passed.append(r)
                    continue
            try:
                state, r.value = step(r.value, state)
            except Exception as exc:
                self._crash(r.value, exc, r)
                if self.reset_on_crash:
                    state = self._reset_after_crash()
                if self.exit_on_crash:
                    left = KeyedCalls(calls)
                    self._queue_out(passed)
                    leftover = ([left] if left else []) + list(rest)
                    await self._exit(state, done, [], leftover, r.value, exc)
                continue
            done += 1
            if key is not None:
                window.remember(key, version, machine.output, r.value)
            passed.append(r)
        self._queue_out(passed)
        if self.persist is None:
            state, _ = await self._release(state, done)
        return state, done

    async def _exit(
        self,
        state: Any,
        done: int,
        outs: list[Any],
        leftover: list[Any],
        item: Any,
        exc: Exception,
    ) -> NoReturn:
        """End the actor on a crash: release what was stepped before the
        failing item (durable first, with a store), then hand the rest over."""
        if self._outgoing:
            await self._release(state, done)
        self.processed += done
        self.unsent = outs
        self.leftover = leftover
        self.running = False
        raise StageCrashed(self.name, item, exc) from exc

    async def _send(self, message: Any) -> None:
        outbox = self.outbox
        try:
            outbox.send_nowait(message)
        except anyio.WouldBlock:
            await outbox.send(message)

    def _crash(self, item: Any, exc: Exception, routed: Ticket | None) -> None:
        self.failed += 1
        version = self.machine.version
        err = StepError(
            f"stage {self.name!r} (version {version[:12]}) failed on the item {item!r:.80}: "
            f"{type(exc).__name__}: {exc}",
            stage=self.name,
            version=version,
            item=item,
        )
        err.__cause__ = exc
        self.dead.put(DeadLetter(self.name, version, item, exc))
        if self.on_failure is not None:
            self.on_failure(self.name)
        # Debug only: an item's failure is its requester's business (it gets
        # the StepError), and a client sending bad items must not flood logs.
        log.debug(
            "stage %s failed on an item: %s: %s",
            self.name,
            type(exc).__name__,
            exc,
            extra={
                "stage": self.name,
                "version": version,
                "reason": f"{type(exc).__name__}: {exc}",
            },
        )
        if routed is not None:
            routed.fail(err)

    def _reset_after_crash(self) -> Any:
        self.restarts += 1
        self.state = self.machine.init
        return self._own_state()

    def _end_pause(self) -> None:
        assert self._pause_t0 is not None
        self.last_upgrade_pause_ns = time.perf_counter_ns() - self._pause_t0
        self.upgrade_pauses.observe(self.last_upgrade_pause_ns / 1e9)
        self._pause_t0 = None

    # -- control messages -----------------------------------------------------

    async def _control(self, msg: Control) -> None:
        if isinstance(msg, UpgradeMsg):
            await self._upgrade(msg)
        elif isinstance(msg, CutMsg):
            await self.outbox.send(msg)
        elif isinstance(msg, SpliceMsg):
            if msg.stage == self.name:
                self.outbox = msg.channel
                msg.reply.set(None)
            else:
                await self.outbox.send(msg)

    async def _upgrade(self, msg: UpgradeMsg) -> None:
        change = msg.changes.get(self.name)
        if change is None:
            await self.outbox.send(msg)
            return
        t0 = time.perf_counter_ns()
        try:
            new_state = self._prepare(change.machine, change.migrate, change.from_version)
        except UpgradeError as exc:
            # Decide now: no stage switches; earlier prepared stages wake up
            # and keep their old code. Later stages never see the message.
            msg.failure = (self.name, exc.reason, exc)
            msg.decided.set()
            msg.reply.fail(exc)
            return
        machine = change.machine

        def commit() -> None:
            self.machine = machine
            self.state = new_state
            self._durable_state = new_state  # made durable below, before any commit
            self.step = self._step_of(machine)
            self.upgrades += 1
            self._pause_t0 = t0

        msg.versions[self.name] = machine.version
        msg.durable.append(
            (self.record, machine, new_state, self.processed + self._applied_in_batch)
        )
        if msg.last == self.name and not self.shard:
            if not await persist_change(self.name, msg, self.persist):
                return
            commit()
            decide(self.name, msg)
            return
        msg.commits.append(commit)
        await self.outbox.send(msg)
        # Hold this stage (its input queues up, bounded) until every changed
        # stage downstream has prepared: all commit together or none does.
        await msg.decided.wait()

    def _prepare(
        self, machine: AnyMachine, migrate: Callable[[Any], Any] | None, from_version: str
    ) -> Any:
        current = self.machine.version
        if current != from_version:
            raise UpgradeError(
                f"stage {self.name!r}: expected to replace version {from_version[:12]}, "
                f"found {current[:12]} running (another upgrade got there first)",
                stage=self.name,
                reason="stale",
            )
        try:
            new_state = self.state if migrate is None else migrate(self.state)
        except Exception as exc:
            err = UpgradeError(
                f"stage {self.name!r}: the migration raised {type(exc).__name__}: {exc}",
                stage=self.name,
                reason="migration failed",
            )
            raise err from exc
        try:
            validate(machine.state, new_state, "migrated state")
        except ValidationError as exc:
            raise UpgradeError(
                f"stage {self.name!r}: the migrated state does not have the new state type "
                f"{machine.state!r}: {exc}",
                stage=self.name,
                reason="invalid migrated state",
            ) from exc
        return new_state
