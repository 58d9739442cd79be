"""Maps with keys of any hashable type and sets on the wire.

A map with ``str`` keys keeps the wire form it always had (the type omits
its key, the value is an object), so the versions of existing programs do
not change: the ones pinned here were computed before maps had key types.
Other maps are arrays of ``[key, value]`` pairs and sets arrays of items,
both in canonical key order (``key_order``), so a value's bytes, and the
version of a program holding it, depend on the value only.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop import Machine
from arrowloop.errors import DecodeError, TypeDefinitionError, ValidationError
from arrowloop.typesys import (
    BOOL,
    INT,
    STR,
    UNIT,
    MapT,
    OptionT,
    SetT,
    Tagged,
    TupleT,
    Type,
    from_annotation,
    to_json,
)
from arrowloop.wire import canonical, decode_type, decode_value, encode_type, encode_value
from benchmarks import stateful_machines as sm
from examples import counter as c
from examples.counter import v2, v3
from tests.profiles import examples
from tests.strategies import GenColor, key_types, types, value_key, values

#: Versions computed on main before maps had a key type (commit 2cd082d).
PINNED = {
    "counter_v2": "9917558f9f962c990b6019c1e809463275c3d0204ab0312f626336cfc61f380b",
    "counter_v3": "4f7c0416559294ef807bc8614aa395af55f2265840e63e466c6d26d3697b84da",
    "py_v2": "8bf1c8fbc1b6628494a6618ceeefb6e748bc9500040f83129cdc5159ad369b94",
    "py_v3": "253bec0003ebdd089ee012feec8292377ce4c5082383fa9617f6d68eb731abda",
    "aggregate": "554536c113d7e7902358552046ec281165c91f98a07e1896e12bc9b85eb364cc",
    # Changed on purpose since: sessions.setdefault(user, []).append(ts) is one
    # map_append_or (the entry appended to in place) where it was a take and a put.
    "sessionize": "1f643e028767f07e755135fc768fd90dba891ba61325102e966eedf3d34c75ee",
    "token_bucket": "a4a946096355bb056c72255b8abe8b0212ab888fa70c3c69aac99991779e4d74",
}


def test_versions_of_existing_programs_are_unchanged() -> None:
    """The counter's and the str-keyed map machines' versions are those of before."""
    found = {
        "counter_v2": Machine.build(c.counter_v2, c.InputV2, c.Output).version,
        "counter_v3": Machine.build(c.counter_v3, c.InputV3, c.Output).version,
        "py_v2": v2.machine.version,
        "py_v3": v3.machine.version,
        "aggregate": sm.aggregate.machine.version,
        "sessionize": sm.sessionize.machine.version,
        "token_bucket": sm.token_bucket.machine.version,
    }
    assert found == PINNED


def test_a_str_keyed_map_type_omits_its_key() -> None:
    """dict[str, T] is written as before; a written str key is not canonical and is refused."""
    assert encode_type(from_annotation(dict[str, int])) == {"kind": "map", "value": {"kind": "int"}}
    assert encode_type(MapT(INT, INT)) == {
        "kind": "map",
        "key": {"kind": "int"},
        "value": {"kind": "int"},
    }
    with pytest.raises(DecodeError, match="no key for a str-keyed map"):
        decode_type({"kind": "map", "key": {"kind": "str"}, "value": {"kind": "int"}}, "$")


def test_the_json_forms_of_keyed_maps_and_sets() -> None:
    """Pairs and items come in key order: numbers by value, None first, enums by name."""
    assert to_json(MapT(STR, INT), {10: "a", 2: "b", -1: "c"}) == [[-1, "c"], [2, "b"], [10, "a"]]
    assert to_json(SetT(OptionT(INT)), {3, None, 1}) == [None, 1, 3]
    color = from_annotation(GenColor)
    assert to_json(SetT(color), {GenColor.RED, GenColor.GREEN}) == [
        {"tag": "GREEN", "value": None},
        {"tag": "RED", "value": None},
    ]
    assert to_json(MapT(INT, TupleT((STR, BOOL))), {("b", True): 1, ("a", False): 2}) == [
        [["a", False], 2],
        [["b", True], 1],
    ]


def test_a_repeated_key_or_item_is_refused() -> None:
    """Decoding keeps the one-value-per-key rule: a repeated key or set item is an error."""
    with pytest.raises(DecodeError, match="each key once"):
        decode_value(MapT(INT, INT), [[1, 2], [1, 3]])
    with pytest.raises(DecodeError, match="each item once"):
        decode_value(SetT(INT), [1, 1])


def test_unhashable_key_types_are_refused() -> None:
    """Floats and records cannot be keys (NaN, alias classes); lists and sets neither."""
    for bad in (from_annotation(float), from_annotation(list[int]), SetT(INT)):
        with pytest.raises(TypeDefinitionError, match="hashable"):
            MapT(INT, bad)
        with pytest.raises(TypeDefinitionError, match="hashable"):
            SetT(bad)


def _shuffled(v: Any, seed: int) -> Any:
    """The same map or set, built in another insertion order."""
    rng = random.Random(seed)
    if isinstance(v, dict):
        items = list(v.items())
        rng.shuffle(items)
        return dict(items)
    items = list(v)
    rng.shuffle(items)
    return set(items)


@st.composite
def _keyed(draw: st.DrawFn) -> tuple[Type, Any]:
    k = draw(key_types(2))
    t: Type = SetT(k) if draw(st.booleans()) else MapT(draw(types(1)), k)
    return t, draw(values(t))


@settings(max_examples=examples(200))
@given(_keyed(), st.integers(0, 1000))
def test_keyed_values_round_trip_with_stable_canonical_bytes(
    tv: tuple[Type, Any], seed: int
) -> None:
    """A keyed map or set round-trips the wire, and its bytes do not depend on insertion order."""
    t, v = tv
    data = encode_value(t, v)
    back = decode_value(t, data)
    assert value_key(back) == value_key(v)
    assert canonical(encode_value(t, back)) == canonical(data)
    assert canonical(encode_value(t, _shuffled(v, seed))) == canonical(data)
    assert decode_type(encode_type(t), "$") == t


@settings(max_examples=examples(200))
@given(key_types(2))
def test_key_types_round_trip_the_wire(k: Type) -> None:
    """Key types, and maps and sets of them, round-trip as types."""
    for t in (MapT(UNIT, k), SetT(k)):
        assert decode_type(encode_type(t), "$") == t


def test_a_tagged_unit_key_sorts_by_tag() -> None:
    """Keys of an enum-like variant no enum is bound to are Tagged values, ordered by tag."""
    from arrowloop.typesys import VariantT

    t = VariantT("Lone", (("b", UNIT), ("a", UNIT)))
    assert to_json(SetT(t), {Tagged("b", None), Tagged("a", None)}) == [
        {"tag": "a", "value": None},
        {"tag": "b", "value": None},
    ]
    with pytest.raises(ValidationError):
        encode_value(SetT(INT), {True})


def test_a_type_variable_for_keys_only_becomes_a_key_type() -> None:
    """set_of_list of floats or lists does not type-check; of tuples of key types it does."""
    from arrowloop import CheckError, check_arrow, prim

    for bad in (list[float], list[list[int]]):
        with pytest.raises(CheckError, match="set_of_list"):
            check_arrow(prim("set_of_list"), bad)
    ok = check_arrow(prim("set_of_list"), list[tuple[int, str | None]])
    assert ok.output == SetT(TupleT((INT, OptionT(STR))))
