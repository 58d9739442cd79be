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
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any, Final

import attrs

from arrowloop.arrows import (
    MAX_ITERATIONS,
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
    While,
    current_meter,
)
from arrowloop.check import Typed, TypedLoop
from arrowloop.compiler._ownership import (
    APPEND,
    INSERTED_AT,
    MISSING,
    POP,
    REMOVED_AT,
    SET_ADD,
    SET_DISCARD,
    UNKNOWN,
    Blob,
    Demand,
    Info,
    Leaf,
    Struct,
    any_old,
    component,
    container,
    copier,
    deep_owned,
    del_at,
    demand_item,
    disjoint,
    elements,
    fresh,
    insert_at,
    locs_of,
    merge,
    mutable,
    needs,
    pop_at,
    remove_at,
    self_aliased,
    summary,
    undo,
    used_locs,
)
from arrowloop.errors import CompileError, IterationLimitError
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

__all__ = [
    "compile_arrow",
    "compile_loop",
    "compile_owned",
    "owned_step",
    "generated_source",
    "CACHE_SIZE",
    "cache_info",
]

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


#: How many arguments each kind of update takes (the container first).
_UPDATE_ARITY: Final = {
    "put": 3,
    "remove": 2,
    "append": 2,
    "set": 3,
    "pop": 1,
    "pop_at": 2,
    "del_at": 2,
    "remove_item": 2,
    "insert": 3,
    "entry_append": 3,
    "entry_append_or": 4,
    "entry_add": 3,
    "entry_add_or": 4,
    "take": 2,
    "take_or": 3,
    "add": 2,
    "discard": 2,
    "discard_or_raise": 2,
}


#: The update kinds of sets (the others are of lists and dicts).
_SET_UPDATES: Final = frozenset({"add", "discard", "discard_or_raise"})
#: The update kinds of lists.
_LIST_UPDATES: Final = frozenset(
    {"append", "set", "pop", "pop_at", "del_at", "remove_item", "insert"}
)


class _Own:
    """What the generators of one compiled function share about ownership
    (compiler/_ownership.py): the info of every named value that holds a
    list or dict, the multiset of live locs, and whether writes are logged."""

    def __init__(self, owned: bool) -> None:
        #: The step of a stage: its state is owned, and writes to it logged.
        self.owned = owned
        self.info: dict[str, Info] = {}
        self.live: Counter[int] = Counter()
        self.locs = 0
        #: Whether any write was logged (the step then needs its undo wrapper).
        self.logged = False
        #: Infos of composite symbolic values (by id; the value is kept so its
        #: id stays its own), valid while ``epoch`` is unchanged.
        self.memo: dict[int, tuple[int, Any, Info]] = {}
        self.epoch = 0
        #: What nodes use of their input, by node and demand (see needs).
        self.needs: dict[tuple[int, Any], tuple[Typed, Demand]] = {}

    def new_loc(self) -> int:
        self.locs += 1
        return self.locs

    def hold(self, locs: frozenset[int]) -> None:
        self.live.update(locs)

    def release(self, locs: frozenset[int]) -> None:
        self.live.subtract(locs)


