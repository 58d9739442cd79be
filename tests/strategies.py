"""Hypothesis strategies for the arrow language: types, values and programs.

* :func:`types` draws arrowloop types of bounded depth, records and variants
  included (built as ``RecordT``/``VariantT`` directly, so their values are
  instances of classes that :mod:`arrowloop.typesys` synthesises), plus the
  types of a few user classes (an Enum, attrs classes and their union).
* :func:`values` draws runtime values of a given type.
* :func:`arrows_to` draws a well-typed program from one type to another. It
  is *type-directed*: to make ``src -> dst`` it picks a construction whose
  output is ``dst`` (a fanout for a tuple, an injection for a variant, an
  arithmetic primitive for an int, ...) and recurses on what that
  construction needs, so every program it returns is well typed by design.
  Every node kind is reachable, and overloaded primitives are used at
  several of their overloads.
* :func:`programs` and :func:`loops` package that as ``(program, input,
  output)`` and ``(loop, input, output)``.
* :func:`value_key` is a strict equality key for results (``-0.0`` is not
  ``0.0``, every NaN equals every NaN, ``True`` is not ``1``).

Names are drawn from small pools so that the process-wide table binding
record types to classes stays small, and never clash with the classes of
``arrowloop/examples/counter/__init__.py``.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs
from hypothesis import strategies as st

from arrowloop.arrows import (
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
    SetField,
    Split,
    While,
)
from arrowloop.typesys import (
    BOOL,
    FLOAT,
    INT,
    STR,
    UNIT,
    BoolT,
    FloatT,
    IntT,
    ListT,
    MapT,
    OptionT,
    RecordT,
    SetT,
    StrT,
    Tagged,
    TupleT,
    Type,
    UnitT,
    VariantT,
    case_repr,
    either,
    from_annotation,
    key_order,
    record_class,
    sorted_keys,
)

__all__ = [
    "GenColor",
    "GenPing",
    "GenPong",
    "USER_TYPES",
    "RECORD_NAMES",
    "FIELD_NAMES",
    "TAGS",
    "scalar_types",
    "types",
    "record_types",
    "variant_types",
    "values",
    "arrows_to",
    "programs",
    "loops",
    "value_key",
    "node_paths",
    "node_at",
    "replace_at",
]

#: Record names; also used as variant tags, so that some cases are records
#: named like their tag (the ``A | B`` union of classes representation).
RECORD_NAMES = ("Pt", "Box", "Rec")
#: Field names, including ones that are awkward for generated classes.
FIELD_NAMES = ("a", "b", "_a", "self", "other", "x_")
#: Variant tags besides the record names.
TAGS = ("ok", "err", "left", "right", "none")
#: Tags of plain cases (docs/arrows.md, 1.3), with their payload types (``list``: any list).
PLAIN_TYPES: dict[str, Type] = {"int": INT, "str": STR, "bool": BOOL, "float": FLOAT}
PLAIN_TAGS = (*PLAIN_TYPES, "list")
_VARIANT_NAMES = ("", "", "Sum")

SCALARS: tuple[Type, ...] = (UNIT, BOOL, INT, FLOAT, STR)


class GenColor(enum.Enum):
    """A user enum: a variant whose values are the members."""

    RED = "red"
    GREEN = "green"


@attrs.frozen
class GenPing:
    """A user record class, also a case of :data:`USER_TYPES`' union."""

    n: int


@attrs.frozen
class GenPong:
    """A user record class with a private field."""

    _text: str
    n: int


#: Types bound to user classes (values are instances of those classes).
USER_TYPES: tuple[Type, ...] = (
    from_annotation(GenColor),
    from_annotation(GenPing | GenPong),
    from_annotation(GenPong),
)

#: Ints that stay in the wire format's 64-bit range.
_INTS = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_SMALL_INTS = st.integers(min_value=-3, max_value=3)

scalar_types: st.SearchStrategy[Type] = st.sampled_from(SCALARS)


