"""Fuzzing the wire decoders: bad input gives one clear error type, never a crash.

The bulk test mutates real machine and function documents (the counter of
arrowloop/examples/counter/__init__.py and a machine that uses every node kind) tens of
thousands of times with a seeded ``random.Random``: dropped and extra keys,
changed kinds, swapped types and subtrees, deep nesting, huge payloads,
wrong versions, and bytes that are not JSON at all. ``wire.parse`` and the
document decoders may raise only :class:`DecodeError`; ``Machine.from_wire``
and ``Function.from_wire`` may also raise :class:`CheckError` for documents
that decode but are ill-typed. The specific tests check that each kind of
problem is reported with what was expected, what was found, and where.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
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
from arrowloop.check import MAX_NESTING
from arrowloop.errors import CheckError, DecodeError
from arrowloop.machine import Function, Machine
from arrowloop.typesys import (
    BOOL,
    INT,
    STR,
    ListT,
    MapT,
    OptionT,
    RecordT,
    Tagged,
    TupleT,
    VariantT,
    bindings_count,
    record_class,
)
from arrowloop.typesys._repr import MAX_BINDINGS
from arrowloop.wire import (
    FORMAT_VERSION,
    Limits,
    decode_function_doc,
    decode_machine_doc,
    encode_type,
    parse,
)
from examples import counter as c
from tests.profiles import examples

# -- a corpus of real documents ------------------------------------------------------

_Stats = RecordT("FzStats", (("total", INT), ("seen", MapT(INT)), ("last", OptionT(STR))))
_Add = RecordT("FzAdd", (("n", INT),))
_Msg = VariantT("", (("FzAdd", _Add), ("names", ListT(STR)), ("tick", TupleT(()))))
_Out = VariantT("FzOut", (("total", INT), ("flags", ListT(BOOL))))


def _kitchen_sink() -> Machine:
    """A machine over records, maps, options and variants using every node kind."""
    fst, snd = Proj(0, 2), Proj(1, 2)
    add = Fanout((snd >> GetField("total"), fst >> GetField("n"))) >> Prim("add")
    on_add = (
        Fanout((snd, add))
        >> SetField("total")
        >> Fanout((Id(), GetField("total") >> Inject("total", _Out)))
    )
    count = Fold(
        Fanout(
            (
                fst,
                snd,
                Fanout((fst, snd))
                >> Prim("map_get")
                >> Fanout((Id(), Const(INT, 0)))
                >> Prim("unwrap_or")
                >> Fanout((Id(), Const(INT, 1)))
                >> Prim("add"),
            )
        )
        >> Prim("map_put")
    )
    on_names = (
        Fanout((snd, Fanout((snd >> GetField("seen"), fst)) >> count))
        >> SetField("seen")
        >> Fanout(
            (
                Id(),
                GetField("seen")
                >> Prim("map_keys")
                >> MapList(Prim("len") >> Fanout((Id(), Const(INT, 3))) >> Prim("lt"))
                >> Inject("flags", _Out),
            )
        )
    )
    on_tick = snd >> Fanout(
        (
            If(
                GetField("last") >> Prim("is_some"),
                While(GetField("last") >> Prim("is_none"), Id()),
                Fanout((GetField("total"), GetField("seen"), Const(OptionT(STR), "tick")))
                >> MakeRecord(_Stats),
            ),
            Const(_Out, Tagged("flags", [True])),
        )
    )
    body = (
        Split((Id(), Id()))
        >> Distribute()
        >> Case((("FzAdd", on_add), ("names", on_names), ("tick", on_tick)))
    )
    init = record_class(_Stats)(0, {}, None)
    return Machine.build(Loop(body, _Stats, init), _Msg, _Out)


def _either_function() -> Function:
    """A function whose Either injection is typed by inference (``inl``, ``|||``)."""
    prog = Inject("left", None) >> Case((("left", Id()), ("right", Const(INT, 0))))
    return Function.build(prog, INT, INT)


def _machines() -> list[Machine]:
    return [
        Machine.build(c.counter_v1, c.InputV1, c.Output),
        Machine.build(c.counter_v2, c.InputV2, c.Output),
        Machine.build(c.counter_v3, c.InputV3, c.Output),
        _kitchen_sink(),
    ]


def _functions() -> list[Function]:
    return [
        Function.build(c.migrate_v2_v3, int, tuple[int, bool]),
        Function.build(c.migrate_v3_v2, tuple[int, bool], int),
        _either_function(),
    ]


# -- random JSON and mutations -------------------------------------------------------

_KINDS = (
    "id",
    "compose",
    "split",
    "fanout",
    "proj",
    "const",
    "inject",
    "case",
    "distribute",
    "if",
    "make",
    "get",
    "set",
    "prim",
    "map",
    "fold",
    "while",
    "loop",
    "unit",
    "bool",
    "int",
    "float",
    "str",
    "tuple",
    "list",
    "option",
    "record",
    "variant",
    "machine",
    "function",
)
_KEYS = (
    "kind",
    "steps",
    "parts",
    "index",
    "arity",
    "type",
    "value",
    "tag",
    "variant",
    "branches",
    "cond",
    "then",
    "else",
    "record",
    "field",
    "name",
    "fn",
    "items",
    "item",
    "fields",
    "cases",
    "body",
    "state",
    "init",
    "input",
    "output",
    "format",
    "version",
)
_STRINGS = (
    *_KINDS,
    *_KEYS,
    "",
    "add",
    "not",
    "no_such_prim",
    "left",
    "right",
    "ReadCount",
    "Count",
    "n",
    "self",
    "_",
    "__init__",
    "class",
    "a b",
    "é",
    "x" * 70,
    "NaN",
    "Infinity",
    "arrowloop",
)
_NUMBERS = (0, 1, 2, -1, 3, 7, 2**31, 2**63 - 1, -(2**63), 0.5, -0.0, 1e300, True, False)


def _random_json(rng: random.Random, depth: int = 3) -> Any:
    r = rng.random()
    if depth <= 0 or r < 0.45:
        return rng.choice((None, rng.choice(_NUMBERS), rng.choice(_STRINGS), rng.choice(_STRINGS)))
    if r < 0.7:
        return [_random_json(rng, depth - 1) for _ in range(rng.randrange(4))]
    obj = {rng.choice(_KEYS): _random_json(rng, depth - 1) for _ in range(rng.randrange(4))}
    if rng.random() < 0.6:
        obj["kind"] = rng.choice(_KINDS)
    return obj


def _slots(doc: Any) -> list[tuple[Any, Any]]:
    """Every (container, key-or-index) position in a JSON document."""
    out: list[tuple[Any, Any]] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                out.append((node, k))
                stack.append(v)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                out.append((node, i))
                stack.append(v)
    return out


def _holds(tree: Any, box: Any) -> bool:
    """Whether the container ``box`` is ``tree`` or inside it (swapping would make a cycle)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if node is box:
            return True
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


