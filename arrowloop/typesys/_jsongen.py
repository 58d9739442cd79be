"""Generated JSON readers and writers: one straight-line function per type.

:mod:`arrowloop.typesys._jsonform` asks for one reader (``from_json``) and
one writer (``validate`` + ``to_json``) per type. A tree of closures costs a
Python call per node of the type and per value; here the whole type becomes
one function whose body does only that type's checks and conversions, with
``if``/``elif`` chains for variants and one loop per list or map.

The generated code handles the common, valid case only. Anything else (a
value that does not fit, a special float, a map with non-``str`` keys, a set,
a ``Tagged`` case, a class that refuses its fields) raises, and the
function's one ``except`` hands the *whole* value to the reference functions
of ``_values.py``: results and error messages are theirs, and a slip in the
fast path can only cost time, never change an answer, as long as it raises
rather than returns.

Generated source follows the compiler's rule (see
:mod:`arrowloop.compiler._codegen`): it contains only names made up here
(``_v3``, ``_s1``), literal ``int``\\ s, ``None`` and the project's own keys
``"tag"`` and ``"value"``. Field names, tags, classes and enum members are
reached through the namespace the code runs in.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from typing import Any, Final

from arrowloop.typesys._repr import case_repr, record_class, record_classes, user_classes
from arrowloop.typesys._types import (
    STR,
    BoolT,
    FloatT,
    IntT,
    ListT,
    MapT,
    OptionT,
    RecordT,
    StrT,
    TupleT,
    Type,
    UnitT,
    VariantT,
)
from arrowloop.typesys._values import from_json, to_json, validate

__all__ = ["generate_reader", "generate_writer"]

_INT_RANGE: Final = f"-{2**63} <= {{0}} <= {2**63 - 1}"


class _Slow(Exception):
    """The generated code met something it does not handle: use the reference."""


class _Gen:
    """Source lines and the namespace they run in."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {"_Slow": _Slow}
        self._names: dict[tuple[str, object], str] = {}
        self._n = 0
        #: The one instance of each record class without fields read so far.
        self.nullary: dict[type, Any] = {}

    def var(self) -> str:
        self._n += 1
        return f"_v{self._n}"

    def const(self, value: Any) -> str:
        """A name bound to ``value`` in the namespace (one per distinct object;
        strings by value)."""
        # Objects by identity (the namespace keeps them alive, so ids stay theirs).
        key = ("s", value) if type(value) is str else ("o", id(value))
        name = self._names.get(key)
        if name is None:
            self._n += 1
            name = self._names[key] = f"_k{self._n}"
            self.ns[name] = value
        return name

    def emit(self, ind: int, line: str) -> None:
        self.lines.append("    " * ind + line)

    def slow_unless(self, ind: int, cond: str) -> None:
        self.emit(ind, f"if not ({cond}):")
        self.emit(ind + 1, "raise _Slow")

    def function(self, name: str, arg: str, emit: Callable[[], None], fallback: list[str]) -> Any:
        """The function ``name`` doing what ``emit`` generates, or ``fallback``
        when that raises; a type too deep for the generator or for Python's
        compiler (20 nested loops at most) gets one that always falls back."""
        try:
            emit()
            code = self._compile(name, arg, [*self.lines, "return _out"], fallback)
        except (RecursionError, SyntaxError):
            code = self._compile(name, arg, ["raise _Slow"], fallback)
        exec(code, self.ns)  # our own generated source: see the module docstring
        return self.ns[name]

    @staticmethod
    def _compile(name: str, arg: str, body: list[str], fallback: list[str]) -> Any:
        src = "\n".join(
            [
                f"def {name}({arg}, path='value'):",
                "    try:",
                *("        " + line for line in body),
                "    except Exception:",
                *("        " + line for line in fallback),
            ]
        )
        return compile(src, f"<arrowloop json {name}>", "exec")


def _bind(g: _Gen, out: str, src: str, ind: int) -> None:
    if out != src:
        g.emit(ind, f"{out} = {src}")


