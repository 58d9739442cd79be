"""Hostile change documents: tiny documents that stand for exponential work,
changes over their budget, stale changes, and many refused changes with
fresh record types.

The hostile programs double a tuple n times (``fanout(id, id)`` composed n
times), so their types have 2^n nodes as trees while the document grows
by a few bytes per step. The tests measure growth (source length, message
length, table size), never time: a quadratic or exponential implementation
would not finish the larger cases at all.
"""

from __future__ import annotations

import gc
import importlib
import threading
from collections.abc import Callable
from typing import Any

import anyio
import orjson
import pytest

import arrowloop.typesys._repr as bindings
from arrowloop import Machine
from arrowloop.arrows import (
    Arrow,
    ChangeBudget,
    Compose,
    Const,
    Fanout,
    Id,
    If,
    Loop,
    MakeRecord,
    MapList,
    Prim,
    Proj,
    metered,
)
from arrowloop.check import check_arrow, is_subtype
from arrowloop.compiler import generated_source
from arrowloop.errors import (
    BudgetError,
    CheckError,
    DecodeError,
    SupervisorError,
    UpgradeError,
    error_data,
)
from arrowloop.runtime import check_change, stage
from arrowloop.supervisor import CodeChange, StageUpgrade, code_change, open_supervisor, supervisor
from arrowloop.typesys import (
    BOOL,
    INT,
    REPR_LIMIT,
    ListT,
    MapT,
    OptionT,
    RecordT,
    TupleT,
    Type,
    VariantT,
    bindings_count,
    reclaim_bindings,
    render_type,
    type_size,
)
from arrowloop.upgrade import decode_change, encode_change
from arrowloop.wire import encode_machine_doc
from examples import counter as c

LIST = ListT(INT)


def doubling(n: int) -> Arrow:
    """``x -> (x, x)``, n times: an output type of 2^(n+1) - 1 nodes."""
    return Compose(tuple(Fanout((Id(), Id())) for _ in range(n)))


def summing(inner: Arrow | None = None, *, last: str = "len") -> Loop:
    """A machine body ``list[int] -> int`` that maps ``inner`` over its input
    (so the code for it is generated) and answers with ``last`` of the result."""
    mapped = () if inner is None else (MapList(inner),)
    body = Fanout((Proj(1, 2), Compose((Proj(0, 2), *mapped, Prim(last)))))
    return Loop(body, INT, 0)


SUM = Machine.build(summing(last="sum"), LIST, INT)


def change_doc(machine: Any, *, expect: str = SUM.version, **parts: Any) -> dict[str, Any]:
    """The wire document of a change of the stage ``sum``."""
    return encode_change(CodeChange((StageUpgrade("sum", expect, machine, **parts),)))


# -- linear in the document ---------------------------------------------------------------


def test_generated_source_grows_linearly_with_a_doubling_program() -> None:
    """Each doubling adds one line of generated code, not twice the code."""
    sizes = {}
    for n in (8, 16, 32, 64):
        m = Machine.build(summing(doubling(n)), LIST, INT)
        sizes[n] = len(generated_source(m.typed))
        assert m.step([1, 2, 3], 7) == (7, 3)
    steps = [sizes[16] - sizes[8], sizes[32] - sizes[16], sizes[64] - sizes[32]]
    assert steps[1] <= 2 * steps[0] + 64
    assert steps[2] <= 2 * steps[1] + 64
    assert sizes[64] < 4_000


def test_a_long_program_is_compiled_as_many_short_functions() -> None:
    """No generated function is long (compile holds the interpreter while it runs), and
    the split code computes what the one long function would."""
    step = Compose((Fanout((Id(), Id())), Prim("add")))
    m = Machine.build(summing(Compose((step,) * 3000), last="sum"), LIST, INT)
    functions = generated_source(m.typed).split("\ndef ")
    assert len(functions) > 10
    assert max(f.count("\n") for f in functions) < 2 * 1024
    assert m.step([1, 0, 2], 5) == (5, 3 * 2**3000)