class _Gen:
    def __init__(
        self,
        ns: dict[str, Any],
        counter: list[int],
        helpers: list[str],
        root: Typed,
        sizes: dict[int, tuple[Typed, int]],
        own: _Own,
    ) -> None:
        self.own = own
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
        info = self.info_of(sym)
        name = self._materialize(sym)
        if info is not None and name not in self.own.info:
            self.own.info[name] = info
        self.made[id(sym)] = (sym, name)
        self.log.append((self.made, id(sym)))
        return name

    # -- ownership (compiler/_ownership.py) ----------------------------------

    def info_of(self, sym: _Sym) -> Info:
        """What is known of the lists and dicts inside ``sym``."""
        if isinstance(sym, _V):
            return self.own.info.get(sym.code)
        # Symbolic values share parts (a fanout of one value n times nests
        # 2^n paths to it): remember each composite's info, until an update
        # in place changes what is known of a name.
        own = self.own
        known = own.memo.get(id(sym))
        if known is not None and known[0] == own.epoch:
            return known[2]
        if isinstance(sym, _Tup):
            items = tuple(self.info_of(x) for x in sym.items)
            info: Info = Struct(items) if any(x is not None for x in items) else None
        elif isinstance(sym, _Inj):
            info = summary(self.info_of(sym.payload))
        else:
            info = summary(merge(self.info_of(sym.sum), self.info_of(sym.other)))
        own.memo[id(sym)] = (own.epoch, sym, info)
        return info

    def set_info(self, sym: _V, info: Info) -> _V:
        if info is not None and sym.code.startswith("_"):
            self.own.info[sym.code] = info
        return sym

    def fresh_info(self, t: Type, owned: bool = True, old: bool = False) -> Info:
        return fresh(t, owned, old, self.own.new_loc)

    def unique(self, info: Info, besides: frozenset[int]) -> bool:
        """Whether the value ``info`` describes may be changed in place: it
        is owned, and no value still to be used, nor ``besides``, shares it."""
        locs = locs_of(info)
        return deep_owned(info) and disjoint(locs, self.own.live) and not (locs & besides)

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
                if rep.how in ("record", "plain"):
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
        whole = self.own.info.get(name)
        if whole is not None:
            for i, x in enumerate(names):
                part = component(whole, i)
                if part is not None:
                    self.own.info[x] = part
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
        if not scrutinee.isidentifier():
            # A literal (a constant plain case, ``0``): ``0.value`` on the
            # branches of the other cases would not even parse.
            scrutinee = self.bind(scrutinee).code
        reprs = [case_repr(vt, tag) for tag in tags]
        if len(tags) == 1:
            rep = reprs[0]
            on_case(tags[0], self._payload(scrutinee, rep.how))
            return
        # Record, plain and enum cases are recognised by identity (of the
        # class, or of the member); what is left must be a Tagged, so reading
        # ``.tag`` there is safe.
        order = sorted(range(len(tags)), key=lambda i: reprs[i].how == "tagged")
        type_var = None
        if any(r.how in ("record", "plain") for r in reprs):
            type_var = self.bind(f"_type({scrutinee})").code
        tag_var: str | None = None
        for pos, i in enumerate(order):
            rep = reprs[i]
            if rep.how == "record" and rep.live is not None:
                # The live set of the type's user classes: a class of another
                # module with the same name and fields, bound later, is in it
                # too (as fast as ``is`` for a set of classes).
                cond = f"{type_var} in {self.const(rep.live)}"
            elif rep.how in ("record", "plain"):
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
        if how in ("record", "plain"):
            return _V(scrutinee)
        if how == "enum":
            return _V("None")
        return self.set_info(self.bind(f"{scrutinee}.value"), summary(self.own.info.get(scrutinee)))

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
            info = self.info_of(sym)
            if info is not None or names in self.own.info:
                self.own.info[names] = merge(self.own.info.get(names), info)
                self.own.epoch += 1
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

    def gen(self, t: Typed, sym: _Sym, demand: Demand = None) -> _Sym:
        """The code of ``t`` on ``sym``; ``demand``: what of its result is
        used afterwards (see _ownership.needs), for liveness."""
        if self.meter is not None:
            self.meter.tick("compile")
        if self.big and t is not self.root and self.size(t) > _INLINE:
            return self.call_helper(t, sym)
        out = self._gen(t, sym, demand)
        self.ensure(out, t.output)
        if out.depth > _MAX_SYM_DEPTH:
            return _V(self.materialize(out))
        return out

    def ensure(self, sym: _Sym, t: Type) -> None:
        """Give a named value holding lists or dicts that no rule described
        the info of an unknown value (which is never updated in place and
        forbids updating anything while it is live)."""
        if not mutable(t):
            return
        if isinstance(sym, _V):
            if sym.code not in self.own.info and sym.code.startswith("_"):
                self.own.info[sym.code] = UNKNOWN
                self.own.epoch += 1
        elif isinstance(sym, _Tup) and isinstance(t, TupleT) and len(t.items) == len(sym.items):
            for x, xt in zip(sym.items, t.items, strict=True):
                self.ensure(x, xt)

    def call_helper(self, t: Typed, sym: _Sym) -> _V:
        """Call ``t`` compiled as a helper function on ``sym``."""
        arg = self.materialize(sym)
        name, info = self.helper(t, self.info_of(sym))
        extra = ", _u" if self.own.owned else ""
        return self.set_info(self.bind(f"{name}({arg}{extra})"), info)

    def _gen(self, t: Typed, sym: _Sym, demand: Demand) -> _Sym:
        node = t.node
        if self.depth > _MAX_NESTING and isinstance(node, If | Case | Fold | While):
            return self.call_helper(t, sym)
        match node:
            case Id():
                return sym
            case Compose():
                if self.big:
                    return self.compose_in_runs(t, sym)
                # What each step's result is used for: what the rest uses.
                wanted = [demand]
                for k in reversed(t.children[1:]):
                    wanted.append(needs(k, wanted[-1], memo=self.own.needs))
                wanted.reverse()
                for k, d in zip(t.children, wanted, strict=True):
                    sym = self.gen(k, sym, d)
                return sym
            case Split(parts=parts):
                comps = self.components(sym, len(parts))
                return self.siblings(t.children, list(comps), demand)
            case Fanout():
                return self.siblings(t.children, [sym] * len(t.children), demand)
            case Proj(index=i, arity=n):
                return self.components(sym, n)[i]
            case Const(value=value):
                if mutable(t.output):
                    # A constant is shared by every run: what may be updated
                    # is a copy of it.
                    cp = self.const(copier(t.output))
                    made = self.bind(f"{cp}({self.const(value)})")
                    return self.set_info(made, self.fresh_info(t.output))
                return self.literal(value)
            case Inject(tag=tag):
                vt = t.output
                assert isinstance(vt, VariantT)
                if case_repr(vt, tag).how in ("record", "plain"):
                    return sym
                return _Inj(tag, sym, vt)
            case Case():
                return self.case(t, sym, demand)
            case Distribute():
                a, b = self.components(sym, 2)
                it = t.input
                assert isinstance(it, TupleT)
                assert isinstance(it.items[0], VariantT)
                return _Dist(a, b, it.items[0])
            case If():
                return self.if_(t, sym, demand)
            case MakeRecord(record=rt):
                cls = record_class(rt)
                n = len(rt.fields)
                if n == 0:
                    return _V(self.const(cls()))
                fields = [sym] if n == 1 else list(self.components(sym, n))
                args = [self.materialize(c) for c in fields]
                infos = tuple(self.info_of(c) for c in fields)
                made = self.bind(f"{self.const(cls)}({', '.join(args)})")
                return self.set_info(made, Struct(infos) if any(infos) else None)
            case GetField(field=name):
                getter = operator.attrgetter(name)
                rec_t = t.input
                assert isinstance(rec_t, RecordT)
                field = component(self.info_of(sym), rec_t.field_index(name))
                got = self.bind(f"{self.const(getter)}({self.materialize(sym)})")
                return self.set_info(got, field)
            case SetField(field=name):
                rec, val = self.components(sym, 2)
                out_t = t.output
                assert isinstance(out_t, RecordT)
                setter = record_setter(out_t, name)
                made = self.bind(
                    f"{self.const(setter)}({self.materialize(rec)}, {self.materialize(val)})"
                )
                idx = out_t.field_index(name)
                whole = self.info_of(rec)
                kept = tuple(
                    self.info_of(val) if i == idx else component(whole, i)
                    for i in range(len(out_t.fields))
                )
                return self.set_info(made, Struct(kept) if any(kept) else None)
            case Prim():
                return self.prim(t, sym)
            case MapList():
                seq = self.materialize(sym)
                whole = self.info_of(sym)
                held = locs_of(whole)
                self.own.hold(held)  # the list is read while each item is mapped
                fn, info = self.helper(t.children[0], elements(whole))
                self.own.release(held)
                extra = ", _u" if self.own.owned else ""
                made = self.bind(f"[{fn}(_x{extra}) for _x in {seq}]")
                return self.set_info(made, self.new_container(info))
            case Fold():
                return self.fold(t, sym)
            case While():
                return self.while_(t, sym)
        raise CompileError(f"no code generator for {type(node).__name__}")  # pragma: no cover

    def new_container(self, elem: Info) -> Leaf:
        """The info of a list or dict made in this step."""
        return Leaf(frozenset({self.own.new_loc()}), True, False, elem)

    def siblings(self, kids: list[Typed], inputs: list[_Sym], demand: Demand) -> _Tup:
        """The children of a ``fanout`` or ``split``, in order. While one is
        generated, what the later ones will read and what is used later of
        what the earlier ones made is live, so it is not updated in place."""
        wanted = [demand_item(demand, n) for n in range(len(kids))]
        pending = [
            used_locs(self.info_of(x), needs(k, d, memo=self.own.needs))
            for k, x, d in zip(kids, inputs, wanted, strict=True)
        ]
        for p in pending[1:]:
            self.own.hold(p)
        outs: list[_Sym] = []
        made: list[frozenset[int]] = []
        for n, (k, x) in enumerate(zip(kids, inputs, strict=True)):
            if n:
                self.own.release(pending[n])
            out = self.gen(k, x, wanted[n])
            outs.append(out)
            made.append(used_locs(self.info_of(out), wanted[n]))
            self.own.hold(made[-1])
        for m in made:
            self.own.release(m)
        return _Tup(tuple(outs))

    def prim(self, t: Typed, sym: _Sym) -> _Sym:
        sig = t.signature
        assert sig is not None
        if sig.update is not None:
            return self.update(t, sym, sig.update)
        if isinstance(sig.input, TupleT):
            parts = list(self.components(sym, len(sig.input.items)))
        else:
            parts = [sym]
        args = [self.materialize(c) for c in parts]
        if sig.template is not None and sig.inlines(t.input):
            if " is " in sig.template:
                # ``0 is None`` draws a SyntaxWarning from CPython (an error
                # under -W error): give literal operands of ``is`` a name.
                args = [a if a.isidentifier() else self.bind(a).code for a in args]
            out = self.bind(sig.template.format(*args))
        else:
            out = self.bind(f"{self.const(sig.fn)}({', '.join(args)})")
        if not mutable(t.output):
            return out
        infos = [self.info_of(c) for c in parts]
        match sig.result:
            case "fresh":
                elem: Info = None
                for i in infos:
                    elem = merge(elem, elements(i))
                return self.set_info(out, self.new_container(elem))
            case "element":
                return self.set_info(out, elements(infos[0]))
            case "same":
                return self.set_info(out, infos[0])
            case "either":
                return self.set_info(out, merge(infos[0], infos[1]))
        # Nothing known: the output may share anything with the input.
        shared: frozenset[int] = frozenset({self.own.new_loc()})
        for i in infos:
            shared |= locs_of(i)
        return self.set_info(out, Blob(shared, owned=False, old=False))

    def update(self, t: Typed, sym: _Sym, kind: str) -> _Sym:
        """``map_put``, ``map_remove``, ``append``, ``list_set`` or
        ``drop_last``: in place when the container is unique (see
        _ownership), else on a copy of it."""
        arity = _UPDATE_ARITY[kind]
        parts = [sym] if arity == 1 else list(self.components(sym, arity))
        args = [self.materialize(c) for c in parts]
        infos = [self.info_of(c) for c in parts]
        box = container(infos[0])
        others: frozenset[int] = frozenset()
        for i in infos[1:]:
            others |= locs_of(i)
        target = args[0]
        in_place = box.owned and disjoint(box.locs, self.own.live) and not (box.locs & others)
        if not in_place:
            copy = self.const(
                list if kind in _LIST_UPDATES else set if kind in _SET_UPDATES else dict
            )
            target = self.bind(f"{copy}({target})").code
            box = Leaf(frozenset({self.own.new_loc()}), True, False, box.elem)
        elem = box.elem
        if kind in ("put", "append", "set", "insert", "entry_append", "entry_append_or"):
            value, vinfo = args[-1], infos[-1]
            if vinfo is not None and not self.unique(vinfo, locs_of(box) | locs_of(infos[0])):
                # The new element is shared (with the input, or another
                # element): the container gets a copy of its own.
                out_t: Any = t.output
                item_t = (
                    out_t.value
                    if kind == "put"
                    else out_t.value.item
                    if kind.startswith("entry")
                    else out_t.item
                )
                value = self.bind(f"{self.const(copier(item_t))}({value})").code
                vinfo = self.fresh_info(item_t)
            args[-1] = value
            infos[-1] = vinfo
            if not kind.startswith("entry"):
                elem = merge(elem, vinfo)
        log = self.own.owned and box.old
        if log:
            self.own.logged = True
        if kind.startswith("entry"):
            elem = self.entry_append(kind, target, args, infos, box, in_place, others, log)
        elif kind == "put":
            k, v = args[1], args[2]
            if log:
                self.emit(f"_u(({target}, {k}, {target}.get({k}, _M)))")
            self.emit(f"{target}[{k}] = {v}")
        elif kind == "remove":
            k = args[1]
            if log:
                self.emit(f"_u(({target}, {k}, {target}.pop({k}, _M)))")
            else:
                self.emit(f"{target}.pop({k}, None)")
        elif kind == "set":
            idx, v = args[1], args[2]
            if log:
                self.emit(f"_u(({target}, {idx}, {target}[{idx}]))")
            self.emit(f"{target}[{idx}] = {v}")
        elif kind in ("take", "take_or"):
            # The entry stays in the dict (lent, not popped): the put that
            # follows replaces it where it is, so the dict keeps Python's
            # order, and the container itself is not changed (nothing to log).
            k, value = args[1], self.fresh()
            if kind == "take":
                self.emit(f"{value} = {target}[{k}]")
            else:
                self.emit(f"{value} = {target}.get({k}, _M)")
            # The entry is still in the container, which the put that follows
            # (or anything else) may read: it is shared with it, so changing
            # it copies it first. (Changing it in place needs a node that
            # updates one entry, so the compiler knows only the put reads it.)
            taken = elem
            if kind == "take_or":
                default, dinfo = args[2], infos[2]
                self.branch(f"if {value} is _M:", lambda: self.emit(f"{value} = {default}"))
                taken = merge(taken, dinfo)
            self.own.info[target] = Leaf(box.locs, box.owned, box.old, elem)
            self.own.epoch += 1
            if taken is not None:
                self.own.info[value] = taken
            return _Tup((_V(target), _V(value)))
        elif kind == "pop":
            if log:
                self.emit(f"_u(({target}, _P, {target}[-1]))")
            self.emit(f"{target}.pop()")
        elif kind in ("pop_at", "del_at", "remove_item", "insert"):
            self.list_update(kind, target, args[1:], log)
        elif kind in _SET_UPDATES:
            self.set_update(kind, target, args[1], log)
        else:
            if log:
                self.emit(f"_u(({target}, _A, None))")
            self.emit(f"{target}.append({args[1]})")
        self.own.info[target] = Leaf(box.locs, box.owned, box.old, elem)
        self.own.epoch += 1
        return _V(target)

    def entry_append(
        self,
        kind: str,
        target: str,
        args: list[str],
        infos: list[Info],
        box: Leaf,
        in_place: bool,
        others: frozenset[int],
        log: bool,
    ) -> Info:
        """``d[k].append(x)`` (``entry_append``) or ``d.setdefault(k,
        default).append(x)`` (``entry_append_or``), and the same with
        ``add`` on a set (``entry_add``, ``entry_add_or``) on the dict ``target``:
        the entry appended to in place when it is unique (the dict is
        changed in place and nothing else may refer to its entries), else
        replaced by a longer copy where it is (the dict keeps its order).
        ``args[-1]`` is the item, unique by now; returns what is known of
        the dict's entries afterwards."""
        k, x, vinfo = args[1], args[-1], infos[-1]
        old = box.elem
        entry = self.fresh()
        is_set = kind.startswith("entry_add")
        # A new list: the old entry's items (or the default's) and x.
        new_elems = None if is_set else merge(elements(old), vinfo)
        if kind.endswith("_or"):
            new_elems = None if is_set else merge(new_elems, elements(infos[2]))
            self.emit(f"{entry} = {target}.get({k}, _M)")
            made_new = f"{{*{args[2]}, {x}}}" if is_set else f"[*{args[2]}, {x}]"
            put = f"{target}[{k}] = {made_new}"
            self.branch(
                f"if {entry} is _M:",
                lambda: self.emit(f"_u(({target}, {k}, _M)); {put}" if log else put),
            )
        else:
            self.emit(f"{entry} = {target}[{k}]")  # KeyError when absent, as d[k]
        unique = (
            in_place
            and isinstance(old, Leaf)
            and old.owned
            and disjoint(old.locs, self.own.live)
            and not (old.locs & others)
        )

        def change() -> None:
            if unique:
                assert isinstance(old, Leaf)
                logged = self.own.owned and old.old
                self.own.logged |= logged
                if is_set:
                    self.set_update("add", entry, x, logged)
                else:
                    if logged:
                        self.emit(f"_u(({entry}, _A, None))")
                    self.emit(f"{entry}.append({x})")
            else:
                if log:
                    self.emit(f"_u(({target}, {k}, {entry}))")
                longer = f"{entry} | {{{x}}}" if is_set else f"[*{entry}, {x}]"
                self.emit(f"{target}[{k}] = {longer}")

        if kind.endswith("_or"):
            self.branch("else:", change)
        else:
            change()
        made = Leaf(frozenset({self.own.new_loc()}), True, False, new_elems)
        if unique:
            assert isinstance(old, Leaf)
            kept = old if is_set else Leaf(old.locs, old.owned, old.old, merge(old.elem, vinfo))
            return merge(kept, made)
        return merge(old, made)

    def list_update(self, kind: str, target: str, args: list[str], log: bool) -> None:
        """``xs.pop(i)``, ``del xs[i]``, ``xs.remove(x)`` or ``xs.insert(i, x)`` on
        ``target``; logged with the index the item had or got (Python's
        own errors are raised before any change)."""
        if kind == "pop_at":
            if log:
                self.emit(f"_u(({target}, _RA, {self.const(pop_at)}({target}, {args[0]})))")
            else:
                self.emit(f"{target}.pop({args[0]})")
        elif kind == "del_at":
            if log:
                self.emit(f"_u(({target}, _RA, {self.const(del_at)}({target}, {args[0]})))")
            else:
                self.emit(f"del {target}[{args[0]}]")
        elif kind == "remove_item":
            call = f"{self.const(remove_at)}({target}, {args[0]})"
            self.emit(f"_u(({target}, _RA, {call}))" if log else call)
        elif log:
            call = f"{self.const(insert_at)}({target}, {args[0]}, {args[1]})"
            self.emit(f"_u(({target}, _IA, {call}))")
        else:
            self.emit(f"{target}.insert({args[0]}, {args[1]})")

    def set_update(self, kind: str, target: str, x: str, log: bool) -> None:
        """``s.add(x)``, ``s.discard(x)`` or ``s.remove(x)`` on ``target``,
        logging only a change that happens (so undo restores exactly)."""
        if kind == "add":
            if log:
                self.emit(f"if {x} not in {target}: _u(({target}, _SA, {x})); {target}.add({x})")
            else:
                self.emit(f"{target}.add({x})")
        elif kind == "discard":
            if log:
                self.emit(f"if {x} in {target}: _u(({target}, _SD, {x})); {target}.discard({x})")
            else:
                self.emit(f"{target}.discard({x})")
        else:
            # remove raises KeyError when x is absent, before any change.
            self.emit(f"{target}.remove({x})")
            if log:
                self.emit(f"_u(({target}, _SD, {x}))")

    def case(self, t: Typed, sym: _Sym, demand: Demand) -> _Sym:
        node = t.node
        assert isinstance(node, Case)
        tags = tuple(tag for tag, _ in node.branches)
        kids = dict(zip(tags, t.children, strict=True))
        if isinstance(sym, _Inj):
            return self.gen(kids[sym.tag], sym.payload, demand)
        shape = self.shape(t.output)
        names = self.alloc(shape)
        if isinstance(sym, _Dist):
            other = sym.other
            scrutinee = self.materialize(sym.sum)
            vt = sym.variant

            def on_case(tag: str, payload: _Sym) -> None:
                self.assign(self.gen(kids[tag], _Tup((payload, other)), demand), shape, names)
        else:
            scrutinee = self.materialize(sym)
            vt_ = t.input
            assert isinstance(vt_, VariantT)
            vt = vt_

            def on_case(tag: str, payload: _Sym) -> None:
                self.assign(self.gen(kids[tag], payload, demand), shape, names)

        if len(tags) == 1:
            # No branching: the single branch's value is the result as is.
            tag = tags[0]
            rep = case_repr(vt, tag)
            payload = self._payload(scrutinee, rep.how)
            inner = _Tup((payload, sym.other)) if isinstance(sym, _Dist) else payload
            return self.gen(kids[tag], inner, demand)
        self.dispatch(scrutinee, vt, vt.tags, on_case)
        return self.as_sym(shape, names)

    def if_(self, t: Typed, sym: _Sym, demand: Demand) -> _Sym:
        cond, then, orelse = t.children
        held = locs_of(self.info_of(sym))
        self.own.hold(held)  # a branch gets the input after the condition
        c = self.materialize(self.gen(cond, sym))
        self.own.release(held)
        shape = self.shape(t.output)
        names = self.alloc(shape)
        self.branch(f"if {c}:", lambda: self.assign(self.gen(then, sym, demand), shape, names))
        self.branch("else:", lambda: self.assign(self.gen(orelse, sym, demand), shape, names))
        return self.as_sym(shape, names)

    def fold(self, t: Typed, sym: _Sym) -> _Sym:
        acc0, xs = self.components(sym, 2)
        acc = self.fresh("a")
        item = self.fresh("e")
        acc_t = t.output
        seq_info = self.info_of(xs)
        held = locs_of(seq_info)
        # The accumulator is updated in place across iterations, so it must
        # be unique from the start (else it starts as a copy) and at the end
        # of each iteration (else that iteration's result is copied).
        init = self.materialize(acc0)
        init_info = self.info_of(acc0)
        old = False
        if mutable(acc_t):
            if self.unique(init_info, held):
                old = any_old(init_info)
            else:
                init = self.bind(f"{self.const(copier(acc_t))}({init})").code
        self.emit(f"{acc} = {init}")
        seq = self.materialize(xs)
        body = t.children[0]
        head = self.fresh_info(acc_t, True, old)
        if head is not None:
            self.own.info[acc] = head
        item_info = elements(seq_info)
        if item_info is not None:
            self.own.info[item] = item_info

        def loop_body() -> None:
            self.own.hold(held)
            res = self.gen(body, _Tup((_V(acc), _V(item))))
            value = self.materialize(res)
            info = self.info_of(res)
            if mutable(acc_t) and not self.unique(info, frozenset()):
                value = self.bind(f"{self.const(copier(acc_t))}({value})").code
                info = self.fresh_info(acc_t)
            self.own.release(held)
            self.emit(f"{acc} = {value}")
            self.own.info[acc] = merge(head, info)
            self.own.epoch += 1

        self.branch(f"for {item} in {seq}:", loop_body)
        if head is None:
            self.own.info.pop(acc, None)
        return _V(acc)

    def while_(self, t: Typed, sym: _Sym) -> _Sym:
        """``while cond(x): x = body(x)``, at most ``MAX_ITERATIONS`` times
        (the interpreter's loop). Like a fold's accumulator, ``x`` is updated
        in place across iterations when it is unique."""
        cond, body = t.children
        acc = self.fresh("a")
        count = self.fresh("n")
        acc_t = t.output
        init = self.materialize(sym)
        init_info = self.info_of(sym)
        old = False
        if mutable(acc_t):
            if self.unique(init_info, frozenset()):
                old = any_old(init_info)
            else:
                init = self.bind(f"{self.const(copier(acc_t))}({init})").code
        self.emit(f"{acc} = {init}")
        self.emit(f"{count} = 0")
        head = self.fresh_info(acc_t, True, old)
        if head is not None:
            self.own.info[acc] = head
        limit = self.const(IterationLimitError)

        def loop_body() -> None:
            held = locs_of(self.own.info.get(acc))
            self.own.hold(held)  # the body reads x after the condition
            c = self.materialize(self.gen(cond, _V(acc)))
            self.own.release(held)
            self.branch(f"if not {c}:", lambda: self.emit("break"))
            self.branch(
                f"if {count} == {MAX_ITERATIONS}:",
                lambda: self.emit(f"raise {limit}({MAX_ITERATIONS})"),
            )
            self.emit(f"{count} += 1")
            res = self.gen(body, _V(acc))
            value = self.materialize(res)
            info = self.info_of(res)
            if mutable(acc_t) and not self.unique(info, frozenset()):
                value = self.bind(f"{self.const(copier(acc_t))}({value})").code
                info = self.fresh_info(acc_t)
            self.emit(f"{acc} = {value}")
            self.own.info[acc] = merge(head, info)
            self.own.epoch += 1

        self.branch("while True:", loop_body)
        if head is None:
            self.own.info.pop(acc, None)
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
                sym = self.call_helper(part, sym)
            start = end
        return sym

    def helper(self, t: Typed, arg: Info) -> tuple[str, Info]:
        """Compile ``t`` as a separate function of one argument, described
        by ``arg``; return its name and what is known of its result."""
        name = self.fresh("f")
        sub = _Gen(self.ns, self.counter, self.helpers, t, self.sizes, self.own)
        sub.const_names = self.const_names
        # Each helper has its own parameter name: infos are kept by name.
        param = self.fresh("x")
        if arg is not None:
            self.own.info[param] = arg
        out = sub.gen(t, _V(param))
        res = sub.materialize(out)
        info = sub.info_of(out)
        params = f"{param}, _u" if self.own.owned else param
        self.helpers.append("\n".join([f"def {name}({params}):", *sub.lines, f"    return {res}"]))
        return name, info


