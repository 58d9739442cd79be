"""The specialised JSON readers and writers agree with the reference functions.

``json_reader(t)`` must behave exactly as ``from_json(t, ...)`` and
``json_writer(t)`` as ``validate`` followed by ``to_json``: same values,
same errors (message, path, expected, found), for well-typed values and for
arbitrary JSON data or Python values that do not fit.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop.errors import ValidationError
from arrowloop.typesys import (
    Type,
    from_annotation,
    from_json,
    json_reader,
    json_writer,
    to_json,
    validate,
)
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
