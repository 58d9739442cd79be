"""Property tests for the runtime's no-loss and ordering invariants.

Random scripts interleave items from several concurrent producers with
valid and invalid upgrades; afterwards every item must have been processed
exactly once, in order, by the version that was current when it reached the
stage, and every invalid upgrade must have changed nothing.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowloop import Machine, const, fanout, fst, loop
from arrowloop.errors import UpgradeError
from arrowloop.runtime import Pipeline, open_pipeline, stage
from tests.machines import migration, reader, tagged, wide
from tests.profiles import examples

PRODUCER = 1_000_000  # item = producer * PRODUCER + sequence number

Op = tuple[str, int]

ops = st.lists(
    st.one_of(
        st.tuples(st.just("send"), st.integers(1, 30)),
        st.tuples(st.sampled_from(["upgrade", "bad_types", "raises", "bad_state"]), st.just(0)),
    ),
    max_size=12,
)


def _wrong_output() -> Machine:
    body = fanout(fst, const(0))
    return Machine.build(loop(body, 0, int), int, int)


def _raising(_: Any) -> Any:
    raise RuntimeError("migration failed on purpose")


def _bad_state(_: Any) -> Any:
    return "not a state"


async def _consume(p: Pipeline, outputs: list[Any]) -> None:
    async for out in p:
        outputs.append(out)


async def _produce(p: Pipeline, pid: int, count: int) -> None:
    for i in range(count):
        await p.send(pid * PRODUCER + i)


def _start_producers(tg: TaskGroup, p: Pipeline, producers: int, per_producer: int) -> None:
    """Start ``producers`` tasks, each sending its own numbered items in order."""
    for pid in range(1, producers + 1):
        tg.start_soon(_produce, p, pid, per_producer)


async def _run_single(script: list[Op], producers: int, per_producer: int) -> None:
    outputs: list[tuple[int, int, int]] = []
    expected_driver: list[tuple[int, int]] = []  # (item, version it must see)
    version = 0
    seq = 0
    async with (
        open_pipeline(stage("t", tagged(0), capacity=16, batch_limit=8)) as p,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(_consume, p, outputs)
        async with anyio.create_task_group() as load:
            _start_producers(load, p, producers, per_producer)
            for kind, n in script:
                if kind == "send":
                    for _ in range(n):
                        await p.send(seq)
                        expected_driver.append((seq, version))
                        seq += 1
                    continue
                before = p.version("t")
                if kind == "upgrade":
                    await p.upgrade("t", tagged(version + 1), migration(version, version + 1))
                    version += 1
                    continue
                if kind == "bad_types":
                    bad: tuple[Any, ...] = (_wrong_output(), None)
                elif kind == "raises":
                    bad = (tagged(version + 1), _raising)
                else:
                    bad = (tagged(version + 1), _bad_state)
                with pytest.raises(UpgradeError):
                    await p.upgrade("t", *bad)
                assert p.version("t") == before
        await p.close()

    # Exactly once, and the stage's own count saw every item in output order.
    assert [o[2] for o in outputs] == list(range(1, len(outputs) + 1))
    assert len(outputs) == seq + producers * per_producer
    # Versions only move forward along the single ordered stream.
    tags = [o[0] for o in outputs]
    assert tags == sorted(tags)
    # The driver's items saw exactly the version current when they were sent.
    driver = [(o[1], o[0]) for o in outputs if o[1] < PRODUCER]
    assert driver == expected_driver
    # Each producer's items arrive complete and in order.
    for pid in range(1, producers + 1):
        mine = [o[1] - pid * PRODUCER for o in outputs if o[1] // PRODUCER == pid]
        assert mine == list(range(per_producer))


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=ops,
    producers=st.integers(0, 3),
    per_producer=st.integers(0, 60),
    use_uvloop=st.booleans(),
)
def test_items_and_upgrades_interleave_without_loss(
    script: list[Op], producers: int, per_producer: int, use_uvloop: bool
) -> None:
    """Every item is processed once, in order, by the version current when it arrived."""
    anyio.run(
        _run_single,
        script,
        producers,
        per_producer,
        backend="asyncio",
        backend_options={"use_uvloop": use_uvloop},
    )


async def _run_pair(script: list[Op], producers: int, per_producer: int) -> None:
    outputs: list[tuple[int, int, int]] = []
    k = 0
    async with (
        open_pipeline(
            stage("a", wide(0), capacity=8, batch_limit=4) >> stage("b", reader(0), capacity=8)
        ) as p,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(_consume, p, outputs)
        async with anyio.create_task_group() as load:
            _start_producers(load, p, producers, per_producer)
            for kind, n in script:
                if kind == "send":
                    for i in range(n):
                        await p.send(i)
                elif kind == "upgrade":
                    await p.upgrade_many({"a": wide(k + 1), "b": reader(k + 1)})
                    k += 1
                else:
                    with pytest.raises(UpgradeError):
                        await p.upgrade_many({"a": wide(k + 1), "b": (reader(k + 1), _raising)})
                    assert p.version("a") == wide(k).version
        await p.close()
    # A consistent cut: stage a and stage b always ran the same generation.
    assert all(o[0] == o[2] for o in outputs)
    gens = [o[0] for o in outputs]
    assert gens == sorted(gens)
    sends = sum(n for kind, n in script if kind == "send")
    assert len(outputs) == sends + producers * per_producer


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    script=ops,
    producers=st.integers(0, 2),
    per_producer=st.integers(0, 40),
    use_uvloop=st.booleans(),
)
def test_pipeline_upgrades_are_a_consistent_cut(
    script: list[Op], producers: int, per_producer: int, use_uvloop: bool
) -> None:
    """Upgrading two stages and the type between them: each item sees all old or all new."""
    anyio.run(
        _run_pair,
        script,
        producers,
        per_producer,
        backend="asyncio",
        backend_options={"use_uvloop": use_uvloop},
    )