def _namespace() -> dict[str, Any]:
    return {
        "__builtins__": {},
        "_type": type,
        "_Tagged": Tagged,
        "_unexpected": _unexpected,
        "_M": MISSING,
        "_A": APPEND,
        "_P": POP,
        "_SA": SET_ADD,
        "_SD": SET_DISCARD,
        "_RA": REMOVED_AT,
        "_IA": INSERTED_AT,
    }


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


def _build_loop(tl: TypedLoop, owned: bool = False) -> tuple[Callable[..., Any], str]:
    helpers: list[str] = []
    own = _Own(owned)
    g = _Gen(_namespace(), [0], helpers, tl.body, {}, own)
    for name, t, mine in (("i", tl.input, False), ("s", tl.state, owned)):
        info = g.fresh_info(t, owned=mine, old=mine)
        if info is not None:
            own.info[name] = info
    res = g.gen(tl.body, _Tup((_V("i"), _V("s"))))
    st, out = g.components(res, 2)
    state, output = g.materialize(st), g.materialize(out)
    if owned and mutable(tl.state):
        # The stage owns the state it gets back: it may share nothing with
        # the output, nor one container with another place in it.
        si = g.info_of(st)
        if not deep_owned(si) or locs_of(si) & locs_of(g.info_of(out)) or self_aliased(si):
            state = g.bind(f"{g.const(copier(tl.state))}({state})").code
    header = "def _step(i, s, _u=None):" if owned else "def _step(i, s):"
    fn, source = _finish(g, helpers, header, f"({state}, {output})", "machine")
    return (fn if own.logged else _plain(fn)), source


