"""Big functions compile: long literals, operator chains and if/elif/match chains.

Each source chain used to become a chain of nested program nodes and hit the
checker's nesting limit ("does not type-check, which is a bug in the front
end") at a few dozen links. The front end now builds balanced trees or flat
compositions (``arrowloop/frontend/_shapes.py``); here each shape is
generated at a size far past the old limits, compiled, sent over the wire
(whose decoder has its own depth limit) and compared with plain Python.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop import Function, PyFunction
from tests.profiles import examples
from tests.samename_a import Get, Put


def compile_source(tmp_path: Path, name: str, source: str, header: str = "") -> PyFunction:
    """The ``@arrow`` function ``f`` of a module written from ``source`` (after ``header``)."""
    path = tmp_path / f"{name}.py"
    path.write_text(f"import arrowloop\n{header}\n\n@arrowloop.arrow\n" + source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    f = module.f
    assert isinstance(f, PyFunction)
    return f


def depth(data: Any) -> int:
    """Nesting of a JSON document (arrays and objects)."""
    if isinstance(data, dict):
        return 1 + max((depth(v) for v in data.values()), default=0)
    if isinstance(data, list):
        return 1 + max((depth(v) for v in data), default=0)
    return 0


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """The result, or the exception's class."""
    try:
        return ("ok", fn(*args))
    except Exception as exc:  # the two sides must fail alike
        return ("raised", type(exc).__name__)


def same(a: tuple[str, Any], b: tuple[str, Any]) -> bool:
    """Equal outcomes (floats bit for bit, NaN equal to NaN)."""
    if a[0] != b[0] or type(a[1]) is not type(b[1]):
        return False
    if isinstance(a[1], float):
        return a[1].hex() == b[1].hex() or (math.isnan(a[1]) and math.isnan(b[1]))
    return bool(a[1] == b[1])


def checker(f: PyFunction) -> Callable[..., None]:
    """A check that compiled code, the interpreter, the function received over
    the wire (decoded once) and plain Python agree on some arguments."""
    received = Function.from_wire(f.function.to_wire())

    def agrees(*args: Any) -> None:
        x = args[0] if len(args) == 1 else args
        expected = outcome(f, *args)
        for got in (
            outcome(f.compiled, *args),
            outcome(f.function.interpret, x),
            outcome(received, x),
        ):
            assert same(got, expected), (args, got, expected)

    return agrees


def test_shapes_stay_within_the_wire_depth_limit(tmp_path: Path) -> None:
    """A 1,000-entry literal's program is shallow (the wire allows 256 levels of JSON)."""
    items = ", ".join(f"x + {i}" for i in range(1000))
    f = compile_source(tmp_path, "deep", f"def f(x: int) -> list[int]:\n    return [{items}]\n")
    checker(f)(3)
    assert depth(f.function.to_wire_data()) < 100


def test_thousand_entry_list_literal(tmp_path: Path) -> None:
    """[x + 0, ..., x + 999, *xs, ...] builds the list Python builds."""
    items = [f"x + {i}" if i % 97 else "*xs" for i in range(1000)]
    source = f"def f(x: int, xs: list[int]) -> list[int]:\n    return [{', '.join(items)}]\n"
    f = compile_source(tmp_path, "lists", source)
    agrees = checker(f)
    for args in ((0, []), (5, [1, 2]), (-3, [7])):
        agrees(*args)


def test_thousand_entry_dict_literal(tmp_path: Path) -> None:
    """Keys keep their first place and their last value, **d anywhere, as in Python."""
    entries = [f'"k{i % 700}": x * {i}' if i % 101 else "**d" for i in range(1000)]
    source = (
        "def f(x: int, d: dict[str, int]) -> dict[str, int]:\n"
        f"    return {{{', '.join(entries)}}}\n"
    )
    f = compile_source(tmp_path, "dicts", source)
    agrees = checker(f)
    for args in ((2, {}), (3, {"k5": 1, "z": 2})):
        agrees(*args)
        assert list(f.compiled(*args)) == list(f(*args))


