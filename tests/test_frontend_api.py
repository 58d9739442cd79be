"""The front end's public API: decorator forms, registries, closures over classes, exports."""

from __future__ import annotations

import importlib

import attrs
import pytest

import arrowloop
from arrowloop import FrontendError, Machine, PyFunction, PyMachine, arrow, statemachine
from arrowloop.arrows import Registry
from arrowloop.machine import Function
from arrowloop.typesys import INT, TupleT


def test_arrow_decorator_with_and_without_parentheses() -> None:
    """@arrow and @arrow() give the same compiled function."""

    @arrow
    def a(n: int) -> int:
        return n + 1

    @arrow()
    def b(n: int) -> int:
        return n + 1

    assert isinstance(a, PyFunction)
    assert a.function.version == b.function.version
    assert a(1) == b.compiled(1) == 2


def test_several_parameters_take_a_tuple() -> None:
    """An @arrow of several parameters is an arrow from the tuple of their types."""

    @arrow
    def add(a: int, b: int) -> int:
        return a + b

    assert add.input == TupleT((INT, INT))
    assert add.function((2, 3)) == add.compiled(2, 3) == add(2, 3) == 5
    with pytest.raises(TypeError, match="takes 2 arguments"):
        add.compiled(1)


def triple(x: int) -> int:
    """Registered, in a registry of its own, by the test below."""
    return 3 * x


def untyped_triple(x: int):  # type: ignore[no-untyped-def]
    """Registered with its types by the test below; its return not annotated."""
    return 3 * x


def test_a_custom_registry_supplies_the_primitives() -> None:
    """User primitives can live in a registry of their own."""
    registry = Registry()
    registry.register("triple", int, int, triple)
    registry.register("untyped_triple", int, int, untyped_triple)

    @arrow(registry=registry)
    def f(n: int) -> int:
        return untyped_triple(triple(n))  # type: ignore[no-any-return]

    assert f.compiled(4) == 36
    assert b'"triple"' in f.function.to_wire()
    with pytest.raises(FrontendError, match="untyped_triple cannot be called here"):

        @arrow
        def g(n: int) -> int:
            return untyped_triple(n)  # type: ignore[no-any-return]

    # Not a primitive of the default registry, triple is a plain annotated
    # function there: compiled and inlined (frontend/_globals.py).
    @arrow
    def h(n: int) -> int:
        return triple(n)

    assert h.compiled(4) == 12
    assert b'"triple"' not in h.function.to_wire()


def test_classes_of_an_enclosing_function_can_be_used() -> None:
    """A closure may name classes (they are types, not data)."""

    @attrs.frozen
    class Local:
        v: int

    @arrow
    def wrap(n: int) -> Local:
        return Local(n * 2)

    assert wrap.compiled(3) == Local(6) == wrap(3)


def test_machines_compose_with_combinator_machines() -> None:
    """A Python-written machine is an ordinary Machine: it composes and ships."""

    @statemachine(init=0)
    def total(n: int, acc: int) -> tuple[int, int]:
        return acc + n, acc + n

    @statemachine(init=0)
    def count(n: int, seen: int) -> tuple[int, tuple[int, int]]:
        return seen + 1, (seen + 1, n)

    assert isinstance(total, PyMachine)
    both = total.machine >> count.machine
    state = both.init
    for x in (5, 7):
        state, out = both.step(x, state)
    assert out == (2, 12)
    assert Machine.from_wire(both.to_wire()).version == both.version


def test_public_names() -> None:
    """The decorators are exported; arrowloop.machine is still the subpackage."""
    for name in ("statemachine", "arrow", "PyMachine", "PyFunction", "FrontendError"):
        assert name in arrowloop.__all__
        assert getattr(arrowloop, name) is not None
    module = importlib.import_module("arrowloop.machine")
    assert module.Machine is Machine
    assert arrowloop.machine is module
    assert isinstance(arrowloop.Function, type)
    assert Function is arrowloop.Function


@attrs.frozen
class FeShape:
    """A base class of variant cases."""


@attrs.frozen
class FeCircle(FeShape):
    """One case."""

    r: int


@attrs.frozen
class FeSquare(FeShape):
    """Another case."""

    side: int


def test_class_patterns_match_subclasses_like_isinstance() -> None:
    """case Base(): matches every case of the variant whose class derives from Base."""

    @arrow
    def area(s: FeCircle | FeSquare) -> int:
        match s:
            case FeCircle(r=r):
                return 3 * r * r
            case FeShape():
                return -1

    for shape in (FeCircle(2), FeSquare(5)):
        assert area.compiled(shape) == area(shape)
    assert area.compiled(FeSquare(5)) == -1
