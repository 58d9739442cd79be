"""Code generation: a checked program becomes one straight-line Python function.

The generator works on *symbolic values*: a tuple built by ``fanout`` and
taken apart again by a projection never exists at run time, an injection
immediately analysed by a ``case`` picks its branch statically, and a
``distribute`` followed by a ``case`` dispatches on the variant without
building the distributed value. What remains is the code a person would
write: unpacking, operators, one ``if``/``elif`` chain per ``case``.

A symbolic value may be used more than once (``fanout(id, id)`` makes a pair
of one value, and doing that n times makes 2^n uses of it), so materializing
one binds it to a name once and later uses refer to the name: the generated
source is linear in the program, whatever its types stand for.

Generated source only ever contains names it made up itself (``_v3``,
``_k7``), Python operators from the primitive templates, and literals for
validated ``int``/``bool``/``None``/finite ``float`` constants. Everything
else that comes from a program (strings, classes, primitive functions,
field names) is reached through the namespace the code is executed in.
"""

from __future__ import annotations

import math
import operator
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

import attrs

from arrowloop.arrows import (
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
    MakeRecord,
    MapList,
    Prim,
    Proj,
    SetField,
    Split,
    current_meter,
)
from arrowloop.check import Typed, TypedLoop
from arrowloop.errors import CompileError
from arrowloop.typesys import (
    RecordT,
    Tagged,
    TupleT,
    Type,
    VariantT,
    bindings_epoch,
    case_repr,
    on_reclaim,
    record_class,
)

__all__ = ["compile_arrow", "compile_loop", "generated_source", "CACHE_SIZE", "cache_info"]

CACHE_SIZE: Final = 512

#: Indentation depth of a generated function past which a branching node (if,
#: case, fold) gets a helper function of its own: CPython refuses source
#: nested more than 100 indentation levels or 20 loops deep, and programs
#: (those received over the wire included) may nest ifs and folds deeper.
_MAX_NESTING: Final = 8

StepFn = Callable[[Any, Any], tuple[Any, Any]]
ArrowFn = Callable[[Any], Any]


# -- symbolic values -------------------------------------------------------


#: A function generated for more program nodes than this keeps only small
#: parts inline (at most _INLINE nodes each); bigger parts, and runs of a
#: long ``compose`` of about this many nodes, become helper functions.
#: Each function is compiled on its own: ``compile`` holds the interpreter
#: for as long as it runs (about a third of a second per MB of source), and
#: the code of a change is compiled in a worker thread while the event loop
#: waits for the interpreter, so no single call may be long.
_BIG: Final = 1024
_INLINE: Final = 64

#: Deepest nesting of symbolic values: a program composing many fanouts
#: nests them one level per step, and materializing recurses once per level,
#: so a value nested deeper is bound to a name at once.
_MAX_SYM_DEPTH: Final = 16


@attrs.frozen
class _V:
    """An expression that is cheap and safe to repeat: a name or a literal."""

    code: str
    depth = 0


@attrs.frozen
class _Tup:
    items: tuple[_Sym, ...]
    depth: int = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "depth", 1 + max((x.depth for x in self.items), default=0))


@attrs.frozen
class _Inj:
    tag: str
    payload: _Sym
    variant: VariantT
    depth: int = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "depth", 1 + self.payload.depth)


@attrs.frozen
class _Dist:
    sum: _Sym
    other: _Sym
    variant: VariantT
    depth: int = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "depth", 1 + max(self.sum.depth, self.other.depth))


_Sym = _V | _Tup | _Inj | _Dist

_Shape = tuple["_Shape", ...] | None


def _unexpected(value: object) -> Any:
    raise TypeError(
        f"a case received a value of class {type(value).__module__}.{type(value).__qualname__}, "
        "which represents none of its tags (was it built by another class of the same name?)"
    )


def record_setter(rt: RecordT, field: str) -> Callable[[Any, Any], Any]:
    """A function ``(record, value) -> record`` replacing ``field``."""
    cls = record_class(rt)
    idx = rt.field_index(field)
    getters = [operator.attrgetter(name) for name, _ in rt.fields]

    def setter(rec: Any, value: Any) -> Any:
        args = [g(rec) for g in getters]
        args[idx] = value
        return cls(*args)

    return setter


