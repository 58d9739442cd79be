"""OTP's auto_shutdown: a supervisor that stops when significant children end."""

from __future__ import annotations

import anyio
import pytest

from arrowloop.errors import ChildSpecError, PipelineClosed, StepError
from arrowloop.supervisor import (
    AutoShutdown,
    Restart,
    SupervisorSpec,
    child,
    open_supervisor,
    supervisor,
)
from tests.test_supervisor import counting, stage

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def _job(name: str) -> SupervisorSpec:
    return supervisor(name, stage("x", counting(0)))


def _top(mode: AutoShutdown, *significant: str) -> SupervisorSpec:
    return supervisor(
        "top",
        *(child(_job(n), restart=Restart.TRANSIENT, significant=True) for n in significant),
        child(_job("service")),
        auto_shutdown=mode,
        intensity=5,
    )


async def test_any_significant_child_ending_stops_the_supervisor() -> None:
    """any_significant: the first significant child to end normally stops it all."""
    with anyio.fail_after(10):
        async with open_supervisor(_top(AutoShutdown.ANY_SIGNIFICANT, "j1", "j2")) as top:
            service = top.child("service")
            await top.child("j1").stop()
            await top.wait()
            assert top.exit_reason is None  # a normal stop, not an escalation
            assert service.stopped


async def test_all_significant_children_must_end() -> None:
    """all_significant: it stops only once every significant child has ended."""
    with anyio.fail_after(10):
        async with open_supervisor(_top(AutoShutdown.ALL_SIGNIFICANT, "j1", "j2")) as top:
            await top.child("j1").stop()
            await anyio.wait_all_tasks_blocked()
            assert not top.stopped
            assert [c.state for c in await top.which_children()] == [
                "terminated",
                "running",
                "running",
            ]
            await top.child("j2").stop()
            await top.wait()


async def test_terminating_a_significant_child_does_not_stop_the_supervisor() -> None:
    """Only ends the supervisor did not cause count (as in OTP)."""
    with anyio.fail_after(10):
        async with open_supervisor(_top(AutoShutdown.ANY_SIGNIFICANT, "j1")) as top:
            await top.terminate_child("j1")
            await anyio.wait_all_tasks_blocked()
            assert not top.stopped


async def test_never_ignores_significance() -> None:
    """The default, never: significant children are not special."""
    with anyio.fail_after(10):
        async with open_supervisor(_top(AutoShutdown.NEVER, "j1")) as top:
            await top.child("j1").stop()
            await anyio.wait_all_tasks_blocked()
            assert not top.stopped


async def test_a_significant_temporary_stage_that_crashes_stops_the_supervisor() -> None:
    """A temporary stage is not restarted: if significant, its crash ends the
    supervisor, and what was queued for it is answered."""
    spec = supervisor(
        "top",
        child(stage("a", counting(0)), restart=Restart.TEMPORARY, significant=True),
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )
    with anyio.fail_after(10):
        async with open_supervisor(spec) as top:
            top.pipeline.pause_stage("a")
            poison = await top.pipeline.submit(0)
            behind = await top.pipeline.submit(1)
            top.pipeline.restart_stage("a")
            with pytest.raises(StepError):
                await poison.result()
            await top.wait()
            with pytest.raises(PipelineClosed):
                await behind.result()


async def test_a_nested_supervisor_that_shuts_down_is_a_normal_exit() -> None:
    """The parent sees a normal exit: a transient child stays down."""
    inner = supervisor(
        "inner",
        child(_job("j"), restart=Restart.TRANSIENT, significant=True),
        auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
    )
    spec = supervisor("top", child(inner, restart=Restart.TRANSIENT), intensity=0)
    with anyio.fail_after(10):
        async with open_supervisor(spec) as top:
            await top.child("inner").child("j").stop()
            await top.child("inner").wait()
            await anyio.wait_all_tasks_blocked()
            assert [c.state for c in await top.which_children()] == ["terminated"]
            assert not top.stopped


def test_significant_children_cannot_be_permanent() -> None:
    """As OTP checks: a permanent child is never significant."""
    with pytest.raises(ChildSpecError) as info:
        child(_job("j"), significant=True)
    assert info.value.path == "significant"