def test_equal_types_built_apart_compare_hash_and_subtype_in_linear_work() -> None:
    """Two branches doubling 200 times: equal types of 2^201 nodes, compared by shared nodes."""
    typed = check_arrow(If(Const(BOOL, True), doubling(200), doubling(200)), INT)
    a, b = typed.children[1].output, typed.children[2].output
    assert a is not b
    assert a == b
    assert hash(a) == hash(b)
    assert (a != b) is False
    assert is_subtype(a, b)
    assert type_size(a) == 2**201 - 1
    other = check_arrow(Compose((doubling(199), Fanout((Id(), Const(INT, 0))))), INT).output
    assert a != other
    assert not is_subtype(a, other)


def test_error_messages_about_huge_types_are_bounded() -> None:
    """An ill-typed program over a 2^65-node type gets a message of about a kilobyte."""
    with pytest.raises(CheckError) as info:
        Machine.build(summing(doubling(64), last="sum"), LIST, INT)
    message = str(info.value)
    assert "expected input of sum" in message
    assert "..." in message
    assert len(message) < 4096
    assert len(orjson.dumps(error_data(info.value))) < 8192


def test_types_render_within_a_kilobyte_however_big() -> None:
    """repr elides with ... past REPR_LIMIT characters or a depth; render_type(t, None) is all."""
    t: Type = INT
    for _ in range(100):
        t = TupleT((t, t))
    wide = RecordT("Wide", tuple((f"f{i}", t) for i in range(50)))
    v = VariantT("", (("Wide", wide), ("other", ListT(t))))
    for big in (t, wide, v, MapT(v), OptionT(wide)):
        text = repr(big)
        assert "..." in text
        assert len(text) <= REPR_LIMIT + 200
    count, ack = RecordT("Count", (("n", INT),)), RecordT("Ack", ())
    small = VariantT("", (("Count", count), ("Ack", ack)))
    assert repr(small) == render_type(small, None) == "<Ack{} | Count{n: int}>"


# -- the budget ---------------------------------------------------------------------------


def test_a_doubling_change_is_refused_by_its_budget_at_its_path() -> None:
    """A 1.6 KB change doubling 30 times is refused: its types pass max_type_size."""
    doc = change_doc(Machine.build(summing(doubling(30)), LIST, INT))
    assert len(orjson.dumps(doc)) < 4096
    with pytest.raises(BudgetError) as info:
        decode_change(doc)
    err = info.value
    assert err.limit == "max_type_size"
    assert err.value == 1_000_000
    assert err.path.startswith("$.stages[0].machine: body.")
    assert "max_type_size" in str(err)
    assert len(str(err)) < 1024
    assert error_data(err)["limit"] == "max_type_size"
    # Without a budget it is checked and compiled, linearly.
    change = decode_change(doc, budget=None)
    assert change.upgrades[0].machine.step([1], 0) == (0, 1)  # type: ignore[union-attr]


def test_each_limit_of_the_budget_refuses_with_its_name() -> None:
    """max_nodes (a shared sub-program counted per use), max_source_bytes and max_seconds."""
    shared: Arrow = Id()
    for _ in range(30):  # a DAG of 90 nodes standing for a tree of 2^31
        shared = Compose((Fanout((shared, shared)), Proj(0, 2)))
    with metered(ChangeBudget(max_nodes=5_000)), pytest.raises(BudgetError) as info:
        check_arrow(shared, INT)
    assert info.value.limit == "max_nodes"
    doc = orjson.dumps(encode_machine_doc(LIST, INT, summing(doubling(2))))  # not compiled yet
    with pytest.raises(BudgetError) as info:
        Machine.from_wire(doc, budget=ChangeBudget(max_source_bytes=50))
    assert info.value.limit == "max_source_bytes"
    with pytest.raises(BudgetError) as info:
        Machine.from_wire(
            Machine.build(summing(doubling(600)), LIST, INT).to_wire(),
            budget=ChangeBudget(max_seconds=1e-9),
        )
    assert info.value.limit == "max_seconds"


def test_full_collections_wait_while_changes_are_built() -> None:
    """Building a change defers full collections (they stop every thread), then restores them."""
    before = gc.get_threshold()
    with metered(ChangeBudget()):
        assert gc.get_threshold()[2] > 1_000_000
        with metered(ChangeBudget()):  # nested: one budget, one deferral
            pass
        assert gc.get_threshold()[2] > 1_000_000
    assert gc.get_threshold() == before


