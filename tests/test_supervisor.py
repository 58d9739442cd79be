"""The supervisor: OTP restart semantics, escalation, and child specs.

Crashes are scripted with poison items: ``counting(k)`` steps ``x // x``,
so the item ``0`` raises ZeroDivisionError. Time is a fake clock moved by
hand; waiting is on replies and ``anyio.wait_all_tasks_blocked()``.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from anyio.abc import TaskGroup

from arrowloop import Machine, const, fanout, fst, id_, loop, prim, proj, snd
from arrowloop.arrows import Arrow
from arrowloop.errors import (
    ChildSpecError,
    EscalationError,
    PipelineClosed,
    StepError,
    SupervisorError,
    ValidationError,
)
from arrowloop.runtime import DeadLetters, StageSpec
from arrowloop.runtime import stage as plain_stage
from arrowloop.supervisor import (
    Restart,
    Strategy,
    Supervisor,
    SupervisorSpec,
    child,
    open_supervisor,
    supervisor,
)
from arrowloop.typesys import INT, TupleT
from tests.machines import state_type

pytestmark = pytest.mark.anyio


def stage(name: str, machine: Any, **kw: Any) -> StageSpec:
    """A stage whose failing step is a crash (``on_step_error="restart"``):
    these tests script OTP restarts with poison items."""
    return plain_stage(name, machine, on_step_error="restart", **kw)


OUT = TupleT((INT, INT, INT))

# ``x // x``: 1 for every item but the poison 0, which raises.
_one: Arrow = fst >> fanout(id_, id_) >> prim("floordiv")


def counting(k: int) -> Machine:
    """Version ``k`` of a counting stage: ``x -> (k, x, items seen)``; 0 crashes it.

    Even versions keep the count as ``int``, odd ones as ``(count, k)``.
    """
    count: Arrow = snd if k % 2 == 0 else snd >> fst
    new_count = fanout(count, _one) >> prim("add")
    new_state = new_count if k % 2 == 0 else fanout(new_count, const(k))
    init: Any = 0 if k % 2 == 0 else (0, k)
    body = fanout(new_state, fanout(const(k), fst, new_count))
    return Machine.build(loop(body, init, state_type(k)), int, OUT)


def relay(k: int) -> Machine:
    """``(v, x, n) -> (v, x, m)`` where ``m`` counts the items this stage has seen."""
    new_count = fanout(snd, const(1)) >> prim("add")
    body = fanout(new_count, fanout(fst >> proj(0, 3), fst >> proj(1, 3), new_count))
    return Machine.build(loop(body, k, int), OUT, OUT)


class FakeClock:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def three(strategy: Strategy, **kw: Any) -> SupervisorSpec:
    """``a >> b >> c``: a counts ints, b and c count what reaches them."""
    return supervisor(
        "sup",
        child(stage("a", counting(0))),
        child(stage("b", relay(0))),
        child(stage("c", relay(0))),
        strategy=strategy,
        **kw,
    )


async def _counts(sup: Supervisor) -> dict[str, int]:
    return {n: await sup.get_state(n) for n in ("a", "b", "c")}


async def _crash_a(sup: Supervisor) -> None:
    with pytest.raises(StepError, match="ZeroDivisionError"):
        await sup.pipeline.call(0)


async def test_one_for_one_restarts_only_the_crashed_stage() -> None:
    """one_for_one: the crashed stage restarts from its initial state; the others keep theirs."""
    async with open_supervisor(three(Strategy.ONE_FOR_ONE, intensity=5)) as sup:
        for x in (1, 2, 3):
            await sup.pipeline.call(x)
        await _crash_a(sup)
        assert await sup.pipeline.call(4) == (0, 4, 4)  # c counts on; a restarted
        assert await _counts(sup) == {"a": 1, "b": 4, "c": 4}
        st = await sup.status()
        assert [c.restarts for c in st.children] == [1, 0, 0]
        assert all(c.running for c in st.children)
        assert st.children[0].failed == 1


async def test_rest_for_one_restarts_the_stage_and_everything_downstream() -> None:
    """rest_for_one: a crash of b resets b and c, not a."""

    def bad_b() -> SupervisorSpec:
        return supervisor(
            "sup",
            stage("a", counting(0)),
            stage("b", counting_relay()),
            stage("c", relay(0)),
            strategy=Strategy.REST_FOR_ONE,
            intensity=5,
        )

    async with open_supervisor(bad_b()) as sup:
        for x in (1, 2):
            await sup.pipeline.call(x)
        with pytest.raises(StepError):
            await sup.pipeline.call(-1)  # b crashes on x == -1 (a passes it on)
        await sup.pipeline.call(5)
        assert await _counts(sup) == {"a": 4, "b": 1, "c": 1}
        st = await sup.status()
        assert [c.restarts for c in st.children] == [0, 1, 1]


async def test_one_for_all_restarts_every_stage() -> None:
    """one_for_all: a crash of b resets a, b and c."""
    spec = supervisor(
        "sup",
        stage("a", counting(0)),
        stage("b", counting_relay()),
        stage("c", relay(0)),
        strategy=Strategy.ONE_FOR_ALL,
        intensity=5,
    )
    async with open_supervisor(spec) as sup:
        for x in (1, 2):
            await sup.pipeline.call(x)
        with pytest.raises(StepError):
            await sup.pipeline.call(-1)
        await sup.pipeline.call(5)
        assert await _counts(sup) == {"a": 1, "b": 1, "c": 1}


def counting_relay() -> Machine:
    """``(k, x, n) -> (k, x, n)`` counting its items; crashes when ``x == -1``.

    ``(x + 1) // (x + 1)`` is 1 except for x == -1.
    """
    x1 = fst >> proj(1, 3) >> fanout(id_, const(1)) >> prim("add")
    one = x1 >> fanout(id_, id_) >> prim("floordiv")
    body = fanout(fanout(snd, one) >> prim("add"), fst)
    return Machine.build(loop(body, 0, int), OUT, OUT)


async def test_queued_items_survive_a_restart_and_the_poison_is_dead() -> None:
    """Items queued behind a poison item survive the restart; the poison is a dead letter."""
    dead = DeadLetters(16)
    spec = supervisor("sup", stage("a", counting(0), batch_limit=4), intensity=5)
    async with open_supervisor(spec, dead_letters=dead) as sup:
        await sup.pipeline.send_batch([1, 2, 0, 3, 4, 5, 0, 6])
        outs = [await sup.pipeline.receive() for _ in range(6)]
    assert [o[1] for o in outs] == [1, 2, 3, 4, 5, 6]
    assert [o[2] for o in outs] == [1, 2, 1, 2, 3, 1]  # counted afresh after each restart
    assert [d.item for d in dead] == [0, 0]


async def test_temporary_stage_is_not_restarted_and_not_counted() -> None:
    """A temporary child is never restarted; its exit does not count towards the intensity."""
    spec = supervisor("sup", child(stage("a", counting(0)), restart=Restart.TEMPORARY), intensity=0)
    async with open_supervisor(spec) as sup:
        await _crash_a(sup)
        await anyio.wait_all_tasks_blocked()
        st = await sup.status()
        assert not st.children[0].running
        assert st.children[0].restarts == 0
        assert not sup.stopped


async def test_intensity_exceeded_escalates() -> None:
    """More than `intensity` restarts within `period`: the supervisor escalates."""
    clock = FakeClock()
    spec = supervisor("top", stage("a", counting(0)), intensity=2, period=10)
    seen: list[Supervisor] = []

    async def run() -> None:
        async with open_supervisor(spec, clock=clock) as sup:
            seen.append(sup)
            for t in (0.0, 1.0, 2.0):
                clock.now = t
                await _crash_a(sup)
                await sup.pipeline.call(1)  # answered once a is restarted
            clock.now = 3.0
            await _crash_a(sup)  # the third restart within 10s: one too many
            await anyio.sleep_forever()

    with pytest.raises(EscalationError) as info:
        await run()
    assert info.value.supervisor == "top"
    assert info.value.child == "a"
    (sup,) = seen
    assert sup.stopped
    assert isinstance(sup.exit_reason, EscalationError)
    with pytest.raises(SupervisorError, match="has stopped"):
        await sup.status()


async def test_restarts_outside_the_period_do_not_accumulate() -> None:
    """Restarts older than `period` seconds no longer count (a sliding window)."""
    clock = FakeClock()
    spec = supervisor("top", stage("a", counting(0)), intensity=1, period=5)
    async with open_supervisor(spec, clock=clock) as sup:
        for t in (0.0, 5.5, 11.0, 16.5):
            clock.now = t
            await _crash_a(sup)
            assert await sup.pipeline.call(7) == (0, 7, 1)
        assert (await sup.status()).children[0].restarts == 4


async def test_pending_callers_learn_of_an_escalation() -> None:
    """When a supervisor escalates, its pipeline is cancelled and waiting callers are told."""
    gate = anyio.Event()
    errors: list[BaseException] = []

    async def blocked_call(sup: Supervisor) -> None:
        try:
            await sup.pipeline.call(5)
        except PipelineClosed as exc:
            errors.append(exc)
        gate.set()

    spec = supervisor("top", stage("a", counting(0)), stage("b", relay(0)), intensity=0)
    seen: list[Supervisor] = []

    async def run(outer: TaskGroup) -> None:
        async with open_supervisor(spec, output_capacity=1) as sup:
            seen.append(sup)
            for _ in range(2):  # the first output fills the port, b blocks on the second
                await sup.pipeline.send(1)
                await anyio.wait_all_tasks_blocked()
            outer.start_soon(blocked_call, sup)
            await anyio.wait_all_tasks_blocked()
            await _crash_a(sup)  # intensity 0: the supervisor gives up
            await anyio.sleep_forever()

    async with anyio.create_task_group() as outer:
        with pytest.raises(EscalationError):
            await run(outer)
        await gate.wait()
    assert seen[0].stopped
    assert len(errors) == 1


def _nested(name: str, restart: Restart, intensity: int = 0) -> Any:
    inner = supervisor(name, stage("x", counting(0)), intensity=intensity)
    return child(inner, restart=restart)


async def test_nested_supervisor_escalation_is_a_child_crash() -> None:
    """A nested supervisor that gives up is restarted by its parent with a fresh pipeline."""
    spec = supervisor("top", _nested("inner", Restart.PERMANENT), intensity=3)
    async with open_supervisor(spec) as top:
        inner = top.child("inner")
        await inner.pipeline.call(1)
        assert await inner.get_state("x") == 1
        with pytest.raises(StepError):
            await inner.pipeline.call(0)  # intensity 0: the inner supervisor escalates
        await inner.wait()
        assert isinstance(inner.exit_reason, EscalationError)
        await anyio.wait_all_tasks_blocked()
        again = top.child("inner")
        assert again is not inner
        assert await again.get_state("x") == 0
        st = await top.status()
        assert st.children[0].restarts == 1
        assert st.children[0].supervisor is not None
        assert st.children[0].supervisor.children[0].name == "x"


async def test_transient_and_permanent_nested_supervisors_on_normal_exit() -> None:
    """On a normal exit a permanent child is restarted, a transient one is not."""
    spec = supervisor(
        "top",
        _nested("perm", Restart.PERMANENT),
        _nested("trans", Restart.TRANSIENT),
        intensity=5,
    )
    async with open_supervisor(spec) as top:
        await top.child("perm").stop()
        await top.child("trans").stop()
        await anyio.wait_all_tasks_blocked()
        st = await top.status()
        assert [(c.name, c.running, c.restarts) for c in st.children] == [
            ("perm", True, 1),
            ("trans", False, 0),
        ]
        with pytest.raises(SupervisorError, match="no running nested supervisor"):
            top.child("trans")


async def test_transient_nested_supervisor_is_restarted_after_a_crash() -> None:
    """A transient child is restarted when it exits abnormally."""
    spec = supervisor("top", _nested("trans", Restart.TRANSIENT), intensity=5)
    async with open_supervisor(spec) as top:
        with pytest.raises(StepError):
            await top.child("trans").pipeline.call(0)
        await anyio.wait_all_tasks_blocked()
        st = await top.status()
        assert (st.children[0].running, st.children[0].restarts) == (True, 1)


async def test_rest_for_one_restarts_later_nested_supervisors() -> None:
    """rest_for_one, nested supervisors: the crashed one and later ones restart."""
    spec = supervisor(
        "top",
        _nested("s1", Restart.PERMANENT),
        _nested("s2", Restart.PERMANENT),
        _nested("s3", Restart.PERMANENT),
        strategy=Strategy.REST_FOR_ONE,
        intensity=5,
    )
    async with open_supervisor(spec) as top:
        first = {n: top.child(n) for n in ("s1", "s2", "s3")}
        with pytest.raises(StepError):
            await first["s2"].pipeline.call(0)
        await anyio.wait_all_tasks_blocked()
        now = {n: top.child(n) for n in ("s1", "s2", "s3")}
        assert now["s1"] is first["s1"]
        assert now["s2"] is not first["s2"]
        assert now["s3"] is not first["s3"]
        assert first["s3"].stopped
        assert first["s3"].exit_reason is None  # terminated cleanly, not crashed


async def test_one_for_all_drops_temporary_siblings() -> None:
    """one_for_all: siblings are terminated and restarted, except temporary ones,
    whose specs are dropped (as in OTP)."""
    spec = supervisor(
        "top",
        _nested("s1", Restart.PERMANENT),
        _nested("tmp", Restart.TEMPORARY),
        strategy=Strategy.ONE_FOR_ALL,
        intensity=5,
    )
    async with open_supervisor(spec) as top:
        with pytest.raises(StepError):
            await top.child("s1").pipeline.call(0)
        await anyio.wait_all_tasks_blocked()
        st = await top.status()
        assert [(c.name, c.running) for c in st.children] == [("s1", True)]


async def test_brutal_kill_shutdown_cancels_a_nested_supervisor() -> None:
    """shutdown=0 cancels a nested supervisor at once instead of stopping it."""
    inner = supervisor("inner", stage("x", counting(0)))
    spec = supervisor("top", child(inner, shutdown=0), _nested("s2", Restart.PERMANENT))
    async with open_supervisor(spec) as top:
        handle = top.child("inner")
    assert handle.stopped
    assert top.stopped


async def test_restore_hook_gives_the_restart_state() -> None:
    """A restarted stage starts from the snapshot hook's state, validated against its type."""
    calls: list[str] = []

    def restore(m: Any) -> Any:
        calls.append(m.version)
        return 100

    spec = supervisor("sup", child(stage("a", counting(0)), restore=restore), intensity=5)
    async with open_supervisor(spec) as sup:
        await _crash_a(sup)
        assert await sup.pipeline.call(3) == (0, 3, 101)
    assert calls == [counting(0).version]