class _Gen:
    def __init__(
        self,
        ns: dict[str, Any],
        counter: list[int],
        helpers: list[str],
        root: Typed,
        sizes: dict[int, tuple[Typed, int]],
    ) -> None:
        self.ns = ns
        self.counter = counter
        # The source of each helper function, compiled one by one.
        self.helpers = helpers
        # What this function computes, and the size of every typed subtree
        # (by id, with the node kept so that its id stays its own).
        self.root = root
        self.sizes = sizes
        self.big = self.size(root) > _BIG
        self.lines: list[str] = []
        self.depth = 1
        self.unpacked: dict[str, tuple[_Sym, ...]] = {}
        # id(symbolic value) -> (it, the name it was bound to): materialized
        # once, referred to by name after (the value is kept so its id stays).
        self.made: dict[int, tuple[_Sym, str]] = {}
        # What was added to ``unpacked`` and ``made``, in order (see branch).
        self.log: list[tuple[dict[Any, Any], Any]] = []
        self.const_names: dict[int, str] = {}
        self.meter = current_meter()

    # -- names and lines ---------------------------------------------------

    def fresh(self, prefix: str = "v") -> str:
        self.counter[0] += 1
        return f"_{prefix}{self.counter[0]}"

    def const(self, value: Any) -> str:
        key = id(value)
        known = self.const_names.get(key)
        if known is not None and self.ns[known] is value:
            return known
        name = self.fresh("k")
        self.ns[name] = value
        self.const_names[key] = name
        return name

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def bind(self, expr: str) -> _V:
        name = self.fresh()
        self.emit(f"{name} = {expr}")
        return _V(name)

    def literal(self, value: Any) -> _V:
        if value is None or type(value) is bool:
            return _V(repr(value))
        if type(value) is int:
            return _V(repr(value) if value >= 0 else f"({value!r})")
        if type(value) is float and math.isfinite(value):
            return _V(repr(value) if value >= 0 else f"({value!r})")
        return _V(self.const(value))

    # -- symbolic values ---------------------------------------------------

    def materialize(self, sym: _Sym) -> str:
        if isinstance(sym, _V):
            return sym.code
        known = self.made.get(id(sym))
        if known is not None:
            return known[1]
        name = self._materialize(sym)
        self.made[id(sym)] = (sym, name)
        self.log.append((self.made, id(sym)))
        return name

    def _materialize(self, sym: _Sym) -> str:
        match sym:
            case _Tup(items=items):
                parts = [self.materialize(x) for x in items]
                inner = ", ".join(parts) + ("," if len(parts) == 1 else "")
                v = self.bind(f"({inner})")
                self.unpacked[v.code] = tuple(_V(p) for p in parts)
                self.log.append((self.unpacked, v.code))
                return v.code
            case _Inj(tag=tag, payload=payload, variant=vt):
                rep = case_repr(vt, tag)
                if rep.how == "record":
                    return self.materialize(payload)
                if rep.how == "enum":
                    return self.const(rep.member)
                p = self.materialize(payload)
                return self.bind(f"_Tagged({self.const(tag)}, {p})").code
            case _Dist(sum=s, other=other, variant=vt):
                out = self.fresh()
                # Outside the branches, so that nested distributions do not
                # nest blocks (and ``other`` is built once, not per branch).
                rest = _V(self.materialize(other))

                def build(tag: str, payload: _Sym) -> None:
                    pair = self.materialize(_Tup((payload, rest)))
                    self.emit(f"{out} = _Tagged({self.const(tag)}, {pair})")

                self.dispatch(self.materialize(s), vt, vt.tags, build)
                return out
        raise CompileError(f"cannot materialize {sym!r}")  # pragma: no cover

    def components(self, sym: _Sym, n: int) -> tuple[_Sym, ...]:
        if isinstance(sym, _Tup):
            if len(sym.items) != n:  # pragma: no cover - the checker rules this out
                raise CompileError(f"expected a tuple of {n}, found {len(sym.items)}")
            return sym.items
        name = self.materialize(sym)
        known = self.unpacked.get(name)
        if known is not None:
            return known
        if n == 0:
            return ()
        names = tuple(self.fresh() for _ in range(n))
        lhs = ", ".join(names) + ("," if n == 1 else "")
        self.emit(f"{lhs} = {name}")
        comps = tuple(_V(x) for x in names)
        self.unpacked[name] = comps
        self.log.append((self.unpacked, name))
        return comps

    # -- control flow helpers ----------------------------------------------

    def branch(self, header: str, body: Callable[[], None]) -> None:
        self.emit(header)
        # Names bound inside the branch are not bound on the other paths:
        # forget them after it (an undo log, not a copy per branch, keeps
        # this linear in programs with many branches).
        mark = len(self.log)
        self.depth += 1
        before = len(self.lines)
        body()
        if len(self.lines) == before:
            self.emit("pass")
        self.depth -= 1
        for table, key in reversed(self.log[mark:]):
            del table[key]
        del self.log[mark:]

    def dispatch(
        self,
        scrutinee: str,
        vt: VariantT,
        tags: tuple[str, ...],
        on_case: Callable[[str, _Sym], None],
    ) -> None:
        """Emit an if/elif chain over the cases of ``vt`` held in ``scrutinee``."""
        reprs = [case_repr(vt, tag) for tag in tags]
        if len(tags) == 1:
            rep = reprs[0]
            on_case(tags[0], self._payload(scrutinee, rep.how))
            return
        # Record and enum cases are recognised by identity; what is left must
        # be a Tagged, so reading ``.tag`` there is safe.
        order = sorted(range(len(tags)), key=lambda i: reprs[i].how == "tagged")
        type_var = None
        if any(r.how == "record" for r in reprs):
            type_var = self.bind(f"_type({scrutinee})").code
        tag_var: str | None = None
        for pos, i in enumerate(order):
            rep = reprs[i]
            if rep.how == "record" and rep.live is not None:
                # The live set of the type's user classes: a class of another
                # module with the same name and fields, bound later, is in it
                # too (as fast as ``is`` for a set of classes).
                cond = f"{type_var} in {self.const(rep.live)}"
            elif rep.how == "record":
                cond = f"{type_var} is {self.const(rep.cls)}"
            elif rep.how == "enum":
                cond = f"{scrutinee} is {self.const(rep.member)}"
            else:
                if tag_var is None:
                    tag_var = self.fresh()
                    # bound lazily inside the chain: only Tagged values get here
                    cond = f"({tag_var} := {scrutinee}.tag) == {self.const(rep.tag)}"
                else:
                    cond = f"{tag_var} == {self.const(rep.tag)}"
            last = pos == len(order) - 1
            header = ("if " if pos == 0 else "elif ") + cond + ":"
            if last and rep.how == "tagged":
                header = "else:" if pos > 0 else header
            self.branch(header, self._case_body(on_case, tags[i], scrutinee, rep.how))
        if reprs[order[-1]].how != "tagged":
            self.branch("else:", lambda: self.emit(f"_unexpected({scrutinee})"))

    def _case_body(
        self, on_case: Callable[[str, _Sym], None], tag: str, scrutinee: str, how: str
    ) -> Callable[[], None]:
        return lambda: on_case(tag, self._payload(scrutinee, how))

    def _payload(self, scrutinee: str, how: str) -> _Sym:
        if how == "record":
            return _V(scrutinee)
        if how == "enum":
            return _V("None")
        return self.bind(f"{scrutinee}.value")

    def shape(self, t: Type, depth: int = 0) -> _Shape:
        if isinstance(t, TupleT) and depth < 3 and 0 < len(t.items) <= 8:
            return tuple(self.shape(x, depth + 1) for x in t.items)
        return None

    def alloc(self, shape: _Shape) -> Any:
        if shape is None:
            return self.fresh("r")
        return tuple(self.alloc(s) for s in shape)

    def assign(self, sym: _Sym, shape: _Shape, names: Any) -> None:
        if shape is None:
            self.emit(f"{names} = {self.materialize(sym)}")
            return
        for part, s, n in zip(self.components(sym, len(shape)), shape, names, strict=True):
            self.assign(part, s, n)

    def as_sym(self, shape: _Shape, names: Any) -> _Sym:
        if shape is None:
            return _V(names)
        return _Tup(tuple(self.as_sym(s, n) for s, n in zip(shape, names, strict=True)))

    # -- the nodes -----------------------------------------------------------

    def size(self, t: Typed) -> int:
        """Program nodes in the typed subtree ``t``."""
        known = self.sizes.get(id(t))
        if known is not None:
            return known[1]
        stack = [(t, False)]
        while stack:
            node, done = stack.pop()
            if id(node) in self.sizes:
                continue
            if done:
                n = 1 + sum(self.sizes[id(k)][1] for k in node.children)
                self.sizes[id(node)] = (node, n)
            else:
                stack.append((node, True))
                stack.extend((k, False) for k in node.children)
        return self.sizes[id(t)][1]

    def gen(self, t: Typed, sym: _Sym) -> _Sym:
        if self.meter is not None:
            self.meter.tick("compile")
        if self.big and t is not self.root and self.size(t) > _INLINE:
            return self.bind(f"{self.helper(t)}({self.materialize(sym)})")
        out = self._gen(t, sym)
        if out.depth > _MAX_SYM_DEPTH:
            return _V(self.materialize(out))
        return out

    def _gen(self, t: Typed, sym: _Sym) -> _Sym:
        node = t.node
        if self.depth > _MAX_NESTING and isinstance(node, If | Case | Fold):
            return self.bind(f"{self.helper(t)}({self.materialize(sym)})")
        match node:
            case Id():
                return sym
            case Compose():
                if self.big:
                    return self.compose_in_runs(t, sym)
                for k in t.children:
                    sym = self.gen(k, sym)
                return sym
            case Split(parts=parts):
                comps = self.components(sym, len(parts))
                return _Tup(tuple(self.gen(k, c) for k, c in zip(t.children, comps, strict=True)))
            case Fanout():
                return _Tup(tuple(self.gen(k, sym) for k in t.children))
            case Proj(index=i, arity=n):
                return self.components(sym, n)[i]
            case Const(value=value):
                return self.literal(value)
            case Inject(tag=tag):
                vt = t.output
                assert isinstance(vt, VariantT)
                if case_repr(vt, tag).how == "record":
                    return sym
                return _Inj(tag, sym, vt)
            case Case():
                return self.case(t, sym)
            case Distribute():
                a, b = self.components(sym, 2)
                it = t.input
                assert isinstance(it, TupleT)
                assert isinstance(it.items[0], VariantT)
                return _Dist(a, b, it.items[0])
            case If():
                return self.if_(t, sym)
            case MakeRecord(record=rt):
                cls = record_class(rt)
                n = len(rt.fields)
                if n == 0:
                    return _V(self.const(cls()))
                args = (
                    [self.materialize(sym)]
                    if n == 1
                    else [self.materialize(c) for c in self.components(sym, n)]
                )
                return self.bind(f"{self.const(cls)}({', '.join(args)})")
            case GetField(field=name):
                getter = operator.attrgetter(name)
                return self.bind(f"{self.const(getter)}({self.materialize(sym)})")
            case SetField(field=name):
                rec, val = self.components(sym, 2)
                out_t = t.output
                assert isinstance(out_t, RecordT)
                setter = record_setter(out_t, name)
                return self.bind(
                    f"{self.const(setter)}({self.materialize(rec)}, {self.materialize(val)})"
                )
            case Prim():
                return self.prim(t, sym)
            case MapList():
                fn = self.helper(t.children[0])
                return self.bind(f"[{fn}(_x) for _x in {self.materialize(sym)}]")
            case Fold():
                return self.fold(t, sym)
        raise CompileError(f"no code generator for {type(node).__name__}")  # pragma: no cover

    def prim(self, t: Typed, sym: _Sym) -> _Sym:
        sig = t.signature
        assert sig is not None
        if isinstance(sig.input, TupleT):
            args = [self.materialize(c) for c in self.components(sym, len(sig.input.items))]
        else:
            args = [self.materialize(sym)]
        if sig.template is not None and sig.inlines(t.input):
            if " is " in sig.template:
                # ``0 is None`` draws a SyntaxWarning from CPython (an error
                # under -W error): give literal operands of ``is`` a name.
                args = [a if a.isidentifier() else self.bind(a).code for a in args]
            return self.bind(sig.template.format(*args))
        return self.bind(f"{self.const(sig.fn)}({', '.join(args)})")

    def case(self, t: Typed, sym: _Sym) -> _Sym:
        node = t.node
        assert isinstance(node, Case)
        tags = tuple(tag for tag, _ in node.branches)
        kids = dict(zip(tags, t.children, strict=True))
        if isinstance(sym, _Inj):
            return self.gen(kids[sym.tag], sym.payload)
        shape = self.shape(t.output)
        names = self.alloc(shape)
        if isinstance(sym, _Dist):
            other = sym.other
            scrutinee = self.materialize(sym.sum)
            vt = sym.variant

            def on_case(tag: str, payload: _Sym) -> None:
                self.assign(self.gen(kids[tag], _Tup((payload, other))), shape, names)
        else:
            scrutinee = self.materialize(sym)
            vt_ = t.input
            assert isinstance(vt_, VariantT)
            vt = vt_

            def on_case(tag: str, payload: _Sym) -> None:
                self.assign(self.gen(kids[tag], payload), shape, names)

        if len(tags) == 1:
            # No branching: the single branch's value is the result as is.
            tag = tags[0]
            rep = case_repr(vt, tag)
            payload = self._payload(scrutinee, rep.how)
            inner = _Tup((payload, sym.other)) if isinstance(sym, _Dist) else payload
            return self.gen(kids[tag], inner)
        self.dispatch(scrutinee, vt, vt.tags, on_case)
        return self.as_sym(shape, names)

    def if_(self, t: Typed, sym: _Sym) -> _Sym:
        cond, then, orelse = t.children
        c = self.materialize(self.gen(cond, sym))
        shape = self.shape(t.output)
        names = self.alloc(shape)
        self.branch(f"if {c}:", lambda: self.assign(self.gen(then, sym), shape, names))
        self.branch("else:", lambda: self.assign(self.gen(orelse, sym), shape, names))
        return self.as_sym(shape, names)

    def fold(self, t: Typed, sym: _Sym) -> _Sym:
        acc0, xs = self.components(sym, 2)
        acc = self.fresh("a")
        item = self.fresh("e")
        self.emit(f"{acc} = {self.materialize(acc0)}")
        seq = self.materialize(xs)
        body = t.children[0]
        self.branch(
            f"for {item} in {seq}:",
            lambda: self.emit(
                f"{acc} = {self.materialize(self.gen(body, _Tup((_V(acc), _V(item)))))}"
            ),
        )
        return _V(acc)

    def compose_in_runs(self, t: Typed, sym: _Sym) -> _Sym:
        """A long ``compose`` as runs of steps of about :data:`_BIG` nodes,
        each a helper function (a single step is generated in place)."""
        kids = t.children
        start = 0
        while start < len(kids):
            end, nodes = start, 0
            while end < len(kids) and (end == start or nodes + self.size(kids[end]) <= _BIG):
                nodes += self.size(kids[end])
                end += 1
            run = kids[start:end]
            if len(run) == 1 or (start == 0 and end == len(kids)):
                for k in run:
                    sym = self.gen(k, sym)
            else:
                part = Typed(Compose(tuple(k.node for k in run)), run[0].input, run[-1].output, run)
                sym = self.bind(f"{self.helper(part)}({self.materialize(sym)})")
            start = end
        return sym

    def helper(self, t: Typed) -> str:
        """Compile ``t`` as a separate one-argument function; return its name."""
        name = self.fresh("f")
        sub = _Gen(self.ns, self.counter, self.helpers, t, self.sizes)
        sub.const_names = self.const_names
        res = sub.materialize(sub.gen(t, _V("x")))
        self.helpers.append("\n".join([f"def {name}(x):", *sub.lines, f"    return {res}"]))
        return name