def test_an_in_process_change_over_budget_is_refused_as_an_upgrade_error() -> None:
    """check_change refuses with reason "budget", the BudgetError as its cause."""
    with pytest.raises(UpgradeError) as info:
        check_change([("sum", SUM)], [StageUpgrade("sum", None, summing(doubling(40)))])
    assert info.value.reason == "budget"
    assert isinstance(info.value.__cause__, BudgetError)
    assert error_data(info.value)["cause"]["limit"] == "max_type_size"


# -- stale changes ------------------------------------------------------------------------


def test_a_stale_change_is_refused_before_its_programs_are_decoded() -> None:
    """With the running versions, a wrong stage or version is refused before the machine is read."""
    doc = change_doc(SUM)
    doc["stages"][0]["machine"] = {"kind": "not even a document"}
    with pytest.raises(UpgradeError) as info:
        decode_change(doc, running={"sum": "f" * 64})
    assert info.value.reason == "version mismatch"
    with pytest.raises(UpgradeError) as info:
        decode_change(doc, running={"other": SUM.version})
    assert info.value.reason == "unknown stage"
    with pytest.raises(DecodeError):  # the right version: now the machine is read
        decode_change(doc, running={"sum": SUM.version})


# -- record-type bindings ------------------------------------------------------------------


def record_doc(i: int, *, ill_typed: bool) -> dict[str, Any]:
    """A change whose state is a fresh record type ``R<i>`` (a class is
    synthesised for it while decoding); ``ill_typed`` makes the body fail."""
    rt = RecordT(f"R{i}", (("n", INT),))
    new_state = (
        Compose((Proj(1, 2), Prim("neg")))  # neg of a record: refused by the checker
        if ill_typed
        else Compose((Proj(0, 2), Prim("len"), MakeRecord(rt)))
    )
    body = Fanout((new_state, Compose((Proj(0, 2), Prim("sum")))))
    doc = change_doc(SUM)
    init = bindings.record_class(rt)(0)
    doc["stages"][0]["machine"] = encode_machine_doc(LIST, INT, Loop(body, rt, init))
    del init
    result: dict[str, Any] = orjson.loads(orjson.dumps(doc))
    return result


def _refuse(doc: dict[str, Any], expected: type[Exception]) -> None:
    # No pytest.raises: its traceback would keep the change's objects alive.
    try:
        decode_change(doc)
    except expected:
        return
    raise AssertionError("the change was not refused")


def _refuse_running(doc: dict[str, Any]) -> None:
    # Decoded and compiled, then refused: the state type changes, no migration.
    upgrades = decode_change(doc).upgrades
    try:
        check_change([("sum", SUM)], upgrades)
    except UpgradeError as exc:
        reason = exc.reason
    else:
        raise AssertionError("the change was not refused")
    assert reason == "migration types"


def test_refused_changes_leave_no_bindings_behind() -> None:
    """Classes synthesised for refused changes go with them: the table is back where it was."""
    baseline = reclaim_bindings()
    gc.disable()  # the bindings are there until collected: see them first
    try:
        for i in range(50):
            _refuse(record_doc(1000 + i, ill_typed=True), CheckError)
        assert bindings_count() >= baseline + 50
    finally:
        gc.enable()
    gc.collect()
    assert bindings_count() <= baseline