async def test_failing_restore_hook_counts_as_failed_restarts() -> None:
    """A failing restore hook (or a wrong state) is retried until the intensity runs out."""

    def restore(m: Any) -> Any:
        return "not an int"

    spec = supervisor("sup", child(stage("a", counting(0)), restore=restore), intensity=2)

    async def run() -> None:
        async with open_supervisor(spec) as sup:
            await _crash_a(sup)
            await anyio.sleep_forever()

    with pytest.raises(EscalationError, match="restore hook failed"):
        await run()


async def test_supervisor_without_a_pipeline_says_so() -> None:
    """A supervisor of supervisors has no pipeline of its own."""
    async with open_supervisor(supervisor("top", _nested("s", Restart.PERMANENT))) as top:
        with pytest.raises(SupervisorError, match="no stage children"):
            top.pipeline.send_nowait(1)
        with pytest.raises(SupervisorError, match="no stage named"):
            await top.get_state("s")


async def test_stop_is_idempotent_and_refuses_later_requests() -> None:
    """After stop, requests fail with SupervisorError and stop returns at once."""
    async with open_supervisor(supervisor("sup", stage("a", counting(0)))) as sup:
        await sup.pipeline.call(1)
        await sup.stop()
        await sup.stop()
        with pytest.raises(SupervisorError, match="has stopped"):
            await sup.history()


