"""Specialised JSON readers and writers: ``from_json`` and ``validate`` +
``to_json`` turned into closures made once per type.

A data port decodes every request and encodes every reply; walking the type
term with ``match`` for each value costs more than the rest of the request.
:func:`json_reader` and :func:`json_writer` build, once per type, a tree of
closures that does only the checks and conversions of that type, with the
record classes and variant tables looked up in advance.

They handle the common, valid case. Anything unusual (a value that does not
fit, a special float, a ``Tagged`` case, an enum member, a user class that
rejects its fields) makes the fast closure give up, and the reference
functions in ``_values.py`` redo the whole value: so results and error
messages are exactly those of :func:`from_json` and :func:`validate` /
:func:`to_json`, and the reference code stays the one definition.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from arrowloop.typesys._repr import (
    bindings_epoch,
    case_repr,
    record_class,
    record_classes,
    user_classes,
)
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

__all__ = ["json_reader", "json_writer", "JSON_CACHE_SIZE"]

#: Most types whose reader and writer are kept.
JSON_CACHE_SIZE: Final = 256

_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1

_Fn = Callable[[Any], Any]


class _Slow(Exception):
    """The fast path met something it does not handle: use the reference."""


_SLOW: Final = _Slow()


def _raise_slow(*_: Any) -> Any:
    raise _SLOW


def _reader(t: Type, memo: dict[Type, _Fn]) -> _Fn:
    got = memo.get(t)
    if got is not None:
        return got
    fn = _make_reader(t, memo)
    memo[t] = fn
    return fn


def _make_reader(t: Type, memo: dict[Type, _Fn]) -> _Fn:
    if isinstance(t, UnitT):
        return lambda d: None if d is None else _raise_slow()
    if isinstance(t, BoolT):
        return lambda d: d if type(d) is bool else _raise_slow()
    if isinstance(t, StrT):
        return lambda d: d if type(d) is str else _raise_slow()
    if isinstance(t, IntT):
        return lambda d: d if type(d) is int and _INT64_MIN <= d <= _INT64_MAX else _raise_slow()
    if isinstance(t, FloatT):

        def read_float(d: Any) -> Any:
            if type(d) is float:
                return d
            if type(d) is int:
                return float(d)
            raise _SLOW

        return read_float
    if isinstance(t, TupleT):
        items = tuple(_reader(it, memo) for it in t.items)
        n = len(items)

        def read_tuple(d: Any) -> Any:
            if type(d) is not list or len(d) != n:
                raise _SLOW
            return tuple([r(x) for r, x in zip(items, d, strict=True)])

        return read_tuple
    if isinstance(t, ListT):
        item = _reader(t.item, memo)
        return lambda d: [item(x) for x in d] if type(d) is list else _raise_slow()
    if isinstance(t, MapT) and t.key == STR:
        value = _reader(t.value, memo)
        return lambda d: {k: value(x) for k, x in d.items()} if type(d) is dict else _raise_slow()
    if isinstance(t, OptionT):
        some = _reader(t.item, memo)
        return lambda d: None if d is None else some(d)
    if isinstance(t, RecordT):
        return _record_reader(t, memo)
    if isinstance(t, VariantT):
        return _variant_reader(t, memo)
    # Type variables (the reference says what is wrong), and maps with other
    # keys and sets: rarer, and their pairs and order are the reference's.
    return lambda d: _raise_slow()


def _record_reader(t: RecordT, memo: dict[Type, _Fn]) -> _Fn:
    fields = tuple((name, _reader(ft, memo)) for name, ft in t.fields)
    n = len(fields)
    cls = record_class(t)

    def read_record(d: Any) -> Any:
        # As many keys as fields, and every field found: no unknown field.
        if type(d) is not dict or len(d) != n:
            raise _SLOW
        try:
            return cls(*[r(d[name]) for name, r in fields])
        except _Slow:
            raise
        except Exception:  # a missing field, or the class refused its fields
            raise _SLOW from None

    return read_record


_MISSING: Final = object()


def _variant_reader(t: VariantT, memo: dict[Type, _Fn]) -> _Fn:
    cases: dict[str, tuple[_Fn, Any, Callable[[Any], Any]]] = {}
    for tag, pt in t.cases:
        default: Any = _MISSING
        if isinstance(pt, UnitT):
            default = None
        elif isinstance(pt, RecordT) and not pt.fields:
            default = {}
        rep = case_repr(t, tag)
        if rep.how in ("record", "plain"):
            wrap: Callable[[Any], Any] = _identity
        elif rep.how == "enum":
            wrap = _constant(rep.member)
        else:
            wrap = _raise_slow  # Tagged values are rare: the reference builds them
        cases[tag] = (_reader(pt, memo), default, wrap)

    def read_variant(d: Any) -> Any:
        if type(d) is not dict:
            raise _SLOW
        tag = d.get("tag")
        case = cases.get(tag) if type(tag) is str else None
        if case is None:
            raise _SLOW
        read, default, wrap = case
        n = len(d)
        if n == 2:
            raw = d.get("value", _MISSING)
        elif n == 1:
            raw = default
        else:
            raise _SLOW
        if raw is _MISSING:
            raise _SLOW
        return wrap(read(raw))

    return read_variant


def _constant(value: Any) -> Callable[[Any], Any]:
    return lambda _payload: value


def _identity(x: Any) -> Any:
    return x


def _writer(t: Type, memo: dict[Type, _Fn]) -> _Fn:
    got = memo.get(t)
    if got is not None:
        return got
    fn = _make_writer(t, memo)
    memo[t] = fn
    return fn


def _make_writer(t: Type, memo: dict[Type, _Fn]) -> _Fn:
    if isinstance(t, UnitT):
        return lambda v: None if v is None else _raise_slow()
    if isinstance(t, BoolT):
        return lambda v: v if type(v) is bool else _raise_slow()
    if isinstance(t, StrT):
        return lambda v: v if type(v) is str else _raise_slow()
    if isinstance(t, IntT):
        return lambda v: v if type(v) is int and _INT64_MIN <= v <= _INT64_MAX else _raise_slow()
    if isinstance(t, FloatT):
        isfinite = math.isfinite
        return lambda v: v if type(v) is float and isfinite(v) else _raise_slow()
    if isinstance(t, TupleT):
        items = tuple(_writer(it, memo) for it in t.items)
        n = len(items)

        def write_tuple(v: Any) -> Any:
            if type(v) is not tuple or len(v) != n:
                raise _SLOW
            return [w(x) for w, x in zip(items, v, strict=True)]

        return write_tuple
    if isinstance(t, ListT):
        item = _writer(t.item, memo)
        return lambda v: [item(x) for x in v] if type(v) is list else _raise_slow()
    if isinstance(t, MapT) and t.key == STR:
        value = _writer(t.value, memo)

        def write_map(v: Any) -> Any:
            if type(v) is not dict:
                raise _SLOW
            out = {}
            for k, x in v.items():
                if type(k) is not str:
                    raise _SLOW
                out[k] = value(x)
            return out

        return write_map
    if isinstance(t, OptionT):
        some = _writer(t.item, memo)
        return lambda v: None if v is None else some(v)
    if isinstance(t, RecordT):
        return _record_writer(t, memo)
    if isinstance(t, VariantT):
        return _variant_writer(t, memo)
    return lambda v: _raise_slow()


def _record_writer(t: RecordT, memo: dict[Type, _Fn]) -> _Fn:
    fields = tuple((name, _writer(ft, memo)) for name, ft in t.fields)
    classes = user_classes(t) or set(record_classes(t))

    def write_record(v: Any) -> Any:
        if type(v) not in classes:
            raise _SLOW  # e.g. an instance of a class the type was bound to before
        return {name: w(getattr(v, name)) for name, w in fields}

    return write_record


def _variant_writer(t: VariantT, memo: dict[Type, _Fn]) -> _Fn:
    by_class: dict[type, tuple[str, _Fn]] = {}
    for tag, pt in t.cases:
        rep = case_repr(t, tag)
        if rep.how in ("record", "plain"):
            for cls in rep.classes:
                by_class[cls] = (tag, _writer(pt, memo))

    def write_variant(v: Any) -> Any:
        case = by_class.get(type(v))
        if case is None:
            raise _SLOW  # Tagged and enum cases go the reference way
        tag, w = case
        return {"tag": tag, "value": w(v)}

    return write_variant


_Coder = Callable[[Any, str], Any]
_cache: OrderedDict[tuple[str, Type, int], _Coder] = OrderedDict()


def _cached(kind: str, t: Type) -> _Coder:
    # Keyed by the binding epoch too: the closures hold record classes.
    key = (kind, t, bindings_epoch())
    fn = _cache.get(key)
    if fn is None:
        fn = _cache[key] = _make_reader_fn(t) if kind == "read" else _make_writer_fn(t)
        if len(_cache) > JSON_CACHE_SIZE:
            _cache.popitem(last=False)
    return fn


def _make_reader_fn(t: Type) -> _Coder:
    fast = _reader(t, {})

    def read(data: Any, path: str = "value") -> Any:
        try:
            return fast(data)
        except _Slow:
            return from_json(t, data, path)

    return read


def _make_writer_fn(t: Type) -> _Coder:
    fast = _writer(t, {})

    def write(value: Any, path: str = "value") -> Any:
        try:
            return fast(value)
        except _Slow:
            validate(t, value, path)
            return to_json(t, value)

    return write


def json_reader(t: Type) -> _Coder:
    """A function ``(data, path) -> value`` equal to ``from_json(t, data, path)``.

    Made once per type (and class binding) and kept: callers may ask for it
    per value.

    Raises (the function):
        ValidationError: as :func:`from_json`.
    """
    return _cached("read", t)


def json_writer(t: Type) -> _Coder:
    """A function ``(value, path) -> data`` equal to ``validate(t, value, path)``
    followed by ``to_json(t, value)`` (made once per type, as :func:`json_reader`).

    Raises (the function):
        ValidationError: as :func:`validate` and :func:`to_json`.
    """
    return _cached("write", t)