def test_a_full_table_is_reclaimed_before_a_legit_change_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1,000 refused changes with fresh record types (half refused by the checker while
    decoded, half decoded and compiled, then refused against the running stage), then
    a legit one with a new type succeeds."""
    monkeypatch.setattr(bindings, "MAX_BINDINGS", reclaim_bindings() + 100)
    reclaims = []

    def counted() -> int:
        reclaims.append(1)
        return reclaim_bindings()

    monkeypatch.setattr(bindings, "reclaim_bindings", counted)
    gc.disable()  # only the table's own reclaiming may collect
    try:
        for i in range(1000):
            if i % 2:
                _refuse(record_doc(2000 + i, ill_typed=True), CheckError)
            else:
                _refuse_running(record_doc(2000 + i, ill_typed=False))
        legit = decode_change(record_doc(5000, ill_typed=False))
    finally:
        gc.enable()
    m = legit.upgrades[0].machine
    assert isinstance(m, Machine)
    assert m.step([1, 2], m.init)[0] == m.init.__class__(2)
    assert bindings_count() <= bindings.MAX_BINDINGS
    assert len(reclaims) >= 9  # the table filled up every hundred or so refused changes


def test_bindings_in_use_survive_a_reclaim() -> None:
    """A running machine's record classes stay bound through reclaiming."""
    doc = record_doc(6000, ill_typed=False)
    built = decode_change(doc).upgrades[0].machine
    assert isinstance(built, Machine)
    cls = type(built.init)
    reclaim_bindings()
    rt = built.state
    assert isinstance(rt, RecordT)
    assert bindings.record_class(rt) is cls
    assert built.step([1, 2, 3], built.init)[0] == cls(3)


# -- off the event loop ------------------------------------------------------------------


class Gate:
    """Holds a check in its worker thread until released (threading events:
    the check runs outside the event loop)."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0

    def wrap(self, check: Callable[..., Any]) -> Callable[..., Any]:
        def held(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self.entered.set()
            assert self.release.wait(60), "the test never released the check"
            return check(*args, **kwargs)

        return held


@pytest.mark.anyio
async def test_items_are_answered_while_a_change_is_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A change held in its check: items and status go on; a second change waits its turn."""
    # By module name: the package ``arrowloop`` has a function ``supervisor``.
    changes = importlib.import_module("arrowloop.supervisor._changes")
    gate = Gate()
    monkeypatch.setattr(changes, "check_change", gate.wrap(changes.check_change))
    monkeypatch.setattr(changes, "SMALL_PROGRAM", 0)  # small ones are checked on the loop
    v1 = Machine.build(c.counter_v1, c.InputV1, c.Output)
    v2 = Machine.build(c.counter_v2, c.InputV2, c.Output)
    v3 = Machine.build(c.counter_v3, c.InputV3, c.Output)
    results: list[Any] = []
    with anyio.fail_after(60):  # a bound against hangs, not a timing check
        async with open_supervisor(supervisor("counter", stage("count", v1))) as sup:
            p = sup.pipeline

            async def upgrade(change: Any) -> None:
                results.append(await sup.code_change(change))

            async with anyio.create_task_group() as tg:
                tg.start_soon(upgrade, code_change("count", v1.version, v2, c.migrate_v1_v2))
                await anyio.to_thread.run_sync(gate.entered.wait)
                for _ in range(5):
                    assert await p.call(c.IncrCount()) == c.Ack()
                assert await p.call(c.ReadCount()) == c.Count(5)
                assert (await sup.status()).children[0].version == v1.version
                tg.start_soon(upgrade, code_change("count", v2.version, v3, c.migrate_v2_v3))
                await anyio.wait_all_tasks_blocked()
                assert results == []
                assert gate.calls == 1
                gate.release.set()
            assert results == [{"count": v2.version}, {"count": v3.version}]
            assert await sup.get_state("count") == (5, False)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("slow_step", "threshold"),
    [
        # The change document is decoded in a worker thread (small ones on the loop).
        ("decode_change", "SMALL_CHANGE"),
        # A big control line is parsed in a worker thread (the counter's line is small).
        ("_parse_big", "BIG_LINE"),
    ],
    ids=["decoding a change", "parsing a big line"],
)
async def test_the_data_port_answers_while_the_control_port_works_in_a_thread(
    monkeypatch: pytest.MonkeyPatch, slow_step: str, threshold: str
) -> None:
    """While the control port's work is held in its worker thread, data
    requests are answered; the change completes once it is let go."""
    from arrowloop.cli import DataClient
    from examples.counter import v1, v2
    from tests.test_server_protocol import ACK, INCR, control, count, serving

    control_module = importlib.import_module("arrowloop.server._control")
    gate = Gate()
    monkeypatch.setattr(control_module, slow_step, gate.wrap(getattr(control_module, slow_step)))
    monkeypatch.setattr(control_module, threshold, 0)
    change = encode_change(
        code_change("counter", v1.machine.version, v2.machine.machine, v2.migrate)
    )
    async with serving() as server, control(server) as ctl:
        async with anyio.create_task_group() as tg:
            results = []

            async def upgrade() -> None:
                results.append(await ctl.request("upgrade", change=change))

            tg.start_soon(upgrade)
            await anyio.to_thread.run_sync(gate.entered.wait)
            async with DataClient(*server.data_address) as client:
                await client.send([INCR] * 3 + [{"tag": "ReadCount"}])
                replies = [await client.reply() for _ in range(4)]
            assert replies == [{"output": ACK}] * 3 + [{"output": count(3)}]
            assert results == []
            gate.release.set()
        assert results == [{"versions": {"counter": v2.machine.version}}]


