"""Machines: what a pipeline stage runs.

A :class:`Machine` is *portable*: an arrow-language loop plus its input and
output types, checked and compiled, with a version that is the SHA-256 of
its canonical wire document. It can be sent over the wire and rebuilt (and
re-checked) at the far end. A :class:`NativeMachine` wraps an annotated
Python callable; it runs at native speed but can only be upgraded
in-process. :class:`Function` is a checked, compiled pure arrow with
declared types: the form of state migrations and input/output adapters.
"""

from __future__ import annotations

import hashlib
import inspect
import typing
from collections.abc import Callable
from typing import Any

import attrs

from arrowloop.arrows import (
    DEFAULT_BUDGET,
    PRIMITIVES,
    Arrow,
    ChangeBudget,
    Loop,
    Registry,
    id_,
    metered,
)
from arrowloop.check import Typed, TypedLoop, check_arrow, check_loop, is_subtype, widening
from arrowloop.compiler import (
    compile_arrow,
    compile_loop,
    compile_owned,
    interpret,
    interpret_step,
    owned_step,
    state_copier,
)
from arrowloop.errors import CheckError, TypeDefinitionError
from arrowloop.typesys import TupleT, Type, TypeLike, from_annotation, render_type, validate
from arrowloop.wire import (
    DEFAULT_LIMITS,
    Limits,
    canonical,
    decode_function_doc,
    decode_machine_doc,
    digest,
    encode_function_doc,
    encode_machine_doc,
)

__all__ = ["Machine", "NativeMachine", "Function", "AnyMachine", "native"]

StepFn = Callable[[Any, Any], tuple[Any, Any]]


@attrs.frozen(eq=False)
class Machine:
    """A portable, checked, compiled state machine.

    Attributes:
        input: type of the items it consumes.
        output: type of the items it produces.
        state: type of its state.
        init: the initial state.
        loop: the program (``body : (input, state) -> (state, output)``).
        step: the compiled step function ``(input, state) -> (state, output)``;
            it never changes its arguments.
        version: SHA-256 (hex) of the canonical wire document.
    """

    input: Type
    output: Type
    state: Type
    init: Any
    loop: Loop
    typed: TypedLoop = attrs.field(repr=False)
    step: StepFn = attrs.field(repr=False)
    version: str

    portable = True

    def owned_step(self) -> tuple[StepFn, list[Any] | None]:
        """A step that updates the lists and dicts of its state in place, for
        a caller that owns the state (a stage), and the log of its writes
        (``None`` when it makes none in place).

        The caller must give each step the state the previous one returned
        (or a state of its own: :meth:`copy_state`), and let no one else hold
        it. A step that raises leaves the state as it was. The log lets the
        caller go back further (:func:`arrowloop.compiler.undo`) and must be
        cleared by it (see :func:`arrowloop.compiler.owned_step`).
        """
        return owned_step(self.typed)

    def copy_state(self, state: Any) -> Any:
        """A copy of ``state`` sharing no list or dict with it."""
        return state_copier(self.state)(state)

    @classmethod
    def build(
        cls,
        loop: Loop,
        input: TypeLike,
        output: TypeLike | None = None,
        *,
        registry: Registry = PRIMITIVES,
    ) -> Machine:
        """Check and compile ``loop`` as a machine from ``input`` to ``output``.

        ``output`` is inferred when omitted.

        Raises:
            CheckError: the program is ill-typed or does not have these types.
            TypeDefinitionError: an annotation has no arrowloop type.
        """
        tl = check_loop(loop, input, output, registry=registry)
        step = compile_loop(tl)
        # The stage's variant too, here: a change is built off the event loop.
        compile_owned(tl)
        doc = encode_machine_doc(tl.input, tl.output, loop)
        return cls(tl.input, tl.output, tl.state, loop.init, loop, tl, step, digest(doc))

    def to_wire_data(self) -> dict[str, Any]:
        """The machine's wire document as JSON data."""
        return encode_machine_doc(self.input, self.output, self.loop)

    def to_wire(self) -> bytes:
        """The canonical wire bytes of the machine."""
        return canonical(self.to_wire_data())

    @classmethod
    def from_wire(
        cls,
        raw: bytes | str | Any,
        *,
        limits: Limits = DEFAULT_LIMITS,
        registry: Registry = PRIMITIVES,
        budget: ChangeBudget | None = DEFAULT_BUDGET,
    ) -> Machine:
        """Decode, check and compile a machine received as a wire document,
        within ``budget`` (``None``: no budget).

        Raises:
            DecodeError: the document is malformed, too big or too deep.
            CheckError: the program does not have the types it declares.
            BudgetError: building it would cost more than ``budget`` allows.
        """
        with metered(budget):
            input, output, loop = decode_machine_doc(raw, limits, registry)
            return cls.build(loop, input, output, registry=registry)

    def interpret(self, item: Any, state: Any) -> tuple[Any, Any]:
        """One step with the reference interpreter (for differential tests)."""
        return interpret_step(self.typed, item, state)

    def __rshift__(self, other: Machine) -> Machine:
        """Run ``self`` then ``other`` in one stage; the state is the pair of states.

        ``other`` is checked against its declared input, which must accept
        every output of ``self`` (``is_subtype``); where the two types
        differ, a widening (the identity, typed from one to the other) joins
        them, so ``other``'s body is never typed at another input.

        Raises:
            CheckError: ``self``'s outputs are not all inputs of ``other``.
        """
        if not isinstance(other, Machine):
            return NotImplemented
        if not is_subtype(self.output, other.input):
            raise CheckError(
                f"expected a second machine whose input {other.input!r} accepts every output "
                f"of the first, found outputs {self.output!r}",
                path="machine >> machine",
                expected=repr(other.input),
                found=repr(self.output),
            )
        widen = widening(self.output, other.input, "machine >> machine")
        first = self.loop if widen == id_ else self.loop >> widen
        return Machine.build(first >> other.loop, self.input, other.output)


