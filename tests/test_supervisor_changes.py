"""The supervisor's code-change protocol: checks, history, rollback, adapters,
auto-rollback and introspection, with the counter example."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from arrowloop import Function, Machine, const, fanout, fst, id_, loop, prim, snd
from arrowloop.errors import StepError, SupervisorError, UpgradeError, ValidationError
from arrowloop.runtime import StageSpec
from arrowloop.runtime import stage as plain_stage
from arrowloop.supervisor import (
    AutoRollback,
    CodeChange,
    StageUpgrade,
    child,
    code_change,
    open_supervisor,
    supervisor,
)
from arrowloop.typesys import INT, TupleT
from examples import counter as c
from tests.machines import migration, reader, wide
from tests.test_supervisor import FakeClock, counting

pytestmark = pytest.mark.anyio


def stage(name: str, machine: Any, **kw: Any) -> StageSpec:
    """A stage whose failing step is a crash (``on_step_error="restart"``):
    these tests script OTP restarts with poison items."""
    return plain_stage(name, machine, on_step_error="restart", **kw)


V1 = Machine.build(c.counter_v1, c.InputV1, c.Output)
V2 = Machine.build(c.counter_v2, c.InputV2, c.Output)
V3 = Machine.build(c.counter_v3, c.InputV3, c.Output)


def _counter() -> Any:
    return supervisor("counter", stage("count", V1), intensity=5)


async def test_counter_upgrades_rolls_back_and_serves_old_clients() -> None:
    """v1 -> v2 -> v3 by code-change messages, rollback to v2, then a v1 client served under v3."""
    async with open_supervisor(_counter()) as sup:
        p = sup.pipeline
        assert await p.call(c.ReadCount()) == c.Count(0)
        await p.call(c.IncrCount())
        await p.call(c.IncrCount())
        assert await p.call(c.ReadCount()) == c.Count(2)
        to_v2 = code_change(
            "count", V1.version, V2, c.migrate_v1_v2, inverse=id_, requested_by="ops"
        )
        assert await sup.code_change(to_v2) == {"count": V2.version}
        assert await p.call(c.ReadCount()) == c.Count(2)
        await p.call(c.ResetCount())
        assert await p.call(c.ReadCount()) == c.Count(0)
        to_v3 = code_change(
            "count", V2.version, V3, c.migrate_v2_v3, inverse=c.migrate_v3_v2, requested_by="ops"
        )
        assert await sup.code_change(to_v3) == {"count": V3.version}
        await p.call(c.IncrCount())
        await p.call(c.IncrCount())
        await p.call(c.ToggleCount())
        await p.call(c.IncrCount())
        assert await sup.get_state("count") == (1, True)

        # Rollback to v2 with the inverse migration (n, b) -> n.
        assert await sup.rollback("count", requested_by="ops") == {"count": V2.version}
        assert await sup.get_state("count") == 1
        assert await p.call(c.ReadCount()) == c.Count(1)

        # Upgrade again; a v1 client (no reset, no toggle) keeps working.
        await sup.code_change(
            code_change("count", V2.version, V3, c.migrate_v2_v3, inverse=c.migrate_v3_v2)
        )
        assert await sup.call(c.IncrCount(), version=V1.version) == c.Ack()
        assert await sup.call(c.ReadCount(), version=V1.version) == c.Count(2)
        with pytest.raises(ValidationError):
            await sup.call(c.ResetCount(), version=V1.version)  # not a v1 request
        assert await sup.call(c.ReadCount(), version=V3.version) == c.Count(2)

        history = await sup.history()
        assert [(h.kind, h.result, h.requested_by) for h in history] == [
            ("upgrade", "succeeded", "ops"),
            ("upgrade", "succeeded", "ops"),
            ("rollback", "succeeded", "ops"),
            ("upgrade", "succeeded", "unknown"),
        ]
        assert history[1].from_versions == (V2.version,)
        assert history[1].to_versions == (V3.version,)
        assert history[2].to_versions == (V2.version,)
        assert [h.seq for h in history] == [1, 2, 3, 4]


async def test_refused_changes_leave_everything_as_it_was() -> None:
    """Wrong version, ill-typed migration or inverse, bad machine: refused and recorded."""
    async with open_supervisor(_counter()) as sup:
        await sup.pipeline.call(c.IncrCount())
        cases: list[tuple[CodeChange, str]] = [
            (code_change("count", V2.version, V2), "version mismatch"),
            (code_change("count", V1.version, V3, c.migrate_v1_v2), "migration types"),
            (code_change("count", V1.version, V3), "migration types"),
            (
                code_change("count", V1.version, V3, c.migrate_v2_v3, inverse=c.migrate_v2_v3),
                "inverse types",
            ),
            (code_change("nope", V1.version, V2), "unknown stage"),
            (code_change("count", V1.version, "not a machine"), "not a machine"),  # type: ignore[arg-type]
            (code_change("count", V1.version, c.counter_v3), "types"),
        ]
        for change, reason in cases:
            with pytest.raises(UpgradeError) as info:
                await sup.code_change(change)
            assert info.value.reason == reason, str(info.value)
        assert await sup.get_state("count") == 1
        st = await sup.status()
        assert st.children[0].version == V1.version
        history = await sup.history()
        assert [h.result for h in history] == ["refused"] * len(cases)
        assert "expected to replace version" in history[0].reason


async def test_failed_migration_is_recorded_and_changes_nothing() -> None:
    """A migration that raises in the stage fails the change; the old code and state stay."""

    def boom(n: int) -> tuple[int, bool]:
        raise RuntimeError("no")

    async with open_supervisor(_counter()) as sup:
        await sup.code_change(code_change("count", V1.version, V2))
        await sup.pipeline.call(c.IncrCount())
        with pytest.raises(UpgradeError, match="migration raised") as info:
            await sup.code_change(code_change("count", V2.version, V3, boom))
        assert info.value.reason == "migration failed"
        assert await sup.get_state("count") == 1
        (_, failed) = await sup.history()
        assert (failed.result, failed.from_versions, failed.to_versions) == (
            "failed",
            (V2.version,),
            (V3.version,),
        )


async def test_a_restart_runs_the_new_version() -> None:
    """After a code change, the child's spec holds the new machine: a restart runs it."""
    spec = supervisor("s", stage("a", counting(0)), intensity=5)
    async with open_supervisor(spec) as sup:
        await sup.pipeline.call(1)
        await sup.code_change(code_change("a", counting(0).version, counting(1), migration(0, 1)))
        assert await sup.pipeline.call(1) == (1, 1, 2)
        with pytest.raises(StepError):
            await sup.pipeline.call(0)
        assert await sup.pipeline.call(1) == (1, 1, 1)  # version 1, from its initial state
        assert await sup.get_state("a") == (1, 1)


