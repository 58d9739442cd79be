"""Two modules may each define a record class with the same name and fields.

tests/samename_a.py and tests/samename_b.py both define Get, Put and Ok.
A record type is its structure, so both classes are one type: the second
is an alias whose instances are values of it (docs/arrows.md, section 1.3).
Machines written with either module's classes have the same types, accept
both modules' instances, and one upgrades to the other in a running
pipeline with no migration.
"""

from __future__ import annotations

import attrs
import pytest

from arrowloop import Machine, from_annotation
from arrowloop.runtime import open_pipeline, stage
from arrowloop.supervisor import code_change, open_supervisor, supervisor
from arrowloop.typesys import RecordT, VariantT, record_class, record_classes, to_json, validate
from tests import samename_a as a
from tests import samename_b as b


def test_both_modules_bind_their_classes_to_one_type() -> None:
    """Get of either module is the one record type Get{key: str}."""
    for x, y in ((a.Get, b.Get), (a.Put, b.Put), (a.Ok, b.Ok)):
        t = from_annotation(x)
        assert isinstance(t, RecordT)
        assert from_annotation(y) is t
        assert record_class(t) is x
        assert record_classes(t) == (x, y)
    assert a.store.machine.input == b.store.machine.input
    assert a.store.machine.output == b.store.machine.output


def test_machines_take_either_modules_values() -> None:
    """Compiled code, the interpreter and validation accept both classes."""
    for m in (a.store.machine, b.store.machine):
        state: dict[str, int] = {}
        for msg in (a.Put("k", 2), b.Put("k", 3), a.Get("k"), b.Get("k")):
            validate(m.input, msg)
            compiled = m.step(msg, state)
            assert attrs.astuple(compiled[1]) == attrs.astuple(m.interpret(msg, state)[1])
            state = compiled[0]
        assert attrs.astuple(m.step(b.Get("k"), state)[1]) == (state["k"],)


def test_values_are_built_with_the_first_class() -> None:
    """Outputs are instances of the class bound first, whichever module's machine built them."""
    _, out = b.store.step(b.Put("k", 1), {})
    assert type(out) is a.Ok
    assert to_json(b.store.machine.output, out) == {"value": 1}


def test_equality_compares_the_fields() -> None:
    """== in a program compares records of the two classes by their fields."""
    m = b.same_as_last.machine
    for msg, expected in ((a.Get("x"), True), (b.Get("x"), True), (a.Get("y"), False)):
        assert m.step(msg, 0)[1] is expected
        assert m.interpret(msg, 0)[1] is expected


def test_wire_round_trip_keeps_the_version() -> None:
    """The wire form names no module: a far end without either module decodes it."""
    for m in (a.store.machine, b.store.machine):
        received = Machine.from_wire(m.to_wire())
        assert received.version == m.version
        assert b"samename" not in m.to_wire()
    assert a.store.machine.version != b.store.machine.version


@pytest.mark.anyio
async def test_pipeline_upgrades_from_one_module_to_the_other() -> None:
    """A stage running module a's store upgrades to module b's in place: same types,
    no migration, the state carried over, both modules' messages served throughout."""
    async with open_pipeline(stage("kv", a.store)) as p:
        assert attrs.astuple(await p.call(a.Put("k", 5))) == (5,)
        assert attrs.astuple(await p.call(b.Put("k", 7))) == (7,)
        version = await p.upgrade("kv", b.store)
        assert version == b.store.version
        assert attrs.astuple(await p.call(a.Put("k", 1))) == (8,)
        assert attrs.astuple(await p.call(b.Get("k"))) == (8,)
        assert p.state("kv") == {"k": 8}


def test_a_union_of_both_classes_is_one_case() -> None:
    """a.Get | b.Get names one type: a variant of one case."""
    t = from_annotation(a.Get | b.Get)
    assert isinstance(t, VariantT)
    assert t.tags == ("Get",)


def test_a_class_pattern_matches_both_classes() -> None:
    """case Get(key=k) written with module b's Get matches module a's instances."""
    assert b.store.step(a.Get("q"), {"q": 4})[1].value == 4


@pytest.mark.anyio
async def test_supervisor_code_change_between_the_modules_and_back() -> None:
    """A supervisor upgrades module a's store to module b's by a code-change message
    (the same types: no migration), serves calls made with either module's
    classes, then rolls back."""
    spec = supervisor("kv", stage("kv", a.store.machine), intensity=5)
    async with open_supervisor(spec) as sup:
        p = sup.pipeline
        await p.call(a.Put("k", 2))
        change = code_change("kv", a.store.version, b.store.machine, requested_by="test")
        assert await sup.code_change(change) == {"kv": b.store.version}
        assert attrs.astuple(await p.call(b.Put("k", 3))) == (5,)
        assert attrs.astuple(await p.call(a.Get("k"))) == (5,)
        assert await sup.rollback("kv", requested_by="test") == {"kv": a.store.version}
        assert attrs.astuple(await p.call(b.Put("k", 1))) == (1,)
