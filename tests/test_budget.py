"""State-size budgets: a stage whose state would outgrow its budget keeps the old state."""

from __future__ import annotations

import anyio
import attrs
import pytest

from arrowloop.errors import StepError
from arrowloop.machine import native
from arrowloop.runtime import open_pipeline, stage
from arrowloop.runtime._budget import state_size

pytestmark = pytest.mark.anyio


@attrs.frozen
class Pair:
    left: str
    right: tuple[int, ...]


def test_state_size_counts_scalars_characters_and_elements() -> None:
    """One per scalar, per character, per container; records count their fields."""
    assert state_size(7, 100) == 1
    assert state_size("abc", 100) == 3
    assert state_size("", 100) == 1
    assert state_size((1, 2, "ab"), 100) == 1 + 1 + 1 + 2
    assert state_size({"k": [1, 2]}, 100) == 1 + 1 + 1 + 2
    assert state_size(Pair("xy", (1, 2, 3)), 100) == 1 + 2 + 1 + 3


def test_state_size_stops_at_the_budget() -> None:
    """Measuring stops once the budget is exceeded (a huge state costs no more)."""
    assert state_size("x" * 10**7, 10) == 11
    assert state_size([0] * 10**6, 10) == 11


def _double(x: int, s: str) -> tuple[str, int]:
    return s + s, len(s)


async def test_a_doubling_state_stops_at_the_budget_and_the_stage_goes_on() -> None:
    """Over the budget, a step fails with StepError and the stage keeps its state."""
    spec = stage("d", native(_double, "x"), max_state_size=1000)
    with anyio.fail_after(10):
        async with open_pipeline(spec) as p:
            outs = [await p.call(0) for _ in range(9)]
            assert outs == [2**i for i in range(9)]
            assert len(p.state("d")) == 512
            for _ in range(5):
                with pytest.raises(StepError, match="budget of 1000"):
                    await p.call(0)
            assert len(p.state("d")) == 512
            assert p.statistics()[0].failed == 5


def test_max_state_size_is_checked() -> None:
    """A budget must be a positive integer."""
    with pytest.raises(ValueError, match="max_state_size"):
        stage("d", native(_double, "x"), max_state_size=0)


def test_a_server_bound_applies_to_every_stage_and_keeps_smaller_ones() -> None:
    """with_state_budget bounds every stage, nested supervisors included."""
    from arrowloop.server import with_state_budget
    from arrowloop.supervisor import supervisor

    m = native(_double, "x")
    inner = supervisor(
        "inner", stage("c", native(lambda x, s: (s, x), 0, input=int, output=int, state=int))
    )
    spec = supervisor("top", stage("a", m), stage("b", m, max_state_size=10), inner)
    bounded = with_state_budget(spec, 100)
    sizes = [c.start.max_state_size for c in bounded.children[:2]]  # type: ignore[union-attr]
    assert sizes == [100, 10]
    nested = bounded.children[2].start.children[0].start  # type: ignore[union-attr]
    assert nested.max_state_size == 100  # type: ignore[union-attr]
