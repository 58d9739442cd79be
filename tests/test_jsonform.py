"""The specialised JSON readers and writers agree with the reference functions.

``json_reader(t)`` must behave exactly as ``from_json(t, ...)`` and
``json_writer(t)`` as ``validate`` followed by ``to_json``: same values,
same errors (message, path, expected, found), for well-typed values and for
arbitrary JSON data or Python values that do not fit.
"""

from __future__ import annotations

import enum
import math
import types as types_mod
from typing import Any, ClassVar

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop.errors import TypeDefinitionError, ValidationError
from arrowloop.typesys import (
    Type,
    from_annotation,
    from_json,
    json_reader,
    json_writer,
    to_json,
    validate,
)
from arrowloop.typesys import _jsongen as jsongen
from arrowloop.typesys import _types as types_internal
from arrowloop.typesys._types import INT, STR, ListT, RecordT, VariantT
from tests.profiles import examples
from tests.strategies import types, value_key, values

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.sampled_from(["NaN", "Infinity", "tag", "value", "a", ""])
    | st.text(max_size=4),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["tag", "value", "a", "b", "x", "n"]), inner, max_size=4)
    ),
    max_leaves=12,
)


def _outcome(f: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", f(*args)
    except ValidationError as exc:
        return "error", (exc.message, exc.path, exc.expected, exc.found)


def _data_outcome(f: Any, *args: Any) -> tuple[str, Any]:
    kind, got = _outcome(f, *args)
    return (kind, orjson.dumps(got)) if kind == "ok" else (kind, got)


@settings(max_examples=examples(300), deadline=None, derandomize=True)
@given(types(3).flatmap(lambda t: st.tuples(st.just(t), values(t))))
def test_well_typed_values_encode_and_decode_as_the_reference(tv: tuple[Type, Any]) -> None:
    """For every value of its type, the writer gives the reference's data and
    the reader gives back the reference's value."""
    t, v = tv
    data = to_json(t, v)
    assert orjson.dumps(json_writer(t)(v, "output")) == orjson.dumps(data)
    assert value_key(json_reader(t)(data, "$.item")) == value_key(from_json(t, data, "$.item"))
    wire = orjson.loads(orjson.dumps(data))
    assert value_key(json_reader(t)(wire, "$.item")) == value_key(from_json(t, wire, "$.item"))


@settings(max_examples=examples(400), deadline=None, derandomize=True)
@given(types(3), _JSON)
def test_arbitrary_data_is_read_as_the_reference_reads_it(t: Type, data: Any) -> None:
    """Data that may not fit: the same value, or the same error in the same place."""
    fast = _outcome(json_reader(t), data, "$.item")
    ref = _outcome(from_json, t, data, "$.item")
    if fast[0] == "ok" and ref[0] == "ok":
        assert value_key(fast[1]) == value_key(ref[1])
    else:
        assert fast == ref


@settings(max_examples=examples(300), deadline=None, derandomize=True)
@given(st.tuples(types(2), types(2)).flatmap(lambda ab: st.tuples(st.just(ab[0]), values(ab[1]))))
def test_values_of_other_types_are_refused_as_validate_refuses_them(tv: tuple[Type, Any]) -> None:
    """A value of some other type: written as the reference writes it, or
    refused with validate's error."""

    def reference(v: Any, path: str) -> Any:
        validate(t, v, path)
        return to_json(t, v)

    t, v = tv
    assert _data_outcome(json_writer(t), v, "output") == _data_outcome(reference, v, "output")


@attrs.frozen
class JfPoint:
    x: int
    y: int


@attrs.frozen
class JfPositive:
    n: int = attrs.field()

    @n.validator
    def _positive(self, _a: Any, value: int) -> None:
        if value <= 0:
            raise ValueError("n must be positive")


class JfColour(enum.Enum):
    RED = enum.auto()
    BLUE = enum.auto()


def test_the_unusual_cases_go_the_reference_way() -> None:
    """Special floats, enum members, a class that refuses its fields, a
    missing field and an unknown one."""
    assert math.isnan(json_reader(from_annotation(float))("NaN", "v"))
    assert json_writer(from_annotation(float))(float("inf"), "v") == "Infinity"
    colour = from_annotation(JfColour)
    assert json_reader(colour)({"tag": "RED"}, "v") is JfColour.RED
    assert json_writer(colour)(JfColour.BLUE, "v") == {"tag": "BLUE", "value": None}
    positive = from_annotation(JfPositive)
    with pytest.raises(ValidationError, match="rejected") as info:
        json_reader(positive)({"n": 0}, "$.item")
    assert info.value.path == "$.item"
    point = from_annotation(JfPoint)
    assert json_reader(point)({"x": 1, "y": 2}, "v") == JfPoint(1, 2)
    with pytest.raises(ValidationError, match="'y'"):
        json_reader(point)({"x": 1}, "v")
    with pytest.raises(ValidationError, match="'z'"):
        json_reader(point)({"x": 1, "z": 2}, "v")
    with pytest.raises(ValidationError) as wrong:
        json_writer(point)(JfPoint(1, "2"), "output")  # type: ignore[arg-type]
    assert wrong.value.path == "output.y"


# -- the generated functions ---------------------------------------------------


@attrs.frozen
class JfDefaulted:
    n: int = 0


@attrs.frozen
class JfFactory:
    n: int = attrs.field(factory=int)


@attrs.frozen
class JfConverted:
    n: int = attrs.field(converter=int)


@attrs.frozen
class JfPosted:
    n: int

    def __attrs_post_init__(self) -> None:
        JfPosted.seen.append(self.n)

    seen: ClassVar[list[int]] = []


@attrs.frozen(cache_hash=True)
class JfHashed:
    n: int


@attrs.frozen
class JfPrivate:
    n: int
    _private: str


def _fallback_fails(fn: Any) -> Any:
    """``fn`` with its reference fallback replaced by a failure: what it still
    does, the generated code did alone."""

    def fail(*_: Any) -> Any:
        raise AssertionError("went the reference way")

    ns = dict(fn.__globals__, _from_json=fail, _validate=fail)
    return types_mod.FunctionType(fn.__code__, ns, fn.__name__, fn.__defaults__)


_COMMON = [
    (int, 3, 3),
    (float, 2, 2.0),
    (str, "é\n\"'", "é\n\"'"),
    (bool, True, True),
    (None, None, None),
    (int | None, None, None),
    (tuple[int, str], [1, "a"], (1, "a")),
    (tuple[()], [], ()),
    (list[tuple[int, bool]], [[1, True]], [(1, True)]),
    (dict[str, list[int]], {"a": [1], "b": []}, {"a": [1], "b": []}),
    (JfPoint, {"x": 1, "y": 2}, JfPoint(1, 2)),
    (JfPrivate, {"n": 1, "_private": "p"}, JfPrivate(1, "p")),
    (JfColour, {"tag": "RED"}, JfColour.RED),
    (JfPoint | JfDefaulted, {"tag": "JfDefaulted", "value": {"n": 4}}, JfDefaulted(4)),
    (int | str | JfPoint, {"tag": "str", "value": "s"}, "s"),
    (int | str | JfPoint, {"tag": "int", "value": 7}, 7),
    (int | str | JfPoint, {"tag": "JfPoint", "value": {"x": 0, "y": 1}}, JfPoint(0, 1)),
    (list[int | str | JfPoint], [{"tag": "int", "value": 1}], [1]),
]


@pytest.mark.parametrize(("annotation", "data", "value"), _COMMON)
def test_the_common_cases_are_done_by_the_generated_code_alone(
    annotation: Any, data: Any, value: Any
) -> None:
    """Every kind the generated code handles, read and written without the
    reference functions, giving their results."""
    t = from_annotation(annotation)
    got = _fallback_fails(json_reader(t))(data, "$.item")
    assert value_key(got) == value_key(value) == value_key(from_json(t, data, "$.item"))
    assert type(got) is type(value)
    written = _fallback_fails(json_writer(t))(value, "output")
    assert orjson.dumps(written) == orjson.dumps(to_json(t, value))


@pytest.mark.parametrize("cls", [JfFactory, JfConverted, JfPosted, JfHashed, JfPositive])
def test_classes_whose_init_does_more_are_built_by_it(cls: type) -> None:
    """A factory, a converter, a hook, a hash cache or a validator: the class
    is called, so it does what it does (and a refusal is the reference's)."""
    t = from_annotation(cls)
    assert json_reader(t)({"n": 5}, "v") == cls(5)
    assert not jsongen._plain_init(cls, ["n"])
    if cls is JfHashed:
        assert hash(json_reader(t)({"n": 5}, "v")) == hash(JfHashed(5))
    if cls is JfPosted:
        JfPosted.seen.clear()
        json_reader(t)({"n": 6}, "v")
        assert JfPosted.seen == [6]


_AWKWARD = ["a\"b'c", "x\n):\n import os", "é\\u00e9\\", "'''", "a.b", "_k1", "data", "_Slow"]


def _no_str_constants(fn: Any) -> None:
    assert not {c for c in fn.__code__.co_consts if type(c) is str} & set(_AWKWARD)


def test_awkward_names_cannot_break_the_generated_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """Field names and tags reach the generated code through its namespace,
    never its source. The types refuse such names; past that check, quotes,
    newlines, unicode, dots and the generator's own names still read and
    write as they should, and none of them is in the code."""
    for name in _AWKWARD[:5]:
        with pytest.raises(TypeDefinitionError):
            RecordT("R", ((name, INT),))
        with pytest.raises(TypeDefinitionError):
            VariantT("V", ((name, INT),))
    monkeypatch.setattr(types_internal, "check_name", lambda name, _what: name)
    # Tags, and record names as tags: the reference is there to compare with.
    cases = [(tag, RecordT(tag, (("a", INT),)) if i % 2 else STR) for i, tag in enumerate(_AWKWARD)]
    variant = VariantT("V", tuple(cases))
    for i, tag in enumerate(_AWKWARD):
        data = {"tag": tag, "value": {"a": i} if i % 2 else "s"}
        read, write = json_reader(variant), json_writer(variant)
        got = read(data, "$.item")
        assert value_key(got) == value_key(from_json(variant, data, "$.item"))
        assert orjson.dumps(write(got, "output")) == orjson.dumps(to_json(variant, got))
        _no_str_constants(read)
        _no_str_constants(write)
    # Field names: attrs cannot make a class of them, so a plain one stands in.
    rec = RecordT("R", tuple((name, INT) for name in _AWKWARD))

    class Bag:
        def __init__(self, *values: int) -> None:
            self.__dict__.update(zip(_AWKWARD, values, strict=True))

    monkeypatch.setattr(jsongen, "record_class", lambda _t: Bag)
    monkeypatch.setattr(jsongen, "user_classes", lambda _t: {Bag})
    fields = {name: i for i, name in enumerate(_AWKWARD)}
    read, write = jsongen.generate_reader(rec), jsongen.generate_writer(rec)
    got = read(fields, "v")
    assert type(got) is Bag
    assert vars(got) == fields
    assert write(got, "v") == fields
    _no_str_constants(read)
    _no_str_constants(write)


def test_plain_attrs_classes_are_built_without_their_init() -> None:
    """A frozen attrs class whose __init__ only stores its fields (a private
    one too) is filled in directly, and is equal to the one its class makes."""
    assert jsongen._plain_init(JfPoint, ["x", "y"])
    assert jsongen._plain_init(JfPrivate, ["n", "_private"])
    assert jsongen._plain_init(JfDefaulted, ["n"])  # every field is given
    assert not jsongen._plain_init(JfPoint, ["x"])  # not the type's fields
    got = json_reader(from_annotation(JfPrivate))({"n": 1, "_private": "p"}, "v")
    assert got == JfPrivate(1, "p")
    assert hash(got) == hash(JfPrivate(1, "p"))


@pytest.mark.parametrize("depth", [19, 30])
def test_types_too_deep_for_the_generated_code_go_the_reference_way(depth: int) -> None:
    """Python compiles at most 20 nested loops: deeper lists are read and
    written by the reference functions instead of failing."""
    t: Type = INT
    data: Any = 1
    for _ in range(depth):
        t, data = ListT(t), [data]
    assert json_reader(t)(data, "v") == data == json_writer(t)(data, "v")
    with pytest.raises(ValidationError) as info:
        json_reader(t)([[["x"]]], "v")
    assert info.value.message == _outcome(from_json, t, [[["x"]]], "v")[1][0]


@attrs.frozen
class JfNothing:
    """A record without fields, slotted: nothing can change an instance."""


@attrs.frozen(slots=False)
class JfLoose:
    """A record without fields whose instances have a ``__dict__``."""


def test_a_record_without_fields_is_read_as_one_shared_instance_only_when_it_cannot_change() -> (
    None
):
    nothing = json_reader(from_annotation(JfNothing | int))
    first = nothing({"tag": "JfNothing", "value": {}}, "v")
    assert first == JfNothing()
    assert nothing({"tag": "JfNothing"}, "v") is first
    loose = json_reader(from_annotation(JfLoose | int))
    a = loose({"tag": "JfLoose", "value": {}}, "v")
    b = loose({"tag": "JfLoose", "value": {}}, "v")
    assert a == b == JfLoose()
    assert a is not b
