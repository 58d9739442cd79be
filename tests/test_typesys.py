"""Types from annotations, validation with paths, and the JSON value form."""

from __future__ import annotations

import enum
import math
import typing
from typing import Any

import attrs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop.errors import TypeDefinitionError, ValidationError
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
    Tagged,
    TupleT,
    Type,
    TypeLike,
    VariantT,
    either,
    enum_class,
    from_annotation,
    from_json,
    record_class,
    record_classes,
    record_type_of_class,
    to_json,
    validate,
)
from tests.profiles import examples
from tests.strategies import types, value_key, values


@attrs.frozen
class TsPoint:
    """A record of two ints."""

    x: int
    y: int


@attrs.frozen
class TsLine:
    """A record holding records, a list and an option."""

    start: TsPoint
    end: TsPoint
    tags: list[str]
    note: str | None


@attrs.frozen
class TsCircle:
    """A case of :data:`Shape`."""

    r: float


@attrs.frozen
class TsSquare:
    """A case of :data:`Shape`."""

    side: float


Shape = TsCircle | TsSquare


class TsLight(enum.Enum):
    """An enum: a variant of unit cases."""

    RED = 1
    AMBER = 2
    GREEN = 3


@attrs.frozen
class TsPositive:
    """A record whose class validates its field."""

    n: int = attrs.field(validator=attrs.validators.gt(0))


# -- annotations -> types ------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "expected"),
    [
        (int, INT),
        (float, FLOAT),
        (str, STR),
        (bool, BOOL),
        (None, UNIT),
        (type(None), UNIT),
        (tuple[int, str], TupleT((INT, STR))),
        (tuple[()], TupleT(())),
        (tuple[int], TupleT((INT,))),
        (list[int], ListT(INT)),
        (list[list[bool]], ListT(ListT(BOOL))),
        (dict[str, float], MapT(FLOAT)),
        (int | None, OptionT(INT)),
        (typing.Optional[str], OptionT(STR)),  # noqa: UP045 - the old spelling is supported too
        (list[int | None], ListT(OptionT(INT))),
        (tuple[int, str] | None, OptionT(TupleT((INT, STR)))),
        (INT, INT),
    ],
)
def test_annotation_becomes_type(annotation: TypeLike, expected: Type) -> None:
    """Scalars, tuples, lists, string maps and options come from their annotations."""
    assert from_annotation(annotation) == expected


def test_frozen_attrs_class_becomes_bound_record() -> None:
    """A frozen attrs class is a record with its fields in order, bound to the class."""
    t = from_annotation(TsLine)
    point = RecordT("TsPoint", (("x", INT), ("y", INT)))
    assert t == RecordT(
        "TsLine",
        (("start", point), ("end", point), ("tags", ListT(STR)), ("note", OptionT(STR))),
    )
    assert record_class(point) is TsPoint
    assert record_type_of_class(TsLine) == t
    assert from_annotation(TsLine) is t


def test_union_of_records_is_variant_tagged_by_class_name() -> None:
    """``A | B`` of frozen classes is a variant whose values are the instances themselves."""
    t = from_annotation(Shape)
    assert t == VariantT(
        "",
        (
            ("TsSquare", RecordT("TsSquare", (("side", FLOAT),))),
            ("TsCircle", from_annotation(TsCircle)),
        ),
    )
    assert isinstance(t, VariantT)
    assert t.tags == ("TsCircle", "TsSquare")
    assert from_annotation(TsSquare | TsCircle) == t
    validate(t, TsCircle(1.0))
    assert from_json(t, {"tag": "TsSquare", "value": {"side": 2.0}}) == TsSquare(2.0)


def test_enum_becomes_variant_of_unit_cases() -> None:
    """An Enum is a variant named after it, one unit case per member; values are the members."""
    t = from_annotation(TsLight)
    assert t == VariantT("TsLight", (("RED", UNIT), ("AMBER", UNIT), ("GREEN", UNIT)))
    assert isinstance(t, VariantT)
    assert enum_class(t) is TsLight
    validate(t, TsLight.AMBER)
    assert to_json(t, TsLight.AMBER) == {"tag": "AMBER", "value": None}
    assert from_json(t, {"tag": "GREEN"}) is TsLight.GREEN