async def test_rollback_refusals() -> None:
    """Rollback is refused with a reason: nothing recorded, or no inverse for a new state type."""
    spec = supervisor("s", stage("a", counting(0)), intensity=5)
    async with open_supervisor(spec) as sup:
        with pytest.raises(UpgradeError, match="no recorded code change") as info:
            await sup.rollback("a")
        assert info.value.reason == "nothing to roll back"
        await sup.code_change(code_change("a", counting(0).version, counting(1), migration(0, 1)))
        with pytest.raises(UpgradeError, match="no inverse migration") as info:
            await sup.rollback("a")
        assert info.value.reason == "no inverse"
        assert (await sup.status()).children[0].version == counting(1).version
        assert [h.result for h in await sup.history()] == ["refused", "succeeded", "refused"]


async def test_repeated_rollbacks_go_further_back() -> None:
    """Each rollback undoes one more change, with that change's inverse."""
    spec = supervisor("s", stage("a", counting(0)), intensity=5)
    async with open_supervisor(spec) as sup:
        for k in (0, 1, 2):
            change = code_change(
                "a",
                counting(k).version,
                counting(k + 1),
                migration(k, k + 1),
                inverse=migration(k + 1, k),
            )
            await sup.code_change(change)
            await sup.pipeline.call(5)
        assert await sup.get_state("a") == (3, 3)
        await sup.rollback("a")
        assert await sup.get_state("a") == 3
        await sup.rollback("a")
        assert await sup.get_state("a") == (3, 1)
        await sup.rollback("a")
        assert (await sup.pipeline.call(5))[0] == 0
        with pytest.raises(UpgradeError, match="no recorded"):
            await sup.rollback("a")


async def test_pipeline_change_and_rollback_are_one_cut() -> None:
    """A change of two stages (and the type between them) applies and rolls back as one."""
    spec = supervisor("s", stage("a", wide(0)), stage("b", reader(0)), intensity=5)
    async with open_supervisor(spec) as sup:
        change = CodeChange(
            (
                StageUpgrade("a", wide(0).version, wide(1), inverse=id_),
                StageUpgrade("b", reader(0).version, reader(1), inverse=id_),
            ),
            requested_by="deploy",
        )
        assert await sup.code_change(change) == {"a": wide(1).version, "b": reader(1).version}
        assert await sup.pipeline.call(5) == (1, 5, 1)
        assert await sup.rollback("b") == {"a": wide(0).version, "b": reader(0).version}
        assert await sup.pipeline.call(5) == (0, 5, 0)
        (up, down) = await sup.history()
        assert up.stages == down.stages == ("a", "b")
        with pytest.raises(UpgradeError, match="would not fit"):
            await sup.code_change(code_change("a", wide(0).version, wide(1)))