_Emit = Callable[["_Gen", Type, str, str, int], None]


def _shared(g: _Gen, t: Type, src: str, out: str, ind: int, inner: _Emit) -> bool:
    """The lines alike in both directions (``inner`` for the items), or
    ``False`` when ``t`` is not of those kinds."""
    e = g.emit
    if isinstance(t, UnitT):
        g.slow_unless(ind, f"{src} is None")
        e(ind, f"{out} = None")
    elif isinstance(t, BoolT | StrT):
        g.slow_unless(ind, f"type({src}) is {'bool' if isinstance(t, BoolT) else 'str'}")
        _bind(g, out, src, ind)
    elif isinstance(t, IntT):
        g.slow_unless(ind, f"type({src}) is int and {_INT_RANGE.format(src)}")
        _bind(g, out, src, ind)
    elif isinstance(t, OptionT):
        e(ind, f"if {src} is None:")
        e(ind + 1, f"{out} = None")
        e(ind, "else:")
        inner(g, t.item, src, out, ind + 1)
    elif isinstance(t, ListT | MapT) and (isinstance(t, ListT) or t.key == STR):
        acc, x, y = g.var(), g.var(), g.var()
        if isinstance(t, ListT):
            g.slow_unless(ind, f"type({src}) is list")
            e(ind, f"{acc} = []")
            e(ind, f"for {x} in {src}:")
            inner(g, t.item, x, y, ind + 1)
            e(ind + 1, f"{acc}.append({y})")
        else:
            k = g.var()
            g.slow_unless(ind, f"type({src}) is dict")
            e(ind, f"{acc} = {{}}")
            e(ind, f"for {k}, {x} in {src}.items():")
            g.slow_unless(ind + 1, f"type({k}) is str")
            inner(g, t.value, x, y, ind + 1)
            e(ind + 1, f"{acc}[{k}] = {y}")
        e(ind, f"{out} = {acc}")
    elif isinstance(t, TupleT):
        # A tuple is a JSON array: read from a list, written as one.
        reading = inner is _read
        kind = "list" if reading else "tuple"
        g.slow_unless(ind, f"type({src}) is {kind} and len({src}) == {len(t.items)}")
        parts = [g.var() for _ in t.items]
        if parts:
            e(ind, f"{', '.join(parts)}, = {src}")
        for part, it in zip(parts, t.items, strict=True):
            inner(g, it, part, part, ind)
        items = "".join(p + ", " for p in parts)
        e(ind, f"{out} = ({items})" if reading else f"{out} = [{items}]")
    else:
        return False
    return True


def _read(g: _Gen, t: Type, src: str, out: str, ind: int) -> None:
    """Lines reading JSON data ``src`` of type ``t`` into the name ``out``."""
    e = g.emit
    if _shared(g, t, src, out, ind, _read):
        return
    if isinstance(t, FloatT):
        e(ind, f"if type({src}) is float:")
        e(ind + 1, f"{out} = {src}")
        e(ind, f"elif type({src}) is int and {_INT_RANGE.format(src)}:")
        e(ind + 1, f"{out} = float({src})")
        e(ind, "else:")
        e(ind + 1, "raise _Slow")
    elif isinstance(t, RecordT) and not t.fields:
        # Only an empty object is equal to one (JSON's values are plain).
        g.slow_unless(ind, f"{src} == {g.const({})}")
        _construct(g, t, [], out, ind)
    elif isinstance(t, RecordT):
        # As many keys as fields and every field found: no unknown field (a
        # missing one raises KeyError, which also goes the reference way).
        g.slow_unless(ind, f"type({src}) is dict and len({src}) == {len(t.fields)}")
        parts = [g.var() for _ in t.fields]
        for part, (name, ft) in zip(parts, t.fields, strict=True):
            e(ind, f"{part} = {src}[{g.const(name)}]")
            _read(g, ft, part, part, ind)
        _construct(g, t, parts, out, ind)
    elif isinstance(t, VariantT):
        _read_variant(g, t, src, out, ind)
    else:
        # Type variables (the reference says what is wrong), maps with other
        # keys and sets: rarer, and their pairs and order are the reference's.
        e(ind, "raise _Slow")