def _plain(fn: Callable[..., Any]) -> Callable[..., Any]:
    # Marks an owned step that logs nothing: it needs no undo wrapper.
    fn.__dict__["logs"] = False
    return fn


def _build_arrow(t: Typed) -> tuple[ArrowFn, str]:
    helpers: list[str] = []
    own = _Own(False)
    g = _Gen(_namespace(), [0], helpers, t, {}, own)
    info = g.fresh_info(t.input, owned=False, old=False)
    if info is not None:
        own.info["x"] = info
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


def _loop_key(kind: str, tl: TypedLoop) -> tuple[Any, ...]:
    return (
        kind,
        tl.loop.body,
        tl.input,
        tl.output,
        tl.state,
        bindings_epoch(),
        _prims_of(tl.body),
    )


def compile_loop(tl: TypedLoop) -> StepFn:
    """The step function ``(input, state) -> (state, output)`` of a checked loop.

    Compiled once per distinct program and types (a bounded LRU cache keyed
    by the program's structural content).
    """
    fn, _ = _cached(_loop_key("loop", tl), lambda: _build_loop(tl))
    return fn


def compile_owned(tl: TypedLoop) -> tuple[Callable[..., Any], bool]:
    """The step of a checked loop for a stage that owns its state: it may
    update the state's lists and dicts in place (see compiler/_ownership.py).

    Returns ``(fn, logs)``: ``fn(input, state, log_append)``; when ``logs``
    is true it records its writes through ``log_append`` (see
    :func:`owned_step`), else the third argument is unused.
    """
    fn, _ = _cached(_loop_key("owned", tl), lambda: _build_loop(tl, owned=True))
    return fn, fn.__dict__.get("logs", True)