def _objects(doc: Any, slots: list[tuple[Any, Any]]) -> list[dict[str, Any]]:
    found = [doc] if isinstance(doc, dict) else []
    found.extend(v for box, k in slots if isinstance(v := box[k], dict))
    return found


_TYPE_KINDS = ("unit", "bool", "int", "float", "str", "tuple", "list", "map", "option", "record")


def _types_in(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o.get("kind") in (*_TYPE_KINDS, "variant")]


def _deep(rng: random.Random, inner: Any) -> Any:
    n = rng.choice((50, 120, 255, 300, 1000))
    how = rng.randrange(4)
    for _ in range(n):
        if how == 0:
            inner = [inner]
        elif how == 1:
            inner = {"kind": "list", "item": inner}
        elif how == 2:
            inner = {"kind": "if", "cond": {"kind": "id"}, "then": inner, "else": {"kind": "id"}}
        else:
            inner = {"kind": "map", "fn": inner}
    return inner


def _descend(rng: random.Random, doc: Any) -> list[tuple[Any, Any]]:
    """A random walk from the root: the (container, key) positions passed through."""
    path: list[tuple[Any, Any]] = []
    node = doc
    while isinstance(node, dict | list) and node and (not path or rng.random() > 0.1):
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        path.append((node, key))
        node = node[key]
    return path


