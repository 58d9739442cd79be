"""Type inference and checking for arrow programs.

:func:`infer` walks a program once, from its input type forwards, with a
:class:`~arrowloop.check._unify.Subst` for the polymorphic nodes (identity,
projections, injections into ``Either``, polymorphic primitives). It returns
a :class:`Typed` tree: every node with its resolved input and output type
and, for primitives, the overload chosen; the compiler and the interpreter
work from that tree. Errors name the node by its path.
"""

from __future__ import annotations

from typing import Final

import attrs

from arrowloop.arrows import (
    PRIMITIVES,
    Arrow,
    Case,
    Compose,
    Const,
    Distribute,
    Fanout,
    Fold,
    GetField,
    Id,
    If,
    Inject,
    Loop,
    MakeRecord,
    MapList,
    Prim,
    Proj,
    Registry,
    SetField,
    Signature,
    Split,
    While,
    current_meter,
)
from arrowloop.check._unify import Subst
from arrowloop.errors import CheckError, ValidationError
from arrowloop.typesys import (
    BOOL,
    ListT,
    MapT,
    OptionT,
    RecordT,
    TupleT,
    TVar,
    Type,
    TypeLike,
    UnitT,
    VariantT,
    either,
    from_annotation,
    has_vars,
    type_size,
    validate,
)

__all__ = [
    "Typed",
    "TypedLoop",
    "infer",
    "check_arrow",
    "check_loop",
    "has_type_vars",
    "MAX_NESTING",
]

#: How deeply program nodes may nest. The checker, the code generator and the
#: interpreter recurse once (the generator a few frames) per level, so this
#: keeps them well inside Python's recursion limit; a wire document may nest
#: a few hundred levels within its JSON depth limit. Sequencing (``>>``) does
#: not nest, so real programs stay far below it.
MAX_NESTING: Final = 64


@attrs.define(slots=True, eq=False)
class Typed:
    """A node of a checked program with its resolved input and output type."""

    node: Arrow
    input: Type
    output: Type
    children: list[Typed]
    signature: Signature | None = None


@attrs.frozen
class TypedLoop:
    """A checked loop: the typed body and the machine's three types."""

    loop: Loop
    body: Typed
    input: Type
    output: Type
    state: Type


def has_type_vars(t: Type) -> bool:
    """Whether ``t`` still mentions a type variable."""
    return has_vars(t)


