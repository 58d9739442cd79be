"""Sharded stages in process: N replicas of one stage, routed by a key.

A stage made with ``shard_key`` runs as a :class:`ShardedActor`: a router
task takes the stage's input channel and sends each item to the replica its
key hashes to (:func:`shard_of`), over a bounded channel per replica (a full
replica blocks the router: backpressure holds); each replica is an ordinary
:class:`~arrowloop.runtime._stage.StageActor` with its own state, and sends
its outputs straight on to the next channel, so the items of one key stay in
order (one replica, one channel, in order) while keys interleave.

Control messages go to every replica, behind the items routed before them,
and meet again at the merge (:class:`_Merge`): it passes a message on once,
when the last replica's copy arrives (alignment, as Flink aligns barriers).
A replica that has passed a cut or an upgrade is held until then, so nothing
after the message reaches the next stage before it. An upgrade prepares
(migrates and validates) in every replica over its own state; the merge adds
the replicas' commits to the upgrade's and only then lets it be decided, so
every replica switches in the same step or none does (a migration that
raises in one replica fails the whole change, as in one stage).

Under the GIL the replicas share one core: in process, sharding isolates
keys and prepares the step across processes (docs/distributed.md); it does
not make a CPU-bound stage faster.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import anyio
import attrs

from arrowloop.errors import PipelineError
from arrowloop.machine import AnyMachine
from arrowloop.runtime._channel import (
    ChannelStatistics,
    ReceiveChannel,
    SendChannel,
    open_channel,
)
from arrowloop.runtime._deadletter import DeadLetterSink
from arrowloop.runtime._envelope import (
    Calls,
    Control,
    CutMsg,
    EndMsg,
    KeyedCalls,
    SpliceMsg,
    UpgradeMsg,
)
from arrowloop.runtime._keys import DEFAULT_REQUEST_KEYS
from arrowloop.runtime._spec import StageSpec
from arrowloop.runtime._stage import (
    Persist,
    StageActor,
    StageStatistics,
    decide,
    persist_change,
)
from arrowloop.runtime._ticket import Ticket

__all__ = ["ShardedActor", "shard_of", "canonical_key", "replica_name", "split_replica"]


def replica_name(stage: str, shard: int) -> str:
    """The name replica ``shard`` of ``stage`` is recorded under in a store
    or a savepoint: ``stage#shard`` (a stage name is an identifier, so it
    never contains ``#``)."""
    return f"{stage}#{shard}"


def split_replica(name: str) -> tuple[str, int | None]:
    """The stage and shard a recorded name stands for (shard ``None`` for
    an unsharded stage's record)."""
    stage, sep, shard = name.partition("#")
    return (stage, int(shard)) if sep and shard.isdigit() else (name, None)


def canonical_key(key: Any) -> bytes:
    """The canonical bytes of a shard key (bool, int, str, tuples of these).

    Fixed by the value alone, never by the process (Python's ``hash`` of a
    str is salted per process), so every process and every restart routes a
    key to the same shard. Tagged and length-prefixed: ``True`` and ``1``,
    ``("a", "bc")`` and ``("ab", "c")`` differ.
    """
    t = type(key)
    if t is bool:
        return b"b1" if key else b"b0"
    if t is int:
        return b"i%d;" % key
    if t is str:
        data: bytes = key.encode("utf-8", "surrogatepass")
        return b"s%d:" % len(data) + data
    if t is tuple:
        return b"t%d:" % len(key) + b"".join(canonical_key(k) for k in key)
    raise TypeError(f"expected a shard key (bool, int, str or a tuple of these), found {key!r:.80}")


def shard_of(key: Any, shards: int) -> int:
    """The shard of ``key`` among ``shards``: the first 8 bytes of the
    BLAKE2b digest of :func:`canonical_key`, big-endian, modulo ``shards``."""
    digest = hashlib.blake2b(canonical_key(key), digest_size=8).digest()
    return int.from_bytes(digest, "big") % shards