def _mutate(rng: random.Random, doc: Any, corpus_types: list[Any]) -> Any:
    """Apply one random mutation in place (returns the document, maybe replaced)."""
    path = _descend(rng, doc)
    if not path:
        return _random_json(rng)
    box, k = path[-1]
    objects = [b for b, _ in path if isinstance(b, dict)]
    obj = rng.choice(objects) if objects else None
    op = rng.randrange(14)
    if op == 0 and obj:  # drop a key
        del obj[rng.choice(list(obj))]
    elif op == 1 and obj is not None:  # add a key
        obj[rng.choice((*_KEYS, "extra"))] = _random_json(rng, 2)
    elif op == 2 and obj is not None:  # change a kind
        obj["kind"] = rng.choice((*_KINDS, "loop2", "", 3))
    elif op == 3:  # replace a subtree with random JSON
        box[k] = _random_json(rng)
    elif op == 4:  # swap two subtrees, neither inside the other
        b2, k2 = rng.choice(_descend(rng, doc))
        if not _holds(box[k], b2) and not _holds(b2[k2], box):
            box[k], b2[k2] = b2[k2], box[k]
    elif op == 5:  # swap a type for another type
        targets = _types_in(_objects(doc, _slots(doc)))
        if targets:
            t = rng.choice(targets)
            new = orjson.loads(orjson.dumps(rng.choice(corpus_types)))
            t.clear()
            t.update(new)
    elif op == 6:  # nest deeply
        box[k] = _deep(rng, box[k])
    elif op == 7:  # a huge string, array or program
        box[k] = rng.choice(
            (
                "x" * 100_000,
                [0] * 3_000,
                {"kind": "compose", "steps": [{"kind": "id"} for _ in range(2_500)]},
            )
        )
    elif op == 8 and isinstance(doc, dict):  # wrong versions and formats
        key = rng.choice(("version", "version", "format", "kind"))
        doc[key] = rng.choice((2, 0, -1, "1", 1.0, True, None, 2**63 - 1, "machine", []))
    elif op == 9:  # change a scalar
        box[k] = rng.choice((*_NUMBERS, *_STRINGS, None))
    elif op == 10:  # resize an array
        arrays = [b for b, _ in path if isinstance(b, list)]
        if arrays:
            arr = rng.choice(arrays)
            if rng.random() < 0.5:
                arr.pop(rng.randrange(len(arr)))
            else:
                arr.append(rng.choice(arr))
    elif op == 11 and obj:  # rename a key
        obj[rng.choice(_STRINGS)] = obj.pop(rng.choice(list(obj)))
    elif op == 12:  # rename a record field, record or tag
        named = [
            o
            for o in _types_in(_objects(doc, _slots(doc)))
            if o.get("kind") in ("record", "variant")
        ]
        if named:
            t = rng.choice(named)
            pairs = t.get("fields", t.get("cases"))
            if isinstance(pairs, list) and pairs and rng.random() < 0.8:
                pair = rng.choice(pairs)
                if isinstance(pair, list) and pair:
                    pair[0] = rng.choice(_ODD_NAMES)
            else:
                t["name"] = rng.choice(_ODD_NAMES)
    elif op == 13:  # put a deep chain of ifs in front of a program node
        arrows = [b for b, _ in path if isinstance(b, dict) and b.get("kind") in _ARROW_KINDS]
        if arrows:
            node = rng.choice(arrows)
            inner = dict(node)
            node.clear()
            node.update({"kind": "compose", "steps": [_if_chain(rng), inner]})
    return doc


_ARROW_KINDS = (
    "id",
    "compose",
    "split",
    "fanout",
    "proj",
    "const",
    "inject",
    "case",
    "distribute",
    "if",
    "make",
    "get",
    "set",
    "prim",
    "map",
    "fold",
    "while",
)
_ODD_NAMES = ("self", "_", "_a", "a", "cls", "other", "f0", "kind", "__x", "class", "a b", "")


def _if_chain(rng: random.Random) -> Any:
    """``if true then (if true then ... id) else id``: an identity nested n levels deep."""
    node: Any = {"kind": "id"}
    true = {"kind": "const", "type": {"kind": "bool"}, "value": True}
    for _ in range(rng.choice((20, 63, 64, 120, 200, 235))):
        node = {"kind": "if", "cond": true, "then": node, "else": {"kind": "id"}}
    return node


def _mangle_bytes(rng: random.Random, raw: bytes) -> bytes:
    """Byte-level damage: truncation, flipped bytes, garbage, invalid UTF-8, non-JSON tokens."""
    op = rng.randrange(6)
    if op == 0:
        return raw[: rng.randrange(len(raw) + 1)]
    if op == 1:
        b = bytearray(raw)
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if op == 2:
        return rng.randbytes(rng.randrange(64))
    if op == 3:
        return raw.replace(b'"', b"\xff\xfe", 1)
    if op == 4:
        return raw.replace(b"0", rng.choice((b"NaN", b"Infinity", b"1e999", b"0,", b"-")), 1)
    return b"\xef\xbb\xbf" + raw + rng.choice((b"", b"\x00", b" {}", b","))


# -- running the decoders ----------------------------------------------------------------

