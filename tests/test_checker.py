"""The checker: ill-typed programs as data with the error they must give, inference of
the polymorphic nodes, and programs at the size and nesting limits.

Each case in ``CASES`` is a small program, the types it is checked at, and
the expected error: the path of the node at fault and a fragment of the
message (mypy's check-*.test files in miniature).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import pytest

from arrowloop.arrows import (
    Arrow,
    Case,
    Compose,
    Const,
    Distribute,
    Fanout,
    Fold,
    If,
    Inject,
    Loop,
    MapList,
    Proj,
    case,
    compose,
    const,
    copy,
    distribute,
    drop,
    fanout,
    fold,
    fst,
    get,
    id_,
    if_,
    inject,
    inl,
    inr,
    loop,
    make,
    map_,
    prim,
    proj,
    set_,
    snd,
    split,
)
from arrowloop.check import MAX_NESTING, Typed, check_arrow, check_loop, has_type_vars, infer
from arrowloop.compiler import compile_arrow, compile_loop, generated_source, interpret
from arrowloop.errors import CheckError
from arrowloop.machine import Function, Machine
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    ListT,
    OptionT,
    Tagged,
    TupleT,
    Type,
    TypeLike,
    VariantT,
    either,
)
from examples import counter as c


@attrs.frozen
class ChkA:
    """A case of :data:`AB`."""

    n: int


@attrs.frozen
class ChkB:
    """A case of :data:`AB`."""


@attrs.frozen
class ChkC:
    """Not a case of :data:`AB`."""


@attrs.frozen
class ChkPoint:
    """A record with two fields."""

    x: int
    label: str


AB = ChkA | ChkB
ABC = ChkA | ChkB | ChkC

#: (id, program, input, output or None, expected path, message fragment)
CASES: list[tuple[str, Arrow, TypeLike, TypeLike | None, str, str]] = [
    (
        "case-missing-tag",
        case({ChkA: get("n")}),
        AB,
        None,
        "program",
        "expected branches for exactly the tags ['ChkA', 'ChkB'], found ['ChkA'] "
        "(missing ['ChkB'])",
    ),
    (
        "case-extra-tag",
        case({ChkA: const(1), ChkB: const(2), ChkC: const(3)}),
        AB,
        None,
        "program",
        "(unknown ['ChkC'])",
    ),
    (
        "case-on-a-non-variant",
        case({ChkA: const(1), ChkB: const(2)}),
        int,
        None,
        "program",
        "expected input a variant with the tags ['ChkA', 'ChkB'], found int",
    ),
    (
        "case-branches-disagree",
        case({ChkA: get("n"), ChkB: const("none")}),
        AB,
        None,
        "program.case[ChkB]",
        "expected output (as the other branches) int, found str",
    ),
    (
        "if-branches-disagree",
        if_(const(True), const(1), const("one")),
        int,
        None,
        "program.if.else",
        "expected output (as if.then) int, found str",
    ),
    (
        "if-condition-not-bool",
        if_(const(1), id_, id_),
        int,
        None,
        "program.if.cond",
        "expected output bool, found int",
    ),
    (
        "prim-on-wrong-types",
        fanout(id_, const("s")) >> prim("add"),
        int,
        None,
        "program.compose[1]",
        "expected input of add: (int, int) or (float, float) or (int, float) or (float, int) "
        "or (str, str) or (list[?0], list[?0]), found (int, str)",
    ),
    (
        "prim-unknown",
        prim("frobnicate"),
        int,
        None,
        "program",
        "expected a registered primitive, found the unknown name 'frobnicate': primitives are "
        "registered by the served module (with @arrowloop.primitive) when the server starts, "
        "and their code cannot travel in a change",
    ),
    (
        "prim-not-on-int",
        prim("not"),
        int,
        None,
        "program",
        "expected input of not: bool, found int",
    ),
    (
        "prim-some-of-an-option",
        prim("some"),
        int | None,
        None,
        "program",
        "expected input of some: ?0 (with an item that is not an option or unit: use a variant "
        "for those), found int | None",
    ),
    (
        "get-on-a-non-record",
        get("n"),
        int,
        None,
        "program",
        "expected input a record with a field 'n', found int",
    ),
    (
        "get-missing-field",
        get("y"),
        ChkPoint,
        None,
        "program",
        "expected input a record with a field 'y', found ChkPoint{x: int, label: str}",
    ),
    (
        "set-wrong-value-type",
        fanout(id_, const("seven")) >> set_("x"),
        ChkPoint,
        None,
        "program.compose[1]",
        "expected value for field 'x' of type int, found str",
    ),
    (
        "make-from-wrong-fields",
        fanout(const("a"), const(1)) >> make(ChkPoint),
        int,
        None,
        "program.compose[1]",
        "expected input (int, str), found (str, int)",
    ),
    (
        "fold-accumulator-mismatch",
        fold(snd >> prim("str_of_int")),
        tuple[int, list[int]],
        None,
        "program.fold",
        "expected output (the accumulator) int, found str",
    ),
    (
        "fold-over-a-non-list",
        fold(fst),
        tuple[int, int],
        None,
        "program",
        "expected input list list[?",
    ),
    (
        "map-over-a-non-list",
        map_(id_),
        str,
        None,
        "program",
        "expected input list[?",
    ),
    (
        "map-body-ill-typed",
        map_(prim("not")),
        list[int],
        None,
        "program.map",
        "expected input of not: bool, found int",
    ),
    (
        "proj-of-wrong-arity",
        proj(2, 3),
        tuple[int, int],
        None,
        "program",
        "expected input a tuple of 3, found (int, int)",
    ),
    (
        "split-of-wrong-arity",
        split(id_, id_, id_),
        tuple[int, int],
        None,
        "program",
        "expected input a tuple of 3, found (int, int)",
    ),
    (
        "distribute-without-a-variant",
        distribute,
        tuple[int, int],
        None,
        "program",
        "expected input a pair (variant, b), found (int, int)",
    ),
    (
        "inject-wrong-payload",
        inject(AB, ChkA),
        str,
        None,
        "program",
        "expected input ChkA{n: int}, found str",
    ),
    (
        "deep-path",
        compose(id_, fanout(prim("not"), id_)),
        int,
        None,
        "program.compose[1].fanout[0]",
        "expected input of not: bool, found int",
    ),
    (
        "declared-output-differs",
        prim("str_of_int"),
        int,
        int,
        "program",
        "expected output int, found str",
    ),
    (
        "const-value-not-of-its-type",
        Const(INT, "seven"),
        int,
        None,
        "program",
        "expected a constant of type int: expected int, found str",
    ),
]


@pytest.mark.parametrize(
    ("program", "input", "output", "path", "message"),
    [pytest.param(*case_[1:], id=case_[0]) for case_ in CASES],
)
def test_ill_typed_program_is_refused_at_its_path(
    program: Arrow, input: TypeLike, output: TypeLike | None, path: str, message: str
) -> None:
    """Each ill-typed program is refused with the expected path and message."""
    with pytest.raises(CheckError) as info:
        check_arrow(program, input, output)
    assert info.value.path == path
    assert message in info.value.message
    assert str(info.value) == f"at {path}: {info.value.message}"
    assert info.value.to_data()["path"] == path


# -- machines --------------------------------------------------------------------------

#: (id, loop, input, output or None, expected path, message fragment)
MACHINE_CASES: list[tuple[str, Loop, TypeLike, TypeLike | None, str, str]] = [
    (
        "body-returns-only-the-state",
        loop(snd, init=0),
        int,
        None,
        "body",
        "expected output (state, output) = (int, ?",
    ),
    (
        "body-returns-a-state-of-another-type",
        loop(fanout(fst, fst), init="", state=str),
        int,
        None,
        "body",
        "expected output (state, output) = (str, int), found (int, int)",
    ),
    (
        "init-not-of-the-state-type",
        Loop(fanout(snd, fst), INT, "zero"),
        int,
        None,
        "init",
        "expected an initial state of type int: expected int, found str",
    ),
    (
        "output-left-undetermined",
        loop(fanout(snd, const(0) >> inl), init=0),
        int,
        None,
        "body",
        "expected the machine's output type to be determined, found Either<left(int) | right(?",
    ),
    (
        "output-differs-from-declared",
        loop(fanout(snd, fst), init=0),
        int,
        str,
        "body",
        "expected output (state, output) = (int, str), found (int, int)",
    ),
    (
        "v1-body-on-v2-input",
        c.counter_v1,
        c.InputV2,
        c.Output,
        "body.compose[1]",
        "(missing ['ResetCount'])",
    ),
]


@pytest.mark.parametrize(
    ("lp", "input", "output", "path", "message"),
    [pytest.param(*case_[1:], id=case_[0]) for case_ in MACHINE_CASES],
)
def test_ill_typed_machine_is_refused_at_its_path(
    lp: Loop, input: TypeLike, output: TypeLike | None, path: str, message: str
) -> None:
    """Machines whose body or initial state do not fit are refused with a path."""
    with pytest.raises(CheckError) as info:
        check_loop(lp, input, output)
    assert info.value.path == path
    assert message in info.value.message
    with pytest.raises(CheckError):
        Machine.build(lp, input, output)


def test_some_of_a_variable_later_bound_to_an_option_is_refused() -> None:
    """``some`` on a value whose type is only later found to be an option is refused."""
    either_opt = either(INT, OptionT(INT))
    prog = compose(
        inl,  # int -> Either[int, ?b]
        copy,
        split(case(left=drop, right=prim("some") >> drop), id_),  # some : ?b -> ?b | None
        snd,
        fanout(id_, const(Tagged("right", None), either_opt)),  # ?b := int | None
        prim("eq"),
    )
    with pytest.raises(CheckError) as info:
        check_arrow(prog, int)
    assert info.value.path == "program.compose[5]"
    assert "expected input of eq:" in info.value.message


# -- inference of polymorphic nodes --------------------------------------------------------


def test_identity_and_projections_take_their_input_type() -> None:
    """id is a -> a; projections pick the item type."""
    assert infer(id_, ChkPoint).output == infer(id_, ChkPoint).input
    t = infer(proj(2, 3), tuple[int, str, bool])
    assert (t.input, t.output) == (TupleT((INT, STR, BOOL)), BOOL)
    assert infer(fst >> snd, tuple[tuple[int, str], bool]).output == STR


def test_const_ignores_its_input() -> None:
    """const has its own type whatever its input."""
    assert infer(const("x"), ChkPoint).output == STR
    assert infer(const(None, int | None), int).output == infer(prim("some"), int).output


def test_injections_are_resolved_by_fan_in() -> None:
    """inl/inr leave the other side open; ``|`` (case on Either) and use settle it."""
    fan_in = inl >> (prim("str_of_int") | id_)
    t = infer(fan_in, int)
    assert t.output == STR
    inl_node = t.children[0]
    assert inl_node.output == either(INT, STR)
    assert not has_type_vars(inl_node.output)


def test_injection_alone_leaves_a_variable() -> None:
    """An injection whose other side nothing constrains keeps a type variable."""
    t = infer(inr, str)
    assert isinstance(t.output, VariantT)
    assert t.output.payload("right") == STR
    assert has_type_vars(t.output)


def test_sum_map_builds_either_of_both_outputs() -> None:
    """``f + g`` maps Either[a, b] to Either[f(a), g(b)]."""
    t = check_arrow(prim("str_of_int") + prim("not"), either(INT, BOOL))
    assert t.output == either(STR, BOOL)
    fn = compile_arrow(t)
    for x in (Tagged("left", 5), Tagged("right", True)):
        assert fn(x) == interpret(t, x)
    assert fn(Tagged("left", 5)) == Tagged("left", "5")


@pytest.mark.parametrize(
    ("program", "input", "output"),
    [
        (prim("eq"), tuple[list[int], list[int]], BOOL),
        (prim("len"), list[str], INT),
        (prim("len"), dict[str, bool], INT),
        (prim("len"), str, INT),
        (prim("add"), tuple[int, int], INT),
        (prim("add"), tuple[int, float], FLOAT),
        (prim("add"), tuple[str, str], STR),
        (prim("add"), tuple[list[str], list[str]], ListT(STR)),
        (prim("append"), tuple[list[bool], bool], ListT(BOOL)),
        (prim("item"), tuple[list[str], int], STR),
        (prim("lt"), tuple[float, int], BOOL),
        (prim("unwrap_or"), tuple[str | None, str], STR),
        (prim("map_get"), tuple[dict[str, int], str], OptionT(INT)),
    ],
)
def test_polymorphic_primitives_pick_their_overload(
    program: Arrow, input: TypeLike, output: Type
) -> None:
    """Overloaded and polymorphic primitives resolve to the overload the input selects."""
    t = infer(program, input)
    assert t.signature is not None
    assert t.output == output
    assert not has_type_vars(t.output)


# -- size and nesting -------------------------------------------------------------------


def _node_count(a: Arrow) -> int:
    return 1 + sum(_node_count(child) for _, child in a.children())


def test_ten_thousand_node_program_checks_and_compiles() -> None:
    """A program of 10,000+ nodes checks, compiles, and computes what the interpreter does."""
    step = fanout(id_, const(1)) >> prim("add")
    chain = compose(*[step] * 1_500)
    tree: Arrow = fanout(id_, const(2)) >> prim("mul")
    for _ in range(9):
        tree = fanout(tree, tree) >> prim("add")
    program = fanout(chain, tree) >> prim("sub")
    assert _node_count(program) >= 10_000
    typed = check_arrow(program, int, int)
    fn = compile_arrow(typed)
    assert fn(1) == interpret(typed, 1) == (1 + 1_500) - 2 * 512
    assert Function.build(program, int, int)(1) == fn(1)


def test_ten_thousand_node_machine_checks_and_compiles() -> None:
    """A machine whose body has 10,000+ nodes builds, ships and steps."""
    incr = fanout(fst, const(1)) >> prim("add")
    body = fanout(snd >> compose(*[fanout(id_, const(1)) >> prim("add")] * 2_500), incr)
    m = Machine.build(loop(body, init=0), int, int)
    assert _node_count(m.loop.body) >= 10_000
    assert m.step(5, 0) == (2_500, 6)
    assert Machine.from_wire(m.to_wire()).step(5, 10) == (2_510, 6)


def _if_chain(n: int) -> Arrow:
    a: Arrow = id_
    for _ in range(n):
        a = If(Const(BOOL, True), a, id_)
    return a


def _case_chain(n: int) -> Arrow:
    e = either(INT, INT)
    a: Arrow = id_
    for _ in range(n):
        a = Compose((Inject("right", e), Case((("left", id_), ("right", a)))))
    return a


def _dist_chain(n: int) -> Arrow:
    e = either(INT, INT)
    a: Arrow = id_
    for _ in range(n):
        a = (
            Fanout((Inject("left", e), a))
            >> Distribute()
            >> Case((("left", Proj(1, 2)), ("right", Proj(1, 2))))
        )
    return a


def _fold_chain(n: int) -> Arrow:
    # (int, int) -> int; each level folds the next over a one-item list.
    a: Arrow = Proj(0, 2) >> Fanout((id_, const(1))) >> prim("add")
    for _ in range(n):
        a = Fanout((Proj(0, 2), Const(ListT(INT), [1]))) >> Fold(a)
    return a


def _map_chain(n: int) -> Arrow:
    a: Arrow = fanout(id_, const(1)) >> prim("add")
    for _ in range(n):
        a = MapList(a)
    return a


def _nested_list(depth: int) -> Any:
    value: Any = 3
    for _ in range(depth):
        value = [value]
    return value


def _list_type(depth: int) -> Type:
    t: Type = INT
    for _ in range(depth):
        t = ListT(t)
    return t


CHAINS = [
    pytest.param(_if_chain, 1, lambda n: INT, lambda n: 3, id="if"),
    pytest.param(_case_chain, 2, lambda n: INT, lambda n: 3, id="case"),
    pytest.param(_dist_chain, 2, lambda n: INT, lambda n: 3, id="distribute"),
    pytest.param(_fold_chain, 2, lambda n: TupleT((INT, INT)), lambda n: (3, 4), id="fold"),
    pytest.param(_map_chain, 1, _list_type, _nested_list, id="map"),
]


@pytest.mark.parametrize(("make_chain", "levels_per_link", "input", "value"), CHAINS)
def test_programs_nested_to_the_limit_compile(
    make_chain: Callable[[int], Arrow],
    levels_per_link: int,
    input: Callable[[int], Type],
    value: Callable[[int], Any],
) -> None:
    """Programs nested up to MAX_NESTING compile to valid Python agreeing with the interpreter."""
    links = (MAX_NESTING - 4) // levels_per_link
    typed = check_arrow(make_chain(links), input(links))
    assert compile_arrow(typed)(value(links)) == interpret(typed, value(links))
    source = generated_source(typed)
    deepest = max(len(line) - len(line.lstrip()) for line in source.splitlines()) // 4
    assert deepest <= 12  # deeper blocks went into helper functions


@pytest.mark.parametrize(("make_chain", "levels_per_link", "input", "value"), CHAINS)
def test_programs_nested_past_the_limit_are_refused(
    make_chain: Callable[[int], Arrow],
    levels_per_link: int,
    input: Callable[[int], Type],
    value: Callable[[int], Any],
) -> None:
    """Programs nested deeper than MAX_NESTING are refused with a CheckError, not a crash."""
    links = MAX_NESTING // levels_per_link + 1
    with pytest.raises(CheckError) as info:
        check_arrow(make_chain(links), input(links))
    assert info.value.expected == f"<= {MAX_NESTING} levels"
    assert info.value.path.startswith("program.")


def test_distribution_nested_in_distribution_compiles_flat() -> None:
    """A distribution whose other side is itself distributed compiles (both materialised)."""
    e = either(INT, STR)
    inner = fanout(inject(e, "left"), id_) >> distribute
    outer = fanout(const(3) >> inject(e, "left"), inner) >> distribute
    typed = check_arrow(outer, int)
    assert (
        compile_arrow(typed)(7)
        == interpret(typed, 7)
        == Tagged("left", (3, Tagged("left", (7, 7))))
    )


def test_machine_of_the_counter_compiles_and_steps_like_the_interpreter() -> None:
    """The counter's compiled step agrees with the interpreter on every message."""
    tl = check_loop(c.counter_v3, c.InputV3, c.Output)
    step = compile_loop(tl)
    state = c.counter_v3.init
    for msg in [c.IncrCount(), c.ToggleCount(), c.IncrCount(), c.ReadCount(), c.ResetCount()]:
        assert step(msg, state) == Machine.build(c.counter_v3, c.InputV3, c.Output).interpret(
            msg, state
        )
        state, _ = step(msg, state)


def test_typed_tree_records_the_overload_chosen() -> None:
    """The typed tree keeps each primitive's chosen signature, for the compiler."""
    t = check_arrow(fanout(id_, const(1.5)) >> prim("add"), int)
    add: Typed = t.children[1]
    assert add.signature is not None
    assert add.signature.input == TupleT((INT, add.signature.output))
    assert repr(add.output) == "float"


def test_compile_cache_distinguishes_registries() -> None:
    """One program compiled against two registries runs each registry's function."""
    from arrowloop import Function, prim
    from arrowloop.arrows import Registry

    r1, r2 = Registry(), Registry()
    r1.register("bump", int, int, lambda x: x + 1)
    r2.register("bump", int, int, lambda x: x + 1000)
    f1 = Function.build(prim("bump"), int, int, registry=r1)
    f2 = Function.build(prim("bump"), int, int, registry=r2)
    assert (f1(1), f2(1)) == (2, 1001)