# -- types ---------------------------------------------------------------------


@st.composite
def record_types(draw: st.DrawFn, depth: int = 1, name: str | None = None) -> RecordT:
    """A record type whose field types are at most ``depth`` deep."""
    rname = name if name is not None else draw(st.sampled_from(RECORD_NAMES))
    fields = draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=3, unique=True))
    return RecordT(rname, tuple((f, draw(types(depth))) for f in fields))


@st.composite
def variant_types(draw: st.DrawFn, depth: int = 1) -> VariantT:
    """A variant type of one to three cases; some cases are records named like
    their tag, some plain (``int``, ``str``, ``list``: the value itself)."""
    tags = draw(
        st.lists(
            st.sampled_from(RECORD_NAMES + TAGS + PLAIN_TAGS), min_size=1, max_size=3, unique=True
        )
    )
    cases: list[tuple[str, Type]] = []
    for tag in tags:
        if tag in RECORD_NAMES and draw(st.booleans()):
            cases.append((tag, draw(record_types(max(depth - 1, 0), name=tag))))
        elif tag in PLAIN_TAGS:
            item = draw(types(max(depth - 1, 0)))
            cases.append((tag, ListT(item) if tag == "list" else PLAIN_TYPES[tag]))
        else:
            cases.append((tag, draw(types(depth))))
    return VariantT(draw(st.sampled_from(_VARIANT_NAMES)), tuple(cases))


def _optionable(t: Type) -> Type:
    return INT if isinstance(t, OptionT | UnitT) else t


@st.composite
def types(draw: st.DrawFn, depth: int = 2) -> Type:
    """An arrowloop type nested at most ``depth`` levels (scalars are depth 0)."""
    if depth <= 0:
        return draw(scalar_types)
    kind = draw(
        st.sampled_from(
            (
                *("scalar", "scalar", "tuple", "list", "map", "option", "record", "variant"),
                *("user", "keyed", "set"),
            )
        )
    )
    inner = types(depth - 1)
    match kind:
        case "tuple":
            return TupleT(tuple(draw(st.lists(inner, max_size=3))))
        case "list":
            return ListT(draw(inner))
        case "map":
            return MapT(draw(inner))
        case "keyed":
            return MapT(draw(inner), draw(key_types(depth - 1)))
        case "set":
            return SetT(draw(key_types(depth - 1)))
        case "option":
            return OptionT(_optionable(draw(inner)))
        case "record":
            return draw(record_types(depth - 1))
        case "variant":
            return draw(variant_types(depth - 1))
        case "user":
            return draw(st.sampled_from(USER_TYPES))
    return draw(scalar_types)


@st.composite
def key_types(draw: st.DrawFn, depth: int = 1) -> Type:
    """A type whose values may be dict keys and set items (``is_key_type``)."""
    base = st.sampled_from((BOOL, INT, STR, UNIT, from_annotation(GenColor)))
    if depth <= 0:
        return draw(base)
    kind = draw(st.sampled_from(("base", "base", "tuple", "option")))
    if kind == "tuple":
        return TupleT(tuple(draw(st.lists(key_types(depth - 1), max_size=3))))
    if kind == "option":
        return OptionT(_optionable(draw(key_types(depth - 1))))
    return draw(base)


# -- values --------------------------------------------------------------------


