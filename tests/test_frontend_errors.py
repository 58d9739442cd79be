"""What the front end refuses: each construct's error, its location and its wording.

The cases are data: an undecorated function, the text expected in the
message, and where the error must point (the line marked ``# here``, at
the column of a snippet of that line). Decorating it must raise a
:class:`FrontendError` saying what was found and what to write instead.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from arrowloop import FrontendError, arrow, statemachine
from arrowloop.errors import ValidationError
from examples.counter import Ack, Count, IncrCount, Output, ReadCount


@attrs.frozen
class Box:
    """A record for the cases below."""

    n: int


def plain_function(x: int):  # type: ignore[no-untyped-def]
    """Neither a primitive nor a front-end function, nor annotated (a helper)."""
    return x


# -- the cases ------------------------------------------------------------------------


def while_loop(n: int) -> int:
    k = n
    while k:  # here
        k = str(k)  # type: ignore[assignment]
    return 0


def global_statement(n: int) -> int:
    global COUNTER  # here
    return n


def nonlocal_statement(n: int) -> int:
    def inner() -> int:  # here
        return n

    return inner()


def attribute_assignment(b: Box) -> Box:
    b.n = 1  # type: ignore[misc]  # here
    return b


def side_effect(n: int) -> int:
    print(n)  # here
    return n


def unknown_call(n: int) -> int:
    return plain_function(n)  # type: ignore[no-any-return]  # here


def try_except(n: int) -> int:
    try:  # here
        return 1 // n
    except ZeroDivisionError:
        return 0


def unused_value(n: int) -> int:
    n + 1  # here
    return n


def unused_call(n: int) -> int:
    abs(n)  # here
    return n


def raise_statement(n: int) -> int:
    if n < 0:
        raise ValueError("negative") from None  # here
    return n


def generator_value(xs: list[int]) -> int:
    g = (x for x in xs)  # here
    return sum(g)


def range_value(n: int) -> list[int]:
    r = range(n)  # here
    return list(r)


def tuple_of_list(xs: list[int]) -> tuple[int, int]:
    return tuple(xs)  # type: ignore[return-value]  # here


def list_append(xs: list[int]) -> list[int]:
    ys = xs
    ys.append(1)  # here
    return xs


def list_append_value(xs: list[int]) -> int:
    n = len(xs)
    y = xs.append(n)  # type: ignore[func-returns-value]  # here
    return n if y is None else 0


def lambda_expression(n: int) -> int:
    f = lambda x: x + 1  # noqa: E731  # here
    return int(f(n))  # type: ignore[no-untyped-call]


def f_string(n: int) -> str:
    return f"n={n:{n}}"  # here


def set_comprehension(xs: list[int]) -> int:
    return len({x + 1 for x in xs})  # here


def missing_return(n: int) -> int:  # type: ignore[return]
    if n > 0:  # here
        return n


def incomplete_match(  # type: ignore[return]
    msg: ReadCount | IncrCount, n: int
) -> tuple[int, Output]:
    match msg:  # here
        case ReadCount():
            return n, Count(n)


def type_error(s: str) -> str:
    return s + 1  # type: ignore[operator,no-any-return]  # here


def is_comparison(a: int, b: int) -> bool:
    return a is b  # here


def field_of_variant(reply: Output) -> int:
    return reply.n  # type: ignore[union-attr]  # here


def used_before_assigned(n: int) -> int:
    m: int = k + n  # type: ignore[has-type,used-before-def]  # noqa: F821  # here
    k = 1
    return m + k


def maybe_unbound(n: int) -> int:
    if n > 0:
        m = n
    return m  # here


def unsupported_method(n: int) -> int:
    return n.bit_length()  # here


def missing_annotation(n) -> int:  # type: ignore[no-untyped-def]  # here
    return 0


def unknown_class_pattern(msg: ReadCount | IncrCount, n: int) -> tuple[int, Output]:
    match msg:
        case Box():  # here
            return n, Ack()
        case _:
            return n, Ack()


def with_statement(n: int) -> int:
    with open("x") as f:  # here
        return len(f.read())


def yield_expression(n: int) -> int:  # type: ignore[misc]
    yield n  # here


def undefined_name(n: int) -> int:
    return n + UNDEFINED  # type: ignore[name-defined,no-any-return]  # noqa: F821  # here


def mixed_equality(n: int, x: float) -> bool:
    return n == x  # here


def loop_over_int(s: int) -> int:
    n = 0
    for _c in s:  # type: ignore[attr-defined]  # here
        n += 1
    return n


def recursion(n: int) -> int:
    return recursion(n - 1) if n > 0 else 0  # here


def star_args(*ns: int) -> int:  # here
    return 0


def bare_return(n: int) -> int:
    if n > 0:
        return  # type: ignore[return-value]  # here
    return n


def huge_literal(n: int) -> int:
    return n + 100000000000000000000000000  # here


def negative_huge_literal(n: int) -> int:
    return n + -9223372036854775809  # here


CASES: list[tuple[Callable[..., Any], str, str]] = [
    (while_loop, "while", "k changes type in the loop, from int to str; declare its type"),
    (global_statement, "global", "global is not supported"),
    (nonlocal_statement, "def inner", "nested definitions are not supported"),
    (attribute_assignment, "b.n", "attribute assignment is not supported: records are immutable"),
    (side_effect, "print", "print cannot be called here (unknown calls may have side effects)"),
    (unknown_call, "plain_function", "side effects); annotate its parameters and return"),
    (try_except, "try", "try/except is not supported"),
    (unused_value, "n + 1", "an expression whose value is not used is not supported"),
    (unused_call, "abs", "a call whose value is not used is not supported"),
    (raise_statement, "raise", "only raise E(message) is supported"),
    (generator_value, "(x for", "a generator expression is only supported as the argument"),
    (range_value, "range", "range(...) is only supported where it is iterated"),
    (tuple_of_list, "tuple", "tuple(...) of list[int] has no length known before it runs"),
    (list_append, "ys.append", "ys and xs may be the same list or dict"),
    (list_append_value, "xs.append", "xs.append(...) changes xs: write it as a statement"),
    (lambda_expression, "lambda", "lambda expressions are not supported"),
    (f_string, 'f"', "the spec must be a constant"),
    (set_comprehension, "{x + 1", "set comprehensions are not supported"),
    (missing_return, "if", "this if has no else, and nothing after it returns"),
    (incomplete_match, "match", "some values match no case of this match"),
    (type_error, "s + 1", "the operator + expected operands"),
    (is_comparison, "a is b", "'is' is only supported as 'x is None'"),
    (field_of_variant, "reply.n", "cannot read .n of a value of the variant type Ack | Count"),
    (used_before_assigned, "k", "the local variable k is used before it is assigned"),
    (maybe_unbound, "m", "m may be unbound here: not every path through the if"),
    (unsupported_method, "n.bit_length()", "the method bit_length of int is not supported"),
    (missing_annotation, "def", "expected an annotation for the parameter n"),
    (unknown_class_pattern, "Box()", "Box is not a case of the variant IncrCount | ReadCount"),
    (with_statement, "with", "with statements are not supported"),
    (yield_expression, "yield", "yield is not supported"),
    (undefined_name, "UNDEFINED", "the name UNDEFINED is not defined"),
    (mixed_equality, "n == x", "== compares values of one type here, found int and float"),
    (loop_over_int, "s:", "expected something to iterate in a for loop"),
    (recursion, "recursion(", "recursion is not supported"),
    (star_args, "ns", "*args, **kwargs and keyword-only parameters are not supported"),
    (bare_return, "return", "a return needs a value"),
    (huge_literal, "1000", "literal cannot be part of a program: expected an int within the wire"),
    (negative_huge_literal, "-9", "literal cannot be part of a program"),
]


def where(fn: Callable[..., Any], snippet: str) -> tuple[int, int, str]:
    """The line marked ``# here`` in ``fn``'s source, and the column of ``snippet`` on it."""
    lines, start = inspect.getsourcelines(fn)
    (k,) = [i for i, line in enumerate(lines) if line.rstrip().endswith("# here")]
    return start + k, lines[k].index(snippet) + 1, lines[k]