def _bad(value: Any) -> Any:
    """A wrong value, typed Any so the spec's own checks (not mypy) refuse it."""
    return value


@pytest.mark.parametrize(
    ("make", "path"),
    [
        (lambda: child(stage("a", counting(0)), restart=_bad("always")), "restart"),
        (lambda: child(stage("a", counting(0)), shutdown=-1), "shutdown"),
        (lambda: child(stage("a", counting(0)), shutdown=float("nan")), "shutdown"),
        (lambda: child(_bad("not a spec")), "start"),
        (lambda: child(stage("a", counting(0)), restore=_bad(3)), "restore"),
        (lambda: supervisor("s", stage("a", counting(0)), intensity=-1), "intensity"),
        (lambda: supervisor("s", stage("a", counting(0)), period=0), "period"),
        (lambda: supervisor("s", stage("a", counting(0)), strategy=_bad("one")), "strategy"),
        (
            lambda: supervisor("s", stage("a", counting(0)), stage("a", counting(0))),
            "children[1].name",
        ),
        (lambda: supervisor("s", supervisor("t"), stage("a", counting(0))), "children[1]"),
        (lambda: supervisor("no such name"), "name"),
    ],
)
def test_child_specs_are_checked_field_by_field(make: Any, path: str) -> None:
    """Every field of a child or supervisor spec is validated before anything runs."""
    with pytest.raises(ChildSpecError) as info:
        make()
    assert info.value.path == path
    assert "expected" in str(info.value)


def test_stages_of_a_supervisor_must_fit_together() -> None:
    """The stage children form one pipeline, type-checked like any other."""
    from arrowloop.errors import CheckError

    with pytest.raises(CheckError):
        supervisor("s", stage("a", counting(0)), stage("b", counting(0)))


async def test_items_are_validated_at_the_door() -> None:
    """The supervised pipeline refuses an item of the wrong type."""
    async with open_supervisor(supervisor("s", stage("a", counting(0)))) as sup:
        with pytest.raises(ValidationError):
            await sup.pipeline.call("x")
