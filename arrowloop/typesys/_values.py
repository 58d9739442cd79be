"""Values of arrowloop types: validation and the JSON value form.

JSON forms, by type: unit ``null``; bool, int, str as themselves; float as a
number (non-finite floats as the strings ``"NaN"``, ``"Infinity"``,
``"-Infinity"``); tuple and list as arrays; map as an object; option as
``null`` or the item's form; record as an object of its fields; variant as
``{"tag": T, "value": V}`` (``value`` may be omitted on input when the payload
is unit or a record without fields).
"""

from __future__ import annotations

import enum
import math
from typing import Any

from arrowloop.errors import ValidationError
from arrowloop.typesys._repr import (
    PLAIN_CASES,
    Tagged,
    case_repr,
    record_class,
    record_type_of_class,
    tag_and_payload,
)
from arrowloop.typesys._types import (
    BoolT,
    FloatT,
    IntT,
    ListT,
    MapT,
    OptionT,
    RecordT,
    SetT,
    StrT,
    TupleT,
    TVar,
    Type,
    UnitT,
    VariantT,
)

__all__ = ["validate", "to_json", "from_json", "describe", "key_order", "sorted_keys"]

#: The classes whose instances may be plain cases of a variant (``int``, ``str``, ...).
_PLAIN_CLASSES = frozenset(cls for cls, _ in PLAIN_CASES.values())


_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def describe(value: object) -> str:
    """A short rendering of a value's Python type for error messages."""
    if value is None:
        return "None"
    name = type(value).__name__
    if type(value) is int and not _INT64_MIN <= value <= _INT64_MAX:
        # str() of a huge int is slow, and refused past 4,300 digits.
        return f"int of {value.bit_length()} bits"
    if isinstance(value, bool | int | float):
        return f"{name} {value!r:.40}"
    return name


def key_order(k: Any) -> Any:
    """A sort key putting values of one key type (see ``is_key_type``) in
    their canonical order: ``None`` first, then bools, ints and strs by
    value, tuples item by item, enum cases by tag.

    It depends on the value only, so every evaluator, and the JSON form,
    order maps and sets alike. The kinds are ranked too, so that an option
    (``None`` and values) sorts.
    """
    t = type(k)
    if k is None:
        return (0,)
    if t is bool:
        return (1, k)
    if t is int:
        return (2, k)
    if t is str:
        return (3, k)
    if t is tuple:
        return (4, tuple(key_order(x) for x in k))
    if t is Tagged:
        return (5, k.tag)
    if isinstance(k, enum.Enum):
        return (5, k.name)
    raise TypeError(f"not a key: {describe(k)}")


def sorted_keys(keys: Any) -> list[Any]:
    """The items of ``keys`` (values of one key type) in canonical order."""
    try:
        # Python's own order agrees with key_order wherever it is defined
        # (ints, strs, bools, tuples of them), and costs much less.
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=key_order)


def _fail(path: str, expected: str, value: object) -> ValidationError:
    found = describe(value)
    return ValidationError(
        f"expected {expected}, found {found}", path=path, expected=expected, found=found
    )


_WIRE_INT = "an int within the wire's 64-bit signed range (-2**63 <= n < 2**63)"
_WIRE_STR = "a str that UTF-8 can encode (no lone surrogates such as '\\ud800')"


