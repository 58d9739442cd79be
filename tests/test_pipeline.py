"""Pipelines: building, sending, calling, crashes, upgrades, splicing, shutdown."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import pytest

from arrowloop import CheckError, Function, Machine, const, fanout, fst, id_, loop, native, snd
from arrowloop.errors import PipelineClosed, PipelineError, StepError, UpgradeError, ValidationError
from arrowloop.runtime import DeadLetters, open_pipeline, pipeline, stage
from examples import counter as c
from tests.machines import OUT, migration, reader, tagged, wide

pytestmark = pytest.mark.anyio

V1 = Machine.build(c.counter_v1, c.InputV1, c.Output)
V2 = Machine.build(c.counter_v2, c.InputV2, c.Output)
V3 = Machine.build(c.counter_v3, c.InputV3, c.Output)


def _plus(n: int) -> Machine:
    """A stateless ``int -> int`` stage adding ``n`` (state: items seen)."""
    from arrowloop import prim

    body = fanout(snd, fst >> fanout(id_, const(n)) >> prim("add"))
    return Machine.build(loop(body, 0, int), int, int)


def _other_tasks() -> set[asyncio.Task[Any]]:
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}


async def test_counter_transcript_with_live_upgrades() -> None:
    """The counter's reference transcript, upgrading the running counter twice."""
    async with open_pipeline(stage("count", V1)) as p:
        assert await p.call(c.ReadCount()) == c.Count(0)
        assert await p.call(c.IncrCount()) == c.Ack()
        assert await p.call(c.IncrCount()) == c.Ack()
        assert await p.call(c.ReadCount()) == c.Count(2)
        assert await p.upgrade("count", V2) == V2.version
        assert await p.call(c.ReadCount()) == c.Count(2)
        assert await p.call(c.ResetCount()) == c.Ack()
        assert await p.call(c.ReadCount()) == c.Count(0)
        assert await p.upgrade("count", V3, c.migrate_v2_v3) == V3.version
        assert await p.call(c.ReadCount()) == c.Count(0)
        await p.call(c.IncrCount())
        await p.call(c.IncrCount())
        assert await p.call(c.ReadCount()) == c.Count(2)
        await p.call(c.ToggleCount())
        await p.call(c.IncrCount())
        assert await p.call(c.ReadCount()) == c.Count(1)
        assert p.state("count") == (1, True)


async def test_ill_typed_upgrade_is_refused_and_changes_nothing() -> None:
    """An upgrade whose migration does not check is refused; state and version stay."""
    async with open_pipeline(stage("count", V2)) as p:
        await p.call(c.IncrCount())
        with pytest.raises(UpgradeError, match="migration") as info:
            await p.upgrade("count", V3, c.migrate_v1_v2 >> c.migrate_v1_v2)
        assert isinstance(info.value.__cause__, CheckError)
        with pytest.raises(UpgradeError, match="state type changes"):
            await p.upgrade("count", V3)
        assert p.version("count") == V2.version
        assert p.state("count") == 1
        assert await p.call(c.ReadCount()) == c.Count(1)


def test_pipeline_types_are_checked_at_build() -> None:
    """Adjacent stages must agree on the type between them; names are unique."""
    with pytest.raises(CheckError) as info:
        pipeline(stage("a", _plus(1)), stage("b", V1))
    assert info.value.path == "stages[1]"
    with pytest.raises(PipelineError, match="twice"):
        pipeline(stage("a", _plus(1)), stage("a", _plus(2)))
    with pytest.raises(PipelineError, match="at least one"):
        pipeline()
    assert (stage("a", _plus(1)) >> stage("b", _plus(2))).output == _plus(1).output


async def test_items_flow_in_order_through_stages() -> None:
    """Outputs of plain sends come out in order, after every stage ran."""
    spec = stage("a", _plus(1)) >> stage("b", _plus(10)) >> stage("c", _plus(100))
    async with open_pipeline(spec) as p:
        for i in range(500):
            await p.send(i)
        await p.close()
        assert [x async for x in p] == [i + 111 for i in range(500)]


