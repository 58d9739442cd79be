"""The wire form of code changes, and the untyped loop and arrow documents.

Round trips use the counter's upgrades (examples/counter: the v2 and v3
upgrade files in the Python subset, and the combinator ``counter_v2``/
``migrate_v2_v3``) and randomly generated programs. Bad change documents
must give one DecodeError or CheckError whose ``path`` points at the bad
part of the document; a fuzz test mutates real change documents and allows
nothing else to escape.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowloop import Function, Machine, id_, native
from arrowloop.arrows import Arrow, Loop, Prim
from arrowloop.errors import (
    CheckError,
    DecodeError,
    LocatedError,
    TypeDefinitionError,
    ValidationError,
)
from arrowloop.supervisor import CodeChange, StageUpgrade, code_change
from arrowloop.typesys import Type
from arrowloop.upgrade import (
    MAX_RECORD_TYPES,
    MAX_REQUESTER,
    MAX_STAGES,
    decode_change,
    encode_change,
    function_doc,
    machine_doc,
)
from arrowloop.wire import (
    FORMAT,
    FORMAT_VERSION,
    Limits,
    decode_arrow_doc,
    decode_loop_doc,
    digest,
    document_kind,
    encode_arrow_doc,
    encode_loop_doc,
    parse,
)
from examples import counter as c
from examples.counter import v2, v3
from tests.machines import migration, tagged
from tests.profiles import examples
from tests.strategies import loops, programs
from tests.test_decode_fuzz import _json, _mutate, _objects, _serialise, _slots, _types_in

SETTINGS = settings(
    max_examples=examples(60),
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: The errors a bad change document may raise.
ALLOWED = (DecodeError, CheckError, ValidationError, TypeDefinitionError)

V2 = v2.machine.version
V3 = v3.machine.version
#: The versions of the combinator counters (other programs than the Python-subset ones).
V2_LOOP = Machine.build(c.counter_v2, c.InputV2, c.Output).version
V3_LOOP = Machine.build(c.counter_v3, c.InputV3, c.Output).version


def _v3_change(**kw: Any) -> CodeChange:
    """v2 -> v3 as the upgrade file sends it: machine, migrate and inverse, all typed."""
    return code_change(
        "count", V2, v3.machine.machine, v3.migrate.function, inverse=v3.inverse.function, **kw
    )


def _v3_doc() -> dict[str, Any]:
    return encode_change(_v3_change())


def _loop_change() -> CodeChange:
    """v2 -> v3 with untyped parts: the combinator Loop and Arrow migrations."""
    return code_change("count", V2, c.counter_v3, c.migrate_v2_v3, inverse=c.migrate_v3_v2)


def _decode_error(doc: Any, **kw: Any) -> LocatedError:
    """The one error decoding ``doc`` gives (failing unless it is allowed)."""
    with pytest.raises(ALLOWED) as info:
        decode_change(doc, **kw)
    return info.value


# -- the untyped documents ---------------------------------------------------------


def test_loop_document_round_trips() -> None:
    """A loop document carries state type, initial state and body, and decodes to the loop."""
    doc = encode_loop_doc(c.counter_v2)
    assert set(doc) == {"format", "version", "kind", "state", "init", "body"}
    assert (doc["format"], doc["version"], doc["kind"]) == (FORMAT, FORMAT_VERSION, "loop")
    assert doc["state"] == {"kind": "int"}
    assert doc["init"] == 0
    assert decode_loop_doc(doc) == c.counter_v2
    assert decode_loop_doc(orjson.dumps(doc)) == c.counter_v2
    # Built with the types of the stage it replaces, it is counter v2.
    assert Machine.build(decode_loop_doc(doc), c.InputV2, c.Output).version == V2_LOOP


def test_arrow_document_round_trips() -> None:
    """An arrow document carries only the program."""
    doc = encode_arrow_doc(c.migrate_v2_v3)
    assert set(doc) == {"format", "version", "kind", "body"}
    assert doc["kind"] == "arrow"
    assert decode_arrow_doc(doc) == c.migrate_v2_v3
    assert decode_arrow_doc(orjson.dumps(doc).decode()) == c.migrate_v2_v3


@pytest.mark.parametrize(
    ("doc", "kind"),
    [
        (encode_loop_doc(c.counter_v1), "loop"),
        (encode_arrow_doc(c.migrate_v3_v2), "arrow"),
        (v2.machine.machine.to_wire_data(), "machine"),
        (v2.migrate.function.to_wire_data(), "function"),
        (encode_change(code_change("s", V2, c.counter_v2)), "change"),
    ],
)
def test_document_kind_names_each_document(doc: dict[str, Any], kind: str) -> None:
    """``document_kind`` reads the kind of any document whose header is right."""
    assert document_kind(doc) == kind


@pytest.mark.parametrize(
    ("doc", "path", "message"),
    [
        ([], "$.x", "expected an arrowloop document (an object), found an array"),
        ({"version": 1, "kind": "loop"}, "$.x.format", 'expected "format": "arrowloop"'),
        ({"format": "arrowloop", "version": 2, "kind": "loop"}, "$.x.version", "newer"),
        ({"format": "arrowloop", "version": True, "kind": "loop"}, "$.x.version", "found True"),
        ({"format": "arrowloop", "version": 1, "kind": 7}, "$.x.kind", "found kind 7"),
    ],
)
def test_document_kind_refuses_what_is_not_a_document(doc: Any, path: str, message: str) -> None:
    """Not an object, another format or version, a kind that is not a string: DecodeError."""
    with pytest.raises(DecodeError, match=re.escape(message)) as info:
        document_kind(doc, "$.x")
    assert info.value.path == path


def test_untyped_documents_refuse_other_kinds_and_fields() -> None:
    """A loop decoder refuses an arrow document; unknown fields are named."""
    with pytest.raises(DecodeError) as info:
        decode_loop_doc(encode_arrow_doc(id_))
    assert info.value.path == "$.kind"
    assert info.value.message == "expected a \"loop\" document, found kind 'arrow'"
    doc = encode_arrow_doc(id_)
    doc["state"] = {"kind": "int"}
    with pytest.raises(DecodeError) as info:
        decode_arrow_doc(doc)
    assert info.value.path == "$.state"
    doc = encode_loop_doc(c.counter_v1)
    del doc["init"]
    with pytest.raises(DecodeError) as info:
        decode_loop_doc(doc)
    assert info.value.path == "$"
    assert info.value.expected == 'a field "init"'
    doc = encode_loop_doc(c.counter_v1)
    doc["init"] = "zero"
    with pytest.raises(DecodeError) as info:
        decode_loop_doc(doc)
    assert info.value.path == "$.init"


def test_untyped_documents_respect_limits() -> None:
    """The node and byte limits hold for loop and arrow documents too."""
    with pytest.raises(DecodeError, match="node limit"):
        decode_loop_doc(encode_loop_doc(c.counter_v3), Limits(max_nodes=5))
    raw = orjson.dumps(encode_arrow_doc(c.migrate_v2_v3))
    with pytest.raises(DecodeError) as info:
        decode_arrow_doc(raw, Limits(max_bytes=20))
    assert info.value.expected == "<= 20 bytes"


@SETTINGS
@given(loops())
def test_random_loops_round_trip_as_loop_documents(m: tuple[Loop, Type, Type]) -> None:
    """Any loop survives a loop document (through bytes) with the same machine version."""
    lp, src, dst = m
    back = decode_loop_doc(orjson.dumps(encode_loop_doc(lp)))
    assert digest(encode_loop_doc(back)) == digest(encode_loop_doc(lp))
    assert Machine.build(back, src, dst).version == Machine.build(lp, src, dst).version


@SETTINGS
@given(programs())
def test_random_programs_round_trip_as_arrow_documents(p: tuple[Arrow, Type, Type]) -> None:
    """Any program survives an arrow document with the same function version."""
    prog, src, dst = p
    back = decode_arrow_doc(orjson.dumps(encode_arrow_doc(prog)))
    assert back == prog
    assert Function.build(back, src, dst).version == Function.build(prog, src, dst).version


# -- machine_doc and function_doc --------------------------------------------------


def test_machine_doc_takes_machines_and_loops() -> None:
    """A @statemachine and a Machine send their machine document, a Loop a loop document."""
    assert machine_doc(v3.machine) == v3.machine.machine.to_wire_data()
    assert machine_doc(v3.machine.machine) == v3.machine.machine.to_wire_data()
    assert machine_doc(c.counter_v2) == encode_loop_doc(c.counter_v2)


def test_function_doc_takes_functions_and_arrows() -> None:
    """An @arrow function and a Function send a function document, an Arrow an arrow document."""
    assert function_doc(None) is None
    assert function_doc(v3.migrate) == v3.migrate.function.to_wire_data()
    assert function_doc(v3.inverse.function) == v3.inverse.function.to_wire_data()
    assert function_doc(c.migrate_v2_v3) == encode_arrow_doc(c.migrate_v2_v3)


def _step(x: int, s: int) -> tuple[int, int]:
    return s + x, s + x


def test_native_machines_have_no_wire_form() -> None:
    """A native machine is refused, saying it can only be upgraded in-process."""
    with pytest.raises(TypeError, match="native machine wraps a Python callable"):
        machine_doc(native(_step, 0))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="native machine"):
        encode_change(code_change("s", V2, native(_step, 0)))


@pytest.mark.parametrize("thing", [c.migrate_v2_v3, v2.migrate, 5, "machine"])
def test_machine_doc_refuses_other_objects(thing: Any) -> None:
    """Functions, arrows and other objects are not machines."""
    with pytest.raises(TypeError, match="expected a Machine, a @statemachine or a Loop"):
        machine_doc(thing)


def _plain(n: int) -> int:
    return n


@pytest.mark.parametrize("thing", [_plain, len, v2.machine, c.counter_v2, 5])
def test_function_doc_refuses_plain_callables_and_others(thing: Any) -> None:
    """Python callables, machines and loops are not functions with a wire form."""
    with pytest.raises(TypeError, match="expected a Function, an @arrow function or an arrow"):
        function_doc(thing)


def test_encode_change_refuses_a_python_migration() -> None:
    """A change whose migration is a Python callable cannot be encoded."""
    with pytest.raises(TypeError, match="plain Python callables cannot be sent"):
        encode_change(code_change("count", V2, v3.machine.machine, _plain))


# -- round trips -------------------------------------------------------------------


def test_typed_change_round_trips() -> None:
    """Machine and Function parts decode to equal parts: the same versions, the same fields."""
    change = _v3_change(requested_by="alice", change_interface=True)
    doc = encode_change(change)
    assert doc["kind"] == "change"
    assert doc["requested_by"] == "alice"
    assert doc["change_interface"] is True
    assert set(doc["stages"][0]) == {"stage", "expect_version", "machine", "migrate", "inverse"}
    back = decode_change(parse(orjson.dumps(doc)))
    assert (back.requested_by, back.change_interface, back.stages) == ("alice", True, ("count",))
    (u,) = back.upgrades
    assert u.expect_version == V2
    assert isinstance(u.machine, Machine)
    assert u.machine.version == V3
    assert isinstance(u.migrate, Function)
    assert u.migrate.version == v3.migrate.version
    assert isinstance(u.inverse, Function)
    assert u.inverse.version == v3.inverse.version
    assert (u.input_adapter, u.output_adapter) == (None, None)
    # The decoded machine runs like the original.
    assert u.machine.step(c.ToggleCount(), (4, False)) == ((4, True), c.Ack())
    assert encode_change(back) == doc


def test_untyped_change_round_trips() -> None:
    """A Loop machine and Arrow migrations come back as the same Loop and Arrows."""
    doc = encode_change(_loop_change())
    stage = doc["stages"][0]
    assert (stage["machine"]["kind"], stage["migrate"]["kind"]) == ("loop", "arrow")
    (u,) = decode_change(doc).upgrades
    assert u.machine == c.counter_v3
    assert u.migrate == c.migrate_v2_v3
    assert u.inverse == c.migrate_v3_v2
    assert Machine.build(u.machine, c.InputV3, c.Output).version == V3_LOOP
    assert encode_change(decode_change(doc)) == doc


def test_counter_v2_loop_with_migrate_v2_v3_arrow() -> None:
    """The combinator ``counter_v2`` (a Loop) travels with ``migrate_v2_v3`` (an Arrow)."""
    doc = encode_change(code_change("count", V2, c.counter_v2, c.migrate_v2_v3))
    (u,) = decode_change(doc).upgrades
    assert u.machine == c.counter_v2
    assert u.migrate == c.migrate_v2_v3
    assert u.inverse is None
    assert Machine.build(u.machine, c.InputV2, c.Output).version == V2_LOOP


def test_pipeline_change_with_adapters_round_trips() -> None:
    """Several stages, typed and untyped parts, and both adapters keep their order and parts."""
    change = CodeChange(
        (
            StageUpgrade("a", tagged(0).version, tagged(1), migration(0, 1), migration(1, 0)),
            StageUpgrade(
                "b",
                tagged(1).version,
                tagged(2).loop,
                migration(1, 2).arrow,
                input_adapter=id_,
                output_adapter=Function.build(id_, int, int),
            ),
        ),
        "ops",
    )
    doc = encode_change(change)
    assert set(doc["stages"][1]) == {
        "stage",
        "expect_version",
        "machine",
        "migrate",
        "input_adapter",
        "output_adapter",
    }
    back = decode_change(doc)
    assert back.stages == ("a", "b")
    a, b = back.upgrades
    assert isinstance(a.machine, Machine)
    assert a.machine.version == tagged(1).version
    assert isinstance(a.inverse, Function)
    assert a.inverse.version == migration(1, 0).version
    assert b.machine == tagged(2).loop
    assert b.migrate == migration(1, 2).arrow
    assert b.input_adapter == id_
    assert isinstance(b.output_adapter, Function)
    assert b.output_adapter.version == Function.build(id_, int, int).version
    assert encode_change(back) == doc


@SETTINGS
@given(loops(), programs(), st.booleans(), st.booleans())
def test_random_changes_round_trip(
    m: tuple[Loop, Type, Type], p: tuple[Arrow, Type, Type], typed: bool, typed_fn: bool
) -> None:
    """Any machine and migration, typed or not, survive a change document unchanged."""
    lp, src, dst = m
    prog, a, b = p
    machine: Machine | Loop = Machine.build(lp, src, dst) if typed else lp
    migrate: Function | Arrow = Function.build(prog, a, b) if typed_fn else prog
    doc = encode_change(code_change("s", "f" * 64, machine, migrate))
    back = decode_change(parse(orjson.dumps(doc)))
    (u,) = back.upgrades
    if isinstance(machine, Machine):
        assert isinstance(u.machine, Machine)
        assert u.machine.version == machine.version
    else:
        assert isinstance(u.machine, Loop)
        assert digest(encode_loop_doc(u.machine)) == digest(encode_loop_doc(lp))
    if isinstance(migrate, Function):
        assert isinstance(u.migrate, Function)
        assert u.migrate.version == migrate.version
    else:
        assert u.migrate == prog
    assert digest(encode_change(back)) == digest(doc)


# -- bad change documents: one error, at the right place --------------------------------


def _set(path: list[str | int], value: Any) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        box: Any = doc
        for key in path[:-1]:
            box = box[key]
        box[path[-1]] = value

    return apply


def _drop(path: list[str | int]) -> Callable[[dict[str, Any]], None]:
    def apply(doc: dict[str, Any]) -> None:
        box: Any = doc
        for key in path[:-1]:
            box = box[key]
        del box[path[-1]]

    return apply


S0: list[str | int] = ["stages", 0]

BAD: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("format", _set(["format"], "other"), "$.format", 'expected "format": "arrowloop"'),
    ("version", _set(["version"], 2), "$.version", "expected format version 1, found 2"),
    ("kind", _set(["kind"], "machine"), "$.kind", 'expected a "change" document'),
    ("unknown field", _set(["colour"], "red"), "$.colour", "expected only the fields"),
    ("requested_by empty", _set(["requested_by"], ""), "$.requested_by", "non-empty string"),
    (
        "requested_by long",
        _set(["requested_by"], "x" * (MAX_REQUESTER + 1)),
        "$.requested_by",
        f"at most {MAX_REQUESTER}",
    ),
    ("requested_by type", _set(["requested_by"], 5), "$.requested_by", "found 5"),
    ("change_interface", _set(["change_interface"], "yes"), "$.change_interface", "a boolean"),
    ("change_interface 1", _set(["change_interface"], 1), "$.change_interface", "a boolean"),
    ("no stages", _drop(["stages"]), "$.stages", "found None"),
    ("empty stages", _set(["stages"], []), "$.stages", "found an array of 0"),
    ("stages object", _set(["stages"], {}), "$.stages", "found an object"),
    ("stage not object", _set(S0, [1]), "$.stages[0]", "an object (one stage's change)"),
    ("stage field", _set([*S0, "colour"], 1), "$.stages[0].colour", "expected only the fields"),
    ("stage name", _set([*S0, "stage"], "not a name"), "$.stages[0].stage", "an identifier"),
    ("no stage name", _drop([*S0, "stage"]), "$.stages[0].stage", "found None"),
    (
        "version short",
        _set([*S0, "expect_version"], "abc"),
        "$.stages[0].expect_version",
        "64 lowercase hex digits",
    ),
    (
        "version upper",
        _set([*S0, "expect_version"], V2.upper()),
        "$.stages[0].expect_version",
        "64 lowercase hex",
    ),
    (
        "version long",
        _set([*S0, "expect_version"], V2 + "0"),
        "$.stages[0].expect_version",
        "64 lowercase hex",
    ),
    ("version type", _set([*S0, "expect_version"], 12), "$.stages[0].expect_version", "found 12"),
    ("no version", _drop([*S0, "expect_version"]), "$.stages[0].expect_version", "found None"),
    ("no machine", _drop([*S0, "machine"]), "$.stages[0].machine", "found nothing"),
    (
        "machine kind",
        _set([*S0, "machine", "kind"], "function"),
        "$.stages[0].machine.kind",
        'a "machine" or "loop" document',
    ),
    (
        "migrate kind",
        _set([*S0, "migrate", "kind"], "machine"),
        "$.stages[0].migrate.kind",
        'a "function" or "arrow" document',
    ),
    (
        "machine field",
        _set([*S0, "machine", "colour"], 1),
        "$.stages[0].machine.colour",
        "expected only the fields",
    ),
    (
        "machine body",
        _set([*S0, "machine", "body", "kind"], "teleport"),
        "$.stages[0].machine.body.kind",
        "program node kind",
    ),
    (
        "machine init",
        _set([*S0, "machine", "init"], "zero"),
        "$.stages[0].machine.init",
        "found the string 'zero'",
    ),
    (
        "inverse body",
        _set([*S0, "inverse", "body"], {"kind": "proj", "index": 2, "arity": 2}),
        "$.stages[0].inverse.body",
        "out of range",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "path", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
def test_bad_change_gives_one_decode_error_at_its_path(
    mutate: Callable[[dict[str, Any]], None], path: str, message: str
) -> None:
    """Each malformed part is refused with a DecodeError at its JSON path."""
    doc = _v3_doc()
    mutate(doc)
    err = _decode_error(doc)
    assert type(err) is DecodeError
    assert err.path == path
    assert message in err.message


def test_change_that_is_not_an_object_is_refused() -> None:
    """A change document must be an object."""
    err = _decode_error([_v3_doc()])
    assert type(err) is DecodeError
    assert err.path == "$"
    assert "an arrowloop change document (an object), found an array" in err.message


def test_stage_named_twice_is_refused_at_the_second() -> None:
    """A change names each stage once; the second mention is the error."""
    doc = _v3_doc()
    doc["stages"] = [doc["stages"][0], copy.deepcopy(doc["stages"][0])]
    err = _decode_error(doc)
    assert type(err) is DecodeError
    assert err.path == "$.stages[1].stage"
    assert err.message == "expected each stage named once, found 'count'"


def _loop_stage(i: int) -> dict[str, Any]:
    return {"stage": f"s{i}", "expect_version": V2, "machine": encode_loop_doc(c.counter_v1)}


def test_at_most_max_stages() -> None:
    """MAX_STAGES stages decode; one more is refused at ``$.stages``."""
    doc = _v3_doc()
    doc["stages"] = [_loop_stage(i) for i in range(MAX_STAGES)]
    assert len(decode_change(doc).upgrades) == MAX_STAGES
    doc["stages"].append(_loop_stage(MAX_STAGES))
    err = _decode_error(doc)
    assert err.path == "$.stages"
    assert err.expected == f"an array of 1 to {MAX_STAGES} stage changes"
    assert err.found == f"an array of {MAX_STAGES + 1}"


def test_ill_typed_machine_is_a_check_error_at_the_machine() -> None:
    """A machine document whose body does not have its declared types: CheckError."""
    doc = _v3_doc()
    doc["stages"][0]["machine"]["body"] = {"kind": "id"}
    err = _decode_error(doc)
    assert type(err) is CheckError
    assert err.path == "$.stages[0].machine: body"
    assert "expected output (state, output)" in err.message


def test_machine_declaring_other_types_is_a_check_error() -> None:
    """A machine document declaring an output its body does not produce: CheckError."""
    doc = _v3_doc()
    doc["stages"][0]["machine"]["output"] = {"kind": "int"}
    err = _decode_error(doc)
    assert type(err) is CheckError
    assert err.path.startswith("$.stages[0].machine: ")


def test_ill_typed_migration_is_a_check_error_at_the_migration() -> None:
    """A function document whose program does not have its declared types: CheckError."""
    doc = _v3_doc()
    doc["stages"][0]["migrate"]["body"] = {"kind": "id"}
    err = _decode_error(doc)
    assert type(err) is CheckError
    assert err.path == "$.stages[0].migrate: program"
    assert err.message == "expected output (int, bool), found int"


def test_untyped_parts_are_not_checked_when_decoded() -> None:
    """A loop or arrow whose types are unknown yet decodes; the supervisor checks it later."""
    doc = encode_change(_loop_change())
    doc["stages"][0]["migrate"]["body"] = {"kind": "prim", "name": "not"}
    (u,) = decode_change(doc).upgrades
    assert u.migrate == Prim("not")


def test_limits_apply_to_each_part() -> None:
    """The program limits hold in every machine and function document of a change."""
    err = _decode_error(_v3_doc(), limits=Limits(max_nodes=10))
    assert type(err) is DecodeError
    assert err.path.startswith("$.stages[0].machine.")
    assert "node limit" in err.message


def test_record_types_are_counted_once_each() -> None:
    """The counter v3 change declares six record types: a limit of six passes, five fails."""
    doc = _v3_doc()
    doc["stages"].append({**copy.deepcopy(doc["stages"][0]), "stage": "again"})
    assert len(decode_change(doc, max_record_types=6).upgrades) == 2
    err = _decode_error(doc, max_record_types=5)
    assert type(err) is DecodeError
    assert err.expected == "at most 5 distinct record types in one change"
    assert err.found == "more (6 so far)"
    assert MAX_RECORD_TYPES >= 6
    assert len(decode_change(doc).upgrades) == 2


def test_too_many_record_types_points_into_the_stages() -> None:
    """The record-type limit error points at the record type inside ``$.stages[i]``."""
    err = _decode_error(_v3_doc(), max_record_types=1)
    assert err.path.startswith("$.stages[0].machine.")


@pytest.mark.parametrize(
    ("part", "field", "value", "path"),
    [
        ("machine", "version", 2, "$.stages[0].machine.version"),
        ("machine", "format", "nope", "$.stages[0].machine.format"),
        ("migrate", "version", 0, "$.stages[0].migrate.version"),
        ("machine", "kind", 3, "$.stages[0].machine.kind"),
    ],
)
def test_bad_header_of_a_part_points_at_the_part(
    part: str, field: str, value: Any, path: str
) -> None:
    """A machine or function document of another format or version is refused at that field."""
    doc = _v3_doc()
    doc["stages"][0][part][field] = value
    assert _decode_error(doc).path == path


def test_part_that_is_not_an_object_is_refused_at_the_part() -> None:
    """A machine given as a list is refused at the machine."""
    doc = _v3_doc()
    doc["stages"][0]["machine"] = [1, 2]
    err = _decode_error(doc)
    assert err.path == "$.stages[0].machine"
    assert "found an array" in err.message


def test_path_argument_prefixes_stage_errors() -> None:
    """Inside a request (``path="$.change"``) errors are placed under that path."""
    doc = _v3_doc()
    doc["stages"][0]["expect_version"] = "nope"
    assert _decode_error(doc, path="$.change").path == "$.change.stages[0].expect_version"
    doc = _v3_doc()
    doc["colour"] = 1
    assert _decode_error(doc, path="$.change").path == "$.change.colour"
    doc = _v3_doc()
    doc["stages"][0]["migrate"]["body"] = {"kind": "id"}
    assert _decode_error(doc, path="$.change").path == "$.change.stages[0].migrate: program"


@pytest.mark.parametrize(
    ("field", "value", "path"),
    [
        ("version", 2, "$.change.version"),
        ("format", "x", "$.change.format"),
        ("kind", "loop", "$.change.kind"),
    ],
)
def test_path_argument_prefixes_header_errors_once(field: str, value: Any, path: str) -> None:
    """A change of another version inside a request is refused at ``$.change.version``."""
    doc = _v3_doc()
    doc[field] = value
    assert _decode_error(doc, path="$.change").path == path


@pytest.mark.parametrize("where", ["change", "machine"])
def test_deeply_nested_header_value_is_a_decode_error(where: str) -> None:
    """Parsed data nested deeper than Python's recursion limit is refused, not a crash."""
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    doc = _v3_doc()
    (doc if where == "change" else doc["stages"][0]["machine"])["kind"] = deep
    _decode_error(doc)


