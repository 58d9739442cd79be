"""Types in the front end: showing them, converting between them, typing primitives.

Part of the Python front end. :class:`Typing` is the base of the
translator: it reports errors at a syntax node, types a registry primitive
applied to translated arguments (so a type error points at the Python
source, not at a node of the program), and converts a value where Python
would just use it (a record where its variant is expected, ``x`` or
``None`` where ``x | None`` is).
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import NoReturn

from arrowloop.arrows import Arrow, Const, Fanout, If, Inject, Prim, Proj, Registry
from arrowloop.check import infer
from arrowloop.errors import CheckError
from arrowloop.frontend._env import Env, Val, tuple_of
from arrowloop.frontend._source import Source
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    UNIT,
    ListT,
    MapT,
    OptionT,
    RecordT,
    SetT,
    TupleT,
    TVar,
    Type,
    VariantT,
    plain_tag,
    record_classes,
)

__all__ = ["Typing", "show", "TRUE", "FALSE"]

TRUE: Arrow = Const(BOOL, True)
FALSE: Arrow = Const(BOOL, False)


def show(t: Type) -> str:
    """A type as a Python programmer would write it."""
    match t:
        case RecordT(name=name):
            return name
        case VariantT(name=name, cases=cases):
            if name:
                return name
            return " | ".join(
                p.name
                if isinstance(p, RecordT) and p.name == tag
                else show(p)
                if plain_tag(p) == tag
                else tag
                for tag, p in cases
            )
        case TupleT(items=items):
            return "tuple[" + ", ".join(show(x) for x in items) + "]" if items else "tuple[()]"
        case ListT(item=item):
            return f"list[{show(item)}]"
        case MapT(value=v, key=k):
            return f"dict[{show(k)}, {show(v)}]"
        case SetT(item=item):
            return f"set[{show(item)}]"
        case OptionT(item=item):
            return f"{show(item)} | None"
        case TVar():
            return "T"
    return "None" if t == UNIT else repr(t)


def _operands(t: Type) -> str:
    """An overload's input as the operands it takes: ``(int, int)``."""
    if isinstance(t, TupleT):
        return "(" + ", ".join(show(x) for x in t.items) + ")"
    return show(t)