class _ShardSplice(SpliceMsg):
    """A splice of the sharded stage itself, as its replicas see it: they
    pass it on (its ``stage`` names none of them) and the merge applies it."""

    __slots__ = ("original",)

    def __init__(self, original: SpliceMsg) -> None:
        super().__init__("", original.channel, original.reply)
        self.original = original


class _Outbox:
    """A replica's outbox: outputs go straight to the stage's next channel,
    control messages to the merge."""

    __slots__ = ("merge", "shard")

    def __init__(self, merge: _Merge, shard: int) -> None:
        self.merge = merge
        self.shard = shard

    def send_nowait(self, message: Any) -> None:
        if isinstance(message, Control):
            raise anyio.WouldBlock  # control takes the async path (send)
        self.merge.parent.outbox.send_nowait(message)

    async def send(self, message: Any) -> None:
        if isinstance(message, Control):
            await self.merge.arrive(self.shard, message)
        else:
            await self.merge.parent.outbox.send(message)

    def close(self) -> None:
        """The next channel belongs to the pipeline: nothing to close."""

    def statistics(self) -> ChannelStatistics:
        return self.merge.parent.outbox.statistics()


@attrs.define
class _Arrivals:
    count: int = 0
    aligned: anyio.Event = attrs.field(factory=anyio.Event)
    cut: dict[int, tuple[str, AnyMachine, Any, int]] = attrs.field(factory=dict)


class _Merge:
    """Where the replicas' copies of a control message meet (alignment)."""

    def __init__(self, parent: ShardedActor) -> None:
        self.parent = parent
        self.pending: dict[int, tuple[Control, _Arrivals]] = {}

    async def arrive(self, shard: int, msg: Control) -> None:
        # A failed upgrade never gets every copy (the failing replica keeps
        # it): forget those once decided.
        for k, (m, _) in list(self.pending.items()):
            if isinstance(m, UpgradeMsg) and m.decided.is_set():
                del self.pending[k]
        entry = self.pending.get(id(msg))
        if entry is None:
            entry = self.pending[id(msg)] = (msg, _Arrivals())
        arrivals = entry[1]
        arrivals.count += 1
        if isinstance(msg, CutMsg):
            # Noted by the replica just before it sent the marker (no await
            # in between): take it back, to note the stage once.
            arrivals.cut[shard] = msg.stages.pop()
        if arrivals.count < len(self.parent.replicas):
            if isinstance(msg, EndMsg):
                return  # the replica just stops
            if isinstance(msg, UpgradeMsg) and self.parent.name in msg.changes:
                # The replica waits for the decision itself, which comes only
                # after alignment (or when a replica's migration fails, when
                # alignment never comes).
                return
            # Hold the replica: nothing it steps after the message may reach
            # the next stage before the message does.
            await arrivals.aligned.wait()
            return
        del self.pending[id(msg)]
        try:
            await self._aligned(msg, arrivals)
        finally:
            arrivals.aligned.set()

    async def _aligned(self, msg: Control, arrivals: _Arrivals) -> None:
        parent = self.parent
        if isinstance(msg, CutMsg):
            noted = [arrivals.cut[i] for i in range(len(parent.replicas))]
            machine = noted[0][1]
            if msg.per_shard:
                msg.stages.extend(
                    (replica_name(parent.name, i), n[1], n[2], n[3]) for i, n in enumerate(noted)
                )
            else:
                msg.stages.append(
                    (parent.name, machine, [n[2] for n in noted], sum(n[3] for n in noted))
                )
            await parent.outbox.send(msg)
        elif isinstance(msg, UpgradeMsg):
            if msg.decided.is_set():
                return  # failed (or closed) meanwhile
            change = msg.changes.get(parent.name)
            if change is None:
                await parent.outbox.send(msg)
                return
            msg.commits.append(lambda: parent.committed(change.machine))
            if msg.last == parent.name:
                # Every replica's migrated state is in msg.durable, its
                # commit in msg.commits: durable together, then decided.
                if await persist_change(parent.name, msg, parent.persist):
                    decide(parent.name, msg)
            else:
                await parent.outbox.send(msg)
        elif isinstance(msg, _ShardSplice):
            parent.outbox = msg.channel
            msg.original.reply.set(None)
        else:  # EndMsg, or a splice further on
            await parent.outbox.send(msg)