def _construct(g: _Gen, t: RecordT, parts: list[str], out: str, ind: int) -> None:
    cls = record_class(t)
    if not _plain_init(cls, [name for name, _ in t.fields]):
        g.emit(ind, f"{out} = {g.const(cls)}({', '.join(parts)})")
        return
    if not parts:
        one = g.nullary.setdefault(cls, cls())
        if not hasattr(one, "__dict__"):
            # No fields and no room for attributes: nothing can change the
            # value and all its instances are equal, so one instance serves
            # every read (as compiled steps share theirs).
            g.emit(ind, f"{out} = {g.const(one)}")
            return
    # The class's __init__ would only set the fields: do that without its frame.
    g.emit(ind, f"{out} = {g.const(object.__new__)}({g.const(cls)})")
    for part, (name, _) in zip(parts, t.fields, strict=True):
        g.emit(ind, f"{g.const(object.__setattr__)}({out}, {g.const(name)}, {part})")


def _plain_init(cls: type, fields: list[str]) -> bool:
    """Whether ``cls(*values)`` only stores the fields: an attrs-generated
    ``__init__`` that names nothing but the fields (no validator, converter,
    default, hash cache or hook appears in its code: each would add a name
    or a constant), ``object.__new__``, and a ``__setattr__`` that is
    ``object``'s or attrs' frozen one (which ``__init__`` goes around)."""
    init = cls.__dict__.get("__init__")
    code = getattr(init, "__code__", None)
    new: Any = cls.__new__
    setattr_: Any = cls.__setattr__
    names = set(fields)
    return (
        code is not None
        and code.co_filename.startswith("<attrs generated ")
        and new is object.__new__
        and (
            setattr_ is object.__setattr__
            or (
                getattr(setattr_, "__module__", None) == "attr._make"
                and getattr(setattr_, "__qualname__", None) == "_frozen_setattrs"
            )
        )
        and set(code.co_names) <= names | {"_cached_setattr_get"}
        and set(code.co_consts) <= names | {None}
        and code.co_argcount + code.co_kwonlyargcount == 1 + len(fields)
    )


def _read_variant(g: _Gen, t: VariantT, src: str, out: str, ind: int) -> None:
    e = g.emit
    tag, n, raw = g.var(), g.var(), g.var()
    # No type tests: anything but an object has no ``get`` (the error sends
    # the value the reference way), and a tag that is not a string equals
    # no case's name, so the chain's ``else`` does.
    e(ind, f"{tag} = {src}.get('tag')")
    e(ind, f"{n} = len({src})")
    for i, (name, pt) in enumerate(t.cases):
        rep = case_repr(t, name)
        e(ind, f"{'if' if i == 0 else 'elif'} {tag} == {g.const(name)}:")
        if rep.how == "tagged":
            e(ind + 1, "raise _Slow")  # Tagged values are rare: the reference builds them
            continue
        # ``value`` may be left out when the payload is unit or an empty
        # record: then the payload is known without reading anything.
        if isinstance(pt, UnitT) or (isinstance(pt, RecordT) and not pt.fields):
            e(ind + 1, f"if {n} == 1:")
            if isinstance(pt, UnitT):
                e(ind + 2, f"{out} = None")
            else:
                _construct(g, pt, [], out, ind + 2)
            e(ind + 1, "else:")
            g.slow_unless(ind + 2, f"{n} == 2")
            e(ind + 2, f"{raw} = {src}['value']")
            _read(g, pt, raw, out, ind + 2)
        else:
            g.slow_unless(ind + 1, f"{n} == 2")
            e(ind + 1, f"{raw} = {src}['value']")
            _read(g, pt, raw, out, ind + 1)
        if rep.how == "enum":
            e(ind + 1, f"{out} = {g.const(rep.member)}")
    e(ind, "else:")
    e(ind + 1, "raise _Slow")


