"""The counter written in plain Python behaves exactly like the combinator counter."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop import Function, Machine, PyFunction, PyMachine, arrow
from arrowloop.compiler import generated_source
from arrowloop.typesys import BOOL, INT, TupleT
from examples import counter as c
from examples import counter_py as p
from tests.profiles import examples

V1 = [c.ReadCount(), c.IncrCount()]
V2 = [*V1, c.ResetCount()]
V3 = [*V2, c.ToggleCount()]


def _pairs() -> list[tuple[PyMachine, Machine, list[Any]]]:
    return [
        (p.counter_v1, Machine.build(c.counter_v1, c.InputV1, c.Output), V1),
        (p.counter_v2, Machine.build(c.counter_v2, c.InputV2, c.Output), V2),
        (p.counter_v3, Machine.build(c.counter_v3, c.InputV3, c.Output), V3),
    ]


@settings(max_examples=examples(150), deadline=None)
@given(st.data())
def test_frontend_counters_match_combinator_counters(data: st.DataObject) -> None:
    """On random message sequences every version gives the same outputs and states."""
    for py, combinators, messages in _pairs():
        script = data.draw(st.lists(st.sampled_from(messages), max_size=30))
        assert py.init == combinators.init
        s1 = s2 = s3 = py.init
        for msg in script:
            s1, out1 = py.step(msg, s1)
            s2, out2 = combinators.step(msg, s2)
            s3, out3 = py(msg, s3)
            assert (s1, out1) == (s2, out2) == (s3, out3)
            assert py.machine.interpret(msg, s1) == combinators.interpret(msg, s2)


@settings(max_examples=examples(100), deadline=None)
@given(st.integers(), st.booleans())
def test_frontend_migrations_match_combinator_migrations(n: int, down: bool) -> None:
    """The migrations written in Python compute what the combinator ones do."""
    pairs = [
        (p.migrate_v1_v2, Function.build(c.migrate_v1_v2, int, int), n),
        (p.migrate_v2_v3, Function.build(c.migrate_v2_v3, int, tuple[int, bool]), n),
        (p.migrate_v3_v2, Function.build(c.migrate_v3_v2, tuple[int, bool], int), (n, down)),
    ]
    for py, combinators, x in pairs:
        assert py.function(x) == combinators(x) == py(x)
        assert py.function.interpret(x) == combinators(x)


def test_types_come_from_the_annotations() -> None:
    """Input, output and state types are the declared ones."""
    reference = Machine.build(c.counter_v3, c.InputV3, c.Output)
    m = p.counter_v3
    assert (m.input, m.output, m.state, m.init) == (
        reference.input,
        reference.output,
        reference.state,
        (0, False),
    )
    assert p.migrate_v2_v3.input == INT
    assert p.migrate_v2_v3.output == TupleT((INT, BOOL))


def _run(m: Machine, state: Any, script: list[tuple[Any, Any]]) -> Any:
    for msg, expected in script:
        state, out = m.step(msg, state)
        assert out == expected
    return state


def test_transcript_over_the_wire() -> None:
    """The counter's reference transcript holds with the Python-written machines shipped as data."""
    v1 = Machine.from_wire(p.counter_v1.machine.to_wire())
    v2 = Machine.from_wire(p.counter_v2.machine.to_wire())
    v3 = Machine.from_wire(p.counter_v3.machine.to_wire())
    to_v2 = Function.from_wire(p.migrate_v1_v2.function.to_wire())
    to_v3 = Function.from_wire(p.migrate_v2_v3.function.to_wire())
    ack = c.Ack()
    state = _run(
        v1,
        v1.init,
        [
            (c.ReadCount(), c.Count(0)),
            (c.IncrCount(), ack),
            (c.IncrCount(), ack),
            (c.ReadCount(), c.Count(2)),
        ],
    )
    state = _run(
        v2,
        to_v2.apply_checked(state),
        [(c.ReadCount(), c.Count(2)), (c.ResetCount(), ack), (c.ReadCount(), c.Count(0))],
    )
    state = _run(
        v3,
        to_v3.apply_checked(state),
        [
            (c.ReadCount(), c.Count(0)),
            (c.IncrCount(), ack),
            (c.IncrCount(), ack),
            (c.ReadCount(), c.Count(2)),
            (c.ToggleCount(), ack),
            (c.IncrCount(), ack),
            (c.ReadCount(), c.Count(1)),
        ],
    )
    assert state == (1, True)


def test_versions_are_stable() -> None:
    """Translating the same source twice gives the same program and version."""
    again = arrow(p.migrate_v2_v3.fn)
    assert again.version == p.migrate_v2_v3.version
    shipped = Machine.from_wire(p.counter_v3.machine.to_wire())
    assert shipped.version == p.counter_v3.version


def test_generated_step_is_as_small_as_the_combinator_one() -> None:
    """The environment passing is gone: the step is no longer than the hand-built one."""
    reference = Machine.build(c.counter_v3, c.InputV3, c.Output)
    ours = generated_source(p.counter_v3.machine.typed).splitlines()
    theirs = generated_source(reference.typed).splitlines()
    assert len(ours) <= len(theirs)
    assert not any("_Tagged" in line for line in ours)


def test_decorated_objects_stay_callable() -> None:
    """The decorated names still run the plain Python functions."""
    assert p.counter_v1(c.ReadCount(), 3) == (3, c.Count(3))
    assert p.counter_v1.fn.__name__ == "machine"  # defined in examples/counter/v1.py
    assert p.counter_v1.__doc__ == "Read returns the count; Incr adds one and acknowledges."
    assert isinstance(p.migrate_v2_v3, PyFunction)
    assert p.migrate_v2_v3.compiled(4) == (4, False) == p.migrate_v2_v3(4)
    assert "machine" in repr(p.counter_v1)
    assert "migrate" in repr(p.migrate_v2_v3)