@pytest.mark.parametrize(("fn", "snippet", "words"), CASES, ids=[c[0].__name__ for c in CASES])
def test_refused_with_location_and_reason(fn: Callable[..., Any], snippet: str, words: str) -> None:
    """Decorating the function raises a FrontendError at the offending node, saying why."""
    machine = "msg" in inspect.signature(fn).parameters
    decorate: Callable[[Callable[..., Any]], object] = statemachine(init=0) if machine else arrow
    with pytest.raises(FrontendError) as info:
        decorate(fn)
    err = info.value
    line, col, text = where(fn, snippet)
    assert words in err.message, err.message
    assert err.message.startswith(f"in {fn.__qualname__}: ")
    assert (err.lineno, err.offset) == (line, col), str(err)
    assert err.path.endswith(f"test_frontend_errors.py:{line}:{col}")
    assert err.filename == __file__
    assert err.text == text
    assert str(err) == f"at {err.path}: {err.message}"
    assert isinstance(err, SyntaxError)


def test_error_in_an_indented_function_points_into_the_file() -> None:
    """Functions defined inside other functions are located correctly too."""
    with pytest.raises(FrontendError) as info:

        @arrow
        def inner(n: int) -> int:
            return n.bit_length()

    lines, start = inspect.getsourcelines(test_error_in_an_indented_function_points_into_the_file)
    k = next(i for i, line in enumerate(lines) if "return n.bit_length()" in line)
    assert info.value.lineno == start + k
    assert info.value.offset == lines[k].index("n.bit_length()") + 1


