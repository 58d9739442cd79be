"""Strings, f-strings, failures, narrowing and record methods against plain Python.

The functions are in tests/strings_corpus.py (compiled at import); as in
tests/test_frontend_corpus.py, the compiled program (generated code and
reference interpreter) must give what the Python function gives on random
typed inputs, or raise an exception of the same class name and message. A
failing step rejects the item in a stage: StepError, state unchanged.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowloop import PyFunction, PyMachine, arrow, open_pipeline, stage
from arrowloop.arrows import PRIMITIVES, Prim
from arrowloop.errors import DecodeError, FrontendError, RaisedError, StepError
from arrowloop.machine import Function
from arrowloop.typesys import BOOL, FLOAT, INT, STR, TupleT, Type
from arrowloop.wire import decode_arrow, encode_arrow
from tests import strings_corpus as corpus
from tests.profiles import examples
from tests.test_frontend_corpus import agree, outcome, values


def richer(t: Type) -> st.SearchStrategy[Any]:
    """Like the corpus's values, with digits, whitespace and letters in top-level strs."""
    if t == STR:
        return st.text(alphabet="ab1 \t2A_é", max_size=8)
    if isinstance(t, TupleT):
        return st.tuples(*(richer(x) for x in t.items))
    return values(t)


@pytest.mark.parametrize("fn", corpus.CORPUS, ids=lambda f: f.fn.__name__)
@settings(max_examples=examples(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_compiled_matches_python(fn: PyFunction | PyMachine, data: st.DataObject) -> None:
    """On random typed inputs the compiled program does what the Python function does."""
    if isinstance(fn, PyMachine):
        msg = data.draw(richer(fn.input), label="input")
        state = data.draw(richer(fn.state), label="state")
        args: tuple[Any, ...] = (msg, state)
        compiled = outcome(fn.step, msg, state)
        interpreted = outcome(fn.machine.interpret, msg, state)
    else:
        x = data.draw(richer(fn.input), label="input")
        args = x if len(fn.params) > 1 else (x,)
        compiled = outcome(fn.function, x)
        interpreted = outcome(fn.function.interpret, x)
    expected = outcome(fn, *args)
    assert agree(compiled, expected), (compiled, expected)
    assert agree(interpreted, expected), (interpreted, expected)


def test_raise_names_the_class_and_message() -> None:
    """raise and assert raise a RaisedError subclass named like the Python class."""
    with pytest.raises(RaisedError) as info:
        corpus.checked.compiled(11, "k")
    assert type(info.value).__name__ == "ValueError"
    assert (info.value.name, info.value.message) == ("ValueError", "too big: 11")
    with pytest.raises(RaisedError, match=r"^n is 3$") as info:
        corpus.checked.compiled(3, "k")
    assert type(info.value).__name__ == "AssertionError"


def test_first_item_idiom_narrows() -> None:
    """After `if s is None: s = KeyStats()`, s is a KeyStats: its methods can be called."""
    s, mean = corpus.running_mean.step(4, None)
    assert (s, mean) == (corpus.KeyStats(n=1, total=4), 4.0)
    assert corpus.running_mean.step(2, s) == (corpus.KeyStats(n=2, total=6), 3.0)


def test_format_spec_is_in_the_wire_form() -> None:
    """The spec is part of the primitive's name; one Python refuses is not a primitive."""
    assert "format:>5" in PRIMITIVES
    assert "format:.1f" in PRIMITIVES
    assert "format:q" not in PRIMITIVES
    doc = encode_arrow(corpus.formatting.function.arrow)
    assert '"format:>5"' in str(doc).replace("'", '"')
    assert decode_arrow(doc) == corpus.formatting.function.arrow
    with pytest.raises(DecodeError, match="registered primitive"):
        decode_arrow({"kind": "prim", "name": "format:q"})
    assert decode_arrow({"kind": "prim", "name": "format:05d"}) == Prim("format:05d")


def test_dynamic_format_spec_is_refused() -> None:
    """A spec with a replacement field is refused: the spec must be a constant."""
    with pytest.raises(FrontendError, match="the spec must be a constant"):

        @arrow
        def bad(n: int) -> str:
            return f"{n:{n}}"


def test_try_stays_refused() -> None:
    """try/except is still refused (a program cannot catch)."""
    with pytest.raises(FrontendError, match="try/except is not supported"):

        @arrow
        def bad(n: int) -> int:
            try:
                return n
            except ValueError:
                return 0


@pytest.mark.anyio
async def test_raise_rejects_the_item_and_keeps_the_state() -> None:
    """In a stage, a raise answers StepError naming the class and message; the state stays."""
    async with open_pipeline(stage("acct", corpus.account)) as p:
        assert await p.call(5) == -5
        with pytest.raises(StepError, match=r"Overdrawn: cannot take 30 from -5"):
            await p.call(30)
        assert p.state("acct") == -5
        assert await p.call(1) == -6


@pytest.mark.anyio
async def test_raise_after_a_write_in_place_keeps_the_state() -> None:
    """A step that changed its dict in place and then raised leaves the state as it was."""
    async with open_pipeline(stage("tally", corpus.tally)) as p:
        assert await p.call("a") == 1
        assert await p.call("a") == 2
        with pytest.raises(StepError, match=r"ValueError: too many a"):
            await p.call("a")
        assert p.state("tally") == {"a": 2}
        assert await p.call("b") == 1
        assert p.state("tally") == {"a": 2, "b": 1}


_SPEC_CHARS = "<>^=+- #0123456789,._dfeEgGxXobcns%z{}'\"\\"


@settings(max_examples=examples(200), deadline=None)
@given(
    spec=st.text(alphabet=_SPEC_CHARS, max_size=7),
    value=st.one_of(st.integers(), st.floats(), st.text(alphabet="ab ", max_size=3), st.booleans()),
)
def test_format_family_is_pythons_format(spec: str, value: Any) -> None:
    """format:<spec> exists for the types Python accepts the spec for, and computes
    format(value, spec) compiled, interpreted and after a wire round trip."""
    name = "format:" + spec
    t = {int: INT, float: FLOAT, str: STR, bool: BOOL}[type(value)]
    sample = {int: 0, float: 0.0, str: "", bool: False}[type(value)]
    try:
        format(sample, spec)
    except ValueError:
        accepted = False
    else:
        accepted = True
    prim = PRIMITIVES.get(name)
    assert accepted <= (prim is not None)
    if not accepted:
        return
    fn = Function.build(Prim(name), t, STR)
    again = decode_arrow(encode_arrow(Prim(name)))
    assert again == Prim(name)
    expected = outcome(format, value, spec)
    assert agree(outcome(fn, value), expected)
    assert agree(outcome(fn.interpret, value), expected)


def test_method_changing_self_is_refused() -> None:
    """A method that changes self in place is refused where it is called, saying why."""
    with pytest.raises(FrontendError, match=r"changes self in place.*never share"):

        @arrow
        def bad(b: corpus.Bag) -> int:
            return b.bump("k")