def test_short_displays_accept_spreads_anywhere(tmp_path: Path) -> None:
    """{"a": 1, **d} (a spread after an entry) is a dict update, as in Python."""
    source = 'def f(d: dict[str, int]) -> dict[str, int]:\n    return {"a": 1, **d, "b": 2}\n'
    f = compile_source(tmp_path, "spread", source)
    agrees = checker(f)
    agrees({"a": 5, "c": 3})


@pytest.mark.parametrize(
    ("kind", "annotation"), [("int", "int"), ("float", "float"), ("str", "str")]
)
def test_five_hundred_term_sum(tmp_path: Path, kind: str, annotation: str) -> None:
    """a + b + ... (500 terms) is a left fold, so float rounding is Python's."""
    terms = " + ".join(["x", *(f"y{i % 3}" for i in range(499))])
    source = (
        f"def f(x: {annotation}, y0: {annotation}, y1: {annotation}, y2: {annotation}) "
        f"-> {annotation}:\n    return {terms}\n"
    )
    f = compile_source(tmp_path, f"plus_{kind}", source)
    agrees = checker(f)
    samples: dict[str, list[tuple[Any, ...]]] = {
        "int": [(1, 2, 3, 4), (-5, 10**12, 0, 7)],
        "float": [
            (0.1, 0.2, 0.3, 1e16),
            (1e308, 1e308, -1e308, 0.5),
            (math.inf, -math.inf, 0.0, 1.0),
        ],
        "str": [("a", "b", "", "cd")],
    }
    for args in samples[kind]:
        agrees(*args)


def test_mixed_operator_chain_raises_where_python_does(tmp_path: Path) -> None:
    """A chain of + - * // % with a division by zero in the middle raises as Python does."""
    ops = ["+", "-", "*", "//", "%"]
    terms = "x" + "".join(f" {ops[i % 5]} (y + {i % 4})" for i in range(200))
    f = compile_source(tmp_path, "mixed", f"def f(x: int, y: int) -> int:\n    return {terms}\n")
    agrees = checker(f)
    for args in ((3, 1), (3, 0), (3, -1), (-7, -2), (100, -3)):
        agrees(*args)


def test_long_and_or_chains_stop_early(tmp_path: Path) -> None:
    """x != 0 and 100 // x > 1 and ... stops at the first false operand, as Python does."""
    conds = " and ".join(["x != 0", *(f"100 // x > {-i}" for i in range(60))])
    ors = " or ".join(["x == 0", *(f"100 // x == {i}" for i in range(60))])
    source = f"def f(x: int) -> tuple[bool, bool]:\n    return ({conds}), ({ors})\n"
    f = compile_source(tmp_path, "boolops", source)
    agrees = checker(f)
    for x in (0, 1, 3, -2, 50, 200):
        agrees(x)


def _elif_source(n: int, returning: bool) -> str:
    lines = ["def f(x: int, s: str) -> int:", "    y = -1"]
    for i in range(n):
        test = f"x == {i}" if i % 7 else f'x == {i} and s == "s{i % 3}"'
        lines.append(f"    {'if' if i == 0 else 'elif'} {test}:")
        lines.append(f"        return {i} * 2 + x" if returning else f"        y = {i} * 3")
    lines.append("    else:")
    lines.append("        y = 100 // x")
    lines.append("    return y + x")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("returning", [True, False], ids=["returning", "joining"])
def test_three_hundred_branch_if_elif(tmp_path: Path, returning: bool) -> None:
    """A 300-branch if/elif (each branch returning, or assigning and joining) agrees with Python."""
    f = compile_source(tmp_path, f"elif_{returning}", _elif_source(300, returning))
    agrees = checker(f)

    @settings(max_examples=examples(40), deadline=None)
    @given(st.integers(-3, 310), st.sampled_from(["s0", "s1", "s2", ""]))
    def check(x: int, s: str) -> None:
        agrees(x, s)

    check()
    for x in (0, 7, 14, 299, 300):
        agrees(x, "s0")