def values(t: Type, *, nan: bool = True) -> st.SearchStrategy[Any]:
    """Runtime values of ``t`` (floats include infinities, and NaN when ``nan``)."""
    match t:
        case UnitT():
            return st.none()
        case BoolT():
            return st.booleans()
        case IntT():
            return st.one_of(_SMALL_INTS, _INTS)
        case FloatT():
            return st.floats(allow_nan=nan)
        case StrT():
            return st.text(max_size=4)
        case TupleT(items=items):
            return st.tuples(*(values(i, nan=nan) for i in items))
        case ListT(item=item):
            return st.lists(values(item, nan=nan), max_size=3)
        case MapT(value=v, key=StrT()):
            return st.dictionaries(st.text(max_size=2), values(v, nan=nan), max_size=3)
        case MapT(value=v, key=k):
            return st.dictionaries(values(k), values(v, nan=nan), max_size=3)
        case SetT(item=item):
            return st.sets(values(item), max_size=3)
        case OptionT(item=item):
            return st.none() | values(item, nan=nan)
        case RecordT(fields=fields):
            cls = record_class(t)
            return st.tuples(*(values(ft, nan=nan) for _, ft in fields)).map(lambda a: cls(*a))
        case VariantT(cases=cases):
            return st.one_of(*(_case_values(t, tag, p, nan) for tag, p in cases))
    raise AssertionError(f"no values for {t!r}")


def _case_values(t: VariantT, tag: str, payload: Type, nan: bool) -> st.SearchStrategy[Any]:
    rep = case_repr(t, tag)
    if rep.how in ("record", "plain"):
        return values(payload, nan=nan)
    if rep.how == "enum":
        return st.just(rep.member)
    return values(payload, nan=nan).map(lambda v: Tagged(tag, v))


def value_key(value: Any) -> Any:
    """A strict equality key for runtime values (see the module docstring)."""
    t = type(value)
    if t is float:
        return ("float", value.hex())
    if t is tuple or t is list:
        return (t.__name__, tuple(value_key(v) for v in value))
    if t is dict:
        items = sorted(value.items(), key=lambda kv: key_order(kv[0]))
        return ("dict", tuple((value_key(k), value_key(v)) for k, v in items))
    if t is set:
        return ("set", tuple(value_key(x) for x in sorted_keys(value)))
    if isinstance(value, enum.Enum):
        return ("enum", t.__qualname__, value.name)
    if attrs.has(t):
        return (t, tuple(value_key(getattr(value, f.name)) for f in attrs.fields(t)))
    return (t.__name__, value)


# -- programs ------------------------------------------------------------------

_CMP_PAIRS: tuple[tuple[Type, Type], ...] = (
    (INT, INT),
    (FLOAT, FLOAT),
    (STR, STR),
    (INT, FLOAT),
    (FLOAT, INT),
)
_NUM_PAIRS: tuple[tuple[Type, Type, Type], ...] = (
    (INT, INT, INT),
    (FLOAT, FLOAT, FLOAT),
    (INT, FLOAT, FLOAT),
    (FLOAT, INT, FLOAT),
)


def _pair(a: Type, b: Type) -> TupleT:
    return TupleT((a, b))


def _seq(*steps: Arrow) -> Arrow:
    return Compose(steps)