@attrs.frozen(eq=False)
class NativeMachine:
    """A machine whose step is a plain Python callable (in-process only).

    Build with :func:`native`. Its types come from the callable's
    annotations; the runtime validates what it returns where it must (e.g.
    the migrated state of an upgrade).
    """

    input: Type
    output: Type
    state: Type
    init: Any
    step: StepFn = attrs.field(repr=False)
    version: str

    portable = False


def _native_version(fn: Callable[..., Any], types: tuple[Type, ...]) -> str:
    h = hashlib.sha256(b"native\0")
    h.update(f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}".encode())
    code = getattr(fn, "__code__", None)
    if code is not None:
        h.update(code.co_code)
        h.update(repr(code.co_consts).encode())
    for t in types:
        h.update(render_type(t, None).encode())  # all of it: repr elides
    return h.hexdigest()


def native(
    step: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    *,
    input: TypeLike | None = None,
    output: TypeLike | None = None,
    state: TypeLike | None = None,
) -> NativeMachine:
    """Wrap ``step(input, state) -> (state, output)`` as a native machine.

    Types are read from the annotations (``def step(msg: A, s: S) ->
    tuple[S, B]``) unless given. The initial state is validated.

    Raises:
        TypeDefinitionError: an annotation is missing or unsupported.
        ValidationError: ``init`` is not a value of the state type.
    """
    hints: dict[str, Any] = {}
    try:
        hints = typing.get_type_hints(step)
    except (NameError, TypeError):
        hints = {}
    params = list(inspect.signature(step).parameters)
    if len(params) != 2:
        raise TypeDefinitionError(
            f"expected a step function of two parameters (input, state), found {len(params)}",
            expected="step(input, state)",
            found=f"{len(params)} parameters",
        )

    def pick(given: TypeLike | None, ann: Any, what: str) -> Type:
        if given is not None:
            return from_annotation(given, what)
        if ann is None:
            raise TypeDefinitionError(
                f"expected an annotation for the {what} of "
                f"{getattr(step, '__qualname__', step)!r}, found none; "
                f"annotate it or pass {what}=...",
                expected=f"{what} annotation",
                found="none",
            )
        return from_annotation(ann, what)

    in_t = pick(input, hints.get(params[0]), "input")
    st_t = pick(state, hints.get(params[1]), "state")
    ret = from_annotation(hints["return"], "return") if "return" in hints else None
    if output is not None:
        out_t = from_annotation(output, "output")
    elif isinstance(ret, TupleT) and len(ret.items) == 2:
        out_t = ret.items[1]
    else:
        raise TypeDefinitionError(
            "expected the return annotation tuple[State, Output], or output=...",
            expected="tuple[State, Output]",
            found=repr(ret),
        )
    if (
        isinstance(ret, TupleT)
        and len(ret.items) == 2
        and (ret.items[0] != st_t or ret.items[1] != out_t)
    ):
        raise TypeDefinitionError(
            f"expected the return annotation tuple[{st_t!r}, {out_t!r}], found {ret!r}",
            expected=f"tuple[{st_t!r}, {out_t!r}]",
            found=repr(ret),
        )
    validate(st_t, init, "init")
    return NativeMachine(in_t, out_t, st_t, init, step, _native_version(step, (in_t, out_t, st_t)))