async def test_concurrent_callers_get_their_own_replies() -> None:
    """Many concurrent calls each get exactly the output of their own item."""
    results: dict[int, int] = {}
    async with open_pipeline(stage("a", _plus(1)) >> stage("b", _plus(1))) as p:

        async def caller(i: int) -> None:
            results[i] = await p.call(i)

        async with anyio.create_task_group() as tg:
            for i in range(300):
                tg.start_soon(caller, i)
    assert results == {i: i + 2 for i in range(300)}


async def test_a_crashing_step_loses_only_its_item() -> None:
    """The failing item goes to the dead letters, its caller gets StepError, the rest flow."""

    def step(x: int, s: int) -> tuple[int, int]:
        if x == 13:
            raise ValueError("unlucky")
        return s + x, s + x

    dead = DeadLetters(8)
    async with open_pipeline(stage("sum", native(step, 0)), dead_letters=dead) as p:
        for x in (1, 2, 13, 3):
            await p.send(x)
        with pytest.raises(StepError, match="unlucky") as info:
            await p.call(13)
        assert info.value.stage == "sum"
        assert await p.call(4) == 10
        await p.close()
        assert [x async for x in p] == [1, 3, 6]
    letters = list(dead)
    assert [d.item for d in letters] == [13, 13]
    assert "unlucky" in letters[0].reason


async def test_native_bad_return_value_is_named() -> None:
    """A native step returning something other than a pair fails with that value named."""

    def step(x: int, s: int) -> tuple[int, int]:
        return x  # type: ignore[return-value]

    async with open_pipeline(stage("bad", native(step, 0))) as p:
        with pytest.raises(StepError, match=r"bad return value.*found 5"):
            await p.call(5)


async def test_failing_migration_keeps_old_machine_and_state() -> None:
    """A migration that raises, or returns a value of the wrong type, is rolled back."""

    def boom(n: int) -> tuple[int, bool]:
        raise RuntimeError("no")

    def wrong(n: int) -> Any:
        return (n, "not a bool")

    async with open_pipeline(stage("count", V2)) as p:
        await p.call(c.IncrCount())
        with pytest.raises(UpgradeError, match="migration raised RuntimeError"):
            await p.upgrade("count", V3, boom)
        with pytest.raises(UpgradeError, match="migrated state"):
            await p.upgrade("count", V3, wrong)
        assert p.version("count") == V2.version
        assert await p.call(c.ReadCount()) == c.Count(1)


async def test_native_migration_annotations_are_checked() -> None:
    """A callable migration annotated with the wrong types is refused before sending."""

    def migrate(n: str) -> tuple[int, bool]:
        return (0, False)

    async with open_pipeline(stage("count", V2)) as p:
        with pytest.raises(UpgradeError, match="takes str"):
            await p.upgrade("count", V3, migrate)


async def test_expected_version_must_match() -> None:
    """An upgrade naming another version than the running one is refused."""
    async with open_pipeline(stage("count", V1)) as p:
        with pytest.raises(UpgradeError, match="expected to replace"):
            await p.upgrade("count", V2, expect_version=V2.version)
        assert await p.upgrade("count", V2, expect_version=V1.version) == V2.version


async def test_native_machines_upgrade_in_process() -> None:
    """A native machine can be upgraded to another, with a validated migration."""

    def v1(x: int, s: int) -> tuple[int, int]:
        return s + 1, s + 1

    def v2(x: int, s: tuple[int, str]) -> tuple[tuple[int, str], int]:
        return (s[0] + 10, s[1]), s[0] + 10

    def migrate(n: int) -> tuple[int, str]:
        return (n, "v2")

    async with open_pipeline(stage("n", native(v1, 0))) as p:
        assert await p.call(0) == 1
        await p.upgrade("n", native(v2, (0, "")), migrate)
        assert await p.call(0) == 11
        assert p.state("n") == (11, "v2")