def _namespace() -> dict[str, Any]:
    return {"__builtins__": {}, "_type": type, "_Tagged": Tagged, "_unexpected": _unexpected}


def _finish(
    gen: _Gen, helpers: list[str], header: str, ret: str, label: str
) -> tuple[Callable[..., Any], str]:
    step = "\n".join([header, *gen.lines, f"    return {ret}"])
    source = "\n".join([*helpers, step, ""])
    if gen.meter is not None:
        gen.meter.source(len(source), "compile")
    for part in [*helpers, step]:  # one by one: see _BIG
        code = compile(part, f"<arrowloop {label}>", "exec")
        exec(code, gen.ns)  # our own generated source: see the module docstring
    fn = gen.ns["_step"]
    return fn, source


def _build_loop(tl: TypedLoop) -> tuple[StepFn, str]:
    helpers: list[str] = []
    g = _Gen(_namespace(), [0], helpers, tl.body, {})
    res = g.gen(tl.body, _Tup((_V("i"), _V("s"))))
    state, out = (g.materialize(c) for c in g.components(res, 2))
    return _finish(g, helpers, "def _step(i, s):", f"({state}, {out})", "machine")


def _build_arrow(t: Typed) -> tuple[ArrowFn, str]:
    helpers: list[str] = []
    g = _Gen(_namespace(), [0], helpers, t, {})
    res = g.materialize(g.gen(t, _V("x")))
    return _finish(g, helpers, "def _step(x):", res, "arrow")


