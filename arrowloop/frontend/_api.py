"""The decorators: ``@statemachine(init=...)`` and ``@arrow``.

Part of the Python front end, its entry point. A decorated function is
read (never run) at decoration time: its signature gives the types, its
body is translated to the arrow language, simplified, then checked and
compiled like any other program. Anything outside the supported subset is
refused there and then, with a :class:`~arrowloop.errors.FrontendError`
that points at the source.

The decorators are not called ``machine`` because ``arrowloop.machine`` is
the subpackage that defines :class:`~arrowloop.machine.Machine`.
"""

from __future__ import annotations

import ast
import contextlib
from collections.abc import Callable
from typing import Any, Final, TypeVar, overload

from arrowloop.arrows import PRIMITIVES, Arrow, Fanout, Id, Loop, Registry, map_children, simplify
from arrowloop.errors import CheckError, FrontendError
from arrowloop.frontend._builtins import key_lambdas
from arrowloop.frontend._env import Env, Hole, Slot, assigned
from arrowloop.frontend._flow import Enough, MustReturn
from arrowloop.frontend._language import Language
from arrowloop.frontend._loops import rewrite_exits
from arrowloop.frontend._objects import PyFunction, PyMachine
from arrowloop.frontend._source import Source
from arrowloop.machine import Function, Machine
from arrowloop.typesys import OptionT, TupleT, Type, validate

__all__ = ["statemachine", "arrow"]

F = TypeVar("F", bound=Callable[..., Any])

_REQUIRED: Final = object()
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _signature(src: Source, first: Type | None = None) -> tuple[list[str], list[Type], Type]:
    tree = src.tree
    a = tree.args
    if a.vararg or a.kwarg or a.kwonlyargs:
        bad = a.vararg or a.kwarg or a.kwonlyargs[0]
        src_err = src.error(bad, "*args, **kwargs and keyword-only parameters are not supported")
        raise src_err
    if a.defaults:
        raise src.error(a.defaults[0], "parameter defaults are not supported")
    params = [*a.posonlyargs, *a.args]
    types = [
        # ``first``: the type of a method's ``self`` (records' methods, _methods.py).
        first
        if first is not None and i == 0
        else src.annotation(p.annotation, f"the parameter {p.arg}")
        for i, p in enumerate(params)
    ]
    ret = src.annotation(tree.returns, "the return type")
    keys = key_lambdas(tree)
    for node in (n for stmt in tree.body for n in ast.walk(stmt)):
        if isinstance(node, _SCOPES) and node not in keys:
            what = "lambda expressions" if isinstance(node, ast.Lambda) else "nested definitions"
            raise src.error(
                node,
                f"{what} are not supported; write a module-level @arrow function and call it",
            )
        if isinstance(node, ast.Global | ast.Nonlocal):
            kw = "global" if isinstance(node, ast.Global) else "nonlocal"
            raise src.error(
                node,
                f"{kw} is not supported: the function may only change its state by returning "
                "the new state",
            )
    return [p.arg for p in params], types, ret


def _translate(
    src: Source, registry: Registry, names: list[str], types: list[Type], ret: Type, prefix: Arrow
) -> Arrow:
    src.tree.body = rewrite_exits(src.tree.body, src.tree.returns)
    local = set(names) | assigned(src.tree.body)
    tr = Language(src, registry, local)
    tr.ret_type = ret
    tr.refusals = []
    env = Env(
        tuple(Slot(n, t) for n, t in zip(names, types, strict=True)),
        dict(zip(names, types, strict=True)),
    )
    try:
        try:
            body = prefix >> tr.block(src.tree.body, env, MustReturn(), None)
        except FrontendError as err:
            with contextlib.suppress(Enough):
                tr.record(err)
        except Enough:
            pass
        except Exception:
            # Translating on after a refusal may meet what it left behind.
            if not tr.refusals:
                raise
        if not tr.refusals:
            try:
                tr.check_changes()
            except FrontendError as err:
                tr.record(err)
        if tr.refusals:
            raise FrontendError.combine(src.name, tr.refusals).with_traceback(None) from None
        body = simplify(body)
    except RecursionError:
        # Long chains and long bodies are translated without deep recursion
        # (_shapes.py, Translator.block); what is left is deep nesting.
        raise src.error(
            src.tree,
            "the function nests too deeply to translate (expressions or blocks nested "
            "hundreds of levels); name intermediate values, or split it into @arrow functions",
        ) from None
    _no_holes(body)
    return body


def _no_holes(a: Arrow) -> Arrow:
    # Every join is filled before the program leaves the front end.
    assert not isinstance(a, Hole), "a join was left unfilled"
    return map_children(a, _no_holes)


def _internal(src: Source, exc: CheckError) -> Exception:
    err = src.error(
        src.tree,
        f"the translation does not type-check, which is a bug in the front end: {exc}",
    )
    err.__cause__ = exc
    return err


