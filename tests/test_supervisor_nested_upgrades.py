"""Code changes made inside a nested supervisor survive its restart by the parent.

In OTP a code change replaces the child specs, so a restart runs the new
code. Here a change is recorded in the supervisor's child specs up the
tree (``current_spec()``), a parent restarts a nested supervisor from
them, its stages start from their restore hooks' states, and its history
carries over.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from arrowloop.errors import StepError
from arrowloop.supervisor import (
    Strategy,
    Supervisor,
    SupervisorSpec,
    child,
    code_change,
    open_supervisor,
    supervisor,
)
from tests.test_supervisor import counting, stage

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]

V0, V2 = counting(0), counting(2)


def _inner(name: str, seen: list[str], restored: int = 10) -> SupervisorSpec:
    async def restore(machine: Any) -> Any:
        seen.append(machine.version)
        return restored

    return supervisor(name, child(stage("x", V0), restore=restore), intensity=0)


async def _upgrade(inner: Supervisor) -> None:
    await inner.code_change(code_change("x", V0.version, V2, requested_by="ops"))
    assert await inner.pipeline.call(1) == (2, 1, 1)


async def _crash(top: Supervisor, name: str) -> Supervisor:
    """Make nested ``name`` give up; return the handle its parent restarts."""
    inner = top.child(name)
    with pytest.raises(StepError):
        await inner.pipeline.call(0)
    await inner.wait()
    await anyio.wait_all_tasks_blocked()
    again = top.child(name)
    assert again is not inner
    return again


async def test_a_restarted_nested_supervisor_runs_the_new_version_from_its_snapshot() -> None:
    """After a change in the child and its crash, the parent's restart runs the
    new machine, restored through the hook (given the new machine), with the
    history of the change."""
    seen: list[str] = []
    spec = supervisor("top", _inner("inner", seen), intensity=3)
    async with open_supervisor(spec) as top:
        await _upgrade(top.child("inner"))
        nested_spec = top.current_spec().children[0].start
        assert isinstance(nested_spec, SupervisorSpec)
        assert nested_spec.children[0].start.machine.version == V2.version  # type: ignore[union-attr]
        again = await _crash(top, "inner")
        assert again.pipeline.version("x") == V2.version
        assert seen == [V2.version]
        assert await again.pipeline.call(5) == (2, 5, 11)
        history = await again.history()
        assert [(r.kind, r.result, r.requested_by) for r in history] == [
            ("upgrade", "succeeded", "ops")
        ]
        # and the change can still be rolled back after the restart
        assert await again.rollback("x") == {"x": V0.version}


async def test_a_sibling_restarted_by_one_for_all_keeps_its_change() -> None:
    """A restart caused by another child (one_for_all) also runs the new code."""
    seen: list[str] = []
    spec = supervisor(
        "top",
        _inner("s1", seen),
        _inner("s2", []),
        strategy=Strategy.ONE_FOR_ALL,
        intensity=3,
    )
    async with open_supervisor(spec) as top:
        s1 = top.child("s1")
        await _upgrade(s1)
        await _crash(top, "s2")
        again = top.child("s1")
        assert again is not s1
        assert again.pipeline.version("x") == V2.version
        assert seen == [V2.version]
        assert len(await again.history()) == 1


async def test_restart_child_starts_the_current_version() -> None:
    """terminate_child then restart_child: the new version, its state restored."""
    seen: list[str] = []
    async with open_supervisor(supervisor("top", _inner("inner", seen, 3))) as top:
        await _upgrade(top.child("inner"))
        await top.terminate_child("inner")
        again = await top.restart_child("inner")
        assert again is not None
        assert again.pipeline.version("x") == V2.version
        assert await again.pipeline.call(1) == (2, 1, 4)


async def test_changes_two_levels_down_are_recorded_up_the_tree() -> None:
    """A grandparent restarting the middle supervisor restarts the leaf with its
    change too."""
    seen: list[str] = []
    mid = supervisor("mid", stage("m", V0), _inner("leaf", seen), intensity=0)
    spec = supervisor("top", mid, intensity=3)
    async with open_supervisor(spec) as top:
        await _upgrade(top.child("mid").child("leaf"))
        leaf_spec = top.current_spec().children[0].start.children[1].start  # type: ignore[union-attr]
        assert leaf_spec.children[0].start.machine.version == V2.version  # type: ignore[union-attr]
        again = await _crash(top, "mid")  # its own stage crashes: mid gives up
        leaf = again.child("leaf")
        assert leaf.pipeline.version("x") == V2.version
        assert len(await leaf.history()) == 1