# -- fuzzing ------------------------------------------------------------------------------


def _only_allowed(doc: Any) -> str:
    """Decode ``doc``; fail on any exception but the allowed ones (which need a path)."""
    error: LocatedError | None = None
    try:
        decode_change(doc)
    except ALLOWED as exc:
        error = exc
    except Exception as exc:
        pytest.fail(f"decode_change raised {type(exc).__name__}: {exc}\non {doc!r:.600}")
    if error is None:
        return "ok"
    assert str(error)
    assert error.path.startswith("$"), error.path
    return type(error).__name__


def _bases() -> list[dict[str, Any]]:
    adapted = code_change(
        "count",
        V2,
        c.counter_v3,
        v3.migrate,
        input_adapter=c.migrate_v3_v2,
        output_adapter=v3.inverse.function,
        requested_by="fuzz",
    )
    return [_v3_doc(), encode_change(_loop_change()), encode_change(adapted)]


_OTHER_TYPES: tuple[Any, ...] = (None, True, 0, -1, 2.5, "", "x", "0" * 64, [], {}, {"kind": "id"})


@settings(max_examples=examples(250), derandomize=True, deadline=None)
@given(
    st.integers(0, 2),
    st.lists(st.sampled_from(["drop", "retype", "truncate", "json"]), min_size=1, max_size=3),
    st.data(),
)
def test_mutated_change_documents_raise_only_located_errors(
    base: int, ops: list[str], data: st.DataObject
) -> None:
    """Dropped keys, values of another type, truncated lists and random JSON: clean errors."""
    doc: Any = _bases()[base]
    for op in ops:
        slots = _slots(doc)
        if not slots:
            break
        box, key = slots[data.draw(st.integers(0, len(slots) - 1), label="slot")]
        if op == "drop":
            del box[key]
        elif op == "retype":
            old = box[key]
            box[key] = data.draw(
                st.sampled_from([v for v in _OTHER_TYPES if type(v) is not type(old)]),
                label="value",
            )
        elif op == "truncate":
            lists = [v for b, k in slots if isinstance(v := b[k], list) and v]
            if lists:
                target = lists[data.draw(st.integers(0, len(lists) - 1), label="list")]
                del target[data.draw(st.integers(0, len(target) - 1), label="keep") :]
        else:
            box[key] = data.draw(_json, label="json")
    _only_allowed(doc)


def test_thousands_of_mutated_change_documents_fail_cleanly() -> None:
    """Seeded mutations from the decoder fuzzer, through bytes as the server reads them."""
    rng = random.Random(20240607)
    docs = _bases()
    bases = [orjson.dumps(d) for d in docs]
    corpus_types = [t for d in docs for t in _types_in(_objects(d, _slots(d)))]
    outcomes: dict[str, int] = {}
    for _ in range(1_500):
        raw: Any = orjson.loads(rng.choice(bases))
        for _ in range(rng.choice((1, 1, 2))):
            raw = _mutate(rng, raw, corpus_types)
        data = _serialise(raw)
        if data is None:  # deeper than JSON allows, or ints beyond 64 bits
            continue
        try:
            parsed = parse(data)
        except DecodeError:
            continue
        result = _only_allowed(parsed)
        outcomes[result] = outcomes.get(result, 0) + 1
    # The mutations reach every layer: some documents still decode, some fail the checker.
    assert outcomes.get("ok", 0) > 100
    assert outcomes.get("CheckError", 0) > 10
    assert outcomes.get("DecodeError", 0) > 500
