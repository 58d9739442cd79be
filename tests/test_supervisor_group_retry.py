"""A start that fails during a group restart is retried for the whole group.

OTP: under one_for_all, a child that fails to start during a restart makes
the supervisor terminate the group and start all of it again; under
rest_for_one, that child and the ones after it.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from arrowloop.errors import EscalationError, StepError
from arrowloop.supervisor import (
    Strategy,
    Supervisor,
    SupervisorSpec,
    child,
    open_supervisor,
    supervisor,
)
from tests.test_supervisor import counting, stage

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


def _inner(name: str, fail_first: int = 0) -> SupervisorSpec:
    """A nested supervisor whose stage's restore hook (run when it is restarted)
    fails ``fail_first`` times, then gives 0."""
    left = fail_first

    async def restore(machine: Any) -> Any:
        nonlocal left
        if left:
            left -= 1
            raise RuntimeError(f"{name}: snapshot store down")
        return 0

    return supervisor(name, child(stage("x", counting(0)), restore=restore), intensity=0)


async def _crash(top: Supervisor, name: str) -> None:
    inner = top.child(name)
    with pytest.raises(StepError):
        await inner.pipeline.call(0)
    await inner.wait()


async def _settled(top: Supervisor) -> dict[str, tuple[str, int]]:
    """Each child's state and restart count once no restart is in progress."""
    while True:
        await anyio.wait_all_tasks_blocked()
        st = await top.status()
        if all(c.state != "restarting" for c in st.children):
            return {c.name: (c.state, c.restarts) for c in st.children}


async def test_one_for_all_retries_the_whole_group() -> None:
    """one_for_all: B fails to start after A restarted; the retry restarts A
    again too, then B."""
    spec = supervisor(
        "top", _inner("A"), _inner("B", fail_first=1), strategy=Strategy.ONE_FOR_ALL, intensity=5
    )
    with anyio.fail_after(10):
        async with open_supervisor(spec) as top:
            first_a = top.child("A")
            await _crash(top, "A")
            assert await _settled(top) == {"A": ("running", 2), "B": ("running", 1)}
            assert top.child("A") is not first_a
            assert await top.child("B").pipeline.call(1) == (0, 1, 1)


async def test_rest_for_one_retries_from_the_child_that_failed() -> None:
    """rest_for_one: B crashes; B, C and D are terminated, B restarts, C fails
    to start; the retry starts C and D only (B is not restarted again)."""
    spec = supervisor(
        "top",
        _inner("A"),
        _inner("B"),
        _inner("C", fail_first=1),
        _inner("D"),
        strategy=Strategy.REST_FOR_ONE,
        intensity=5,
    )
    with anyio.fail_after(10):
        async with open_supervisor(spec) as top:
            await _crash(top, "B")
            assert await _settled(top) == {
                "A": ("running", 0),
                "B": ("running", 1),
                "C": ("running", 1),
                "D": ("running", 1),
            }


async def test_one_for_one_retries_the_failed_child_alone() -> None:
    """one_for_one: only the child that failed is tried again."""
    spec = supervisor("top", _inner("A", fail_first=2), _inner("B"), intensity=5)
    with anyio.fail_after(10):
        async with open_supervisor(spec) as top:
            await _crash(top, "A")
            assert await _settled(top) == {"A": ("running", 1), "B": ("running", 0)}


async def test_a_group_that_keeps_failing_escalates() -> None:
    """Every attempt of the group counts: past the intensity the supervisor gives up."""
    spec = supervisor(
        "top", _inner("A"), _inner("B", fail_first=99), strategy=Strategy.ONE_FOR_ALL, intensity=3
    )

    async def run() -> None:
        async with open_supervisor(spec) as top:
            await _crash(top, "A")
            await anyio.sleep_forever()

    with anyio.fail_after(10), pytest.raises(EscalationError, match="'B' could not be restarted"):
        await run()