async def test_code_change_waits_behind_a_crash_without_deadlock() -> None:
    """A change queued behind a poison item lands after the stage's restart, in order."""
    spec = supervisor("s", stage("a", counting(0), batch_limit=2), intensity=5)
    async with open_supervisor(spec) as sup:
        p = sup.pipeline
        await p.send_batch([1, 2, 0, 3])
        await sup.code_change(code_change("a", counting(0).version, counting(1), migration(0, 1)))
        await p.send(4)
        outs = [await p.receive() for _ in range(4)]
    assert outs == [(0, 1, 1), (0, 2, 2), (0, 3, 1), (1, 4, 2)]


def _pair_counter(k: int) -> Machine:
    """Input ``(x, step)``; state: the count; output ``(k, count)``."""
    new_count = fanout(snd, fst >> snd) >> prim("add")
    body = fanout(new_count, fanout(const(k), new_count))
    return Machine.build(loop(body, 0, int), tuple[int, int], tuple[int, int])


async def test_adapters_serve_clients_of_the_old_version() -> None:
    """Requests tagged with the old version are adapted in, and their replies adapted out."""
    spec = supervisor("s", stage("a", counting(0)), intensity=5)
    old, new = counting(0), _pair_counter(7)
    adapt_in = fanout(id_, const(1))  # x -> (x, 1)
    adapt_out = Function.build(fanout(fst, const(0), snd), tuple[int, int], TupleT((INT, INT, INT)))
    async with open_supervisor(spec) as sup:
        await sup.pipeline.call(3)
        change = code_change(
            "a",
            old.version,
            new,
            input_adapter=adapt_in,
            output_adapter=adapt_out,
            change_interface=True,
        )
        await sup.code_change(change)
        assert await sup.pipeline.call((10, 5)) == (7, 6)
        assert await sup.call(10, version=old.version) == (7, 0, 7)
        with pytest.raises(ValidationError):
            await sup.call((1, 1), version=old.version)
        with pytest.raises(SupervisorError, match="neither"):
            await sup.call(1, version="f" * 64)


async def test_adapters_are_checked() -> None:
    """Adapters with the wrong types, opaque callables, or on the wrong stage are refused."""
    old, new = counting(0), _pair_counter(7)
    spec = supervisor("s", stage("a", counting(0)), intensity=5)
    async with open_supervisor(spec) as sup:
        bad: list[tuple[dict[str, Any], str]] = [
            ({"input_adapter": fanout(id_, const(True))}, "input adapter types"),
            ({"input_adapter": lambda x: (x, 1)}, "input adapter types"),
            ({"output_adapter": fanout(fst, const(0))}, "output adapter types"),
        ]
        for kw, reason in bad:
            with pytest.raises(UpgradeError) as info:
                await sup.code_change(
                    code_change("a", old.version, new, change_interface=True, **kw)
                )
            assert info.value.reason == reason, str(info.value)
        # Without adapters the change applies, but old clients cannot be served.
        await sup.code_change(code_change("a", old.version, new, change_interface=True))
        with pytest.raises(SupervisorError, match="cannot be served"):
            await sup.call(1, version=old.version)

    two = supervisor("t", stage("a", wide(0)), stage("b", reader(0)))
    async with open_supervisor(two) as sup:
        with pytest.raises(UpgradeError, match="adapts the pipeline's input"):
            await sup.code_change(code_change("b", reader(0).version, reader(0), input_adapter=id_))


async def test_auto_rollback_of_a_crashing_fresh_upgrade() -> None:
    """A stage crashing more than K times within T seconds of its upgrade is rolled back."""
    clock = FakeClock()
    spec = supervisor(
        "s",
        child(stage("a", counting(0)), auto_rollback=AutoRollback(crashes=1, period=10)),
        intensity=10,
    )
    async with open_supervisor(spec, clock=clock) as sup:
        change = code_change(
            "a", counting(0).version, counting(1), migration(0, 1), inverse=migration(1, 0)
        )
        await sup.code_change(change)
        clock.now = 1.0
        with pytest.raises(StepError):
            await sup.pipeline.call(0)
        assert (await sup.pipeline.call(1))[0] == 1  # one crash: still version 1
        clock.now = 2.0
        with pytest.raises(StepError):
            await sup.pipeline.call(0)
        await anyio.wait_all_tasks_blocked()
        assert (await sup.pipeline.call(1))[0] == 0
        last = (await sup.history())[-1]
        assert (last.kind, last.result, last.requested_by) == (
            "auto-rollback",
            "succeeded",
            "supervisor",
        )