class _Checker:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.s = Subst()
        self.all: list[Typed] = []
        self.depth = 0
        # The budget of the change being built, if any (see arrows._budget).
        self.meter = current_meter()

    def fail(self, path: str, what: str, expected: Type | str, found: Type | str) -> CheckError:
        # Types render bounded (Type.__repr__), so messages stay small.
        e = expected if isinstance(expected, str) else repr(self.s.resolve(expected))
        f = found if isinstance(found, str) else repr(self.s.resolve(found))
        return CheckError(f"expected {what} {e}, found {f}", path=path, expected=e, found=f)

    def need(self, path: str, got: Type, want: Type, what: str = "input") -> None:
        if not self.s.unify(got, want):
            raise self.fail(path, what, want, got)

    def tuple_of(self, path: str, t: Type, n: int) -> tuple[Type, ...]:
        w = self.s.walk(t)
        if isinstance(w, TVar):
            items = tuple(self.s.fresh() for _ in range(n))
            self.need(path, w, TupleT(items))
            return items
        if not isinstance(w, TupleT) or len(w.items) != n:
            raise self.fail(path, "input", f"a tuple of {n}", w)
        return w.items

    def infer(self, node: Arrow, t: Type, path: str) -> Typed:
        if self.depth >= MAX_NESTING:
            raise CheckError(
                f"expected a program nested at most {MAX_NESTING} levels deep, found deeper",
                path=path,
                expected=f"<= {MAX_NESTING} levels",
                found=f"> {MAX_NESTING} levels",
            )
        if self.meter is not None:
            self.meter.node(path)
        self.depth += 1
        try:
            out, kids, sig = self._infer(node, t, path)
        finally:
            self.depth -= 1
        if self.meter is not None:
            self.meter.type_size(type_size(out), path)
        typed = Typed(node, t, out, kids, sig)
        self.all.append(typed)
        return typed

    def _infer(self, node: Arrow, t: Type, path: str) -> tuple[Type, list[Typed], Signature | None]:
        match node:
            case Id():
                return t, [], None
            case Compose(steps=steps):
                kids = []
                cur = t
                for i, step in enumerate(steps):
                    k = self.infer(step, cur, f"{path}.compose[{i}]")
                    kids.append(k)
                    cur = k.output
                return cur, kids, None
            case Split(parts=parts):
                items = self.tuple_of(path, t, len(parts))
                kids = [
                    self.infer(p, it, f"{path}.split[{i}]")
                    for i, (p, it) in enumerate(zip(parts, items, strict=True))
                ]
                return TupleT(tuple(k.output for k in kids)), kids, None
            case Fanout(parts=parts):
                kids = [self.infer(p, t, f"{path}.fanout[{i}]") for i, p in enumerate(parts)]
                return TupleT(tuple(k.output for k in kids)), kids, None
            case Proj(index=i, arity=n):
                return self.tuple_of(path, t, n)[i], [], None
            case Const(type=ct, value=value):
                # const() and the wire decoder validate; a Const built
                # directly might not, and the program would then lie.
                try:
                    validate(ct, value, "const", wire=True)
                except ValidationError as exc:
                    raise CheckError(
                        f"expected a constant of type {ct!r}: {exc.message}",
                        path=path,
                        expected=exc.expected,
                        found=exc.found,
                    ) from None
                return ct, [], None
            case Inject(tag=tag, variant=None):
                a, b = self.s.fresh(), self.s.fresh()
                out = either(a, b)
                self.need(path, t, a if tag == "left" else b)
                return out, [], None
            case Inject(tag=tag, variant=vt):
                assert vt is not None
                payload = vt.payload(tag)
                assert payload is not None  # guaranteed by Inject's constructor
                self.need(path, t, payload)
                return vt, [], None
            case Case(branches=branches):
                return self._case(branches, t, path)
            case Distribute():
                first, other = self.tuple_of(path, t, 2)
                sv = self.s.walk(first)
                if not isinstance(sv, VariantT):
                    raise self.fail(path, "input", "a pair (variant, b)", t)
                cases = tuple((tag, TupleT((p, other))) for tag, p in sv.cases)
                return VariantT(sv.name, cases), [], None
            case If(cond=cond, then=then, orelse=orelse):
                c = self.infer(cond, t, f"{path}.if.cond")
                self.need(f"{path}.if.cond", c.output, BOOL, "output")
                th = self.infer(then, t, f"{path}.if.then")
                el = self.infer(orelse, t, f"{path}.if.else")
                if not self.s.unify(th.output, el.output):
                    raise self.fail(f"{path}.if.else", "output (as if.then)", th.output, el.output)
                return th.output, [c, th, el], None
            case MakeRecord(record=rt):
                fields = [ft for _, ft in rt.fields]
                if len(fields) == 1:
                    self.need(path, t, fields[0])
                elif len(fields) > 1:
                    self.need(path, t, TupleT(tuple(fields)))
                return rt, [], None
            case GetField(field=name):
                r = self.s.walk(t)
                ft = r.field_type(name) if isinstance(r, RecordT) else None
                if ft is None:
                    raise self.fail(path, "input", f"a record with a field {name!r}", r)
                return ft, [], None
            case SetField(field=name):
                rec, val = self.tuple_of(path, t, 2)
                r = self.s.walk(rec)
                ft = r.field_type(name) if isinstance(r, RecordT) else None
                if ft is None:
                    raise self.fail(
                        path, "input", f"a pair (record with a field {name!r}, value)", t
                    )
                self.need(path, val, ft, f"value for field {name!r} of type")
                return r, [], None
            case Prim(name=name):
                return self._prim(name, t, path)
            case MapList(fn=fn):
                item = self.s.fresh()
                self.need(path, t, ListT(item))
                k = self.infer(fn, item, f"{path}.map")
                return ListT(k.output), [k], None
            case Fold(fn=fn):
                acc, xs = self.tuple_of(path, t, 2)
                item = self.s.fresh()
                self.need(path, xs, ListT(item), "input list")
                k = self.infer(fn, TupleT((acc, item)), f"{path}.fold")
                if not self.s.unify(k.output, acc):
                    raise self.fail(f"{path}.fold", "output (the accumulator)", acc, k.output)
                return acc, [k], None
            case While(cond=cond, body=body):
                kc = self.infer(cond, t, f"{path}.while.cond")
                self.need(f"{path}.while.cond", kc.output, BOOL, "output")
                kb = self.infer(body, t, f"{path}.while.body")
                if not self.s.unify(kb.output, t):
                    raise self.fail(f"{path}.while.body", "output (the input)", t, kb.output)
                return t, [kc, kb], None
        raise CheckError(f"expected an arrow node, found {type(node).__name__}", path=path)

    def _case(
        self, branches: tuple[tuple[str, Arrow], ...], t: Type, path: str
    ) -> tuple[Type, list[Typed], None]:
        tags = [tag for tag, _ in branches]
        v = self.s.walk(t)
        if isinstance(v, TVar) and tags == ["left", "right"]:
            self.need(path, v, either(self.s.fresh(), self.s.fresh()))
            v = self.s.walk(v)
        if not isinstance(v, VariantT):
            raise self.fail(path, "input", f"a variant with the tags {tags}", v)
        if list(v.tags) != tags:
            missing = sorted(set(v.tags) - set(tags))
            extra = sorted(set(tags) - set(v.tags))
            detail = "; ".join(
                x
                for x in (
                    f"missing {missing}" if missing else "",
                    f"unknown {extra}" if extra else "",
                )
                if x
            )
            raise CheckError(
                f"expected branches for exactly the tags {list(v.tags)}, found {tags} ({detail})",
                path=path,
                expected=repr(list(v.tags)),
                found=repr(tags),
            )
        out: Type = self.s.fresh()
        kids = []
        for (tag, arrow), (_, payload) in zip(branches, v.cases, strict=True):
            k = self.infer(arrow, payload, f"{path}.case[{tag}]")
            if not self.s.unify(out, k.output):
                raise self.fail(
                    f"{path}.case[{tag}]", "output (as the other branches)", out, k.output
                )
            kids.append(k)
        return out, kids, None

    def _prim(self, name: str, t: Type, path: str) -> tuple[Type, list[Typed], Signature]:
        prim = self.registry.get(name)
        if prim is None:
            raise CheckError(
                f"expected a registered primitive, found the unknown name {name!r:.60}",
                path=path,
                expected="a registered primitive",
                found=repr(name)[:60],
            )
        for sig in prim.signatures:
            mark = self.s.mark()
            fresh: dict[int, TVar] = {}
            # Both sides first: instantiating ``a | None`` marks ``a`` as no
            # option, which the unification of the input must respect.
            sin = self.s.instantiate(sig.input, fresh)
            sout = self.s.instantiate(sig.output, fresh)
            if self.s.unify(t, sin):
                return sout, [], sig
            self.s.rollback(mark)
        accepted = " or ".join(repr(s.input) for s in prim.signatures)
        if any(isinstance(s.output, OptionT) for s in prim.signatures) and _optional_item(t):
            # some(x) or map_get(d, k) on an option (or unit) item would make
            # an option of an option, which has no representation.
            accepted += " (with an item that is not an option or unit: use a variant for those)"
        raise self.fail(path, f"input of {name}:", accepted, t)

    def finish(self) -> None:
        # One memo for the whole tree: neighbouring nodes share their types.
        memo: dict[int, Type] = {}
        for typed in self.all:
            typed.input = self.s.resolve(typed.input, memo)
            typed.output = self.s.resolve(typed.output, memo)
            if self.meter is not None:
                # A variable may have grown into a big type since it was met.
                self.meter.type_size(type_size(typed.output), "program")