Decoder = Callable[[Any], object]
_SMALL = Limits(max_bytes=64 * 1024, max_depth=64, max_nodes=2_000)


def _machine_from_wire(raw: Any) -> object:
    return Machine.from_wire(raw)


def _function_from_wire(raw: Any) -> object:
    return Function.from_wire(raw)


def _decode_small(raw: Any) -> object:
    return decode_machine_doc(raw, _SMALL)


DECODERS: tuple[Decoder, ...] = (decode_machine_doc, decode_function_doc, _decode_small)
CHECKED: tuple[Decoder, ...] = (_machine_from_wire, _function_from_wire)


def _only(decoder: Decoder, raw: Any, allowed: tuple[type[Exception], ...]) -> str:
    """Run ``decoder``; fail the test on any exception outside ``allowed``."""
    try:
        decoder(raw)
    except allowed as exc:
        if not str(exc):
            pytest.fail(f"{type(exc).__name__} without a message")
        return type(exc).__name__
    except Exception as exc:
        shown = raw if isinstance(raw, bytes) else orjson.dumps(raw, default=repr)
        pytest.fail(
            f"{getattr(decoder, '__name__', decoder)} raised {type(exc).__name__}: {exc}\n"
            f"on {shown[:600]!r}"
        )
    return "ok"


def _serialise(doc: Any) -> bytes | None:
    try:
        return orjson.dumps(doc)
    except orjson.JSONEncodeError:  # e.g. ints beyond 64 bits: pass the data itself
        return None


@pytest.mark.slow
def test_tens_of_thousands_of_mutated_documents_raise_only_decode_errors() -> None:
    """20,000 mutated documents: the decoders raise DecodeError or succeed, nothing else."""
    rng = random.Random(20240601)
    docs = [m.to_wire_data() for m in _machines()] + [f.to_wire_data() for f in _functions()]
    bases = [orjson.dumps(d) for d in docs]
    corpus_types = [t for d in docs for t in _types_in(_objects(d, _slots(d)))]
    outcomes: dict[str, int] = {}
    for i in range(20_000):
        base = rng.choice(bases)
        if i % 6 == 5:
            raw: Any = _mangle_bytes(rng, base)
        else:
            raw = orjson.loads(base)
            for _ in range(rng.choice((1, 1, 2, 3))):
                raw = _mutate(rng, raw, corpus_types)
            if i % 2 == 0:
                raw = _serialise(raw) or raw
        decoder = DECODERS[i % len(DECODERS)]
        result = _only(decoder, raw, (DecodeError,))
        outcomes[result] = outcomes.get(result, 0) + 1
        if isinstance(raw, bytes) and i % 3 == 0:
            _only(parse, raw, (DecodeError,))
    # The mutations must reach past the header: some documents still decode.
    assert outcomes.get("ok", 0) > 500
    assert outcomes.get("DecodeError", 0) > 10_000


def test_mutated_documents_raise_only_decode_or_check_errors_when_built() -> None:
    """Decoded, checked and compiled: only DecodeError or CheckError, never a crash."""
    rng = random.Random(7)
    docs = [m.to_wire_data() for m in _machines()] + [f.to_wire_data() for f in _functions()]
    bases = [orjson.dumps(d) for d in docs]
    corpus_types = [t for d in docs for t in _types_in(_objects(d, _slots(d)))]
    outcomes: dict[str, int] = {}
    for i in range(4_000):
        raw: Any = orjson.loads(rng.choice(bases))
        raw = _mutate(rng, raw, corpus_types)
        result = _only(CHECKED[i % 2], raw, (DecodeError, CheckError))
        outcomes[result] = outcomes.get(result, 0) + 1
    assert outcomes.get("ok", 0) > 50
    assert outcomes.get("CheckError", 0) > 100


def test_fuzzing_leaves_room_in_the_class_table() -> None:
    """Records received over the wire get classes from a bounded table; fuzzing uses little."""
    assert bindings_count() < MAX_BINDINGS // 2


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.sampled_from(_STRINGS),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4)
        | st.fixed_dictionaries(
            {"kind": st.sampled_from(_KINDS)}, optional={k: inner for k in _KEYS if k != "kind"}
        )
    ),
    max_leaves=30,
)