class ShardedActor(StageActor):
    """The running form of a sharded stage: a router, replicas, a merge.

    Seen by the pipeline as one stage: its ``state_copy`` is the list of the
    replicas' states (shard ``i`` at index ``i``), its statistics add theirs
    up, and pausing or resetting it applies to every replica.
    """

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
        # The router steps nothing: ``persist`` is for the changes the merge
        # decides; each replica commits its own state under its own name.
        super().__init__(
            spec, inbox, outbox, dead, supervised=supervised, on_failure=on_failure, persist=persist
        )
        assert spec.shard_key is not None
        self.key = spec.shard_key
        self.merge = _Merge(self)
        self.replicas: list[StageActor] = []
        self.senders: list[SendChannel] = []
        for i in range(spec.shards):
            sender, receiver = open_channel(spec.capacity)
            replica = StageActor(
                spec,
                receiver,
                _Outbox(self.merge, i),
                dead,
                supervised=supervised,
                on_failure=on_failure,
                persist=persist,
                request_keys=request_keys,
            )
            replica.shard = True
            replica.record = replica_name(spec.name, i)
            self.replicas.append(replica)
            self.senders.append(sender)
        # The router's messages not handed to a replica yet, and the parts
        # of the one it is handing over (see _gather).
        self._unrouted: list[Any] = []
        self._sending: list[tuple[int, Any]] = []

    # -- as one stage ---------------------------------------------------------

    @property
    def state(self) -> Any:
        """The replicas' states, shard by shard."""
        return [r.state for r in self.replicas]

    @state.setter
    def state(self, value: Any) -> None:
        # Set only by StageActor's own constructor (its initial state): the
        # replicas hold the real ones.
        self._state = value

    def state_copy(self) -> list[Any]:
        """Each replica's state as of now (shard ``i`` at index ``i``)."""
        return [r.state_copy() for r in self.replicas]

    def committed(self, machine: AnyMachine) -> None:
        """An upgrade committed in every replica: run ``machine`` from now."""
        self.machine = machine
        self.upgrades += 1

    def statistics(self) -> StageStatistics:
        """The stage as a whole: the replicas' counters added up, and its
        queue as the router's and the replicas' channels together (each
        replica's histograms stay its own; shard 0's are shown)."""
        parts = [r.statistics() for r in self.replicas]
        queues = [self.inbox.statistics(), *(p.queue for p in parts)]
        return attrs.evolve(
            parts[0],
            processed=sum(p.processed for p in parts),
            failed=self.failed + sum(p.failed for p in parts),
            upgrades=self.upgrades,
            queue=ChannelStatistics(
                sum(q.items for q in queues),
                sum(q.messages for q in queues),
                sum(q.capacity for q in queues),
                queues[0].closed,
            ),
            restarts=sum(p.restarts for p in parts),
            abandoned=self.abandoned + sum(p.abandoned for p in parts),
            held=sum(p.held for p in parts),
        )

    def pause(self) -> None:
        """Pause every replica (the router goes on until their channels fill)."""
        self.paused = True
        for r in self.replicas:
            r.pause()

    def resume(self) -> None:
        """Resume every replica."""
        self.paused = False
        for r in self.replicas:
            r.resume()

    def reset(self, state: Any = None, version: str | None = None) -> None:
        """Reset every replica to the initial state of its machine.

        Raises:
            PipelineError: a state to restart from was given (a sharded
                stage restarts from its initial state only, for now).
        """
        if version is not None:
            raise PipelineError(
                f"stage {self.name!r} is sharded: it restarts from its initial state only"
            )
        for r in self.replicas:
            r.reset()

    def seed(self, state: Any, applied: int) -> None:
        """Refused: each replica is seeded on its own (``Pipeline.seed_shards``)."""
        raise PipelineError(
            f"stage {self.name!r} is sharded: its replicas are seeded one by one "
            "(Pipeline.seed_shards)"
        )

    # -- the router -----------------------------------------------------------

    async def run(self) -> None:
        """Route items to the replicas until end of stream (the task body)."""
        self.running = True
        try:
            async with anyio.create_task_group() as tg:
                for i, r in enumerate(self.replicas):
                    r.running = True
                    tg.start_soon(r.run, name=f"arrowloop stage {self.name} shard {i}")
                await self._route()
        except anyio.get_cancelled_exc_class():
            self._gather()  # stopped for good: what the replicas held is answered
            raise
        finally:
            self.running = False
            for sender, r in zip(self.senders, self.replicas, strict=True):
                sender.close()
                r.inbox.close()

    def _gather(self) -> None:
        # In order: what the router had not handed over yet, then what each
        # replica held or had queued.
        held: list[Any] = [part for _, part in self._sending] + self._unrouted
        self._sending, self._unrouted = [], []
        for r, sender in zip(self.replicas, self.senders, strict=True):
            held += r.leftover + ([r.unsent] if r.unsent else [])
            r.leftover, r.unsent = [], []
            sender.close()
            while True:
                try:
                    held += r.inbox.receive_nowait(1 << 16)
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
        # A splice of this stage is answered as the pipeline sent it.
        held = [m.original if type(m) is _ShardSplice else m for m in held]
        self.leftover = held + self.leftover

    async def _route(self) -> None:
        inbox = self.inbox
        while True:
            if self.leftover:
                self._unrouted, self.leftover = self.leftover, []
            else:
                try:
                    self._unrouted = await inbox.receive(self.batch_limit)
                except anyio.EndOfStream:
                    for sender in self.senders:
                        sender.close()  # torn down: the replicas end too
                    return
            unrouted = self._unrouted
            while unrouted:
                m = unrouted.pop(0)
                # Kept until handed over: a stage stopped meanwhile answers them.
                self._sending = sending = self._split(m)
                while sending:
                    i, part = sending[0]
                    sender = self.senders[i]
                    try:
                        sender.send_nowait(part)
                    except anyio.WouldBlock:
                        await sender.send(part)  # a full replica holds the router
                    del sending[0]
                if type(m) is EndMsg:
                    return

    def _split(self, m: Any) -> list[tuple[int, Any]]:
        """What ``m`` becomes, per replica: a batch split by key, in order; a
        call to its key's replica; a control message to every replica."""
        tm = type(m)
        n = len(self.replicas)
        if tm is list or tm is Calls or tm is KeyedCalls:
            parts: list[Any] = [tm() for _ in range(n)]
            if tm is list:
                for x in m:
                    i = self._shard(x, None)
                    if i is not None:
                        parts[i].append(x)
            else:
                for r in m:
                    i = self._shard(r.value, r)
                    if i is not None:
                        parts[i].append(r)
            return [(i, part) for i, part in enumerate(parts) if part]
        if tm is Ticket:
            i = self._shard(m.value, m)
            return [] if i is None else [(i, m)]
        if isinstance(m, SpliceMsg) and m.stage == self.name:
            m = _ShardSplice(m)
        return [(i, m) for i in range(n)]

    def _shard(self, value: Any, routed: Ticket | None) -> int | None:
        """The replica of ``value``, or None if its key function raised (the
        item then fails as a raising step does)."""
        try:
            return shard_of(self.key(value), len(self.replicas))
        except Exception as exc:
            self._crash(value, exc, routed)
            return None
