"""What the front end's decorators return: the plain function plus its compiled form.

Part of the Python front end. A :class:`PyMachine` holds the
:class:`~arrowloop.machine.Machine` compiled from a ``@statemachine``
function, a :class:`PyFunction` the :class:`~arrowloop.machine.Function`
compiled from an ``@arrow`` function. Both stay callable as the original
Python function, so unit tests can call them directly, and both can be
called from other front-end functions (the call is inlined).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from arrowloop.arrows import Arrow, Loop
from arrowloop.machine import Function, Machine
from arrowloop.typesys import Type

__all__ = ["PyMachine", "PyFunction"]


class PyMachine:
    """A state machine written as an annotated Python function (``@statemachine``).

    Calling it runs the original Python function; :attr:`machine` is the
    portable machine compiled from it (serialisable, checked, hot
    upgradable), and :meth:`step` runs the compiled step.

    Attributes:
        machine: the compiled :class:`~arrowloop.machine.Machine`.
        params: the names of the two parameters (input, state).
    """

    __name__: str
    __qualname__: str
    __wrapped__: Callable[..., Any]

    def __init__(self, fn: Callable[..., Any], machine: Machine, params: tuple[str, ...]) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.machine = machine
        self.params = params

    def __call__(self, input: Any, state: Any) -> Any:
        return self.fn(input, state)

    def step(self, input: Any, state: Any) -> tuple[Any, Any]:
        """One step of the compiled machine: ``(input, state) -> (state, output)``."""
        return self.machine.step(input, state)

    @property
    def loop(self) -> Loop:
        """The arrow-language program of the machine."""
        return self.machine.loop

    @property
    def init(self) -> Any:
        """The initial state."""
        return self.machine.init

    @property
    def input(self) -> Type:
        """The input type."""
        return self.machine.input

    @property
    def output(self) -> Type:
        """The output type."""
        return self.machine.output

    @property
    def state(self) -> Type:
        """The state type."""
        return self.machine.state

    @property
    def version(self) -> str:
        """The machine's version (content hash of its wire form)."""
        return self.machine.version

    def __repr__(self) -> str:
        return f"<statemachine {self.fn.__qualname__}: {self.input!r} -> {self.output!r}>"


class PyFunction:
    """A pure function written as an annotated Python function (``@arrow``).

    Calling it runs the original Python function; :attr:`function` is the
    portable, checked, compiled :class:`~arrowloop.machine.Function` (use it
    as a state migration or an adapter), and :meth:`compiled` calls that
    with the Python function's arguments.

    Attributes:
        function: the compiled :class:`~arrowloop.machine.Function`.
        params: the parameter names; one parameter takes its type, several
            take a tuple of their types.
    """

    __name__: str
    __qualname__: str
    __wrapped__: Callable[..., Any]

    def __init__(self, fn: Callable[..., Any], function: Function, params: tuple[str, ...]) -> None:
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.function = function
        self.params = params

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def compiled(self, *args: Any) -> Any:
        """Apply the compiled function to positional arguments, as the Python one."""
        if len(args) != len(self.params):
            raise TypeError(
                f"{self.fn.__qualname__} takes {len(self.params)} arguments, found {len(args)}"
            )
        return self.function(args[0] if len(args) == 1 else args)

    @property
    def arrow(self) -> Arrow:
        """The arrow-language program."""
        return self.function.arrow

    @property
    def input(self) -> Type:
        """The input type (a tuple of the parameter types when there are several)."""
        return self.function.input

    @property
    def output(self) -> Type:
        """The output type."""
        return self.function.output

    @property
    def version(self) -> str:
        """The function's version (content hash of its wire form)."""
        return self.function.version

    def __repr__(self) -> str:
        return f"<arrow {self.fn.__qualname__}: {self.input!r} -> {self.output!r}>"