async def test_pipeline_upgrade_changes_the_middle_type() -> None:
    """Two stages upgraded together may change the type flowing between them."""
    async with open_pipeline(stage("a", wide(0)) >> stage("b", reader(0))) as p:
        assert await p.call(5) == (0, 5, 0)
        with pytest.raises(UpgradeError, match="would not fit"):
            await p.upgrade("a", wide(1))
        versions = await p.upgrade_many({"a": wide(1), "b": reader(1)})
        assert versions == {"a": wide(1).version, "b": reader(1).version}
        assert await p.call(5) == (1, 5, 1)


async def test_pipeline_upgrade_is_all_or_nothing() -> None:
    """If a later stage's migration fails, the earlier stage keeps its old code too."""

    def boom(s: int) -> int:
        raise RuntimeError("late failure")

    async with open_pipeline(stage("a", wide(0)) >> stage("b", reader(0))) as p:
        with pytest.raises(UpgradeError, match="late failure"):
            await p.upgrade_many({"a": wide(2), "b": (reader(2), boom)})
        assert p.version("a") == wide(0).version
        assert p.version("b") == reader(0).version
        assert await p.call(7) == (0, 7, 0)


async def test_upgrade_applies_between_items_in_order() -> None:
    """Items sent before an upgrade see the old version, items after it the new one."""
    async with open_pipeline(stage("t", tagged(0))) as p:
        for i in range(50):
            await p.send(i)
        await p.upgrade("t", tagged(1), migration(0, 1))
        for i in range(50, 100):
            await p.send(i)
        await p.close()
        outs = [x async for x in p]
    assert [o[1] for o in outs] == list(range(100))
    assert [o[0] for o in outs] == [0] * 50 + [1] * 50
    assert [o[2] for o in outs] == list(range(1, 101))


async def test_prepend_and_append_splice_stages() -> None:
    """New stages can be put in front or behind a running pipeline."""
    async with open_pipeline(stage("mid", _plus(10))) as p:
        assert await p.call(1) == 11
        await p.prepend(stage("front", _plus(100)))
        await p.append(stage("back", _plus(1000)))
        assert p.stage_names == ["front", "mid", "back"]
        assert await p.call(1) == 1111
        with pytest.raises(UpgradeError, match="exists already"):
            await p.append(stage("mid", _plus(1)))
        with pytest.raises(UpgradeError, match="input type"):
            await p.append(stage("x", V1))


async def test_bad_items_are_refused_at_the_door() -> None:
    """An item of the wrong type is refused when sent, naming what was expected."""
    async with open_pipeline(stage("count", V1)) as p:
        with pytest.raises(ValidationError, match="expected a case of"):
            await p.send(c.ResetCount())
        assert await p.call(c.ReadCount()) == c.Count(0)


async def test_no_task_outlives_its_pipeline() -> None:
    """After the block, normally or by an error, no stage task is left."""
    before = _other_tasks()
    async with open_pipeline(stage("a", _plus(1)) >> stage("b", _plus(1))) as p:
        await p.send(1)
        assert len(_other_tasks() - before) >= 2
    assert _other_tasks() - before == set()

    async def fail_inside() -> None:
        async with open_pipeline(stage("a", _plus(1))) as p:
            await p.send(1)
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        await fail_inside()
    assert _other_tasks() - before == set()


async def test_closed_pipeline_refuses_items() -> None:
    """After close, sends fail with PipelineClosed."""
    async with open_pipeline(stage("a", _plus(1))) as p:
        await p.close()
        with pytest.raises(PipelineClosed):
            await p.send(1)


async def test_unread_outputs_are_discarded_at_exit() -> None:
    """Leaving the block does not hang on outputs nobody reads; they are counted."""
    async with open_pipeline(stage("a", _plus(1)), output_capacity=4) as p:
        for i in range(40):
            await p.send(i)
    assert p.discarded_outputs > 0


