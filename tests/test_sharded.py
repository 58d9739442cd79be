"""Sharded stages in process: routing, per-key order, replies, cuts, upgrades
across replicas as one cut (and none when a replica's migration fails), and
the spec's validation."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowloop import CheckError, arrow, statemachine
from arrowloop.errors import (
    ArrowloopError,
    PipelineClosed,
    PipelineError,
    UpgradeError,
)
from arrowloop.runtime import DeadLetters, Pipeline, open_pipeline, stage
from arrowloop.runtime._shards import canonical_key, shard_of
from arrowloop.runtime._ticket import Ticket
from arrowloop.supervisor import CodeChange, StageUpgrade, open_supervisor, supervisor
from tests.profiles import examples

pytestmark = pytest.mark.anyio

Item = tuple[str, int]


@statemachine(init={})
def sum_v1(item: tuple[str, int], state: dict[str, int]) -> tuple[dict[str, int], tuple[str, int]]:
    """Per key, the running sum of the values."""
    k, v = item
    total = state.get(k, 0) + v
    state[k] = total
    return state, (k, total)


@statemachine(init={})
def sum_v2(
    item: tuple[str, int], state: dict[str, tuple[int, int]]
) -> tuple[dict[str, tuple[int, int]], tuple[str, int]]:
    """Per key, the running sum and count; outputs sum + 1000 * count."""
    k, v = item
    total, count = state.get(k, (0, 0))
    state[k] = (total + v, count + 1)
    return state, (k, total + v + 1000 * (count + 1))


@statemachine(init=0)
def passthrough(item: tuple[str, int], n: int) -> tuple[int, tuple[str, int]]:
    """Passes items on, counting them."""
    return n + 1, item


@arrow
def by_key(item: tuple[str, int]) -> str:
    """The item's key."""
    return item[0]


def to_v2(state: dict[str, int]) -> dict[str, tuple[int, int]]:
    return {k: (v, 0) for k, v in state.items()}


def _outputs(items: list[Item], upgrade_at: int | None) -> tuple[list[tuple[str, int]], Any]:
    """The sequential model: each item's output, in order, and the final state."""
    outs: list[tuple[str, int]] = []
    state: dict[str, Any] = {}
    v2 = False
    for i, (k, v) in enumerate(items):
        if upgrade_at is not None and i == upgrade_at:
            state, v2 = to_v2(state), True
        if v2:
            total, count = state.get(k, (0, 0))
            state[k] = (total + v, count + 1)
            outs.append((k, total + v + 1000 * (count + 1)))
        else:
            state[k] = state.get(k, 0) + v
            outs.append((k, state[k]))
    if upgrade_at is not None and upgrade_at >= len(items):
        state = to_v2(state)
    return outs, state


def _model(
    items: list[Item], upgrade_at: int | None
) -> tuple[dict[str, list[tuple[str, int]]], dict[str, Any]]:
    """The sequential model: outputs per key, in order, and the final state."""
    outs, state = _outputs(items, upgrade_at)
    return _per_key(outs), state


def _per_key(outputs: list[tuple[str, int]]) -> dict[str, list[tuple[str, int]]]:
    per: dict[str, list[tuple[str, int]]] = {}
    for o in outputs:
        per.setdefault(o[0], []).append(o)
    return per


def _merged(p: Pipeline, shards: int) -> dict[str, Any]:
    """The sharded stage's per-shard states merged, checking each key lives
    in the shard it routes to."""
    states = p.state("count")
    assert isinstance(states, list)
    assert len(states) == shards
    merged: dict[str, Any] = {}
    for i, s in enumerate(states):
        for k, v in s.items():
            assert shard_of(k, shards) == i
            merged[k] = v
    return merged


async def _consume(p: Pipeline, outputs: list[Any]) -> None:
    async for out in p:
        outputs.append(out)


items_st = st.lists(st.tuples(st.sampled_from("abcdefg"), st.integers(-50, 50)), max_size=120)