def _wire_str(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode()
    except UnicodeEncodeError:
        return False
    return True


def validate(t: Type, value: object, path: str = "value", *, wire: bool = False) -> None:
    """Check that the runtime value ``value`` has type ``t``.

    With ``wire``, also that the wire can carry it: ints in the 64-bit
    range, strings (map keys too) encodable as UTF-8. Constants and
    initial states are checked so when they are made, since a machine's
    version is the digest of its wire form.

    Raises:
        ValidationError: naming the place inside ``value`` that does not fit.
    """
    match t:
        case UnitT():
            if value is not None:
                raise _fail(path, "None (unit)", value)
        case BoolT():
            if type(value) is not bool:
                raise _fail(path, "bool", value)
        case IntT():
            if type(value) is not int:
                raise _fail(path, "int", value)
            if wire and not _INT64_MIN <= value <= _INT64_MAX:
                raise _fail(path, _WIRE_INT, value)
        case FloatT():
            if type(value) is not float:
                raise _fail(path, "float", value)
        case StrT():
            if type(value) is not str:
                raise _fail(path, "str", value)
            if wire and not _wire_str(value):
                raise _fail(path, _WIRE_STR, value)
        case TupleT(items=items):
            if type(value) is not tuple or len(value) != len(items):
                raise _fail(path, f"a tuple of {len(items)} {t!r}", value)
            for i, (it, v) in enumerate(zip(items, value, strict=True)):
                validate(it, v, f"{path}[{i}]", wire=wire)
        case ListT(item=item):
            if type(value) is not list:
                raise _fail(path, f"a list {t!r}", value)
            for i, v in enumerate(value):
                validate(item, v, f"{path}[{i}]", wire=wire)
        case MapT(value=vt, key=StrT()):
            if type(value) is not dict:
                raise _fail(path, f"a dict {t!r}", value)
            for k, v in value.items():
                if type(k) is not str:
                    raise _fail(f"{path}.<key>", "a str key", k)
                if wire and not _wire_str(k):
                    raise _fail(f"{path}.<key>", _WIRE_STR, k)
                validate(vt, v, f"{path}[{k!r:.40}]", wire=wire)
        case MapT(value=vt, key=kt):
            if type(value) is not dict:
                raise _fail(path, f"a dict {t!r}", value)
            for k, v in value.items():
                validate(kt, k, f"{path}.<key>", wire=wire)
                validate(vt, v, f"{path}[{k!r:.40}]", wire=wire)
        case SetT(item=item):
            if type(value) is not set:
                raise _fail(path, f"a set {t!r}", value)
            for v in value:
                validate(item, v, f"{path}.<item>", wire=wire)
        case OptionT(item=item):
            if value is not None:
                validate(item, value, path, wire=wire)
        case RecordT():
            _validate_record(t, value, path, wire)
        case VariantT():
            _validate_variant(t, value, path, wire)
        case TVar():
            raise _fail(path, f"a value of a resolved type, not {t!r}", value)
        case _:  # pragma: no cover - every type kind is matched above
            raise _fail(path, repr(t), value)


def _validate_record(t: RecordT, value: object, path: str, wire: bool) -> None:
    rt = record_type_of_class(type(value))
    if rt != t:
        raise _fail(path, f"a record {t!r}", value)
    for name, ft in t.fields:
        validate(ft, getattr(value, name), f"{path}.{name}", wire=wire)


def _validate_variant(t: VariantT, value: object, path: str, wire: bool) -> None:
    if type(value) is Tagged:
        payload = t.payload(value.tag)
        if payload is None or case_repr(t, value.tag).how != "tagged":
            raise _fail(path, f"a case of {t!r}", value)
        validate(payload, value.value, f"{path}.{value.tag}", wire=wire)
        return
    if isinstance(value, enum.Enum):
        payload = t.payload(value.name)
        if payload is None or case_repr(t, value.name).member is not value:
            raise _fail(path, f"a case of {t!r}", value)
        return
    tag, _ = tag_and_payload(value) if type(value) in _PLAIN_CLASSES else ("", None)
    if tag:
        payload = t.payload(tag)
        if payload is None or case_repr(t, tag).how != "plain":
            raise _fail(path, f"a case of {t!r}", value)
        validate(payload, value, f"{path}.{tag}", wire=wire)
        return
    rt = record_type_of_class(type(value))
    if rt is None or t.payload(rt.name) != rt:
        raise _fail(path, f"a case of {t!r}", value)
    _validate_record(rt, value, path, wire)


def to_json(t: Type, value: Any) -> Any:
    """The JSON form of ``value`` (assumed valid for ``t``) as plain Python data."""
    match t:
        case UnitT():
            return None
        case IntT():
            if not _INT64_MIN <= value <= _INT64_MAX:
                raise _fail("value", _WIRE_INT, value)
            return value
        case BoolT() | StrT():
            return value
        case FloatT():
            if math.isfinite(value):
                return value
            return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        case TupleT(items=items):
            return [to_json(it, v) for it, v in zip(items, value, strict=True)]
        case ListT(item=item):
            return [to_json(item, v) for v in value]
        case MapT(value=vt, key=StrT()):
            return {k: to_json(vt, v) for k, v in value.items()}
        case MapT(value=vt, key=kt):
            return [[to_json(kt, k), to_json(vt, value[k])] for k in sorted_keys(value)]
        case SetT(item=item):
            return [to_json(item, v) for v in sorted_keys(value)]
        case OptionT(item=item):
            return None if value is None else to_json(item, value)
        case RecordT(fields=fields):
            return {name: to_json(ft, getattr(value, name)) for name, ft in fields}
        case VariantT():
            if type(value) is Tagged:
                tag, payload = value.tag, value.value
            elif isinstance(value, enum.Enum):
                tag, payload = value.name, None
            elif type(value) in _PLAIN_CLASSES:
                tag, payload = tag_and_payload(value)
            else:
                rt = record_type_of_class(type(value))
                assert rt is not None
                tag, payload = rt.name, value
            pt = t.payload(tag)
            assert pt is not None
            return {"tag": tag, "value": to_json(pt, payload)}
    raise ValidationError(f"expected a resolved type, found {t!r}", expected="type", found=repr(t))


_SPECIAL_FLOATS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _jfail(path: str, expected: str, data: object) -> ValidationError:
    found = _json_kind(data)
    return ValidationError(
        f"expected {expected}, found {found}", path=path, expected=expected, found=found
    )


def _json_kind(data: object) -> str:
    if data is None:
        return "null"
    if isinstance(data, bool):
        return "a JSON boolean"
    if isinstance(data, int | float):
        return f"the number {data!r:.40}"
    if isinstance(data, str):
        return f"the string {data!r:.40}"
    if isinstance(data, list):
        return f"an array of {len(data)}"
    if isinstance(data, dict):
        return "an object"
    return type(data).__name__


def from_json(t: Type, data: Any, path: str = "value") -> Any:
    """Build the runtime value of type ``t`` from its JSON form ``data``.

    Raises:
        ValidationError: naming the place inside ``data`` that does not fit.
    """
    match t:
        case UnitT():
            if data is not None:
                raise _jfail(path, "null (unit)", data)
            return None
        case BoolT():
            if type(data) is not bool:
                raise _jfail(path, "a boolean", data)
            return data
        case IntT():
            if type(data) is not int:
                raise _jfail(path, "an integer", data)
            if not _INT64_MIN <= data <= _INT64_MAX:  # what to_json could not write back
                raise ValidationError(
                    f"expected an int within the wire's 64-bit signed range, found {data}",
                    path=path,
                    expected="-2**63 <= n < 2**63",
                    found=str(data)[:40],
                )
            return data
        case FloatT():
            if type(data) is float:
                return data
            if type(data) is int:
                return float(data)
            if type(data) is str and data in _SPECIAL_FLOATS:
                return _SPECIAL_FLOATS[data]
            raise _jfail(path, "a number", data)
        case StrT():
            if type(data) is not str:
                raise _jfail(path, "a string", data)
            return data
        case TupleT(items=items):
            if type(data) is not list or len(data) != len(items):
                raise _jfail(path, f"an array of {len(items)} (a tuple {t!r})", data)
            return tuple(
                from_json(it, d, f"{path}[{i}]")
                for i, (it, d) in enumerate(zip(items, data, strict=True))
            )
        case ListT(item=item):
            if type(data) is not list:
                raise _jfail(path, f"an array (a list {t!r})", data)
            return [from_json(item, d, f"{path}[{i}]") for i, d in enumerate(data)]
        case MapT(value=vt, key=StrT()):
            if type(data) is not dict:
                raise _jfail(path, f"an object (a map {t!r})", data)
            return {k: from_json(vt, d, f"{path}[{k!r:.40}]") for k, d in data.items()}
        case MapT(value=vt, key=kt):
            return _map_from_json(vt, kt, data, path, t)
        case SetT(item=item):
            if type(data) is not list:
                raise _jfail(path, f"an array (a set {t!r})", data)
            out: set[Any] = set()
            for i, d in enumerate(data):
                x = from_json(item, d, f"{path}[{i}]")
                if x in out:
                    raise _jfail(f"{path}[{i}]", "each item once (a set)", d)
                out.add(x)
            return out
        case OptionT(item=item):
            return None if data is None else from_json(item, data, path)
        case RecordT():
            return _record_from_json(t, data, path)
        case VariantT():
            return _variant_from_json(t, data, path)
    raise _jfail(path, f"a value of a resolved type, not {t!r}", data)


def _map_from_json(vt: Type, kt: Type, data: Any, path: str, t: Type) -> dict[Any, Any]:
    if type(data) is not list:
        raise _jfail(path, f"an array of [key, value] pairs (a map {t!r})", data)
    out: dict[Any, Any] = {}
    for i, pair in enumerate(data):
        p = f"{path}[{i}]"
        if type(pair) is not list or len(pair) != 2:
            raise _jfail(p, "a [key, value] pair", pair)
        k = from_json(kt, pair[0], f"{p}[0]")
        if k in out:
            raise _jfail(f"{p}[0]", "each key once (a map)", pair[0])
        out[k] = from_json(vt, pair[1], f"{p}[1]")
    return out


def _record_from_json(t: RecordT, data: Any, path: str) -> Any:
    if type(data) is not dict:
        raise _jfail(path, f"an object (a record {t!r})", data)
    names = [name for name, _ in t.fields]
    extra = [k for k in data if k not in names]
    if extra:
        raise ValidationError(
            f"expected only the fields {names} of record {t.name}, "
            f"found the field {extra[0]!r:.40}",
            path=path,
            expected=f"fields {names}",
            found=repr(extra[0])[:40],
        )
    args = []
    for name, ft in t.fields:
        if name not in data:
            raise ValidationError(
                f"expected the field {name!r} of record {t.name}, found it missing",
                path=path,
                expected=f"field {name}",
                found="missing",
            )
        args.append(from_json(ft, data[name], f"{path}.{name}"))
    cls = record_class(t)
    try:
        return cls(*args)
    except Exception as exc:  # a user's record class may validate its fields
        found = f"{type(exc).__name__}: {exc}"[:120]
        raise ValidationError(
            f"expected fields that the class of record {t.name} accepts, found them "
            f"rejected ({found})",
            path=path,
            expected=f"a valid {t.name}",
            found=found,
        ) from None


def _variant_from_json(t: VariantT, data: Any, path: str) -> Any:
    if type(data) is not dict or "tag" not in data:
        raise _jfail(path, f'an object {{"tag": ..., "value": ...}} (a variant {t!r})', data)
    extra = [k for k in data if k not in ("tag", "value")]
    if extra:
        raise ValidationError(
            f'expected only "tag" and "value" in a variant, found {extra[0]!r:.40}',
            path=path,
            expected='"tag", "value"',
            found=repr(extra[0])[:40],
        )
    tag = data["tag"]
    payload_t = t.payload(tag) if type(tag) is str else None
    if payload_t is None:
        raise ValidationError(
            f"expected one of the tags {list(t.tags)}, found {tag!r:.40}",
            path=f"{path}.tag",
            expected=f"one of {list(t.tags)}",
            found=repr(tag)[:40],
        )
    if "value" in data:
        raw = data["value"]
    elif isinstance(payload_t, UnitT):
        raw = None
    elif isinstance(payload_t, RecordT) and not payload_t.fields:
        raw = {}
    else:
        raise ValidationError(
            f'expected a "value" for tag {tag}, found it missing',
            path=path,
            expected='"value"',
            found="missing",
        )
    payload = from_json(payload_t, raw, f"{path}.value")
    rep = case_repr(t, tag)
    if rep.how in ("record", "plain"):
        return payload
    if rep.how == "enum":
        return rep.member
    return Tagged(tag, payload)
