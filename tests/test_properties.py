"""Property tests of the arrow language over randomly generated, well-typed programs.

The generator (tests/strategies.py) builds programs that are well typed by
construction. For each we check that the checker agrees, that the compiled
code and the reference interpreter compute the same results (or raise the
same exception), that results have the declared types, that the wire form
round-trips to an equal program with an equal hash, and that swapping a node
for one of another type makes the checker refuse the program with a path.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

from arrowloop.arrows import Arrow, Const, Inject, Loop, Prim
from arrowloop.check import Typed, check_arrow, check_loop, has_type_vars
from arrowloop.compiler import _codegen as codegen
from arrowloop.compiler import compile_arrow, interpret
from arrowloop.errors import CheckError
from arrowloop.machine import Function, Machine
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    ListT,
    OptionT,
    RecordT,
    SetT,
    TupleT,
    Type,
    VariantT,
    validate,
)
from arrowloop.wire import (
    decode_arrow,
    decode_loop,
    decode_type,
    decode_value,
    digest,
    encode_arrow,
    encode_loop,
    encode_type,
    encode_value,
)
from tests.profiles import examples
from tests.strategies import (
    arrows_to,
    loops,
    node_at,
    node_paths,
    programs,
    replace_at,
    types,
    value_key,
    values,
)

# derandomize: every run checks the same examples (tests are deterministic); raise
# max_examples locally to hunt for new counterexamples.
SETTINGS = settings(
    max_examples=examples(120),
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

Outcome = tuple[str, Any]


def _outcome(out_type: Type, fn: Callable[..., Any], *args: Any) -> Outcome:
    """What ``fn(*args)`` gave: a strict key of its result (checked against ``out_type``),
    or the type of the exception it raised."""
    try:
        result = fn(*args)
    except Exception as exc:  # the two evaluators must fail alike
        return ("raised", type(exc))
    validate(out_type, result, "result")
    return ("ok", value_key(result))


def _typed_nodes(t: Typed, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Typed]]:
    """Every typed node with its label path (children line up with ``node.children()``)."""
    out = [(path, t)]
    labels = [label for label, _ in t.node.children()]
    for label, kid in zip(labels, t.children, strict=True):
        out.extend(_typed_nodes(kid, (*path, label)))
    return out


def _dotted(root: str, path: tuple[str, ...]) -> str:
    return ".".join((root, *path))


# -- the checker accepts what the generator builds ---------------------------------


@SETTINGS
@given(programs())
def test_checker_accepts_generated_programs(p: tuple[Arrow, Type, Type]) -> None:
    """Every generated program checks, with exactly the types it was generated for."""
    prog, src, dst = p
    typed = check_arrow(prog, src, dst)
    assert typed.input == src
    assert typed.output == dst


@SETTINGS
@given(loops())
def test_checker_accepts_generated_loops(m: tuple[Loop, Type, Type]) -> None:
    """Every generated loop checks as a machine of its input, state and output types."""
    lp, src, dst = m
    tl = check_loop(lp, src, dst)
    assert (tl.input, tl.state, tl.output) == (src, lp.state, dst)
    assert tl.body.output == TupleT((lp.state, dst))


# -- compiled code agrees with the interpreter --------------------------------------


@SETTINGS
@given(programs(), st.data())
def test_compiled_equals_interpreted(p: tuple[Arrow, Type, Type], data: st.DataObject) -> None:
    """Compiled code and the interpreter give equal results, of the declared type."""
    prog, src, dst = p
    typed = check_arrow(prog, src, dst)
    fn = compile_arrow(typed)
    for x in data.draw(st.lists(values(src), min_size=1, max_size=3)):
        assert _outcome(dst, fn, x) == _outcome(dst, interpret, typed, x)


@SETTINGS
@given(loops(), st.data())
def test_machine_steps_equal_interpreted_steps(
    m: tuple[Loop, Type, Type], data: st.DataObject
) -> None:
    """Stepping a compiled machine and the interpreter through a run agree at every step."""
    lp, src, dst = m
    machine = Machine.build(lp, src, dst)
    state_t = TupleT((machine.state, dst))
    s1 = s2 = machine.init
    for x in data.draw(st.lists(values(src), min_size=1, max_size=4)):
        a = _outcome(state_t, machine.step, x, s1)
        b = _outcome(state_t, machine.interpret, x, s2)
        assert a == b
        if a[0] == "raised":
            break
        s1, _ = machine.step(x, s1)
        s2, _ = machine.interpret(x, s2)


@contextmanager
def _split_into_helpers() -> Iterator[None]:
    """Code generation as for a big program, on small ones: every part of
    more than one node, and every run of compose steps, a helper function."""
    saved = codegen._BIG, codegen._INLINE
    codegen._BIG, codegen._INLINE = 1, 1  # type: ignore[misc]
    try:
        yield
    finally:
        codegen._BIG, codegen._INLINE = saved  # type: ignore[misc]


@SETTINGS
@given(programs(), st.data())
def test_code_split_into_helpers_equals_interpreted(
    p: tuple[Arrow, Type, Type], data: st.DataObject
) -> None:
    """Big programs are compiled as many small functions; they compute what the interpreter does."""
    prog, src, dst = p
    typed = check_arrow(prog, src, dst)
    with _split_into_helpers():
        fn, _ = codegen._build_arrow(typed)
    for x in data.draw(st.lists(values(src), min_size=1, max_size=3)):
        assert _outcome(dst, fn, x) == _outcome(dst, interpret, typed, x)


@SETTINGS
@given(loops(), st.data())
def test_machines_split_into_helpers_step_as_interpreted(
    m: tuple[Loop, Type, Type], data: st.DataObject
) -> None:
    """The same for machines, step after step."""
    lp, src, dst = m
    machine = Machine.build(lp, src, dst)
    with _split_into_helpers():
        step, _ = codegen._build_loop(machine.typed)
    state_t = TupleT((machine.state, dst))
    s1 = s2 = machine.init
    for x in data.draw(st.lists(values(src), min_size=1, max_size=4)):
        a = _outcome(state_t, step, x, s1)
        assert a == _outcome(state_t, machine.interpret, x, s2)
        if a[0] == "raised":
            break
        s1, _ = step(x, s1)
        s2, _ = machine.interpret(x, s2)


@settings(SETTINGS, max_examples=examples(60))
@given(types(1), types(1), st.data())
def test_deep_programs_compile_like_they_interpret(
    src: Type, dst: Type, data: st.DataObject
) -> None:
    """Deep, narrow programs (nested past the generator's inline limit) agree too."""
    prog = data.draw(arrows_to(src, dst, depth=14, budget=40))
    typed = check_arrow(prog, src, dst)
    fn = compile_arrow(typed)
    x = data.draw(values(src))
    assert _outcome(dst, fn, x) == _outcome(dst, interpret, typed, x)


@st.composite
def _pipelines(draw: st.DrawFn) -> tuple[Loop, Loop, Type, Type, Type]:
    first, src, mid = draw(loops(depth=2))
    state = draw(types(1))
    dst = draw(types(1))
    body = draw(arrows_to(TupleT((mid, state)), TupleT((state, dst)), 2))
    return first, Loop(body, state, draw(values(state))), src, mid, dst


@SETTINGS
@given(_pipelines(), st.data())
def test_composed_loops_run_both_machines(
    p: tuple[Loop, Loop, Type, Type, Type], data: st.DataObject
) -> None:
    """``loop1 >> loop2`` steps like loop1 then loop2, its state the pair of theirs."""
    first, second, src, mid, dst = p
    m1, m2 = Machine.build(first, src, mid), Machine.build(second, mid, dst)
    both = Machine.build(first >> second, src, dst)
    assert both.init == (m1.init, m2.init)
    s1, s2, s = m1.init, m2.init, both.init
    for x in data.draw(st.lists(values(src), min_size=1, max_size=3)):
        try:
            s1, y = m1.step(x, s1)
            s2, z = m2.step(y, s2)
        except Exception as exc:  # the composite must fail the same way
            with pytest.raises(type(exc)):
                both.step(x, s)
            return
        s, out = both.step(x, s)
        assert value_key((s, out)) == value_key(((s1, s2), z))


@SETTINGS
@given(loops(depth=2), st.data())
def test_arrows_composed_around_a_loop_pre_and_post_process(
    m: tuple[Loop, Type, Type], data: st.DataObject
) -> None:
    """``f >> loop >> g`` maps inputs with f and outputs with g; the state is the loop's."""
    lp, mid_in, mid_out = m
    src, dst = data.draw(types(1)), data.draw(types(1))
    pre = data.draw(arrows_to(src, mid_in, depth=2))
    post = data.draw(arrows_to(mid_out, dst, depth=2))
    inner = Machine.build(lp, mid_in, mid_out)
    whole = Machine.build(pre >> lp >> post, src, dst)
    f = compile_arrow(check_arrow(pre, src, mid_in))
    g = compile_arrow(check_arrow(post, mid_out, dst))
    x = data.draw(values(src))
    try:
        s1, y = inner.step(f(x), inner.init)
        expected = (s1, g(y))
    except Exception as exc:  # the composite must fail the same way
        with pytest.raises(type(exc)):
            whole.step(x, whole.init)
        return
    assert value_key(whole.step(x, whole.init)) == value_key(expected)


# -- the wire format round-trips --------------------------------------------------------


@SETTINGS
@given(types(3))
def test_types_round_trip(t: Type) -> None:
    """A type's wire form decodes to an equal type."""
    assert decode_type(encode_type(t)) == t


@SETTINGS
@given(types(2).flatmap(lambda t: st.tuples(st.just(t), values(t))))
def test_values_round_trip(tv: tuple[Type, Any]) -> None:
    """A value's wire form decodes to an equal value (NaN and -0.0 included)."""
    t, v = tv
    assert value_key(decode_value(t, encode_value(t, v))) == value_key(v)


@SETTINGS
@given(programs())
def test_programs_round_trip(p: tuple[Arrow, Type, Type]) -> None:
    """A program's wire form decodes to an equal program with an equal digest."""
    prog, src, dst = p
    back = decode_arrow(encode_arrow(prog))
    assert back == prog
    assert digest(encode_arrow(back)) == digest(encode_arrow(prog))
    f = Function.build(prog, src, dst)
    g = Function.from_wire(f.to_wire())
    assert g.arrow == prog
    assert g.version == f.version


@SETTINGS
@given(loops())
def test_machines_round_trip(m: tuple[Loop, Type, Type]) -> None:
    """A machine shipped over the wire is an equal machine with the same version."""
    lp, src, dst = m
    assert decode_loop(encode_loop(lp)) == lp
    machine = Machine.build(lp, src, dst)
    back = Machine.from_wire(machine.to_wire())
    assert back.loop == lp
    assert (back.input, back.output, back.state) == (src, dst, lp.state)
    assert back.version == machine.version
    assert digest(back.to_wire_data()) == machine.version


# -- mutated programs are refused -------------------------------------------------------


def _misfit(t: Type) -> Arrow:
    """A primitive that cannot take a value of the concrete type ``t``."""
    return Prim("upper") if t == BOOL else Prim("not")


@SETTINGS
@given(programs(), st.data())
def test_node_given_the_wrong_input_is_rejected_at_its_path(
    p: tuple[Arrow, Type, Type], data: st.DataObject
) -> None:
    """A node swapped for a primitive of another input type is refused at that node."""
    prog, src, dst = p
    typed = check_arrow(prog, src, dst)
    candidates = [(path, t) for path, t in _typed_nodes(typed) if not has_type_vars(t.input)]
    path, t = data.draw(st.sampled_from(candidates))
    mutant = replace_at(prog, path, _misfit(t.input))
    with pytest.raises(CheckError) as info:
        check_arrow(mutant, src, dst)
    assert info.value.path == _dotted("program", path)
    assert "expected input of" in info.value.message


def _spine(a: Arrow, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of the nodes whose output is (part of) the program's output."""
    out = [path]
    kids = a.children()
    if kids and kids[0][0].startswith("compose"):
        label, last = kids[-1]
        out.extend(_spine(last, (*path, label)))
    elif kids and not kids[0][0].startswith(("map", "fold", "while")):
        for label, child in kids:
            if label != "if.cond":
                out.extend(_spine(child, (*path, label)))
    return out


@SETTINGS
@given(programs(), st.data())
def test_node_giving_the_wrong_output_is_rejected(
    p: tuple[Arrow, Type, Type], data: st.DataObject
) -> None:
    """A node whose output is the program's, swapped for a constant of another type, is refused."""
    prog, src, dst = p
    typed = dict(_typed_nodes(check_arrow(prog, src, dst)))
    path = data.draw(st.sampled_from(_spine(prog)))
    out = typed[path].output
    other = STR if out == INT else INT
    mutant = replace_at(prog, path, Const(other, data.draw(values(other))))
    with pytest.raises(CheckError) as info:
        check_arrow(mutant, src, dst)
    assert info.value.path.startswith("program")
    assert "expected" in info.value.message


@SETTINGS
@given(loops(), st.data())
def test_mutated_machine_body_is_rejected(m: tuple[Loop, Type, Type], data: st.DataObject) -> None:
    """A machine whose body has a node of the wrong input type is refused at ``body...``."""
    lp, src, dst = m
    tl = check_loop(lp, src, dst)
    candidates = [(path, t) for path, t in _typed_nodes(tl.body) if not has_type_vars(t.input)]
    path, t = data.draw(st.sampled_from(candidates))
    mutant = Loop(replace_at(lp.body, path, _misfit(t.input)), lp.state, lp.init)
    with pytest.raises(CheckError) as info:
        Machine.build(mutant, src, dst)
    assert info.value.path == _dotted("body", path)


def _features(p: tuple[Arrow, Type, Type]) -> set[str]:
    """Node kinds and primitive overloads (``add:(int, float)``) a program uses."""
    prog, src, dst = p
    found: set[str] = set()
    for _, t in _typed_nodes(check_arrow(prog, src, dst)):
        found.add(t.node.kind)
        if isinstance(t.node, Prim) and t.signature is not None:
            found.add(f"{t.node.name}:{t.signature.input!r}")
        if isinstance(t.node, Inject) and t.node.variant is None:
            found.add("inject-either")
    return found


_PT = RecordT("Pt", (("a", INT), ("b", STR)))
_AB = VariantT("", (("A", INT), ("B", STR)))
#: (feature, input type, output type): every node kind and the main overloads, each with
#: the types between which the generator is most likely to use it.
FEATURES: list[tuple[str, Type, Type]] = [
    ("id", INT, INT),
    ("compose", INT, STR),
    ("split", TupleT((INT, STR)), INT),
    ("fanout", INT, TupleT((INT, STR))),
    ("proj", TupleT((INT, STR)), STR),
    ("const", INT, STR),
    ("inject", INT, _AB),
    ("inject-either", INT, BOOL),
    ("case", _AB, INT),
    ("distribute", TupleT((_AB, INT)), INT),
    ("if", INT, INT),
    ("make", INT, _PT),
    ("get", _PT, INT),
    ("set", _PT, _PT),
    ("prim", INT, INT),
    ("map", ListT(INT), ListT(STR)),
    ("fold", INT, INT),
    ("add:(int, int)", INT, INT),
    ("add:(int, float)", INT, FLOAT),
    ("add:(str, str)", STR, STR),
    ("add:(list[?0], list[?0])", ListT(INT), ListT(INT)),
    ("lt:(str, str)", STR, BOOL),
    ("len:str", STR, INT),
    ("len:list[?0]", ListT(INT), INT),
    ("len:dict[?1, ?0]", INT, INT),
    ("eq:(?0, ?0)", INT, BOOL),
    ("append:(list[?0], ?0)", INT, ListT(INT)),
    ("some:?0", INT, OptionT(INT)),
    ("map_get:(dict[?1, ?0], ?1)", INT, OptionT(INT)),
    ("set_add:(set[?1], ?1)", INT, SetT(INT)),
    ("set_has:(set[?1], ?1)", INT, BOOL),
]


@pytest.mark.parametrize(("feature", "src", "dst"), FEATURES, ids=[f[0] for f in FEATURES])
def test_generator_reaches_every_node_kind_and_overload(feature: str, src: Type, dst: Type) -> None:
    """The program generator produces every node kind and the main primitive overloads."""
    find(
        arrows_to(src, dst),
        lambda prog: feature in _features((prog, src, dst)),
        settings=settings(
            max_examples=5_000, database=None, deadline=None, phases=[Phase.generate]
        ),
        random=random.Random(0),
    )


def test_path_helpers_agree_with_the_checker() -> None:
    """node_paths/node_at/replace_at address the nodes the checker's paths name."""
    from examples import counter as c

    body = c.counter_v3.body
    paths = node_paths(body)
    assert len(paths) == len(set(paths))
    for path in paths:
        assert replace_at(body, path, node_at(body, path)) == body
