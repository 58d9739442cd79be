"""Soak-style property test of a supervised pipeline.

Random scripts interleave items, poison items (crashes), good code changes,
bad ones (wrong expected version, ill-typed migration, a migration that
raises) and rollbacks, while concurrent producers keep sending. Afterwards
no item but the poison ones is lost or duplicated, every producer's items
are in order, the driver's items saw the version current when they were
sent, the stage's count is what a sequential model predicts, and every bad
change was refused or failed with the version (and, without concurrent
load, the state) intact.
"""

from __future__ import annotations

import functools
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowloop import Machine
from arrowloop.errors import UpgradeError
from arrowloop.runtime import StageSpec
from arrowloop.runtime import stage as plain_stage
from arrowloop.supervisor import Supervisor, code_change, open_supervisor, supervisor
from tests.machines import migration
from tests.profiles import examples
from tests.test_supervisor import FakeClock, counting


def stage(name: str, machine: Any, **kw: Any) -> StageSpec:
    """A stage whose failing step is a crash (``on_step_error="restart"``):
    this soak scripts OTP restarts with poison items."""
    return plain_stage(name, machine, on_step_error="restart", **kw)


PRODUCER = 1_000_000  # a producer's item: pid * PRODUCER + sequence number + 1

Op = str
ops = st.lists(
    st.sampled_from(
        ["items", "items", "poison", "upgrade", "rollback", "bad_version", "bad_types", "raises"]
    ),
    max_size=14,
)


@functools.cache
def _machine(k: int) -> Machine:
    return counting(k)


def _raising(_: Any) -> Any:
    raise RuntimeError("migration failed on purpose")


def _count_of(state: Any) -> int:
    return state if isinstance(state, int) else int(state[0])


async def _change(sup: Supervisor, op: Op, k: int, fresh: int) -> None:
    if op == "bad_version":
        change = code_change("a", _machine(fresh).version, _machine(fresh), migration(k, fresh))
    elif op == "bad_types":
        # the migration of the wrong parity: ill-typed unless the state types agree
        change = code_change("a", _machine(k).version, _machine(fresh), migration(k + 1, fresh))
    else:
        change = code_change("a", _machine(k).version, _machine(fresh), _raising)
    with pytest.raises(UpgradeError):
        await sup.code_change(change)


async def _run(script: list[Op], producers: int, per_producer: int) -> None:
    outputs: list[tuple[int, int, int]] = []
    sent: list[tuple[int, int]] = []  # driver items with the version they must see
    stack = [0]  # versions, the running one last
    fresh = 1
    seq = 0
    poisons = 0
    expected_count = 0  # the sequential model, meaningful without producers
    spec = supervisor("s", stage("a", _machine(0), capacity=8, batch_limit=4), intensity=10_000)
    async with open_supervisor(spec, clock=FakeClock()) as sup:
        p = sup.pipeline

        waiting: list[tuple[int, anyio.Event]] = []

        async def consume() -> None:
            async for out in p:
                outputs.append(out)
                if waiting and len(outputs) >= waiting[0][0]:
                    waiting.pop()[1].set()

        async def caught_up(n: int) -> None:
            if len(outputs) < n:
                event = anyio.Event()
                waiting.append((n, event))
                await event.wait()

        async def produce(pid: int) -> None:
            for i in range(per_producer):
                await p.send(pid * PRODUCER + i + 1)

        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            async with anyio.create_task_group() as load:
                for pid in range(1, producers + 1):
                    load.start_soon(produce, pid)
                for op in script:
                    k = stack[-1]
                    if op == "items":
                        for _ in range(3):
                            seq += 1
                            await p.send(seq)
                            sent.append((seq, k))
                            expected_count += 1
                    elif op == "poison":
                        await p.send(0)
                        poisons += 1
                        expected_count = 0
                    elif op == "upgrade":
                        change = code_change(
                            "a",
                            _machine(k).version,
                            _machine(fresh),
                            migration(k, fresh),
                            inverse=migration(fresh, k),
                        )
                        await sup.code_change(change)
                        stack.append(fresh)
                        fresh += 1
                    elif op == "rollback":
                        if len(stack) == 1:
                            with pytest.raises(UpgradeError, match="no recorded"):
                                await sup.rollback("a")
                        else:
                            await sup.rollback("a")
                            stack.pop()
                    else:
                        before = None
                        if producers == 0:
                            await caught_up(len(sent))  # every item sent so far is through
                            before = await sup.get_state("a")
                        await _change(sup, op, k, fresh)
                        fresh += 1
                        assert (await sup.status()).children[0].version == _machine(k).version
                        if producers == 0:
                            assert await sup.get_state("a") == before
            # One last item, after all the load, pins the final state down.
            seq += 1
            await p.send(seq)
            sent.append((seq, stack[-1]))
            expected_count += 1
            await p.close()
            state = await sup.get_state("a")
    # Exactly once: every non-poison item, no poison.
    items = sorted(o[1] for o in outputs)
    expected = sorted(
        [s for s, _ in sent]
        + [pid * PRODUCER + i + 1 for pid in range(1, producers + 1) for i in range(per_producer)]
    )
    assert items == expected
    # The driver's items saw the version running when they were sent, in order.
    assert [(o[1], o[0]) for o in outputs if o[1] < PRODUCER] == sent
    for pid in range(1, producers + 1):
        mine = [o[1] for o in outputs if o[1] // PRODUCER == pid]
        assert mine == sorted(mine)
    # Counts continue through upgrades and rollbacks and restart after a poison.
    resets = 0
    prev = 0
    for o in outputs:
        if o[2] != prev + 1:
            assert o[2] == 1
            resets += 1
        prev = o[2]
    assert resets <= poisons
    assert _count_of(state) == outputs[-1][2]
    assert outputs[-1][0] == stack[-1]
    if producers == 0:
        assert outputs[-1][2] == expected_count


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=ops,
    producers=st.integers(0, 2),
    per_producer=st.integers(0, 40),
    use_uvloop=st.booleans(),
)
def test_supervised_pipeline_soak(
    script: list[Op], producers: int, per_producer: int, use_uvloop: bool
) -> None:
    """Crashes, good and bad changes and rollbacks under load lose and duplicate nothing."""
    anyio.run(
        _run,
        script,
        producers,
        per_producer,
        backend="asyncio",
        backend_options={"use_uvloop": use_uvloop},
    )
