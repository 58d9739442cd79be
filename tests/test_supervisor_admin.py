"""Child administration on a running supervisor (OTP's start_child, terminate_child,
restart_child, delete_child, which_children, count_children).

Nested supervisors get OTP's semantics; a stage is paused by
terminate_child and resumed by restart_child, on the channel it keeps.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from arrowloop.errors import ChildSpecError, SupervisorError
from arrowloop.supervisor import (
    ChildCounts,
    ChildInfo,
    Restart,
    SupervisorSpec,
    child,
    open_supervisor,
    supervisor,
)
from tests.test_supervisor import counting, relay, stage

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def _inner(name: str, restore: Any = None) -> SupervisorSpec:
    return supervisor(name, child(stage("x", counting(0)), restore=restore), intensity=5)


def _top(*extra: Any) -> SupervisorSpec:
    return supervisor(
        "top",
        child(stage("a", counting(0)), shutdown=2.0),
        stage("b", relay(0)),
        child(_inner("s1"), restart=Restart.TRANSIENT),
        *extra,
        intensity=5,
    )


async def _states(sup: Any) -> list[tuple[str, str]]:
    return [(c.name, c.state) for c in await sup.which_children()]


async def test_which_children_and_count_children_list_otp_fields() -> None:
    """Listing: id, state, kind, restart, shutdown, version (stages) per child."""
    async with open_supervisor(_top()) as top:
        listed = await top.which_children()
        a_version = top.pipeline.version("a")
        assert listed[0] == ChildInfo("a", "running", "stage", "permanent", 2.0, a_version)
        assert listed[2] == ChildInfo("s1", "running", "supervisor", "transient", 5.0, None)
        assert await top.count_children() == ChildCounts(3, 3, 1, 2)


async def test_terminate_and_restart_a_nested_supervisor() -> None:
    """terminate_child stops it and keeps its spec (not restarted); restart_child
    starts it again; a running child cannot be restarted or deleted."""
    async with open_supervisor(_top()) as top:
        first = top.child("s1")
        await first.pipeline.call(1)
        await top.terminate_child("s1")
        assert first.stopped
        assert ("s1", "terminated") in await _states(top)
        await anyio.wait_all_tasks_blocked()
        assert ("s1", "terminated") in await _states(top)  # not restarted
        assert await top.count_children() == ChildCounts(3, 2, 1, 2)
        await top.terminate_child("s1")  # terminating a terminated child: nothing
        again = await top.restart_child("s1")
        assert again is top.child("s1")
        assert again is not first
        assert await again.pipeline.call(1) == (0, 1, 1)  # from its initial state
        with pytest.raises(SupervisorError, match="'s1' is running") as info:
            await top.restart_child("s1")
        assert info.value.path == "top.s1"
        with pytest.raises(SupervisorError, match="terminate it first"):
            await top.delete_child("s1")


async def test_a_transient_child_that_ended_normally_is_brought_back_alone() -> None:
    """A transient child that stopped normally stays down; restart_child brings
    it back without touching its siblings."""
    async with open_supervisor(_top()) as top:
        await top.pipeline.call(1)
        await top.child("s1").stop()
        await anyio.wait_all_tasks_blocked()
        assert ("s1", "terminated") in await _states(top)
        await top.restart_child("s1")
        assert await _states(top) == [("a", "running"), ("b", "running"), ("s1", "running")]
        assert await top.get_state("a") == 1  # the stages were left alone


async def test_start_child_adds_a_nested_supervisor_and_delete_child_removes_it() -> None:
    """start_child runs a new child at once; names are unique; delete_child
    forgets a terminated one, after which its name can be used again."""
    async with open_supervisor(_top()) as top:
        handle = await top.start_child(child(_inner("s2"), shutdown=1.0))
        assert handle is top.child("s2")
        assert await handle.pipeline.call(4) == (0, 4, 1)
        assert (await _states(top))[-1] == ("s2", "running")
        with pytest.raises(SupervisorError, match="already started"):
            await top.start_child(_inner("s2"))
        await top.terminate_child("s2")
        with pytest.raises(SupervisorError, match="already present"):
            await top.start_child(_inner("s2"))
        await top.delete_child("s2")
        assert [n for n, _ in await _states(top)] == ["a", "b", "s1"]
        assert await top.start_child(_inner("s2")) is top.child("s2")
        st = await top.status()
        assert [c.name for c in st.children] == ["a", "b", "s1", "s2"]


async def test_a_child_started_at_runtime_is_supervised() -> None:
    """A child added by start_child is restarted when it crashes, like any other."""
    async with open_supervisor(_top()) as top:
        s2 = await top.start_child(supervisor("s2", stage("x", counting(0)), intensity=0))
        with pytest.raises(Exception, match="ZeroDivisionError"):
            await s2.pipeline.call(0)  # s2 gives up: a crash of top's child
        await s2.wait()
        await anyio.wait_all_tasks_blocked()
        assert top.child("s2") is not s2
        assert [c.restarts for c in (await top.status()).children][-1] == 1


async def test_a_child_that_fails_to_restart_stays_terminated() -> None:
    """restart_child of a supervisor whose start fails raises, naming the child
    and the cause; the child stays terminated (not retried)."""

    def broken(machine: Any) -> Any:
        raise RuntimeError("no snapshot")

    bad = supervisor("bad", child(stage("x", counting(0)), restore=broken))
    async with open_supervisor(_top()) as top:
        # A restore hook applies when a supervisor is restarted, so start it,
        # stop it, and bring it back with restart_child.
        await top.start_child(bad)
        await top.terminate_child("bad")
        with pytest.raises(SupervisorError, match=r"'bad' could not be started: .*no snapshot"):
            await top.restart_child("bad")
        assert ("bad", "terminated") in await _states(top)


async def test_a_temporary_child_is_forgotten_once_terminated() -> None:
    """OTP drops a temporary child's spec when it ends or is terminated."""
    async with open_supervisor(_top(child(_inner("tmp"), restart=Restart.TEMPORARY))) as top:
        await top.terminate_child("tmp")
        assert [n for n, _ in await _states(top)] == ["a", "b", "s1"]
        with pytest.raises(SupervisorError, match="not found"):
            await top.restart_child("tmp")