@attrs.define
class TsMutable:
    """Not frozen: not a record."""

    x: int


@attrs.frozen
class TsKwOnly:
    """A keyword-only field: values are built positionally, so not a record."""

    x: int = attrs.field(kw_only=True)


@attrs.frozen
class TsNoInit:
    """A field outside __init__: not a record."""

    x: int = attrs.field(init=False, default=0)


@attrs.frozen
class TsSelf:
    """A record that contains itself."""

    me: TsSelf | None


@pytest.mark.parametrize(
    ("annotation", "path", "hint"),
    [
        (TsMutable, "annotation", "record classes must be frozen"),
        (dict[float, str], "annotation", "dict keys and set items must be hashable"),
        (frozenset[int], "annotation", "write set[K]"),
        (tuple[int, ...], "annotation", "tuples need fixed item types"),
        (tuple, "annotation", "not a supported type"),
        (typing.Tuple, "annotation", "tuples need fixed item types"),  # noqa: UP006
        (int | tuple[int, int], "annotation|1", "a union's members are frozen attrs classes"),
        (TsPoint | tuple[int], "annotation|1", "a union's members are frozen attrs classes"),
        (list[list[int] | list[str]], "annotation[0]|1", "at most one each of int"),
        (set[float], "annotation", "dict keys and set items must be hashable"),
        ("int", "annotation", "string (forward) annotations must be resolved first"),
        (TsKwOnly, "annotation.x", "every field must be a positional __init__ parameter"),
        (TsNoInit, "annotation.x", "every field must be a positional __init__ parameter"),
        (TsSelf, "annotation.me", "recursive records are not supported"),
    ],
)
def test_unsupported_annotation_is_refused_with_a_hint(
    annotation: Any, path: str, hint: str
) -> None:
    """Annotations without an arrowloop type are refused, naming the part and the fix."""
    with pytest.raises(TypeDefinitionError) as info:
        from_annotation(annotation)
    assert info.value.path == path
    assert hint in info.value.message
    assert "frozen attrs class" in (info.value.expected or "")


@pytest.mark.parametrize("item", [OptionT(INT), UNIT])
def test_nested_option_is_refused(item: Type) -> None:
    """An option of an option (or of unit) is refused: None would be ambiguous."""
    with pytest.raises(TypeDefinitionError, match="None would be ambiguous"):
        OptionT(item)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: RecordT("class", ()), "record name"),
        (lambda: RecordT("R", (("__x", INT),)), "field name"),
        (lambda: RecordT("R", (("a", INT), ("a", STR))), "the field 'a' twice"),
        (lambda: VariantT("", ()), "at least one case"),
        (lambda: VariantT("", (("A", INT), ("A", STR))), "the tag 'A' twice"),
        (lambda: VariantT("has space", (("A", INT),)), "variant name"),
        (lambda: RecordT("R", (("x" * 65, INT),)), "at most 64 characters"),
    ],
)
def test_bad_names_in_types_are_refused(make: Any, fragment: str) -> None:
    """Record, field and tag names must be plain identifiers, each used once."""
    with pytest.raises(TypeDefinitionError, match=fragment):
        make()


def test_two_classes_of_one_structure_are_one_record_type() -> None:
    """A second user class with the same name and fields is an alias of the type:
    its instances are values of it, and the first class still builds values."""

    @attrs.frozen
    class TsPoint:  # the same structure as the module-level TsPoint
        x: int
        y: int

    first = globals()["TsPoint"]
    t = from_annotation(first)
    assert isinstance(t, RecordT)
    assert from_annotation(TsPoint) is t
    assert record_class(t) is first
    assert record_classes(t) == (first, TsPoint)
    validate(t, TsPoint(1, 2))
    assert to_json(t, TsPoint(1, 2)) == {"x": 1, "y": 2}
    assert type(from_json(t, {"x": 1, "y": 2})) is first


def test_variants_are_equal_whatever_the_order_of_cases() -> None:
    """Cases are kept sorted, so ``A | B`` and ``B | A`` are one type."""
    a = VariantT("", (("b", INT), ("a", STR)))
    assert a == VariantT("", (("a", STR), ("b", INT)))
    assert a.tags == ("a", "b")
    assert either(INT, STR) != either(STR, INT)