@pytest.mark.slow
@settings(max_examples=examples(300), deadline=None, derandomize=True)
@given(st.sampled_from(("machine", "function")), st.data())
def test_random_json_in_any_field_raises_only_decode_or_check_errors(
    kind: str, data: st.DataObject
) -> None:
    """A real document with one field (or all) replaced by random JSON fails cleanly."""
    if kind == "machine":
        doc = Machine.build(c.counter_v2, c.InputV2, c.Output).to_wire_data()
        decode: Decoder = decode_machine_doc
        build: Decoder = _machine_from_wire
    else:
        doc = Function.build(c.migrate_v2_v3, int, tuple[int, bool]).to_wire_data()
        decode, build = decode_function_doc, _function_from_wire
    fields = [k for k in doc if k not in ("format", "version", "kind")]
    for field in data.draw(st.lists(st.sampled_from(fields), min_size=1, unique=True)):
        doc[field] = data.draw(_json)
    _only(decode, doc, (DecodeError,))
    _only(build, doc, (DecodeError, CheckError))
    _only(parse, orjson.dumps(doc), (DecodeError,))


# -- specific problems, specific messages ------------------------------------------------


def _counter_doc() -> dict[str, Any]:
    return Machine.build(c.counter_v1, c.InputV1, c.Output).to_wire_data()


def _decode_error(doc: Any, limits: Limits | None = None) -> DecodeError:
    with pytest.raises(DecodeError) as info:
        decode_machine_doc(doc, limits or Limits())
    return info.value


def _with_body(body: Any) -> dict[str, Any]:
    doc = _counter_doc()
    doc["body"] = body
    return doc


def test_unknown_node_kind_is_named_with_its_path() -> None:
    """An unknown program node kind names the kinds it could have been."""
    err = _decode_error(_with_body({"kind": "teleport"}))
    assert err.path == "$.body.kind"
    assert err.found == "'teleport'"
    assert "expected a program node kind" in err.message
    assert "compose" in (err.expected or "")


def test_projection_out_of_range_is_refused() -> None:
    """A projection index outside its arity is refused where it stands."""
    body = {"kind": "compose", "steps": [{"kind": "proj", "index": 2, "arity": 2}]}
    err = _decode_error(_with_body(body))
    assert err.path == "$.body.steps[0]"
    assert "projection index 2 out of range for arity 2" in err.message


def test_compose_without_steps_is_refused() -> None:
    """A composition of no steps is refused: at least one step is expected."""
    err = _decode_error(_with_body({"kind": "compose", "steps": []}))
    assert err.path == "$.body.steps"
    assert err.expected == "an array of at least 1"
    assert err.found == "an array of 0"


def test_missing_field_is_named() -> None:
    """A document without its initial state names the missing field."""
    doc = _counter_doc()
    del doc["init"]
    err = _decode_error(doc)
    assert err.path == "$"
    assert err.expected == 'a field "init"'
    assert "found it missing" in err.message


def test_extra_field_is_named() -> None:
    """A field a node does not have is refused at that field."""
    doc = _with_body({"kind": "id", "colour": "red"})
    err = _decode_error(doc)
    assert err.path == "$.body.colour"
    assert "expected only the fields ['kind']" in err.message
    assert err.found == "the field 'colour'"


def test_const_value_must_match_its_type() -> None:
    """A constant whose value is not of its declared type is refused at the value."""
    body = {"kind": "const", "type": {"kind": "int"}, "value": "seven"}
    err = _decode_error(_with_body(body))
    assert err.path == "$.body.value"
    assert err.expected == "an integer"
    assert err.found == "the string 'seven'"


def test_record_constant_with_unknown_field_is_refused() -> None:
    """A record value with a field its type does not have is refused at the value."""
    rt = encode_type(RecordT("FzPoint", (("x", INT),)))
    body = {"kind": "const", "type": rt, "value": {"x": 1, "y": 2}}
    err = _decode_error(_with_body(body))
    assert err.path == "$.body.value"
    assert "found the field 'y'" in err.message


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    """A document nested deeper than the limit is refused before it is decoded."""
    deep: Any = {"kind": "id"}
    for _ in range(300):
        deep = {"kind": "map", "fn": deep}
    # orjson will not write 300 levels: splice them into the bytes by hand.
    raw = orjson.dumps(_with_body({"kind": "id"})).replace(
        b'{"kind":"id"}', b'{"kind":"map","fn":' * 300 + b'{"kind":"id"}' + b"}" * 300
    )
    err = _decode_error(raw)
    assert err.path == "$"
    assert err.expected == "<= 256 levels"
    assert "expected nesting of at most 256 levels" in err.message
    # The same limit holds for data that is already parsed.
    assert _decode_error(_with_body(deep)).expected == "<= 256 levels"