AnyMachine = Machine | NativeMachine


@attrs.frozen(eq=False)
class Function:
    """A checked, compiled pure arrow with declared types.

    The form of state migrations (``old state -> new state``) and of
    input/output adapters. Portable like a :class:`Machine`.
    """

    input: Type
    output: Type
    arrow: Arrow
    typed: Typed = attrs.field(repr=False)
    fn: Callable[[Any], Any] = attrs.field(repr=False)
    version: str

    @classmethod
    def build(
        cls, arrow: Arrow, input: TypeLike, output: TypeLike, *, registry: Registry = PRIMITIVES
    ) -> Function:
        """Check ``arrow : input -> output`` and compile it.

        Raises:
            CheckError: the arrow does not have these types.
        """
        it, ot = from_annotation(input, "input"), from_annotation(output, "output")
        typed = check_arrow(arrow, it, ot, registry=registry)
        return cls(
            it, ot, arrow, typed, compile_arrow(typed), digest(encode_function_doc(it, ot, arrow))
        )

    def __call__(self, value: Any) -> Any:
        return self.fn(value)

    def apply_checked(self, value: Any) -> Any:
        """Apply to ``value`` and validate the result against the output type.

        Raises:
            ValidationError: the result does not have the output type.
        """
        out = self.fn(value)
        validate(self.output, out, "result")
        return out

    def interpret(self, value: Any) -> Any:
        """Apply with the reference interpreter."""
        return interpret(self.typed, value)

    def to_wire_data(self) -> dict[str, Any]:
        """The function's wire document as JSON data."""
        return encode_function_doc(self.input, self.output, self.arrow)

    def to_wire(self) -> bytes:
        """The canonical wire bytes of the function."""
        return canonical(self.to_wire_data())

    @classmethod
    def from_wire(
        cls,
        raw: bytes | str | Any,
        *,
        limits: Limits = DEFAULT_LIMITS,
        registry: Registry = PRIMITIVES,
        budget: ChangeBudget | None = DEFAULT_BUDGET,
    ) -> Function:
        """Decode, check and compile a function document, within ``budget``
        (``None``: no budget).

        Raises:
            DecodeError: the document is malformed.
            CheckError: the program does not have the types it declares.
            BudgetError: building it would cost more than ``budget`` allows.
        """
        with metered(budget):
            input, output, arrow = decode_function_doc(raw, limits, registry)
            return cls.build(arrow, input, output, registry=registry)