# -- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("t", "value", "path", "expected"),
    [
        (TupleT((INT, from_annotation(TsPoint))), (1, TsPoint(1, "2")), "value[1].y", "int"),  # type: ignore[arg-type]
        (ListT(INT), [1, 2, "3"], "value[2]", "int"),
        (MapT(BOOL), {"ok": True, "no": 0}, "value['no']", "bool"),
        (INT, True, "value", "int"),
        (FLOAT, 1, "value", "float"),
        (BOOL, 1, "value", "bool"),
        (STR, b"x", "value", "str"),
        (UNIT, 0, "value", "None (unit)"),
        (OptionT(INT), "x", "value", "int"),
        (TupleT((INT, INT)), (1,), "value", "a tuple of 2 (int, int)"),
        (TupleT((INT, INT)), [1, 2], "value", "a tuple of 2 (int, int)"),
        (ListT(INT), (1, 2), "value", "a list list[int]"),
        (from_annotation(TsLine), TsPoint(1, 2), "value", "a record TsLine"),
        (from_annotation(Shape), TsPoint(1, 2), "value", "a case of"),
        (either(INT, STR), Tagged("left", "x"), "value.left", "int"),
        (either(INT, STR), Tagged("middle", 1), "value", "a case of"),
        (from_annotation(TsLight), TsLight.RED.value, "value", "a case of"),
    ],
)
def test_validate_names_the_place_that_does_not_fit(
    t: Type, value: Any, path: str, expected: str
) -> None:
    """validate() raises a ValidationError whose path points inside the value."""
    with pytest.raises(ValidationError) as info:
        validate(t, value)
    assert info.value.path == path
    assert expected in (info.value.expected or "")
    assert info.value.message.startswith("expected ")


def test_validate_accepts_well_typed_values() -> None:
    """Values of the right shape pass, nested records and enums included."""
    line = TsLine(TsPoint(0, 0), TsPoint(1, 1), ["a"], None)
    validate(from_annotation(TsLine), line)
    validate(from_annotation(list[TsLight]), [TsLight.RED, TsLight.GREEN])
    validate(from_annotation(dict[str, Shape]), {"c": TsCircle(1.0)})


# -- the JSON value form ----------------------------------------------------------------------


@settings(max_examples=examples(200), deadline=None, derandomize=True)
@given(types(3).flatmap(lambda t: st.tuples(st.just(t), values(t))))
def test_json_form_round_trips(tv: tuple[Type, Any]) -> None:
    """from_json(to_json(v)) is v, also through the JSON bytes (NaN, infinities, -0.0)."""
    t, v = tv
    validate(t, v)
    data = to_json(t, v)
    assert value_key(from_json(t, data)) == value_key(v)
    assert value_key(from_json(t, orjson.loads(orjson.dumps(data)))) == value_key(v)


def test_record_json_form_is_an_object_of_fields() -> None:
    """Records are objects of their fields; options are null or the item."""
    line = TsLine(TsPoint(0, 1), TsPoint(2, 3), ["a"], None)
    data = to_json(from_annotation(TsLine), line)
    assert data == {
        "start": {"x": 0, "y": 1},
        "end": {"x": 2, "y": 3},
        "tags": ["a"],
        "note": None,
    }
    assert from_json(from_annotation(TsLine), data) == line


@pytest.mark.parametrize(
    ("value", "data"),
    [(math.inf, "Infinity"), (-math.inf, "-Infinity"), (1.5, 1.5), (-0.0, -0.0)],
)
def test_float_specials_have_string_forms(value: float, data: Any) -> None:
    """Non-finite floats are the strings "NaN", "Infinity", "-Infinity" on the wire."""
    assert to_json(FLOAT, value) == data
    back = from_json(FLOAT, data)
    assert back == value
    assert math.copysign(1.0, back) == math.copysign(1.0, value)


def test_nan_has_a_string_form() -> None:
    """NaN is written as "NaN" and read back as a NaN."""
    assert to_json(FLOAT, math.nan) == "NaN"
    assert math.isnan(from_json(FLOAT, "NaN"))


