"""Restarts never freeze the supervisor: a failing restart is retried through its mailbox.

A restore hook that fails (slowly, forever) used to be retried in a tight
loop inside the supervisor, so status, data, stop and even cancellation
could not run. Now each attempt runs beside the loop and each retry is a
message behind whatever is in the mailbox (OTP's ``try_again_restart``);
the child is listed as ``restarting`` meanwhile.
"""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest

from arrowloop.errors import EscalationError, PipelineClosed, StepError
from arrowloop.supervisor import Restart, child, open_supervisor, supervisor
from tests.test_supervisor import FakeClock, counting, relay, stage

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


class StoreDown(Exception):
    """The snapshot store is unreachable."""


async def test_a_slow_failing_restore_hook_leaves_the_supervisor_answering() -> None:
    """A hook failing after 0.2 s, forever: status answers within 50 ms, the
    child is listed as restarting, a sibling keeps serving, stop returns."""
    calls = 0
    storming = anyio.Event()

    async def restore(machine: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            storming.set()
        await anyio.sleep(0.2)
        raise StoreDown("snapshot store is down")

    inner = supervisor("other", stage("x", counting(0)))
    spec = supervisor(
        "sup",
        child(stage("a", counting(0)), restore=restore, shutdown=1.0),
        inner,
        intensity=8,
        period=1.0,
    )
    with anyio.fail_after(20):
        async with open_supervisor(spec) as sup:
            with pytest.raises(StepError):
                await sup.pipeline.call(0)
            behind = await sup.pipeline.submit(1)  # waits in a's channel
            await storming.wait()  # a storm: attempts at 0.2 s intervals
            for served in range(1, 6):
                with anyio.fail_after(0.05):
                    st = await sup.status()
                assert st.children[0].state == "restarting"
                assert not st.children[0].running
                with anyio.fail_after(0.05):
                    listed = await sup.which_children()
                assert [(c.name, c.state) for c in listed] == [
                    ("a", "restarting"),
                    ("other", "running"),
                ]
                assert await sup.child("other").pipeline.call(5) == (0, 5, served)
                await anyio.sleep(0.1)
            started = anyio.current_time()
            with anyio.fail_after(2.0):  # the stop budget: a's shutdown (1 s) and some
                await sup.stop()
            assert anyio.current_time() - started < 2.0
    assert sup.exit_reason is None
    # The item queued behind the crash was never served: answered, not dropped.
    with pytest.raises(PipelineClosed):
        await behind.result()


async def test_a_blocking_restore_hook_runs_off_the_event_loop() -> None:
    """A plain (blocking) hook runs in a worker thread: the loop is not frozen."""

    def restore(machine: Any) -> Any:
        time.sleep(0.2)
        raise StoreDown("snapshot store is down")

    spec = supervisor("sup", child(stage("a", counting(0)), restore=restore), intensity=50)
    with anyio.fail_after(20):
        async with open_supervisor(spec) as sup:
            with pytest.raises(StepError):
                await sup.pipeline.call(0)
            await anyio.sleep(0.05)
            for _ in range(3):
                with anyio.fail_after(0.05):
                    assert (await sup.status()).children[0].state == "restarting"
                await anyio.sleep(0.1)
            with anyio.fail_after(5):
                await sup.stop()


async def test_each_attempt_counts_towards_the_intensity() -> None:
    """With a fake clock at rest, intensity N allows N attempts: the first restart
    and N - 1 retries; one more and the supervisor escalates naming the hook."""
    calls = 0

    async def restore(machine: Any) -> Any:
        nonlocal calls
        calls += 1
        raise StoreDown("down")

    spec = supervisor("sup", child(stage("a", counting(0)), restore=restore), intensity=3)

    async def run() -> None:
        async with open_supervisor(spec, clock=FakeClock()) as sup:
            with pytest.raises(StepError):
                await sup.pipeline.call(0)
            await anyio.sleep_forever()

    with anyio.fail_after(10), pytest.raises(EscalationError, match="restore hook failed"):
        await run()
    assert calls == 3


async def test_the_window_slides_on_the_injected_clock_and_a_late_success_restarts() -> None:
    """Attempts spread over more than the period never escalate; once the hook
    succeeds the stage runs from its state and serves what queued meanwhile."""
    clock = FakeClock()
    calls = 0

    async def restore(machine: Any) -> Any:
        nonlocal calls
        calls += 1
        clock.now += 10.0  # each attempt lands in a fresh window
        if calls < 6:
            raise StoreDown("down")
        return 100

    spec = supervisor(
        "sup",
        child(stage("a", counting(0)), restore=restore),
        stage("b", relay(0)),
        intensity=1,
        period=5.0,
    )
    with anyio.fail_after(10):
        async with open_supervisor(spec, clock=clock) as sup:
            with pytest.raises(StepError):
                await sup.pipeline.call(0)
            queued = await sup.pipeline.submit(7)
            assert await queued.result() == (0, 7, 1)  # b has seen one item
            assert calls == 6
            assert await sup.get_state("a") == 101
            st = await sup.status()
            assert (st.children[0].state, st.children[0].restarts) == ("running", 1)


async def test_terminate_child_ends_a_restart_storm() -> None:
    """terminate_child of a restarting stage gets in between two attempts and
    stops the retries; restart_child later starts it again."""
    failing = True

    async def restore(machine: Any) -> Any:
        await anyio.sleep(0.05)
        if failing:
            raise StoreDown("down")
        return 0

    spec = supervisor(
        "sup", child(stage("a", counting(0)), restore=restore), intensity=100, period=1.0
    )
    with anyio.fail_after(20):
        async with open_supervisor(spec) as sup:
            with pytest.raises(StepError):
                await sup.pipeline.call(0)
            await sup.terminate_child("a")
            assert [c.state for c in await sup.which_children()] == ["terminated"]
            await anyio.sleep(0.2)  # no retry comes back to life
            assert [c.state for c in await sup.which_children()] == ["terminated"]
            failing = False
            assert await sup.restart_child("a") is None
            assert await sup.pipeline.call(3) == (0, 3, 1)


@pytest.mark.parametrize("restart", [Restart.PERMANENT, Restart.TRANSIENT])
async def test_stop_during_an_attempt_cancels_it(restart: Restart) -> None:
    """stop does not wait for a hook that never returns."""

    async def restore(machine: Any) -> Any:
        await anyio.sleep_forever()

    spec = supervisor("sup", child(stage("a", counting(0)), restore=restore, restart=restart))
    with anyio.fail_after(10):
        async with open_supervisor(spec) as sup:
            with pytest.raises(StepError):
                await sup.pipeline.call(0)
            assert [c.state for c in await sup.which_children()] == ["restarting"]
            await sup.stop()
    assert sup.stopped