def test_closure_over_a_free_variable_is_refused() -> None:
    """A free variable of an enclosing function cannot be read."""
    limit = 3
    with pytest.raises(FrontendError, match="closures over free variables are not supported"):

        @arrow
        def capped(n: int) -> int:
            return min(n, limit)


def test_statemachine_needs_init() -> None:
    """@statemachine without init= says how to write it."""
    with pytest.raises(TypeError, match=r"write @statemachine\(init=\.\.\.\)"):

        @statemachine
        def f(msg: int, n: int) -> tuple[int, int]:
            return n, msg


def test_init_must_be_a_state() -> None:
    """init is validated against the state type."""
    with pytest.raises(ValidationError, match="expected int"):

        @statemachine(init="zero")
        def f(msg: int, n: int) -> tuple[int, int]:
            return n, msg


def test_statemachine_return_annotation_is_checked() -> None:
    """The return annotation must be tuple[State, Output]."""
    with pytest.raises(FrontendError, match=r"expected the return annotation tuple\[int, Output\]"):

        @statemachine(init=0)
        def f(msg: int, n: int) -> tuple[str, int]:
            return str(n), msg


def test_statemachine_takes_two_parameters() -> None:
    """A state machine is step(input, state)."""
    with pytest.raises(FrontendError, match="takes two parameters"):

        @statemachine(init=0)
        def f(msg: int) -> tuple[int, int]:
            return msg, msg


def test_lambdas_are_refused() -> None:
    """Only def functions can be decorated."""
    with pytest.raises(FrontendError, match="lambdas are not supported"):
        arrow(lambda n: n)


def test_branches_with_different_types_need_a_declaration() -> None:
    """A conditional expression of two records asks for an annotation."""
    with pytest.raises(FrontendError, match=r"annotate the target .*Output"):

        @statemachine(init=0)
        def f(msg: ReadCount | IncrCount, n: int) -> tuple[int, Output]:
            reply = Count(n) if n > 0 else Ack()
            return n, reply


# -- several refusals at once ---------------------------------------------------------


def many_refusals(xs: list[int], b: Box, d: dict[str, int]) -> int:
    total = 0
    try:  # here: try
        total += 1
    except ValueError:
        total = 0
    y: int = plain_function(total)  # here: plain_function
    z = y + 1
    xs.sort()  # here: xs.sort
    del d  # here: del d
    b.n = 2  # type: ignore[misc]  # here: b.n
    w = {x + z for x in xs}  # here: {x + z
    s = "a" + 1  # type: ignore[operator]  # here: "a" + 1
    return total + z + len(w) + len(s)


def marked(fn: Callable[..., Any]) -> list[tuple[int, int, str]]:
    """The lines marked ``# here: snippet`` in ``fn``, with the snippet's column."""
    lines, start = inspect.getsourcelines(fn)
    out = []
    for k, line in enumerate(lines):
        if "# here: " in line:
            snippet = line.rsplit("# here: ", 1)[1].strip()
            out.append((start + k, line.index(snippet) + 1, snippet))
    return out