def _optional_item(t: Type) -> bool:
    """Whether ``t`` (or the values of a map first in a tuple) is an option or unit."""
    if isinstance(t, TupleT) and t.items and isinstance(t.items[0], MapT):
        t = t.items[0].value
    return isinstance(t, OptionT | UnitT)


def infer(
    node: Arrow, input: TypeLike, *, path: str = "program", registry: Registry = PRIMITIVES
) -> Typed:
    """Infer the types of ``node`` applied to a value of ``input``.

    Raises:
        CheckError: naming the first ill-typed node by its path.
    """
    c = _Checker(registry)
    typed = c.infer(node, from_annotation(input), path)
    c.finish()
    return typed


def check_arrow(
    node: Arrow,
    input: TypeLike,
    output: TypeLike | None = None,
    *,
    path: str = "program",
    registry: Registry = PRIMITIVES,
) -> Typed:
    """Check ``node : input -> output`` (``output`` inferred when omitted).

    Raises:
        CheckError: when the program is ill-typed or its output differs
            from the declared one.
    """
    c = _Checker(registry)
    typed = c.infer(node, from_annotation(input), path)
    if output is not None:
        c.need(path, typed.output, from_annotation(output), "output")
    c.finish()
    return typed


def check_loop(
    loop: Loop,
    input: TypeLike,
    output: TypeLike | None = None,
    *,
    registry: Registry = PRIMITIVES,
) -> TypedLoop:
    """Check a machine: its body is ``(input, state) -> (state, output)``.

    Also validates the initial state against the state type.

    Raises:
        CheckError: naming the node (under ``body``) or ``init``.
    """
    try:
        validate(loop.state, loop.init, "init", wire=True)
    except ValidationError as exc:
        raise CheckError(
            f"expected an initial state of type {loop.state!r}: {exc.message}",
            path=exc.path,
            expected=exc.expected,
            found=exc.found,
        ) from None
    c = _Checker(registry)
    it = from_annotation(input)
    out: Type = c.s.fresh() if output is None else from_annotation(output)
    body = c.infer(loop.body, TupleT((it, loop.state)), "body")
    c.need("body", body.output, TupleT((loop.state, out)), "output (state, output) =")
    c.finish()
    resolved = c.s.resolve(out)
    if has_type_vars(resolved):
        raise CheckError(
            f"expected the machine's output type to be determined, found {resolved!r}; "
            "declare output=...",
            path="body",
            expected="a concrete output type",
            found=repr(resolved),
        )
    return TypedLoop(loop, body, it, resolved, loop.state)