async def test_in_flight_items_stay_bounded() -> None:
    """A producer outrunning the consumer is stopped by backpressure, not memory."""
    spec = stage("a", _plus(1), capacity=8, batch_limit=4) >> stage(
        "b", _plus(1), capacity=8, batch_limit=4
    )
    async with open_pipeline(spec, output_capacity=16) as p:
        sent = 0
        while True:
            try:
                p.send_nowait(sent)
            except anyio.WouldBlock:
                await anyio.wait_all_tasks_blocked()
                try:
                    p.send_nowait(sent)
                except anyio.WouldBlock:
                    break
            sent += 1
        queued = sum(s.queue.items for s in p.statistics())
        outputs = p.output_statistics().items
        # Everything sent is queued in a channel, in the outputs, or in the
        # batch a blocked stage holds (at most its batch limit).
        assert queued + outputs <= sent <= queued + outputs + 4 + 4
        assert sent <= 8 + 8 + 16 + 4 + 4


async def test_statistics_describe_each_stage() -> None:
    """statistics() reports version, types and counts per stage."""
    async with open_pipeline(stage("t", tagged(0))) as p:
        await p.call(1)
        await p.upgrade("t", tagged(1), migration(0, 1))
        (st,) = p.statistics()
    assert st.name == "t"
    assert st.version == tagged(1).version
    assert st.processed == 1
    assert st.upgrades == 1
    assert st.state_type == "(int, int)"
    assert st.output_type == repr(OUT)
    assert st.last_upgrade_pause_ns is None or st.last_upgrade_pause_ns >= 0


async def test_migration_as_function_or_arrow() -> None:
    """Migrations may be given as a checked Function or as an arrow program."""
    async with open_pipeline(stage("count", V2)) as p:
        await p.call(c.IncrCount())
        mig = Function.build(fanout(id_, const(False)), int, tuple[int, bool])
        await p.upgrade("count", V3, mig)
        assert p.state("count") == (1, False)
        with pytest.raises(UpgradeError, match="input type would change"):
            await p.upgrade("count", V2, fst)
        await p.upgrade("count", V2, fst, change_interface=True)
        assert p.state("count") == 1


async def test_supervised_stage_stops_on_crash_and_restarts_without_loss() -> None:
    """With an exit hook, a crash stops the stage; restarting it loses no queued item."""
    exits: list[tuple[str, str | None]] = []
    crashed = anyio.Event()

    def step(x: int, s: int) -> tuple[int, int]:
        if x < 0:
            raise ValueError("negative")
        return s + 1, s + 1

    def on_exit(name: str, error: BaseException | None) -> None:
        exits.append((name, None if error is None else type(error).__name__))
        crashed.set()

    spec = stage("a", _plus(0), batch_limit=4) >> stage(
        "n", native(step, 0), batch_limit=4, on_step_error="restart"
    )
    async with open_pipeline(spec, on_exit=on_exit) as p:
        await p.send_batch([1, 2, -1, 3, 4, 5, 6])
        await crashed.wait()
        assert exits == [("n", "StageCrashed")]
        assert not p.is_running("n")
        p.restart_stage("n")
        await p.close()
        outs = [x async for x in p]
        assert outs[:2] == [1, 2]
        # after the restart the state starts again from the initial one
        assert outs[2:] == [1, 2, 3, 4]
        (st,) = [s for s in p.statistics() if s.name == "n"]
        assert st.restarts == 1
        assert st.failed == 1
    assert [d.item for d in p.dead_letters] == [-1]  # type: ignore[attr-defined]


async def test_running_stage_resets_in_place() -> None:
    """restart_stage on a running stage resets its state between batches."""
    async with open_pipeline(stage("t", tagged(0)), on_exit=lambda n, e: None) as p:
        assert (await p.call(1))[2] == 1
        assert (await p.call(1))[2] == 2
        p.restart_stage("t")
        assert (await p.call(1))[2] == 1