def fails_on_g(state: dict[str, int]) -> dict[str, tuple[int, int]]:
    """to_v2, but raising in the one shard that holds the key "g"."""
    if "g" in state:
        raise RuntimeError("g")
    return to_v2(state)


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    items=items_st,
    shards=st.integers(1, 4),
    upgrade_at=st.none() | st.integers(0, 120),
    capacity=st.integers(1, 8),
    calls=st.sets(st.integers(0, 119), max_size=30),
    risky=st.booleans(),
    use_uvloop=st.booleans(),
)
def test_per_key_order_and_states_equal_the_sequential_model(
    items: list[Item],
    shards: int,
    upgrade_at: int | None,
    capacity: int,
    calls: set[int],
    risky: bool,
    use_uvloop: bool,
) -> None:
    """Outputs per key and the final per-key states are the sequential
    model's, with an upgrade changing the state type while items are queued
    (small channels: the router blocks on full replicas). Some items are
    calls: each gets its own item's output. With ``risky``, the upgrade is
    first tried with a migration that raises in the shard holding "g": it
    fails whole if that key was seen, and nothing changes."""
    if upgrade_at is not None:
        upgrade_at = min(upgrade_at, len(items))
    anyio.run(
        _run_model,
        items,
        shards,
        upgrade_at,
        capacity,
        calls,
        risky,
        backend="asyncio",
        backend_options={"use_uvloop": use_uvloop},
    )