def _write(g: _Gen, t: Type, src: str, out: str, ind: int) -> None:
    """Lines writing the value ``src`` of type ``t`` as JSON data into ``out``."""
    e = g.emit
    if _shared(g, t, src, out, ind, _write):
        return
    if isinstance(t, FloatT):
        g.slow_unless(ind, f"type({src}) is float and {g.const(math.isfinite)}({src})")
        _bind(g, out, src, ind)
    elif isinstance(t, RecordT):
        # The live set: a class bound later as an alias is found too; an
        # instance of a class the type was bound to before is not.
        classes = user_classes(t) or set(record_classes(t))
        g.slow_unless(ind, f"type({src}) in {g.const(classes)}")
        _write_fields(g, t, src, out, ind)
    elif isinstance(t, VariantT):
        _write_variant(g, t, src, out, ind)
    else:
        e(ind, "raise _Slow")


def _write_fields(g: _Gen, t: RecordT, src: str, out: str, ind: int) -> None:
    e = g.emit
    parts = [g.var() for _ in t.fields]
    names = [name for name, _ in t.fields]
    if any("." in name for name in names):  # attrgetter would follow the dots
        for part, name in zip(parts, names, strict=True):
            e(ind, f"{part} = {g.const(getattr)}({src}, {g.const(name)})")
    elif parts:
        # One C call for all the fields (attrgetter of one name gives the value).
        get = g.const(operator.attrgetter(*names))
        e(ind, f"{', '.join(parts)}{',' if len(parts) > 1 else ''} = {get}({src})")
    for part, (_, ft) in zip(parts, t.fields, strict=True):
        _write(g, ft, part, part, ind)
    pairs = (f"{g.const(name)}: {part}" for part, (name, _) in zip(parts, t.fields, strict=True))
    e(ind, f"{out} = {{{', '.join(pairs)}}}")


def _write_variant(g: _Gen, t: VariantT, src: str, out: str, ind: int) -> None:
    e = g.emit
    cls, payload = g.var(), g.var()
    e(ind, f"{cls} = type({src})")
    first = True
    for name, pt in t.cases:
        rep = case_repr(t, name)
        if rep.how == "tagged":
            continue  # Tagged values are rare: the reference writes them
        if rep.how == "enum":
            test = f"{src} is {g.const(rep.member)}"
        else:
            test = " or ".join(f"{cls} is {g.const(c)}" for c in rep.classes)
        e(ind, f"{'if' if first else 'elif'} {test}:")
        first = False
        if rep.how == "enum":
            e(ind + 1, f"{payload} = None")
        elif isinstance(pt, RecordT):
            _write_fields(g, pt, src, payload, ind + 1)  # the class is checked
        else:
            _write(g, pt, src, payload, ind + 1)
        e(ind + 1, f"{out} = {{'tag': {g.const(name)}, 'value': {payload}}}")
    if first:
        e(ind, "raise _Slow")
    else:
        e(ind, "else:")
        e(ind + 1, "raise _Slow")


Coder = Callable[[Any, str], Any]


def generate_reader(t: Type) -> Coder:
    """One function ``(data, path='value') -> value`` equal to ``from_json(t, data, path)``."""
    g = _Gen()
    g.ns.update(_t=t, _from_json=from_json)
    fallback = ["return _from_json(_t, data, path)"]
    fn: Coder = g.function("read", "data", lambda: _read(g, t, "data", "_out", 0), fallback)
    return fn


def generate_writer(t: Type) -> Coder:
    """One function ``(value, path='value') -> data`` equal to ``validate(t,
    value, path)`` followed by ``to_json(t, value)``."""
    g = _Gen()
    g.ns.update(_t=t, _validate=validate, _to_json=to_json)
    fallback = ["_validate(_t, value, path)", "return _to_json(_t, value)"]
    fn: Coder = g.function("write", "value", lambda: _write(g, t, "value", "_out", 0), fallback)
    return fn