_cache: OrderedDict[Any, tuple[Callable[..., Any], str]] = OrderedDict()
_stats = {"hits": 0, "misses": 0}
# Changes are checked and compiled in worker threads; the cache is shared.
_lock = threading.Lock()


def _cached(
    key: Any, build: Callable[[], tuple[Callable[..., Any], str]]
) -> tuple[Callable[..., Any], str]:
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            _stats["hits"] += 1
            return hit
        _stats["misses"] += 1
    made = build()  # outside the lock: building may take long
    with _lock:
        _cache[key] = made
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    meter = current_meter()
    if meter is not None:
        # Compiled code holds the classes of its record types: the code of
        # a refused change must not keep them bound.
        meter.on_refusal(lambda: _forget(key, made))
    return made


def _forget(key: Any, made: tuple[Callable[..., Any], str]) -> None:
    with _lock:
        if _cache.get(key) is made:
            del _cache[key]


def _clear() -> None:
    with _lock:
        _cache.clear()


on_reclaim(_clear)


def _prims_of(t: Typed) -> tuple[int, ...]:
    # The same program checked against another registry may call other
    # functions under the same primitive names: part of the cache key.
    ids: list[int] = []
    stack = [t]
    while stack:
        node = stack.pop()
        if node.signature is not None:
            ids.append(id(node.signature.fn))
        stack.extend(node.children)
    return tuple(ids)


def compile_loop(tl: TypedLoop) -> StepFn:
    """The step function ``(input, state) -> (state, output)`` of a checked loop.

    Compiled once per distinct program and types (a bounded LRU cache keyed
    by the program's structural content).
    """
    key = (
        "loop",
        tl.loop.body,
        tl.input,
        tl.output,
        tl.state,
        bindings_epoch(),
        _prims_of(tl.body),
    )
    fn, _ = _cached(key, lambda: _build_loop(tl))
    return fn


def compile_arrow(t: Typed) -> ArrowFn:
    """The Python function of a checked pure arrow (cached like :func:`compile_loop`)."""
    key = ("arrow", t.node, t.input, t.output, bindings_epoch(), _prims_of(t))
    fn, _ = _cached(key, lambda: _build_arrow(t))
    return fn


def generated_source(t: Typed | TypedLoop) -> str:
    """The Python source generated for a checked program (for inspection)."""
    if isinstance(t, TypedLoop):
        return _build_loop(t)[1]
    return _build_arrow(t)[1]


def cache_info() -> dict[str, int]:
    """Hits, misses and size of the compiled-code cache."""
    return {**_stats, "size": len(_cache), "max_size": CACHE_SIZE}