def test_json_integers_are_accepted_as_floats() -> None:
    """A float field accepts a JSON integer (``1`` for ``1.0``), but not a boolean or "nan"."""
    assert from_json(FLOAT, 1) == 1.0
    assert type(from_json(FLOAT, 1)) is float
    for bad in (True, "nan", "inf", None):
        with pytest.raises(ValidationError):
            from_json(FLOAT, bad)


@pytest.mark.parametrize(
    ("t", "data", "path", "fragment"),
    [
        (from_annotation(TsPoint), {"x": 1}, "value", "expected the field 'y' of record TsPoint"),
        (from_annotation(TsPoint), {"x": 1, "y": 2, "z": 3}, "value", "found the field 'z'"),
        (from_annotation(TsLine), {"start": {"x": 1, "y": 2}}, "value", "field 'end'"),
        (
            from_annotation(TsLine),
            {"start": {"x": 1, "y": "2"}, "end": {"x": 0, "y": 0}, "tags": [], "note": None},
            "value.start.y",
            "expected an integer, found the string '2'",
        ),
        (from_annotation(Shape), {"tag": "TsOval"}, "value.tag", "expected one of the tags"),
        (from_annotation(Shape), {"tag": "TsCircle"}, "value", 'expected a "value" for tag'),
        (from_annotation(Shape), {"value": 1}, "value", '{"tag": ..., "value": ...}'),
        (from_annotation(Shape), {"tag": "TsCircle", "value": {}, "x": 1}, "value", "only"),
        (ListT(INT), [1, "2"], "value[1]", "expected an integer"),
        (MapT(INT), {"a": "b"}, "value['a']", "expected an integer"),
        (TupleT((INT,)), [1, 2], "value", "an array of 1"),
        (from_annotation(TsPositive), {"n": -1}, "value", "rejected"),
    ],
)
def test_from_json_names_the_place_that_does_not_fit(
    t: Type, data: Any, path: str, fragment: str
) -> None:
    """from_json() refuses JSON of the wrong shape with a path into the data."""
    with pytest.raises(ValidationError) as info:
        from_json(t, data)
    assert info.value.path == path
    assert fragment in info.value.message


def test_variant_value_may_be_omitted_for_unit_and_empty_records() -> None:
    """``{"tag": T}`` is enough when T's payload is unit or a record without fields."""

    @attrs.frozen
    class TsPing:
        pass

    t = VariantT("", (("TsPing", from_annotation(TsPing)), ("quiet", UNIT), ("n", INT)))
    assert from_json(t, {"tag": "TsPing"}) == TsPing()
    assert from_json(t, {"tag": "quiet"}) == Tagged("quiet", None)
    with pytest.raises(ValidationError, match='expected a "value" for tag n'):
        from_json(t, {"tag": "n"})


def test_synthesised_record_classes_accept_any_valid_field_names() -> None:
    """Records received without a class get one, whatever their (valid) field names."""
    rt = RecordT("TsOdd", (("self", INT), ("_", INT), ("_a", INT), ("a", INT), ("f0", INT)))
    value = from_json(rt, {"self": 1, "_": 2, "_a": 3, "a": 4, "f0": 5})
    assert type(value) is record_class(rt)
    assert to_json(rt, value) == {"self": 1, "_": 2, "_a": 3, "a": 4, "f0": 5}
    validate(rt, value)


def test_ints_beyond_64_bits_have_no_wire_form() -> None:
    """An int outside the wire's 64-bit range is a clear ValidationError, not a crash."""
    from arrowloop.errors import ValidationError as VE
    from arrowloop.typesys import INT as INT_T
    from arrowloop.typesys import to_json as tj

    assert tj(INT_T, 2**63 - 1) == 2**63 - 1
    with pytest.raises(VE, match="64-bit"):
        tj(INT_T, 2**63)


@pytest.mark.parametrize("n", [2**63, -(2**63) - 1, 2**64 - 1])
def test_ints_outside_64_bits_are_refused_when_read_too(n: int) -> None:
    """What ``to_json`` cannot write back, ``from_json`` does not accept."""
    with pytest.raises(ValidationError, match="64-bit signed range") as info:
        from_json(TupleT((INT, INT)), [1, n])
    assert info.value.path == "value[1]"
    assert from_json(INT, 2**63 - 1) == 2**63 - 1
    assert from_json(INT, -(2**63)) == -(2**63)