async def _run_model(
    items: list[Item],
    shards: int,
    upgrade_at: int | None,
    capacity: int,
    calls: set[int],
    risky: bool,
) -> None:
    outputs: list[tuple[str, int]] = []
    tickets: dict[int, Ticket] = {}
    spec = stage(
        "count", sum_v1, shards=shards, shard_key=by_key, capacity=capacity, batch_limit=3
    ) >> stage("tail", passthrough, capacity=capacity)
    async with open_pipeline(spec) as p, anyio.create_task_group() as tg:
        tg.start_soon(_consume, p, outputs)
        cut = len(items) if upgrade_at is None else upgrade_at
        # Items one by one (some as calls) and in a batch, so every envelope is routed.
        for i, item in enumerate(items[: cut // 2]):
            if i in calls:
                tickets[i] = await p.submit(item)
            else:
                await p.send(item)
        await p.send_batch(list(items[cut // 2 : cut]))
        if upgrade_at is not None:
            seen_g = any(k == "g" for k, _ in items[:cut])
            if risky and seen_g:
                with pytest.raises(UpgradeError, match="migration raised RuntimeError"):
                    await p.upgrade("count", sum_v2, fails_on_g)
                assert p.version("count") == sum_v1.version
            assert await p.upgrade("count", sum_v2, to_v2) == sum_v2.version
            assert p.version("count") == sum_v2.version
        for i, item in enumerate(items[cut:], cut):
            if i in calls:
                tickets[i] = await p.submit(item)
            else:
                await p.send(item)
        await p.close()
        final = _merged(p, shards)
    want, want_state = _outputs(items, upgrade_at)
    assert {i: await t.result() for i, t in tickets.items()} == {i: want[i] for i in tickets}
    assert _per_key(outputs) == _per_key([o for i, o in enumerate(want) if i not in tickets])
    assert final == want_state
    assert p.state("tail") == len(items)


async def test_calls_get_their_replies() -> None:
    """Each call, alone or concurrent with others, gets its own item's output."""
    async with open_pipeline(stage("count", sum_v1, shards=3, shard_key=by_key)) as p:
        assert await p.call(("a", 1)) == ("a", 1)
        assert await p.call(("a", 2)) == ("a", 3)
        replies: dict[str, Any] = {}

        async def one(k: str) -> None:
            replies[k] = await p.call((k, 10))

        async with anyio.create_task_group() as tg:
            for k in "bcdefgh":
                tg.start_soon(one, k)
        assert replies == {k: (k, 10) for k in "bcdefgh"}
        tickets = await p.submit_many([("a", 1), ("b", 1), ("a", 1)])
        assert all(isinstance(t, Ticket) for t in tickets)
        assert [await t.result() for t in tickets if isinstance(t, Ticket)] == [
            ("a", 4),
            ("b", 11),
            ("a", 5),
        ]
        with pytest.raises(PipelineError, match="initial state only"):
            p.restart_stage("count", state={})
        with pytest.raises(PipelineError, match="seeded one by one"):
            p.seed("count", [{}, {}, {}])
        stats = p.statistics()[0]
        assert stats.processed == 12
        assert stats.version == sum_v1.version


async def test_end_of_stream_drains_every_shard() -> None:
    """Closing delivers every output of every shard, then ends the stream."""
    outputs: list[Any] = []
    async with open_pipeline(stage("count", sum_v1, shards=4, shard_key=by_key)) as p:
        await p.send_batch([(str(i % 9), 1) for i in range(500)])
        await p.close()
        while True:
            try:
                outputs.extend(await p.receive_batch())
            except anyio.EndOfStream:
                break
    assert len(outputs) == 500
    assert sorted(_merged(p, 4).items()) == sorted((str(i), 56 - (i >= 5)) for i in range(9))


async def test_a_migration_raising_in_one_replica_leaves_all_on_the_old_version() -> None:
    """The migration fails over one shard's state only: no replica switches,
    and the items queued behind the change are stepped by the old code."""

    def fails_on_boom(state: dict[str, int]) -> dict[str, tuple[int, int]]:
        if "boom" in state:
            raise RuntimeError("boom")
        return to_v2(state)

    outputs: list[Any] = []
    items = [(k, 1) for k in ["a", "b", "boom", "c", "d", "e", "f"] * 5]
    async with (
        open_pipeline(stage("count", sum_v1, shards=3, shard_key=by_key, capacity=2)) as p,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(_consume, p, outputs)
        await p.send_batch(items[:20])
        with pytest.raises(UpgradeError, match="migration raised RuntimeError"):
            await p.upgrade("count", sum_v2, fails_on_boom)
        assert p.version("count") == sum_v1.version
        await p.send_batch(items[20:])
        # Every replica still steps v1: a v2 replica would have other outputs.
        await p.close()
        final = _merged(p, 3)
    want_outs, want_state = _model(items, None)
    assert _per_key(outputs) == want_outs
    assert final == want_state
    assert p.statistics()[0].upgrades == 0


async def test_an_upgrade_of_two_stages_around_the_sharded_one_is_one_cut() -> None:
    """Upgrading the stage after a sharded stage (which is not changed) and
    the sharded stage with it: every item is stepped by old or new code
    throughout."""
    outputs: list[Any] = []
    spec = stage("count", sum_v1, shards=2, shard_key=by_key, capacity=2) >> stage(
        "tail", passthrough, capacity=2
    )
    async with open_pipeline(spec) as p, anyio.create_task_group() as tg:
        tg.start_soon(_consume, p, outputs)
        await p.send_batch([("a", 1), ("b", 1)] * 5)
        await p.upgrade("tail", passthrough)  # the same machine: the version stays
        await p.upgrade_many({"count": (sum_v2, to_v2), "tail": passthrough})
        await p.send_batch([("a", 1), ("b", 1)])
        await p.close()
    assert _per_key(outputs)["a"][-1] == ("a", 6 + 1000)
    assert p.statistics()[0].upgrades == 1


async def test_a_cut_notes_the_sharded_stage_once() -> None:
    """A cut lists the sharded stage once, with its states shard by shard."""
    async with open_pipeline(
        stage("count", sum_v1, shards=2, shard_key=by_key) >> stage("tail", passthrough)
    ) as p:
        for k in "abcabc":
            await p.call((k, 1))
        noted = await p.cut()
        assert [n[0] for n in noted] == ["count", "tail"]
        _, machine, states, applied = noted[0]
        assert machine.version == sum_v1.version
        assert applied == 6
        assert states == p.state("count")
        assert {k: v for s in states for k, v in s.items()} == {"a": 2, "b": 2, "c": 2}


async def test_a_key_function_that_raises_fails_its_item_only() -> None:
    """A raising key function fails the item as a raising step would."""

    @arrow
    def first_char(item: tuple[str, int]) -> str:
        return item[0][0]

    dead = DeadLetters()
    async with open_pipeline(
        stage("count", sum_v1, shards=2, shard_key=first_char), dead_letters=dead
    ) as p:
        with pytest.raises(Exception, match="failed on the item"):
            await p.call(("", 1))
        assert await p.call(("ab", 1)) == ("ab", 1)
        assert p.statistics()[0].failed == 1
        assert [d.stage for d in dead] == ["count"]


def test_the_routing_hash_is_fixed() -> None:
    """The shard of a key is fixed by its canonical form, in every process."""
    assert canonical_key(("a", 1, True)) == b"t3:s1:ai1;b1"
    assert canonical_key(True) != canonical_key(1)
    assert canonical_key(("a", "bc")) != canonical_key(("ab", "c"))
    # Pinned values: a change here reroutes every key of a running deployment.
    assert [shard_of(k, 4) for k in ["a", "b", "c", 0, 1, ("a", 1)]] == [
        shard_of("a", 4),
        shard_of("b", 4),
        shard_of("c", 4),
        shard_of(0, 4),
        shard_of(1, 4),
        shard_of(("a", 1), 4),
    ]
    with pytest.raises(TypeError, match="shard key"):
        canonical_key(1.5)


def test_the_spec_is_validated_field_by_field() -> None:
    """Each wrong option is refused with what was expected."""

    @arrow
    def int_key(x: int) -> int:
        return x

    @arrow
    def float_key(item: tuple[str, int]) -> float:
        return 1.0 * item[1]

    with pytest.raises(ValueError, match="shards to be an integer >= 1"):
        stage("count", sum_v1, shards=0, shard_key=by_key)
    with pytest.raises(ValueError, match="needs a shard_key"):
        stage("count", sum_v1, shards=2)
    with pytest.raises(TypeError, match="@arrow function"):
        stage("count", sum_v1, shards=2, shard_key=lambda item: item[0])  # type: ignore[arg-type]
    with pytest.raises(CheckError, match="does not accept the stage's input type"):
        stage("count", sum_v1, shards=2, shard_key=int_key)
    with pytest.raises(CheckError, match="a key is a bool, int, str"):
        stage("count", sum_v1, shards=2, shard_key=float_key)
    with pytest.raises(ValueError, match="restart"):
        stage("count", sum_v1, shards=2, shard_key=by_key, on_step_error="restart")
    assert stage("count", sum_v1, shards=2, shard_key=by_key.function).sharded


@statemachine(init={})
def sum_optional(
    item: tuple[str, int] | None, state: dict[str, int]
) -> tuple[dict[str, int], tuple[str, int]]:
    """sum_v1 that also accepts None (counted under the key "")."""
    k, v = ("", 0) if item is None else item
    total = state.get(k, 0) + v
    state[k] = total
    return state, (k, total)


async def test_an_upgrade_the_key_function_cannot_route_is_refused() -> None:
    """A new input type the key function does not accept is refused up front."""
    async with open_pipeline(stage("count", sum_v1, shards=2, shard_key=by_key)) as p:
        with pytest.raises(UpgradeError, match="sharded by a key function") as info:
            await p.upgrade("count", sum_optional, change_interface=True)
        assert info.value.reason == "types"
        assert p.version("count") == sum_v1.version


async def test_a_supervisor_runs_and_changes_a_sharded_stage() -> None:
    """Under a supervisor: calls, a checked code change applied to every
    replica, the state per shard; a savepoint notes every replica."""
    async with open_supervisor(
        supervisor("s", stage("count", sum_v1, shards=3, shard_key=by_key))
    ) as sup:
        assert sup.pipeline.shards("count") == 3
        for k in "abcab":
            await sup.pipeline.call((k, 1))
        versions = await sup.code_change(
            CodeChange((StageUpgrade("count", sum_v1.version, sum_v2, migrate=to_v2),))
        )
        assert versions == {"count": sum_v2.version}
        assert await sup.pipeline.call(("a", 1)) == ("a", 3 + 1000)
        states = await sup.get_state("count")
        assert {k: v for s in states for k, v in s.items()} == {
            "a": (3, 1),
            "b": (2, 0),
            "c": (1, 0),
        }
        status = await sup.status()
        assert [c.version for c in status.children] == [sum_v2.version]
        sp = await sup.savepoint("x")
        assert [r.stage for r in sp.stages] == ["count#0", "count#1", "count#2"]
        assert sum(r.seq for r in sp.stages) == 6


async def test_a_stopped_sharded_stage_answers_what_its_replicas_held() -> None:
    """Stopped for good while paused: every queued call gets PipelineClosed,
    plain items are counted as abandoned, nothing hangs."""
    async with open_pipeline(stage("count", sum_v1, shards=2, shard_key=by_key)) as p:
        assert await p.call(("a", 1)) == ("a", 1)
        p.pause_stage("count")
        assert p.is_paused("count")
        tickets = [await p.submit((k, 1)) for k in "abcd"]
        await p.send_batch([("e", 1), ("f", 1)])
        await anyio.wait_all_tasks_blocked()
        with anyio.fail_after(5):
            await p.close(shutdown={"count": 0})
        for t in tickets:
            with pytest.raises(PipelineClosed):
                await t.result()
        stats = p.statistics()[0]
        assert (stats.processed, stats.abandoned) == (1, 6)


async def test_request_keys_and_splicing_after_a_sharded_stage() -> None:
    """A request key applied once is not stepped again (its item goes to the
    same replica); a stage appended after a sharded last stage gets its outputs."""
    async with open_pipeline(stage("count", sum_v1, shards=3, shard_key=by_key)) as p:
        assert await p.call(("a", 5), key="k1") == ("a", 5)
        assert await p.call(("a", 5), key="k1") == ("a", 5)
        assert await p.call(("a", 5)) == ("a", 10)
        await p.append(stage("tail", passthrough))
        assert await p.call(("b", 1)) == ("b", 1)
        assert p.state("tail") == 1
        await p.prepend(stage("head", passthrough))
        assert await p.call(("a", 1)) == ("a", 11)
        assert (p.state("head"), p.state("tail")) == (1, 2)


async def test_a_full_replica_blocks_the_router() -> None:
    """Backpressure: with the replicas paused, the stage takes no more than
    its channels hold (router and replicas), then the sender waits; resumed,
    every item comes out."""
    outputs: list[Any] = []
    async with (
        open_pipeline(stage("count", sum_v1, shards=2, shard_key=by_key, capacity=3)) as p,
        anyio.create_task_group() as tg,
    ):
        p.pause_stage("count")
        sent = 0
        while True:
            try:
                p.send_nowait(("a", 1))  # one key: one replica fills
            except anyio.WouldBlock:
                break
            sent += 1
            await anyio.wait_all_tasks_blocked()
        # Each replica holds one batch unstepped while paused, plus its channel;
        # the router holds one message while it waits; the stage's channel.
        assert sent <= 3 + 1 + 3 + 3
        queue = p.statistics()[0].queue
        assert queue.capacity == 3 * 3
        tg.start_soon(_consume, p, outputs)
        p.restart_stage("count")  # resumes it (and resets it, before anything was stepped)
        await p.send(("b", 1))
        sent += 1
        await p.close()
    assert len(outputs) == sent
    assert _per_key(outputs)["a"][-1] == ("a", sent - 1)


def test_a_distributed_segment_runs_a_sharded_stage_alone() -> None:
    """Across processes a sharded stage is a segment of its own (its shards
    are segments), after a stage that routes to it, first (its source
    routes) or after another sharded stage; with other stages it is refused."""
    from arrowloop.distributed import segment_stages

    spec = stage("count", sum_v1, shards=2, shard_key=by_key) >> stage("tail", passthrough)
    assert segment_stages(spec, ["count"])[1] == "tail"
    assert segment_stages(spec, ["tail"])[1] == "out"
    spec = stage("head", passthrough) >> spec
    assert segment_stages(spec, ["count"])[1] == "tail"
    with pytest.raises(ArrowloopError, match="a segment of its own"):
        segment_stages(spec, ["head", "count"])
    both = stage("head", passthrough) >> stage("a", sum_v1, shards=2, shard_key=by_key)
    both = both >> stage("b", passthrough, shards=2, shard_key=by_key)
    assert segment_stages(both, ["a"])[1] == "b"  # two sharded stages in a row
    with pytest.raises(ArrowloopError, match="a segment of its own"):
        segment_stages(both, ["a", "b"])


async def test_a_stopped_sharded_stage_answers_what_its_router_held() -> None:
    """Stopped while the router waits on a full replica: the call in the
    router's hands is answered too, and every item is counted."""
    async with open_pipeline(
        stage("count", sum_v1, shards=2, shard_key=by_key, capacity=1, batch_limit=1)
    ) as p:
        p.pause_stage("count")
        tickets = []
        for _ in range(3):  # held by the replica, queued for it, in the router's hands
            tickets.append(await p.submit(("a", 1)))
            await anyio.wait_all_tasks_blocked()
        plain = 0
        while True:
            try:
                p.send_nowait(("a", 1))
            except anyio.WouldBlock:
                break
            plain += 1
            await anyio.wait_all_tasks_blocked()
        assert p.statistics()[0].queue.items >= 1
        with anyio.fail_after(5):
            await p.close(shutdown={"count": 0})
        for t in tickets:
            with pytest.raises(PipelineClosed), anyio.fail_after(5):
                await t.result()
        assert p.statistics()[0].abandoned == 3 + plain