def test_every_refusal_is_reported_at_once() -> None:
    """All the refusals of a function come in one FrontendError, in source order, each
    located and saying what to write instead; reading a name a refused statement
    assigns (z, from y) is not reported again."""
    with pytest.raises(FrontendError) as info:
        arrow(many_refusals)
    err = info.value
    expected = marked(many_refusals)
    assert [(r.lineno, r.offset) for r in err.refusals] == [(ln, col) for ln, col, _ in expected]
    for r, (line, col, snippet) in zip(err.refusals, expected, strict=True):
        assert r.path.endswith(f"test_frontend_errors.py:{line}:{col}")
        assert r.construct.startswith(snippet)
        assert r.reason
    lines = str(err).splitlines()
    assert lines[0] == "in many_refusals: 7 refusals; each says what to write instead:"
    assert len(lines) == 1 + len(expected)
    for text, r in zip(lines[1:], err.refusals, strict=True):
        assert text == f"  {r.path}: `{r.construct}`: {r.reason}"
    assert "try/except is not supported" in lines[1]
    assert "build a new list (xs + [x], [*xs, x])" in lines[3]
    assert "del is supported for dict keys" in lines[4]
    # The first refusal is the located one (the traceback's caret).
    assert (err.lineno, err.offset) == (expected[0][0], expected[0][1])
    assert err.__cause__ is None
    assert err.__suppress_context__


def test_refusals_are_capped() -> None:
    """A function with more refusals than FrontendError.MAX_REFUSALS reports the first ones."""
    limit = FrontendError.MAX_REFUSALS

    def many(n: int) -> int:
        a1 = n.bit_length() + 1
        a2 = n.bit_length() + 2
        a3 = n.bit_length() + 3
        a4 = n.bit_length() + 4
        a5 = n.bit_length() + 5
        a6 = n.bit_length() + 6
        a7 = n.bit_length() + 7
        a8 = n.bit_length() + 8
        a9 = n.bit_length() + 9
        a10 = n.bit_length() + 10
        a11 = n.bit_length() + 11
        a12 = n.bit_length() + 12
        a13 = n.bit_length() + 13
        a14 = n.bit_length() + 14
        a15 = n.bit_length() + 15
        a16 = n.bit_length() + 16
        a17 = n.bit_length() + 17
        a18 = n.bit_length() + 18
        a19 = n.bit_length() + 19
        a20 = n.bit_length() + 20
        a21 = n.bit_length() + 21
        a22 = n.bit_length() + 22
        return (
            a1
            + a2
            + a3
            + a4
            + a5
            + a6
            + a7
            + a8
            + a9
            + a10
            + a11
            + a12
            + a13
            + a14
            + a15
            + (a16 + a17 + a18 + a19 + a20 + a21 + a22)
        )

    with pytest.raises(FrontendError) as info:
        arrow(many)
    assert len(info.value.refusals) == limit
    assert str(info.value).splitlines()[0] == (
        f"in {many.__qualname__}: {limit} refusals (the first ones); each says what to write "
        "instead:"
    )


def test_a_single_refusal_keeps_its_one_line_form() -> None:
    """One refusal: str() is 'at path: message', and refusals holds the error itself."""
    with pytest.raises(FrontendError) as info:
        arrow(unsupported_method)
    assert info.value.refusals == (info.value,)
    assert str(info.value) == f"at {info.value.path}: {info.value.message}"


def refused_condition(n: int, xs: list[int]) -> int:
    if n.bit_length() > 4:  # here: n.bit_length()
        xs.sort()  # here: xs.sort
        return 1
    else:
        try:  # here: try
            n -= 1
        except ValueError:
            n = 0
    return n


def test_a_refused_condition_still_reports_its_branches() -> None:
    """An if whose condition is refused is still translated, so the refusals in
    its branches are reported too."""
    with pytest.raises(FrontendError) as info:
        arrow(refused_condition)
    expected = marked(refused_condition)
    got = [(r.lineno, r.offset) for r in info.value.refusals]
    assert got == [(line, col) for line, col, _ in expected]
