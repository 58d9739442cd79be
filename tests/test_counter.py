"""The counter example, written with combinators, end to end in-process."""

from __future__ import annotations

from typing import Any

import pytest

from arrowloop import CheckError, Function, Machine
from examples import counter as c

TRANSCRIPT_V1 = [
    (c.ReadCount(), c.Count(0)),
    (c.IncrCount(), c.Ack()),
    (c.IncrCount(), c.Ack()),
    (c.ReadCount(), c.Count(2)),
]
TRANSCRIPT_V2 = [
    (c.ReadCount(), c.Count(2)),
    (c.ResetCount(), c.Ack()),
    (c.ReadCount(), c.Count(0)),
]
TRANSCRIPT_V3 = [
    (c.ReadCount(), c.Count(0)),
    (c.IncrCount(), c.Ack()),
    (c.IncrCount(), c.Ack()),
    (c.ReadCount(), c.Count(2)),
    (c.ToggleCount(), c.Ack()),
    (c.IncrCount(), c.Ack()),
    (c.ReadCount(), c.Count(1)),
]


def _ship(m: Machine) -> Machine:
    return Machine.from_wire(m.to_wire())


def _run(m: Machine, state: Any, script: list[tuple[Any, Any]], *, interpreted: bool) -> Any:
    for msg, expected in script:
        state, out = m.interpret(msg, state) if interpreted else m.step(msg, state)
        assert out == expected
    return state


@pytest.mark.parametrize("interpreted", [False, True])
def test_transcript_matches_design(interpreted: bool) -> None:
    """v1 -> v2 -> v3 through the wire format reproduces the counter's reference transcript."""
    v1 = _ship(Machine.build(c.counter_v1, c.InputV1, c.Output))
    v2 = _ship(Machine.build(c.counter_v2, c.InputV2, c.Output))
    v3 = _ship(Machine.build(c.counter_v3, c.InputV3, c.Output))
    to_v2 = Function.from_wire(Function.build(c.migrate_v1_v2, int, int).to_wire())
    to_v3 = Function.from_wire(Function.build(c.migrate_v2_v3, int, tuple[int, bool]).to_wire())

    state = _run(v1, v1.init, TRANSCRIPT_V1, interpreted=interpreted)
    state = _run(v2, to_v2.apply_checked(state), TRANSCRIPT_V2, interpreted=interpreted)
    state = _run(v3, to_v3.apply_checked(state), TRANSCRIPT_V3, interpreted=interpreted)
    assert state == (1, True)


def test_versions_are_content_hashes() -> None:
    """Equal programs have equal versions; different programs differ."""
    a = Machine.build(c.counter_v1, c.InputV1, c.Output)
    b = _ship(a)
    v2 = Machine.build(c.counter_v2, c.InputV2, c.Output)
    assert a.version == b.version
    assert len(a.version) == 64
    assert a.version != v2.version


def test_ill_typed_migration_is_refused() -> None:
    """The identity cannot migrate int to (int, bool); the error names the program."""
    with pytest.raises(CheckError, match=r"expected output \(int, bool\), found int"):
        Function.build(c.migrate_v1_v2, int, tuple[int, bool])


def test_v1_machine_does_not_accept_v2_input() -> None:
    """A v1 body is not a machine over v2's input type (missing branch)."""
    with pytest.raises(CheckError) as info:
        Machine.build(c.counter_v1, c.InputV2, c.Output)
    assert "ResetCount" in str(info.value)
    assert info.value.path == "body.compose[1]"


def test_inverse_migration_rolls_back() -> None:
    """v3 -> v2 with (n, b) -> n keeps the count."""
    back = Function.build(c.migrate_v3_v2, tuple[int, bool], int)
    assert back((7, True)) == 7