class _Gen:
    """One program being drawn; ``budget`` bounds the number of constructions."""

    def __init__(self, draw: st.DrawFn, budget: int) -> None:
        self.draw = draw
        self.budget = budget

    def pick(self, options: dict[str, Any]) -> Any:
        label = self.draw(st.sampled_from(list(options)))
        return options[label]()

    def some_type(self, depth: int = 1) -> Type:
        return self.draw(types(depth))

    def value(self, t: Type) -> Any:
        return self.draw(values(t))

    def const(self, t: Type) -> Arrow:
        return Const(t, self.value(t))

    def to(self, src: Type, dst: Type, depth: int) -> Arrow:
        """A program ``src -> dst``; ``depth`` bounds how often constructions nest."""
        self.budget -= 1
        if depth <= 0 or self.budget <= 0:
            return self.base(src, dst)
        d = depth - 1
        leaf: dict[str, Any] = {
            "base": lambda: self.base(src, dst),
            "const": lambda: self.const(dst),
        }
        if src == dst:
            leaf["id"] = Id
        # Taking src apart.
        parts: dict[str, Any] = {}
        if isinstance(src, TupleT) and src.items:
            parts["proj"] = lambda: self.via_proj(src, dst, d)
            parts["split"] = lambda: self.via_split(src, dst, d)
        if isinstance(src, RecordT) and src.fields:
            parts["get"] = lambda: self.via_get(src, dst, d)
        if isinstance(src, VariantT):
            parts["case"] = lambda: Case(tuple((tag, self.to(p, dst, d)) for tag, p in src.cases))
        if isinstance(src, TupleT) and len(src.items) == 2 and isinstance(src.items[0], VariantT):
            parts["distribute"] = lambda: self.distribute(src.items[0], src.items[1], dst, d)
        # Control and detours, for any src and dst.
        control: dict[str, Any] = {
            "via": lambda: self.via(src, dst, d),
            "if": lambda: If(self.to(src, BOOL, d), self.to(src, dst, d), self.to(src, dst, d)),
            "case_of": lambda: self.case_of(src, dst, d),
            "fan_distribute": lambda: self.fan_distribute(src, dst, d),
            "either": lambda: self.either_case(src, dst, d),
            "fold": lambda: self.fold(src, dst, d),
            "while": lambda: self.while_(src, dst, d),
            "item": lambda: _seq(
                Fanout((self.to(src, ListT(dst), d), self.to(src, INT, d))), Prim("item")
            ),
        }
        if not isinstance(dst, OptionT | UnitT):
            control["unwrap_or"] = lambda: _seq(
                Fanout((self.to(src, OptionT(dst), d), self.to(src, dst, d))), Prim("unwrap_or")
            )
        # Building dst.
        build = self.building(src, dst, d)
        categories = [c for c in (leaf, build, build, parts, parts, control) if c]
        chosen: Arrow = self.pick(self.draw(st.sampled_from(categories)))
        return chosen

    # -- reaching dst without building anything ---------------------------

    def base(self, src: Type, dst: Type) -> Arrow:
        if src == dst:
            return Id()
        path = _reach(src, dst, 2)
        if path:
            return path[0] if len(path) == 1 else Compose(tuple(path))
        return Const(dst, self.value(dst))

    def via_proj(self, src: TupleT, dst: Type, d: int) -> Arrow:
        i = self.draw(st.integers(0, len(src.items) - 1))
        return _seq(Proj(i, len(src.items)), self.to(src.items[i], dst, d))

    def via_split(self, src: TupleT, dst: Type, d: int) -> Arrow:
        mids = tuple(self.some_type(0) for _ in src.items)
        parts = tuple(self.to(s, m, d) for s, m in zip(src.items, mids, strict=True))
        return _seq(Split(parts), self.to(TupleT(mids), dst, d))

    def via_get(self, src: RecordT, dst: Type, d: int) -> Arrow:
        name, ft = self.draw(st.sampled_from(src.fields))
        return _seq(GetField(name), self.to(ft, dst, d))

    def via(self, src: Type, dst: Type, d: int) -> Arrow:
        mid = self.some_type()
        return _seq(self.to(src, mid, d), self.to(mid, dst, d))

    # -- control ------------------------------------------------------------

    def case_of(self, src: Type, dst: Type, d: int) -> Arrow:
        vt = self.draw(variant_types(1))
        branches = tuple((tag, self.to(p, dst, d)) for tag, p in vt.cases)
        return _seq(self.to(src, vt, d), Case(branches))

    def distribute(self, vt: VariantT, other: Type, dst: Type, d: int) -> Arrow:
        dist = VariantT(vt.name, tuple((tag, _pair(p, other)) for tag, p in vt.cases))
        if self.draw(st.booleans()):
            branches = tuple((tag, self.to(p, dst, d)) for tag, p in dist.cases)
            return _seq(Distribute(), Case(branches))
        # The distributed value itself, consumed by anything.
        return _seq(Distribute(), self.to(dist, dst, d))

    def fan_distribute(self, src: Type, dst: Type, d: int) -> Arrow:
        vt = self.draw(variant_types(1))
        other = self.some_type(0)
        fan = Fanout((self.to(src, vt, d), self.to(src, other, d)))
        return _seq(fan, self.distribute(vt, other, dst, d))

    def either_case(self, src: Type, dst: Type, d: int) -> Arrow:
        # inl/inr with the other side of the Either left to inference; the
        # branch that cannot run sees an unresolved type and ignores it.
        side = self.draw(st.sampled_from(("left", "right")))
        live = (side, self.to(src, dst, d))
        dead = ("right" if side == "left" else "left", self.const(dst))
        return _seq(Inject(side, None), Case((live, dead)))

    def fold(self, src: Type, dst: Type, d: int) -> Arrow:
        item = self.some_type()
        start = self.to(src, _pair(dst, ListT(item)), d)
        return _seq(start, Fold(self.to(_pair(dst, item), dst, d)))

    def while_(self, src: Type, dst: Type, d: int) -> Arrow:
        # A loop that ends: a counter beside the value, at most 3 iterations
        # of a random body (a random condition would rarely end).
        state = _pair(INT, dst)
        n = self.draw(st.integers(0, 3))
        below = Fanout((Proj(0, 2), Const(INT, n))) >> Prim("lt")
        cond = If(self.to(state, BOOL, d), below, Const(BOOL, False))
        step = Fanout((Fanout((Proj(0, 2), Const(INT, 1))) >> Prim("add"), self.to(state, dst, d)))
        start = Fanout((Const(INT, 0), self.to(src, dst, d)))
        return _seq(start, While(cond, step), Proj(1, 2))

    # -- building dst ---------------------------------------------------------

    def building(self, src: Type, dst: Type, d: int) -> dict[str, Any]:
        to = self.to
        opts: dict[str, Any] = {}

        def binop(name: str, a: Type, b: Type) -> Arrow:
            return _seq(Fanout((to(src, a, d), to(src, b, d))), Prim(name))

        def unop(name: str, a: Type) -> Arrow:
            return _seq(to(src, a, d), Prim(name))

        match dst:
            case TupleT(items=items) if items:
                opts["fanout"] = lambda: Fanout(tuple(to(src, it, d) for it in items))
                if isinstance(src, TupleT) and len(src.items) == len(items):
                    opts["split"] = lambda: Split(
                        tuple(to(s, it, d) for s, it in zip(src.items, items, strict=True))
                    )
            case RecordT(fields=fields):
                opts["make"] = lambda: _seq(to(src, _fields_input(dst), d), MakeRecord(dst))
                if fields:
                    opts["set"] = lambda: self.set_field(src, dst, d)
            case VariantT():
                opts["inject"] = lambda: self.inject(src, dst, d)
            case ListT(item=item):
                opts["map"] = lambda: self.map_list(src, item, d)
                opts["append"] = lambda: binop("append", dst, item)
                opts["concat"] = lambda: binop("add", dst, dst)
                opts["reverse"] = lambda: unop("reverse", dst)
                if item == STR:
                    opts["split_str"] = lambda: binop("split", STR, STR)
                    opts["map_keys"] = lambda: unop("map_keys", MapT(self.some_type(0)))
            case MapT(value=v, key=k):
                opts["map_put"] = lambda: _seq(
                    Fanout((to(src, dst, d), to(src, k, d), to(src, v, d))), Prim("map_put")
                )
                opts["map_remove"] = lambda: binop("map_remove", dst, k)
            case SetT(item=k):
                opts["set_add"] = lambda: binop(
                    self.draw(st.sampled_from(("set_add", "set_discard", "set_remove"))), dst, k
                )
                opts["set_op"] = lambda: binop(
                    self.draw(st.sampled_from(("set_union", "set_inter", "set_diff"))), dst, dst
                )
            case OptionT(item=item):
                opts["some"] = lambda: unop("some", item)
                opts["map_get"] = lambda: binop("map_get", MapT(item), STR)
            case IntT():
                opts["arith"] = lambda: binop(
                    self.draw(
                        st.sampled_from(("add", "sub", "mul", "min", "max", "floordiv", "mod"))
                    ),
                    INT,
                    INT,
                )
                opts["len"] = lambda: unop(
                    "len",
                    self.draw(
                        st.sampled_from((STR, ListT(self.some_type(0)), MapT(self.some_type(0))))
                    ),
                )
                opts["sum"] = lambda: unop("sum", ListT(INT))
                opts["neg_abs"] = lambda: unop(self.draw(st.sampled_from(("neg", "abs"))), INT)
                opts["int_of_float"] = lambda: unop("int_of_float", FLOAT)
            case FloatT():
                opts["arith"] = lambda: self.float_arith(binop)
                opts["mixed"] = lambda: binop(
                    self.draw(st.sampled_from(("add", "sub", "mul", "min", "max"))),
                    *self.draw(st.sampled_from(((INT, FLOAT), (FLOAT, INT)))),
                )
                opts["div"] = lambda: binop("div", *self.draw(st.sampled_from(_CMP_PAIRS[:2])))
                opts["float_of_int"] = lambda: unop("float_of_int", INT)
                opts["sum"] = lambda: unop("sum", ListT(FLOAT))
                opts["neg_abs"] = lambda: unop(self.draw(st.sampled_from(("neg", "abs"))), FLOAT)
            case BoolT():
                opts["compare"] = lambda: binop(
                    self.draw(st.sampled_from(("lt", "le", "gt", "ge"))),
                    *self.draw(st.sampled_from(_CMP_PAIRS)),
                )
                opts["eq"] = lambda: self.equality(src, d)
                opts["logic"] = lambda: binop(self.draw(st.sampled_from(("and", "or"))), BOOL, BOOL)
                opts["not"] = lambda: unop("not", BOOL)
                opts["is_some"] = lambda: unop(
                    self.draw(st.sampled_from(("is_some", "is_none"))),
                    OptionT(_optionable(self.some_type(0))),
                )
                opts["map_has"] = lambda: binop("map_has", MapT(self.some_type(0)), STR)
                opts["set_has"] = lambda: binop("set_has", SetT(INT), INT)
                opts["str_pred"] = lambda: binop(
                    self.draw(st.sampled_from(("startswith", "endswith", "contains"))), STR, STR
                )
                opts["either_eq"] = lambda: self.either_eq(src, d)
            case StrT():
                opts["concat"] = lambda: binop("add", STR, STR)
                opts["minmax"] = lambda: binop(self.draw(st.sampled_from(("min", "max"))), STR, STR)
                opts["case_fn"] = lambda: unop(
                    self.draw(st.sampled_from(("upper", "lower", "strip"))), STR
                )
                opts["str_of_int"] = lambda: unop("str_of_int", INT)
                opts["str_of_float"] = lambda: unop("str_of_float", FLOAT)
                opts["join"] = lambda: binop("join", STR, ListT(STR))
                opts["replace"] = lambda: _seq(
                    Fanout((to(src, STR, d), to(src, STR, d), to(src, STR, d))), Prim("replace")
                )
        return opts

    def float_arith(self, binop: Any) -> Arrow:
        a, b, _ = self.draw(st.sampled_from(_NUM_PAIRS[1:]))
        name = self.draw(st.sampled_from(("add", "sub", "mul", "min", "max", "floordiv", "mod")))
        result: Arrow = binop(name, a, b)
        return result

    def set_field(self, src: Type, dst: RecordT, d: int) -> Arrow:
        name, ft = self.draw(st.sampled_from(dst.fields))
        return _seq(Fanout((self.to(src, dst, d), self.to(src, ft, d))), SetField(name))

    def inject(self, src: Type, dst: VariantT, d: int) -> Arrow:
        tag, payload = self.draw(st.sampled_from(dst.cases))
        return _seq(self.to(src, payload, d), Inject(tag, dst))

    def map_list(self, src: Type, item: Type, d: int) -> Arrow:
        other = self.some_type()
        return _seq(self.to(src, ListT(other), d), MapList(self.to(other, item, d)))

    def equality(self, src: Type, d: int) -> Arrow:
        t = self.some_type()
        name = self.draw(st.sampled_from(("eq", "ne")))
        return _seq(Fanout((self.to(src, t, d), self.to(src, t, d))), Prim(name))

    def either_eq(self, src: Type, d: int) -> Arrow:
        # The injection's other side is inferred from the value it is compared with.
        other = self.some_type(0)
        side = self.draw(st.sampled_from(("left", "right")))
        et = either(src, other) if side == "left" else either(other, src)
        return _seq(Fanout((Inject(side, None), self.to(src, et, d))), Prim("eq"))