@pytest.mark.anyio
async def test_a_stale_change_over_the_control_port_is_refused_and_recorded() -> None:
    """Refused before its machine is decoded, and in the history like any refused change."""
    from arrowloop.cli import RemoteError
    from examples.counter import v1, v2
    from tests.test_server_protocol import control, serving

    change = encode_change(code_change("counter", "0" * 64, v2.machine.machine, v2.migrate))
    change["stages"][0]["machine"] = {"kind": "never decoded"}
    async with serving() as server, control(server) as ctl:
        with pytest.raises(RemoteError) as info:
            await ctl.request("upgrade", change=change, requested_by="alice")
        assert info.value.type == "UpgradeError"
        assert info.value.error["reason"] == "version mismatch"
        history = await ctl.request("history")
        assert [(r["result"], r["requested_by"], r["to_versions"]) for r in history] == [
            ("refused", "alice", [""])
        ]
        assert history[0]["from_versions"] == [v1.machine.version]


@pytest.mark.anyio
async def test_a_change_to_a_supervisor_without_stages_is_refused_at_once() -> None:
    """Planning moved off the actor; a supervisor of supervisors still says it has no stages."""
    inner = supervisor("inner", stage("sum", SUM))
    with anyio.fail_after(60):  # a bound against hangs, not a timing check
        async with open_supervisor(supervisor("top", inner)) as top:
            with pytest.raises(SupervisorError, match="no stage children"):
                await top.code_change(code_change("sum", SUM.version, SUM))
            assert await top.history() == ()


def test_small_changes_stay_on_the_loop_and_big_ones_go_to_a_thread() -> None:
    """The split between checking on the loop and in a worker thread: by the
    distinct program nodes left to build, and by the JSON values decoded."""
    changes = importlib.import_module("arrowloop.supervisor._changes")
    control_module = importlib.import_module("arrowloop.server._control")
    from examples.counter import v1, v2

    built = code_change("counter", v1.machine.version, v2.machine.machine, v2.migrate)
    assert changes._small(built)
    assert control_module._small(encode_change(built))
    assert not control_module._small({"xs": list(range(control_module.SMALL_CHANGE + 1))})


def _rename_first_prim(doc: Any, name: str) -> bool:
    """Rename the first ``prim`` node found in a wire document, in place."""
    if isinstance(doc, dict):
        if doc.get("kind") == "prim":
            doc["name"] = name
            return True
        return any(_rename_first_prim(v, name) for v in doc.values())
    if isinstance(doc, list):
        return any(_rename_first_prim(v, name) for v in doc)
    return False


@pytest.mark.anyio
async def test_a_change_naming_an_unregistered_primitive_says_primitives_do_not_travel() -> None:
    """The server can only run primitives its served module registered at
    start: the refusal says so, names where, and the running version stays."""
    from arrowloop.cli import RemoteError
    from examples.counter import v1, v2
    from tests.test_server_protocol import control, serving

    change = encode_change(code_change("counter", v1.machine.version, v2.machine.machine))
    assert _rename_first_prim(change["stages"][0]["machine"], "shipped_elsewhere")
    async with serving() as server, control(server) as ctl:
        with pytest.raises(RemoteError) as info:
            await ctl.request("upgrade", change=change, requested_by="alice")
        text = str(info.value)
        assert "'shipped_elsewhere'" in text
        assert "registered by the served module" in text
        assert "cannot travel in a change" in text
        assert ".name" in info.value.error.get("path", text)
        status = await ctl.request("status")
        assert [c["version"] for c in status["children"]] == [v1.machine.version]