def owned_step(tl: TypedLoop) -> tuple[StepFn, list[Any] | None]:
    """A step ``(input, state) -> (state, output)`` that updates ``state`` in
    place, and the log of its writes (``None`` if it never writes in place).

    The caller promises that nothing else holds the state or anything in
    it, and keeps that promise by giving each step the state the previous
    one returned. A step that raises undoes its own writes first, so the
    state is as before the item. The log grows by one entry per write:
    the caller clears it (``log.clear()``) once the states before are no
    longer needed, or undoes back to a mark with
    :func:`arrowloop.compiler.undo`.
    """
    fn, logs = compile_owned(tl)
    if not logs:
        return fn, None
    log: list[Any] = []
    append = log.append

    def step(item: Any, state: Any) -> tuple[Any, Any]:
        mark = len(log)
        try:
            return fn(item, state, append)  # type: ignore[no-any-return]
        except BaseException:
            undo(log, mark)
            raise

    return step, log


def compile_arrow(t: Typed) -> ArrowFn:
    """The Python function of a checked pure arrow (cached like :func:`compile_loop`)."""
    key = ("arrow", t.node, t.input, t.output, bindings_epoch(), _prims_of(t))
    fn, _ = _cached(key, lambda: _build_arrow(t))
    return fn


def generated_source(t: Typed | TypedLoop, *, owned: bool = False) -> str:
    """The Python source generated for a checked program (for inspection);
    ``owned``: the step a stage runs (see :func:`owned_step`)."""
    if isinstance(t, TypedLoop):
        return _build_loop(t, owned)[1]
    return _build_arrow(t)[1]


def cache_info() -> dict[str, int]:
    """Hits, misses and size of the compiled-code cache."""
    return {**_stats, "size": len(_cache), "max_size": CACHE_SIZE}