def _fields_input(rt: RecordT) -> Type:
    fts = [ft for _, ft in rt.fields]
    if not fts:
        return UNIT
    return fts[0] if len(fts) == 1 else TupleT(tuple(fts))


def _reach(src: Type, dst: Type, depth: int) -> list[Arrow]:
    """Projections and field reads from ``src`` to a part of type ``dst`` (or [])."""
    if depth <= 0:
        return []
    steps: list[tuple[Arrow, Type]] = []
    if isinstance(src, TupleT):
        n = len(src.items)
        steps = [(Proj(i, n), it) for i, it in enumerate(src.items)]
    elif isinstance(src, RecordT):
        steps = [(GetField(f), ft) for f, ft in src.fields]
    for node, t in steps:
        if t == dst:
            return [node]
    for node, t in steps:
        rest = _reach(t, dst, depth - 1)
        if rest:
            return [node, *rest]
    return []


@st.composite
def arrows_to(draw: st.DrawFn, src: Type, dst: Type, depth: int = 4, budget: int = 40) -> Arrow:
    """A well-typed program ``src -> dst``."""
    return _Gen(draw, budget).to(src, dst, depth)


@st.composite
def programs(
    draw: st.DrawFn, input: Type | None = None, depth: int = 4
) -> tuple[Arrow, Type, Type]:
    """``(program, input type, output type)``; the input type is drawn unless given."""
    src = input if input is not None else draw(types(2))
    dst = draw(types(2))
    return draw(arrows_to(src, dst, depth)), src, dst


