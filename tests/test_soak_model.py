"""A model-checked soak of pipelines of 1-4 stages, bare or supervised.

Random schedules interleave concurrent producers (plain sends, submits,
calls) with the driver's own items, poison items (even items: the first
stage's step divides by zero), calls cancelled at a random point, good
upgrades of one stage or of all of them, refused ones (ill-typed
migration) and failed ones (a migration that raises or returns a bad
state), rollbacks (through a supervisor, or the inverse upgrade on a bare
pipeline), and a slow consumer of plain outputs behind small channels.
Everything is checked against a sequential model afterwards:

* every admitted ordinary item is processed exactly once; the first stage's
  count numbers them, so the counts seen are distinct, every stage ends
  with the same count, and that count is the number admitted (a cancelled
  call is "maybe processed": it is processed at most once, and the counts
  it may have used are exactly the ones missing);
* each producer's items are processed in its order, and plain outputs come
  out in processing order;
* the driver's items saw the versions running when they were sent, and
  every stage's versions follow its history of applied changes;
* poison items change no count: each is in the dead letters once, its
  caller got a StepError, and the stage went on (no restart);
* every final state is the model's and has its machine's state type.

The default profile is short (a few dozen examples per event loop, well
under 30 s). The long soak, 10_000 examples per event loop::

    ARROWLOOP_SOAK=long .venv/bin/pytest tests/test_soak_model.py -q -p no:cacheprovider
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from arrowloop.errors import PipelineClosed, StepError, UpgradeError
from arrowloop.machine import Machine
from arrowloop.runtime import DeadLetters, Pipeline, open_pipeline, stage
from arrowloop.runtime import pipeline as chain
from arrowloop.supervisor import CodeChange, StageUpgrade, Supervisor, open_supervisor, supervisor
from arrowloop.typesys import validate
from tests.iface_machines import count_of, head, relay, versions_of
from tests.machines import migration

LONG = os.environ.get("ARROWLOOP_SOAK") == "long"
# The short profile fails fast with the example as found (shrinking racy
# failures takes minutes); the long one shrinks to the smallest one it can.
SOAK = settings(
    max_examples=10_000 if LONG else 30,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate] + ([Phase.shrink] if LONG else []),
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PRODUCER = 100_000  # an item: pid * PRODUCER + 2 * seq + 1 (ordinary) or + 0 (poison)
Op = tuple[str, int]

ops = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(["send", "call", "submit"]), st.integers(1, 4)),
        st.tuples(st.just("poison"), st.sampled_from([0, 1, 2])),  # send, call, submit
        st.tuples(st.just("cancel"), st.integers(0, 6)),  # yields before cancelling
        st.tuples(
            st.sampled_from(["upgrade", "bad_types", "raises", "bad_state"]), st.integers(0, 3)
        ),
        st.tuples(st.sampled_from(["upgrade_all", "rollback"]), st.just(0)),
    ),
    max_size=16,
)
producers_st = st.lists(
    st.tuples(
        st.sampled_from(["send", "submit", "call"]),
        st.lists(st.integers(0, 9).map(lambda r: r == 0), max_size=25),  # True: poison
    ),
    max_size=3,
)


def _raising(_: Any) -> Any:
    raise RuntimeError("migration failed on purpose")


def _bad_state(_: Any) -> Any:
    return "not a state"


def machine(i: int, k: int) -> Machine:
    """Version ``k`` of stage ``i``."""
    return head(k) if i == 0 else relay(i, k)


class Soak:
    """One run: the pipeline, what was sent and seen, and the model."""

    def __init__(self, stages: int) -> None:
        self.names = [f"s{i}" for i in range(stages)]
        self.current = [0] * stages  # the model's versions
        self.history: list[list[int]] = [[0] for _ in range(stages)]
        self.applied: list[dict[int, tuple[int, int]]] = []  # changes, for rollback
        self.fresh = 1
        self.seen: dict[int, tuple[int, int, int]] = {}  # item -> its output
        self.plain: list[tuple[int, int, int]] = []  # plain outputs, in order
        self.plain_admitted = 0
        self.maybe: set[int] = set()  # cancelled calls: processed at most once
        self.poison: set[int] = set()  # poison items admitted
        self.driver: list[tuple[int, tuple[int, ...]]] = []  # item, versions it must see
        self.seq = 0
        self.tickets: list[tuple[int, Any]] = []
        self.sup: Supervisor | None = None
        self.p: Pipeline

    def record(self, item: int, out: tuple[int, int, int]) -> None:
        assert out[1] == item, (out, item)
        assert item not in self.seen, f"{item} processed twice"
        self.seen[item] = out

    def next_item(self, poison: bool = False) -> int:
        self.seq += 1
        return 2 * self.seq + (0 if poison else 1)

    async def call(self, item: int) -> Any:
        return await (self.p.call(item) if self.sup is None else self.sup.call(item))

    async def send(self, item: int, mode: str, pid: int) -> None:
        """Put ``item`` in with ``mode``; poison must fail, ordinary items be seen."""
        poison = item % 2 == 0
        if mode == "send":
            await self.p.send(item)
            self.plain_admitted += not poison
        elif mode == "call":
            if poison:
                with pytest.raises(StepError):
                    await self.call(item)
            else:
                self.record(item, await self.call(item))
        else:
            ticket = await self.p.submit(item)
            if pid == 0:
                self.tickets.append((item, ticket))
            else:
                await self.settle(item, ticket)
        if poison:
            self.poison.add(item)

    async def settle(self, item: int, ticket: Any) -> None:
        if item % 2 == 0:
            with pytest.raises(StepError):
                await ticket.result()
        else:
            self.record(item, await ticket.result())

    async def produce(self, pid: int, mode: str, poisons: list[bool]) -> None:
        for seq, poison in enumerate(poisons):
            await self.send(pid * PRODUCER + 2 * seq + (0 if poison else 1), mode, pid)

    async def consume(self, slow: int, drained: anyio.Event, want: list[int]) -> None:
        async for out in self.p:
            self.plain.append(out)
            self.record(out[1], out)
            if want and len(self.plain) >= want[0]:
                drained.set()
            for _ in range(slow):
                await anyio.lowlevel.checkpoint()

    async def cancelled_call(self, yields: int) -> None:
        item = self.next_item()
        done: list[Any] = []

        async def go() -> None:
            done.append(await self.call(item))

        async with anyio.create_task_group() as g:
            g.start_soon(go)
            for _ in range(yields):
                await anyio.lowlevel.checkpoint()
            g.cancel_scope.cancel()
        if done:
            self.record(item, done[0])
            self.driver.append((item, tuple(self.current)))
        else:
            self.maybe.add(item)

    async def change(self, new: dict[int, int], kind: str = "good") -> None:
        """Upgrade stages ``new`` (index -> version); ``kind`` names a bad change."""
        parts: dict[int, tuple[Machine, Any, Any]] = {}
        for i, k in new.items():
            old = self.current[i]
            migrate: Any = migration(old, k)
            if kind == "bad_types":  # the migration of the wrong parity: ill-typed
                migrate = migration(old + 1, k)
            elif kind == "raises":
                migrate = _raising
            elif kind == "bad_state":
                migrate = _bad_state
            parts[i] = (machine(i, k), migrate, migration(k, old))
        before = [self.p.version(n) for n in self.names]
        try:
            if self.sup is not None:
                ups = tuple(
                    StageUpgrade(self.names[i], self.p.version(self.names[i]), m, mig, inverse=inv)
                    for i, (m, mig, inv) in parts.items()
                )
                await self.sup.code_change(CodeChange(ups))
            else:
                await self.p.upgrade_many(
                    {self.names[i]: (m, mig) for i, (m, mig, _) in parts.items()},
                    expect_versions={self.names[i]: before[i] for i in parts},
                )
        except UpgradeError:
            assert kind != "good"
            assert [self.p.version(n) for n in self.names] == before
            return
        assert kind == "good", f"a {kind} change was applied"
        self.applied.append({i: (self.current[i], k) for i, k in new.items()})
        self.move(new)

    def move(self, new: dict[int, int]) -> None:
        for i, k in new.items():
            self.current[i] = k
            self.history[i].append(k)
            assert self.p.version(self.names[i]) == machine(i, k).version

    async def rollback(self) -> None:
        if not self.applied:
            if self.sup is not None:
                with pytest.raises(UpgradeError, match="no recorded"):
                    await self.sup.rollback("s0")
            return
        last = self.applied.pop()
        back = {i: old for i, (old, _) in last.items()}
        if self.sup is not None:
            await self.sup.rollback(self.names[next(iter(last))])
        else:
            await self.p.upgrade_many(
                {
                    self.names[i]: (machine(i, old), migration(new, old))
                    for i, (old, new) in last.items()
                }
            )
        self.move(back)

    async def op(self, kind: str, n: int) -> None:
        if kind in ("send", "call", "submit"):
            for _ in range(n):
                item = self.next_item()
                self.driver.append((item, tuple(self.current)))
                await self.send(item, kind, 0)
        elif kind == "poison":
            await self.send(self.next_item(poison=True), ["send", "call", "submit"][n], 0)
        elif kind == "cancel":
            await self.cancelled_call(n)
        elif kind == "upgrade_all":
            await self.change(dict.fromkeys(range(len(self.names)), self.fresh))
        elif kind == "rollback":
            await self.rollback()
        else:
            await self.change({n % len(self.names): self.fresh}, kind.replace("upgrade", "good"))
        if kind in ("upgrade", "upgrade_all", "bad_types", "raises", "bad_state"):
            self.fresh += 1
        for name in self.names:  # every state has its machine's state type, always
            validate(self.p.machine(name).state, self.p.state(name), f"state of {name}")


async def _run(
    script: list[Op],
    producers: list[tuple[str, list[bool]]],
    stages: int,
    supervised: bool,
    capacity: int,
    slow: int,
    leave: bool,
) -> None:
    s = Soak(stages)
    specs = [stage(f"s{i}", machine(i, 0), capacity=capacity, batch_limit=2) for i in range(stages)]
    out_cap = max(1, capacity // 2)
    drained = anyio.Event()
    want: list[int] = []
    with anyio.fail_after(30):
        async with AsyncExitStack() as stack:
            if supervised:
                spec = supervisor("soak", *specs)
                s.sup = await stack.enter_async_context(
                    open_supervisor(spec, output_capacity=out_cap)
                )
                s.p = s.sup.pipeline
            else:
                s.p = await stack.enter_async_context(
                    open_pipeline(chain(*specs), output_capacity=out_cap)
                )
            async with anyio.create_task_group() as tg:
                tg.start_soon(s.consume, slow, drained, want)
                async with anyio.create_task_group() as load:
                    for pid, (mode, poisons) in enumerate(producers, start=1):
                        load.start_soon(s.produce, pid, mode, poisons)
                    for kind, n in script:
                        await s.op(kind, n)
                if leave:  # read every plain output, then leave the block
                    want.append(s.plain_admitted)
                    if len(s.plain) < s.plain_admitted:
                        await drained.wait()
                    tg.cancel_scope.cancel()
                else:
                    await s.p.close()
            if s.sup is not None and not leave:
                assert await s.sup.get_state("s0") == s.p.state("s0")
                assert all(c.restarts == 0 for c in (await s.sup.status()).children)
        for item, ticket in s.tickets:  # leaving the block drained these too
            await s.settle(item, ticket)
    with pytest.raises(PipelineClosed):
        await s.p.send(1)
    _check(s)


def _check(s: Soak) -> None:
    stages = len(s.names)
    count = count_of(s.p.state("s0"))
    # Exactly once: the counts are distinct, and the missing ones are cancelled calls.
    counts = sorted(o[2] for o in s.seen.values())
    assert len(set(counts)) == len(counts)
    assert all(1 <= c <= count for c in counts), f"final count {count}, outputs counted {counts}"
    ordinary = len(s.seen) + len(s.maybe - set(s.seen))
    assert len(s.seen) <= count <= ordinary, (len(s.seen), count, ordinary)
    assert len(s.plain) == s.plain_admitted
    assert s.maybe | set(s.seen) >= {i for i, _ in s.driver}
    # Every stage ends with the model's state, which has its machine's state type.
    for i, name in enumerate(s.names):
        assert s.p.version(name) == machine(i, s.current[i]).version
        assert count_of(s.p.state(name)) == count, name
        validate(s.p.machine(name).state, s.p.state(name), f"state of {name}")
    # Plain outputs come out in processing order; each producer's items too.
    assert [o[2] for o in s.plain] == sorted(o[2] for o in s.plain)
    by_pid: dict[int, list[tuple[int, int]]] = {}
    for item, out in s.seen.items():
        by_pid.setdefault(item // PRODUCER, []).append((item, out[2]))
    for mine in by_pid.values():
        mine.sort()
        assert [c for _, c in mine] == sorted(c for _, c in mine)
    # The driver's items saw the versions of their time; every stage's
    # versions, in processing order, follow its history of changes.
    for item, versions in s.driver:
        if item in s.seen:
            assert versions_of(s.seen[item][0], stages) == versions, item
    walk = [0] * stages
    for out in sorted(s.seen.values(), key=lambda o: o[2]):
        for i, k in enumerate(versions_of(out[0], stages)):
            while s.history[i][walk[i]] != k:
                walk[i] += 1
                assert walk[i] < len(s.history[i]), f"stage {i} ran {k} out of order"
    # Poison: each admitted poison item is a dead letter once; nothing else is.
    assert isinstance(s.p.dead_letters, DeadLetters)
    letters = sorted(d.item for d in s.p.dead_letters)
    assert letters == sorted(s.poison)


@pytest.mark.anyio
@SOAK
@example(  # poison under a supervisor, around a change and its rollback
    script=[
        ("send", 2),
        ("poison", 0),
        ("call", 2),
        ("poison", 1),
        ("upgrade", 0),
        ("rollback", 0),
    ],
    producers=[("send", [False, True, False])],
    stages=2,
    supervised=True,
    capacity=4,
    slow=1,
    leave=False,
)
@given(
    script=ops,
    producers=producers_st,
    stages=st.integers(1, 4),
    supervised=st.booleans(),
    capacity=st.integers(2, 8),
    slow=st.integers(0, 3),
    leave=st.booleans(),
)
async def test_soak_against_a_sequential_model(
    script: list[Op],
    producers: list[tuple[str, list[bool]]],
    stages: int,
    supervised: bool,
    capacity: int,
    slow: int,
    leave: bool,
) -> None:
    """Producers, poison, cancelled calls, changes and rollbacks agree with the model."""
    await _run(script, producers, stages, supervised, capacity, slow, leave)