async def test_errors_name_the_child() -> None:
    """Unknown children, stages that cannot be added or deleted, bad specs."""
    async with open_supervisor(_top()) as top:
        for op in (top.terminate_child, top.restart_child, top.delete_child):
            with pytest.raises(SupervisorError, match="'nope' not found") as info:
                await op("nope")
            assert info.value.path == "top.nope"
        with pytest.raises(SupervisorError, match="'c' is a stage"):
            await top.start_child(child(stage("c", relay(0))))
        await top.terminate_child("b")
        with pytest.raises(SupervisorError, match="'b' is a stage"):
            await top.delete_child("b")
        with pytest.raises(ChildSpecError):
            await top.start_child("not a spec")  # type: ignore[arg-type]


async def test_terminate_child_pauses_a_stage_and_restart_child_resumes_it() -> None:
    """A terminated stage steps nothing; what reaches it waits in its channel;
    restart_child resumes it from its initial state and nothing is lost."""
    async with open_supervisor(_top()) as top:
        p = top.pipeline
        await p.call(1)
        await top.terminate_child("b")
        assert ("b", "terminated") in await _states(top)
        tickets = [await p.submit(x) for x in (2, 3, 4)]
        await anyio.wait_all_tasks_blocked()
        st = await top.status()
        assert (st.children[1].state, st.children[1].running) == ("terminated", False)
        assert (st.children[1].processed, st.children[1].queue_depth) == (1, 3)
        assert not any(t.done for t in tickets)
        assert await top.restart_child("b") is None
        assert [await t.result() for t in tickets] == [(0, 2, 1), (0, 3, 2), (0, 4, 3)]
        assert (await top.status()).children[1].restarts == 1


async def test_a_restarted_stage_uses_its_restore_hook() -> None:
    """restart_child of a stage starts it from its restore hook's state."""

    async def restore(machine: Any) -> Any:
        return 40

    spec = supervisor("top", child(stage("a", counting(0)), restore=restore))
    async with open_supervisor(spec) as top:
        await top.terminate_child("a")
        await top.restart_child("a")
        assert await top.pipeline.call(2) == (0, 2, 41)


async def test_the_status_data_carries_the_listing_fields() -> None:
    """The control port's status JSON keeps its fields and adds the listing's."""
    from arrowloop.upgrade import status_data

    async with open_supervisor(_top()) as top:
        await top.terminate_child("s1")
        data = status_data(await top.status())
        a, _, s1 = data["children"]
        assert {"name", "kind", "restart", "running", "restarts", "version"} <= set(a)
        assert (a["state"], a["shutdown"], a["abandoned"], a["significant"]) == (
            "running",
            2.0,
            0,
            False,
        )
        assert (s1["state"], s1["running"]) == ("terminated", False)