@st.composite
def loops(draw: st.DrawFn, depth: int = 4) -> tuple[Loop, Type, Type]:
    """``(loop, input type, output type)``: a body ``(input, state) -> (state, output)``.

    Half of the inputs are variants, the usual shape of a machine's messages.
    """
    input = draw(st.one_of(variant_types(1), types(2)))
    state = draw(types(2))
    output = draw(types(2))
    body = draw(arrows_to(_pair(input, state), _pair(state, output), depth))
    return Loop(body, state, draw(values(state))), input, output


# -- paths into programs ---------------------------------------------------------


def node_paths(a: Arrow, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The label path of every node, in the checker's visiting order (root first)."""
    out = [path]
    for label, child in a.children():
        out.extend(node_paths(child, (*path, label)))
    return out


def node_at(a: Arrow, path: tuple[str, ...]) -> Arrow:
    """The node at a label path."""
    for label in path:
        a = dict(a.children())[label]
    return a


def replace_at(a: Arrow, path: tuple[str, ...], new: Arrow) -> Arrow:
    """``a`` with the node at ``path`` replaced by ``new``."""
    if not path:
        return new
    label, rest = path[0], path[1:]
    kids = [(lab, replace_at(c, rest, new) if lab == label else c) for lab, c in a.children()]
    parts = tuple(c for _, c in kids)
    match a:
        case Compose():
            return Compose(parts)
        case Split():
            return Split(parts)
        case Fanout():
            return Fanout(parts)
        case Case():
            return Case(tuple((lab[len("case[") : -1], c) for lab, c in kids))
        case If():
            return If(*parts)
        case MapList():
            return MapList(parts[0])
        case Fold():
            return Fold(parts[0])
        case While():
            return While(*parts)
    raise AssertionError(f"{type(a).__name__} has no children")