async def test_no_auto_rollback_once_the_upgrade_is_not_fresh() -> None:
    """Crashes after the auto-rollback period do not roll the change back."""
    clock = FakeClock()
    spec = supervisor(
        "s",
        child(stage("a", counting(0)), auto_rollback=AutoRollback(crashes=0, period=10)),
        intensity=10,
    )
    async with open_supervisor(spec, clock=clock) as sup:
        await sup.code_change(
            code_change(
                "a", counting(0).version, counting(1), migration(0, 1), inverse=migration(1, 0)
            )
        )
        clock.now = 11.0
        with pytest.raises(StepError):
            await sup.pipeline.call(0)
        await anyio.wait_all_tasks_blocked()
        assert (await sup.pipeline.call(1))[0] == 1
        assert [h.kind for h in await sup.history()] == ["upgrade"]


async def test_status_describes_every_child() -> None:
    """status() reports name, version, state type, restarts, queue depth and counts as data."""
    spec = supervisor("s", stage("a", wide(0)), stage("b", reader(0)), intensity=5)
    async with open_supervisor(spec) as sup:
        for i in range(3):
            await sup.pipeline.call(i)
        st = await sup.status()
    assert st.name == "s"
    assert st.strategy == "one_for_one"
    assert [(ch.name, ch.kind, ch.restart, ch.running) for ch in st.children] == [
        ("a", "stage", "permanent", True),
        ("b", "stage", "permanent", True),
    ]
    a = st.children[0]
    assert (a.version, a.state_type, a.processed, a.queue_depth) == (
        wide(0).version,
        "int",
        3,
        0,
    )


async def test_supervisor_requests_are_answered_while_a_change_is_in_flight() -> None:
    """Status and state requests do not wait for a code change travelling down the pipeline."""
    spec = supervisor("s", stage("a", counting(0), capacity=2, batch_limit=1), intensity=5)
    async with (
        open_supervisor(spec, output_capacity=1) as sup,
        anyio.create_task_group() as tg,
    ):
        p = sup.pipeline
        await p.send(1)
        await p.send(2)  # a blocks on its full outbox: nobody reads... until we do
        done = anyio.Event()

        async def change() -> None:
            await sup.code_change(
                code_change("a", counting(0).version, counting(1), migration(0, 1))
            )
            done.set()

        tg.start_soon(change)
        await anyio.wait_all_tasks_blocked()
        st = await sup.status()
        assert st.children[0].version == counting(0).version
        assert not done.is_set()
        outs = [await p.receive() for _ in range(2)]
        await done.wait()
        assert [o[0] for o in outs] == [0, 0]
        assert (await sup.status()).children[0].version == counting(1).version


async def test_history_is_bounded() -> None:
    """The history keeps the latest `history_limit` records."""
    spec = supervisor("s", stage("a", counting(0)), history_limit=3)
    async with open_supervisor(spec) as sup:
        for _ in range(5):
            with pytest.raises(UpgradeError):
                await sup.code_change(code_change("a", "0" * 64, counting(1)))
        history = await sup.history()
    assert [h.seq for h in history] == [3, 4, 5]


async def test_front_end_objects_stand_for_what_they_compiled_to() -> None:
    """A ``@statemachine`` and ``@arrow`` functions can be given to a code
    change as they are, and are checked like the Machine and Function."""
    from examples.counter import v1, v2, v3

    up = code_change("counter", v1.machine.version, v2.machine, v2.migrate, inverse=v2.inverse)
    assert up.upgrades[0].machine is v2.machine.machine
    assert up.upgrades[0].migrate is v2.migrate.function
    async with open_supervisor(supervisor("s", stage("counter", v1.machine))) as sup:
        await sup.call(c.IncrCount())
        assert await sup.code_change(up) == {"counter": v2.machine.version}
        # A wrong migration written in Python is refused like any Function.
        bad = code_change("counter", v2.machine.version, v3.machine, v2.migrate)
        with pytest.raises(UpgradeError, match="expected int -> \\(int, bool\\)"):
            await sup.code_change(bad)
        # The pipeline accepts them directly too.
        await sup.pipeline.upgrade("counter", v3.machine, v3.migrate)
        assert sup.pipeline.state("counter") == (1, False)