def test_payload_over_the_size_limit_is_refused_unread() -> None:
    """A payload over the byte limit is refused with its size."""
    raw = orjson.dumps(_counter_doc())
    err = _decode_error(raw, Limits(max_bytes=100))
    assert err.path == "$"
    assert err.expected == "<= 100 bytes"
    assert err.found == f"{len(raw)} bytes"


def test_node_limit_is_enforced() -> None:
    """A program of more nodes than the limit is refused at the node that crosses it."""
    err = _decode_error(_counter_doc(), Limits(max_nodes=10))
    assert "node limit" in err.message
    assert err.path.startswith("$.")


def test_projection_arity_counts_against_the_node_limit() -> None:
    """A projection of a huge arity is refused (the checker would build that many types)."""
    body = {"kind": "proj", "index": 0, "arity": 10**12}
    err = _decode_error(_with_body(body))
    assert err.path == "$.body.arity"
    assert "node limit" in err.message


@pytest.mark.parametrize(
    ("version", "detail"),
    [(2, "found 2 (written by a newer arrowloop)"), (0, "found 0"), ("1", "found '1'")],
)
def test_wrong_format_version_is_refused(version: object, detail: str) -> None:
    """A document of another format version is refused, saying which version was found."""
    doc = _counter_doc()
    doc["version"] = version
    err = _decode_error(doc)
    assert err.path == "$.version"
    assert err.message == f"expected format version {FORMAT_VERSION}, {detail}"


def test_wrong_document_kind_is_refused() -> None:
    """A function document is not a machine document."""
    doc = Function.build(c.migrate_v3_v2, tuple[int, bool], int).to_wire_data()
    err = _decode_error(doc)
    assert err.path == "$.kind"
    assert err.message == "expected a \"machine\" document, found kind 'function'"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"\xff\xfe",
        b"NaN",
        b"[1,]",
        b'{"a": 1e999}',
        "caf\udce9".encode("utf-8", "surrogatepass"),
    ],
)
def test_bytes_that_are_not_json_are_refused(raw: bytes) -> None:
    """Bytes that are not one JSON document give a DecodeError at ``$``."""
    with pytest.raises(DecodeError) as info:
        parse(raw)
    assert info.value.path == "$"
    assert info.value.expected == "JSON"


def test_record_fields_named_like_python_internals_decode() -> None:
    """Records with fields such as ``self``, ``_`` or both ``_a`` and ``a`` decode and run."""
    rt = RecordT("FzOdd", (("self", INT), ("_", INT), ("_a", INT), ("a", INT)))
    body = Fanout((Proj(1, 2), Proj(1, 2) >> GetField("self")))
    m = Machine.build(Loop(body, rt, record_class(rt)(1, 2, 3, 4)), INT, INT)
    back = Machine.from_wire(m.to_wire())
    state, out = back.step(0, back.init)
    assert out == 1
    assert (state._, state._a, state.a) == (2, 3, 4)


def test_program_nested_past_the_checker_limit_is_a_check_error() -> None:
    """Ifs nested within the JSON depth limit but past the program limit: a CheckError."""
    deep: Any = {"kind": "id"}
    for _ in range(200):
        deep = {"kind": "if", "cond": {"kind": "const", "type": {"kind": "bool"}, "value": True},
                "then": deep, "else": {"kind": "id"}}  # fmt: skip
    doc = Function.build(Id(), int, int).to_wire_data()
    doc["body"] = deep
    with pytest.raises(CheckError) as info:
        Function.from_wire(orjson.dumps(doc))
    # The cond of the if at level MAX_NESTING - 1 is the first node past the limit.
    assert info.value.path == "program" + ".if.then" * (MAX_NESTING - 1) + ".if.cond"
    assert info.value.expected == f"<= {MAX_NESTING} levels"


def _every_kind(a: Arrow) -> set[str]:
    kinds = {a.kind}
    for _, child in a.children():
        kinds |= _every_kind(child)
    return kinds


def test_corpus_uses_every_node_kind() -> None:
    """The fuzzed documents start from programs that use every node kind."""
    kinds = set().union(*(_every_kind(m.loop.body) for m in _machines()))
    kinds |= set().union(*(_every_kind(f.arrow) for f in _functions()))
    expected = {
        cls.kind
        for cls in (
            *(Id, Compose, Fanout, Split, Proj, Const, Inject, Case, Distribute, If),
            *(MakeRecord, GetField, SetField, Prim, MapList, Fold, While),
        )
    }
    assert expected <= kinds