def statemachine(
    _misuse: object = None, /, *, init: Any = _REQUIRED, registry: Registry = PRIMITIVES
) -> Callable[[Callable[..., Any]], PyMachine]:
    """Compile an annotated Python function into a portable state machine.

    Usage::

        @statemachine(init=0)
        def counter(msg: ReadCount | IncrCount, count: int) -> tuple[int, Count | Ack]:
            match msg:
                case ReadCount():
                    return count, Count(count)
                case IncrCount():
                    return count + 1, Ack()

    The function takes the input and the state, and returns ``(new state,
    output)``; the parameter annotations give the input and state types, the
    return annotation ``tuple[State, Output]`` the output type. ``init`` is
    the initial state. See docs/python-subset.md for what the body may use.

    Returns:
        a :class:`PyMachine`: still callable as the Python function, with
        the compiled :class:`~arrowloop.machine.Machine` as ``.machine``.

    Raises:
        TypeError: ``init`` is missing (write ``@statemachine(init=...)``).
        FrontendError: the function is outside the supported subset.
        ValidationError: ``init`` is not a value of the state type.
    """
    if _misuse is not None or init is _REQUIRED:
        raise TypeError(
            "statemachine needs the initial state: write @statemachine(init=...) above the def"
        )

    def decorate(fn: Callable[..., Any]) -> PyMachine:
        src = Source(fn, "statemachine")
        names, types, ret = _signature(src)
        if len(names) != 2:
            raise src.error(
                src.tree.args,
                f"a state machine takes two parameters (input, state), found {len(names)}",
                expected="(input, state)",
                found=f"{len(names)} parameters",
            )
        in_t, state_t = types
        if (
            isinstance(ret, TupleT)
            and len(ret.items) == 2
            and isinstance(state_t, OptionT)
            and ret.items[0] == state_t.item
        ):
            # ``(msg, s: T | None) -> tuple[T, O]``: the optional state of
            # bytewax's stateful_map and PyFlink's ValueState (None before the
            # first item); the machine's state is T | None, and the T returned
            # is one.
            ret = TupleT((state_t, ret.items[1]))
        if not (isinstance(ret, TupleT) and len(ret.items) == 2 and ret.items[0] == state_t):
            assert src.tree.returns is not None
            raise src.error(
                src.tree.returns,
                f"expected the return annotation tuple[{state_t!r}, Output] (the new state and "
                f"the output), found {ret!r}",
                expected=f"tuple[{state_t!r}, Output]",
                found=repr(ret),
            )
        validate(state_t, init, "init", wire=True)
        body = _translate(src, registry, names, types, ret, Id())
        try:
            machine = Machine.build(
                Loop(body, state_t, init), in_t, ret.items[1], registry=registry
            )
        except CheckError as exc:  # pragma: no cover - a bug, reported as such
            raise _internal(src, exc) from exc
        return PyMachine(fn, machine, tuple(names))

    return decorate


@overload
def arrow(fn: Callable[..., Any], /, *, registry: Registry = ...) -> PyFunction: ...


@overload
def arrow(
    fn: None = None, /, *, registry: Registry = ...
) -> Callable[[Callable[..., Any]], PyFunction]: ...


def arrow(
    fn: Callable[..., Any] | None = None, /, *, registry: Registry = PRIMITIVES
) -> PyFunction | Callable[[Callable[..., Any]], PyFunction]:
    """Compile an annotated, pure Python function into a portable arrow.

    Usage: ``@arrow`` or ``@arrow(registry=...)``::

        @arrow
        def migrate(n: int) -> tuple[int, bool]:
            return n, False

    One parameter makes an arrow from its type; several, from the tuple of
    their types. Use the result as a state migration or an adapter, or call
    it from other front-end functions (the call is inlined).

    Returns:
        a :class:`PyFunction`: still callable as the Python function, with
        the compiled :class:`~arrowloop.machine.Function` as ``.function``.

    Raises:
        FrontendError: the function is outside the supported subset.
    """

    def decorate(f: Callable[..., Any]) -> PyFunction:
        src = Source(f, "arrow")
        names, types, ret = _signature(src)
        if not names:
            raise src.error(src.tree.args, "an @arrow function takes at least one parameter")
        return _function(f, src, registry, names, types, ret)

    if fn is not None:
        return decorate(fn)
    return decorate


def compile_method(f: Callable[..., Any], self_type: Type, registry: Registry) -> PyFunction:
    """Compile a method of a record class (its ``self`` of type ``self_type``),
    as :func:`arrow` compiles a function, for inlining where it is called.

    Raises:
        FrontendError: the method's body is outside the supported subset.
    """
    src = Source(f, "arrow")
    names, types, ret = _signature(src, self_type)
    if not names:
        raise src.error(src.tree.args, "a method takes self")
    return _function(f, src, registry, names, types, ret)


def _function(
    f: Callable[..., Any],
    src: Source,
    registry: Registry,
    names: list[str],
    types: list[Type],
    ret: Type,
) -> PyFunction:
    """``f`` (read as ``src``, with its parameters' ``names`` and ``types``)
    translated and built as a function of one input: the parameter, or the
    tuple of them."""
    in_t: Type = types[0] if len(types) == 1 else TupleT(tuple(types))
    prefix: Arrow = Fanout((Id(),)) if len(names) == 1 else Id()
    body = _translate(src, registry, names, types, ret, prefix)
    try:
        function = Function.build(body, in_t, ret, registry=registry)
    except CheckError as exc:  # pragma: no cover - a bug, reported as such
        raise _internal(src, exc) from exc
    return PyFunction(f, function, tuple(names))