class Typing:
    """Errors, primitive typing and conversions; the translator derives from it."""

    def __init__(self, src: Source, registry: Registry, local_names: set[str]) -> None:
        self.src = src
        self.registry = registry
        self.locals = local_names

    # -- hooks filled in by the subclasses ------------------------------------

    def expr(self, node: ast.expr, env: Env, expected: Type | None = None) -> Val:
        """Translate an expression (see :mod:`arrowloop.frontend._exprs`)."""
        raise NotImplementedError

    # -- errors -------------------------------------------------------------

    def fail(
        self, node: ast.AST, message: str, expected: str | None = None, found: str | None = None
    ) -> NoReturn:
        """Raise a :class:`FrontendError` about ``node``."""
        raise self.src.error(node, message, expected=expected, found=found)

    def mismatch(self, node: ast.AST, expected: str, found: Type, hint: str = "") -> NoReturn:
        """Raise ``expected <expected>, found <found>[; hint]`` about ``node``."""
        more = f"; {hint}" if hint else ""
        self.fail(node, f"expected {expected}, found {show(found)}{more}", expected, show(found))

    # -- types ----------------------------------------------------------------

    def prim(self, name: str, args: Sequence[Val], node: ast.AST, what: str) -> Val:
        """Apply the registry primitive ``name`` to ``args``, typing it now."""
        arg_t: Type = args[0].type if len(args) == 1 else TupleT(tuple(a.type for a in args))
        arrow = args[0].arrow if len(args) == 1 else tuple_of([a.arrow for a in args])
        try:
            typed = infer(Prim(name), arg_t, registry=self.registry)
        except CheckError:
            p = self.registry.get(name)
            accepted = " or ".join(_operands(s.input) for s in p.signatures) if p else "?"
            found = ", ".join(show(a.type) for a in args)
            self.fail(
                node,
                f"{what} expected operands {accepted}, found {found}",
                accepted,
                found,
            )
        return Val(arrow >> Prim(name), typed.output)

    def coerce(self, v: Val, want: Type, node: ast.AST, what: str = "a value of type") -> Val:
        """``v`` converted to ``want`` (a record into a variant, ``x`` into ``x | None``)."""
        arrow = self.convert(v.arrow, v.type, want)
        if arrow is None:
            self.mismatch(node, f"{what} {show(want)}", v.type)
        return Val(arrow, want)

    def convert(self, arrow: Arrow, have: Type, want: Type) -> Arrow | None:
        """The conversion of ``arrow : have`` to ``want``, or ``None``."""
        if have == want:
            return arrow
        if isinstance(want, VariantT) and isinstance(have, RecordT):
            if want.payload(have.name) == have:
                return arrow >> Inject(have.name, want)
            return None
        if isinstance(want, VariantT):
            # A plain case of a union (``str`` into ``Hello | str``).
            tag = plain_tag(have)
            if tag is not None and want.payload(tag) == have:
                return arrow >> Inject(tag, want)
            return None
        if isinstance(want, OptionT):
            if have == UNIT:
                return arrow >> Const(want, None)
            if isinstance(have, OptionT):
                # ``x | None`` into ``y | None``: the value converted, None kept.
                some = self.convert(Prim("unwrap"), have.item, want.item)
                if some is None:
                    return None
                return arrow >> If(Prim("is_some"), some >> Prim("some"), Const(want, None))
            inner = self.convert(arrow, have, want.item)
            return None if inner is None else inner >> Prim("some")
        if isinstance(want, TupleT) and isinstance(have, TupleT):
            n = len(want.items)
            if len(have.items) != n:
                return None
            pairs = zip(have.items, want.items, strict=True)
            if isinstance(arrow, Fanout) and len(arrow.parts) == n:
                parts = [
                    self.convert(p, h, w) for p, (h, w) in zip(arrow.parts, pairs, strict=True)
                ]
                if any(p is None for p in parts):
                    return None
                return Fanout(tuple(p for p in parts if p is not None))
            conv = [self.convert(Proj(i, n), h, w) for i, (h, w) in enumerate(pairs)]
            if any(c is None for c in conv):
                return None
            return arrow >> Fanout(tuple(c for c in conv if c is not None))
        return None

    def condition(self, node: ast.expr, env: Env) -> Arrow:
        """A condition: a ``bool``, or any value by Python's truthiness."""
        if isinstance(node, ast.BoolOp):
            return self.boolop(node.op, node.values, env, as_condition=True).arrow
        return self.truthy(self.expr(node, env), node)

    def boolop(
        self, op: ast.boolop, values: list[ast.expr], env: Env, as_condition: bool = False
    ) -> Val:
        """``and``/``or`` (see :mod:`arrowloop.frontend._operators`)."""
        raise NotImplementedError

    def truthy(self, v: Val, node: ast.AST) -> Arrow:
        """``bool(v)`` as Python computes it: numbers are true unless zero,
        strings and containers unless empty, an optional when it holds a true
        value, records (without ``__bool__``/``__len__``) always, ``None``
        never."""
        t = v.type
        if t == BOOL:
            return v.arrow
        if t in (INT, FLOAT):
            zero = Val(Const(t, 0 if t == INT else 0.0), t)
            return self.prim("ne", [v, zero], node, "a condition").arrow
        if t == STR or isinstance(t, ListT | MapT | SetT):
            n = self.prim("len", [v], node, "a condition")
            return self.prim("ne", [n, Val(Const(INT, 0), INT)], node, "a condition").arrow
        if isinstance(t, OptionT):
            present = Val(v.arrow >> Prim("is_some"), BOOL)
            inner = Val(v.arrow >> Prim("unwrap"), t.item)
            test = self.truthy(inner, node)
            if isinstance(test, Const) or _always_true(test, inner.arrow):
                return present.arrow
            return If(present.arrow, test, FALSE)
        if t == UNIT:
            return v.arrow >> FALSE  # evaluated, as Python would
        if isinstance(t, TupleT):
            return v.arrow >> (TRUE if t.items else FALSE)
        if isinstance(t, RecordT | VariantT) and not _custom_truth(t):
            return v.arrow >> TRUE
        self.fail(
            node,
            f"the truth of a {show(t)} is not supported; compare explicitly "
            "(x != 0, len(s) > 0, x is not None)",
            "bool",
            show(t),
        )


def _always_true(test: Arrow, value: Arrow) -> bool:
    # ``value >> TRUE``: the item is true whenever it is there.
    return test == (value >> TRUE)


def _custom_truth(t: RecordT | VariantT) -> bool:
    """Whether a class of a record type (or of a variant's record cases)
    defines its own truth (``__bool__`` or ``__len__``)."""
    records = [t] if isinstance(t, RecordT) else [p for _, p in t.cases if isinstance(p, RecordT)]
    if isinstance(t, VariantT) and any(
        p is not None and not isinstance(p, RecordT) for _, p in t.cases
    ):
        return True  # tagged payloads and enums: not decided here
    return any(
        hasattr(cls, "__bool__") or hasattr(cls, "__len__")
        for rt in records
        for cls in record_classes(rt)
    )