def test_three_hundred_case_match(tmp_path: Path) -> None:
    """match over 300 int cases (alternatives, guards, a capture last) agrees with Python."""
    lines = ["def f(x: int, g: bool) -> int:", "    match x:"]
    for i in range(300):
        pattern = f"{i} | {i + 1000}" if i % 5 == 0 else f"{i}" if i % 5 else f"-{i}"
        guard = " if g" if i % 11 == 0 else ""
        lines += [f"        case {pattern}{guard}:", f"            return {i}"]
    lines += ["        case other:", "            return other * 2"]
    f = compile_source(tmp_path, "match_int", "\n".join(lines) + "\n")
    agrees = checker(f)

    @settings(max_examples=examples(40), deadline=None)
    @given(st.integers(-310, 1310), st.booleans())
    def check(x: int, g: bool) -> None:
        agrees(x, g)

    check()
    for x in (0, 11, 1000, 1005, 299, 300):
        agrees(x, False)


def test_three_hundred_case_match_on_strings(tmp_path: Path) -> None:
    """match over 300 str cases, with no case for the rest, continues after the match."""
    lines = ["def f(s: str) -> int:", "    n = 0", "    match s:"]
    for i in range(300):
        lines += [f'        case "k{i}":', f"            n = {i}"]
    lines += ["    return n + 1"]
    f = compile_source(tmp_path, "match_str", "\n".join(lines) + "\n")
    agrees = checker(f)
    for s in ("k0", "k150", "k299", "k300", ""):
        agrees(s)


@pytest.mark.parametrize("kind", ["assign", "if", "for"])
def test_long_bodies(tmp_path: Path, kind: str) -> None:
    """1,000 statements in a row (assignments, joined ifs, loops) compile without recursion."""
    line = {
        "assign": "    x = x + {i}",
        "if": "    if x % 3 == {m}:\n        x = x + {i}",
        "for": "    for y in ys:\n        x = x + y * {m}",
    }[kind]
    body = "\n".join(line.format(i=i, m=i % 3) for i in range(1000))
    source = f"def f(x: int, ys: list[int]) -> int:\n{body}\n    return x\n"
    f = compile_source(tmp_path, f"long_{kind}", source)
    agrees = checker(f)
    for args in ((0, []), (5, [1, 2])):
        agrees(*args)


def test_three_hundred_case_match_on_a_variant(tmp_path: Path) -> None:
    """300 cases for one tag of a variant (class patterns with literal fields and
    captures), then other tags, agree with Python."""
    lines = ["def f(m: Get | Put) -> int:", "    match m:"]
    for i in range(300):
        lines += [f'        case Get(key="k{i}"):', f"            return {i}"]
    lines += [
        "        case Put(key=k, value=v) if v > 100:",
        "            return -v",
        "        case Put(key=k, value=0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 11):",
        "            return len(k)",
        "        case Put(value=v):",
        "            return v",
        "        case _:",
        "            return -1",
    ]
    header = "from tests.samename_a import Get, Put"
    f = compile_source(tmp_path, "match_variant", "\n".join(lines) + "\n", header)
    agrees = checker(f)
    for m in (Get("k0"), Get("k150"), Get("k299"), Get("k300"), Put("ab", 5), Put("ab", 500)):
        agrees(m)
    agrees(Put("abc", 11))


def test_many_tuple_patterns_and_alternatives(tmp_path: Path) -> None:
    """A match on a tuple with 200 cases and a 100-way or-pattern agrees with Python."""
    lines = ["def f(p: tuple[int, str]) -> int:", "    match p:"]
    alternatives = " | ".join(f"(-{i}, _)" for i in range(1, 101))
    lines += [f"        case {alternatives}:", "            return -1"]
    for i in range(200):
        lines += [f'        case ({i}, "s") | ({i}, "t"):', f"            return {i}"]
    lines += ["        case (n, s):", "            return n * 1000 + len(s)"]
    f = compile_source(tmp_path, "match_tuple", "\n".join(lines) + "\n")
    agrees = checker(f)
    for p in ((0, "s"), (199, "t"), (5, "u"), (-50, "x"), (-101, "x"), (300, "s")):
        agrees(p)
