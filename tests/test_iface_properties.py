"""Interface changes: versions that differ in input, output and state types.

Random interleavings of sends, submits, calls, upgrades, refused changes and
rollbacks under a supervisor, with "racers" (calls started just before a
change, entering while it is in flight) and concurrent load, for

* the counter of ``examples/counter`` (v1: ReadCount | IncrCount on an
  ``int``; v2 adds ResetCount; v3 adds ToggleCount on ``(int, bool)``),
  where upgrades widen the input and rollbacks narrow it back; and
* an int/str pair (``tests/iface_machines.py``): version A takes ``int``
  items on an ``int`` state, version B ``str`` items on a ``str`` state, so
  every switch changes the interface (``change_interface=True``).

Afterwards a sequential model replays what the driver saw: an item that
fits the version running when it is admitted is processed by it and gives
the model's output (of that version's output type); one that does not fit
gets a ValidationError at admission, never a StepError; a racer is
processed by the old version or the new one (whichever it fits) or refused
if it does not fit one of them; nothing is lost, duplicated or reordered;
the final state is one the model allows and has its machine's state type;
and the supervisor never escalates. The models are in ``tests/iface_machines.py``.

Plain tests pin three regressions down: an int item admitted right behind
an int->str upgrade, ResetCounts racing a v2->v1 rollback under load, and
rollbacks after a round trip A->B->A->B (equal undo steps).
"""

from __future__ import annotations

import contextlib
from functools import partial
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from arrowloop.errors import UpgradeError, ValidationError
from arrowloop.runtime import open_pipeline, stage
from arrowloop.supervisor import Supervisor, code_change, open_supervisor, supervisor
from arrowloop.typesys import validate
from examples.counter import Count, IncrCount, ReadCount, ResetCount, ToggleCount, v1, v2
from tests.iface_machines import (
    COUNTER,
    INT_STR,
    Versions,
    a_to_b,
    b_to_a,
    fits,
    latest,
    replay,
    summing,
)
from tests.profiles import examples

pytestmark = pytest.mark.anyio

PROPS = settings(
    max_examples=examples(25),
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # racy failures shrink slowly
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
STAGE = "x"


KINDS = [ReadCount(), IncrCount(), ResetCount(), ToggleCount()]
PAIR_ITEMS = st.one_of(st.integers(-3, 3), st.text(alphabet="ab", max_size=2))


def script(items: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """Driver items (item, mode) and changes (kind, racers)."""
    modes = st.sampled_from(["send", "submit", "call"])
    item_ops = st.tuples(st.just("item"), st.tuples(items, modes))
    kinds = st.sampled_from(["up", "rollback", "refused"])
    # Racers alternate between two items; the i-th yields i times before it calls.
    racers = st.tuples(items, items, st.integers(0, 8)).map(
        lambda t: [t[i % 2] for i in range(t[2])]
    )
    stall = st.sampled_from([0, 0, 5, 6, 7])  # enough plain items to block the stage
    changes = st.tuples(kinds, st.tuples(racers, stall))
    return st.lists(st.one_of(item_ops, changes), max_size=12)


class Run:
    """One supervised run: what the driver did and saw, in order."""

    def __init__(self, vs: Versions, sup: Supervisor) -> None:
        self.vs, self.sup, self.p = vs, sup, sup.pipeline
        self.v = vs.first
        self.stack: list[tuple[Any, Any]] = []  # applied changes (from, to)
        self.trace: list[list[Any]] = []  # ["item", item, out] / ["change", a, b, racers]
        self.tickets: list[tuple[list[Any], Any]] = []
        self.plain: list[list[Any]] = []  # trace entries waiting for a plain output
        self.gate = anyio.Event()  # the consumer reads while it is set
        self.gate.set()

    async def consume(self, outputs: list[Any]) -> None:
        """Read the plain outputs, pausing while the gate is shut."""
        while True:
            await self.gate.wait()
            try:
                outputs.append(await self.p.receive())
            except anyio.EndOfStream:
                return

    async def reopen(self, gate: anyio.Event) -> None:
        for _ in range(12):
            await anyio.lowlevel.checkpoint()
        gate.set()

    async def item(self, item: Any, mode: str) -> None:
        ok = self.vs.accepts(self.v, item)
        entry: list[Any] = ["item", item, None]
        try:
            if mode == "send":
                await self.p.send(item)
                self.plain.append(entry)
            elif mode == "submit":
                self.tickets.append((entry, await self.p.submit(item)))
            else:
                entry[2] = await self.sup.call(item)
        except ValidationError:
            assert not ok, f"{item!r} fits version {self.v} but was refused"
            return
        assert ok, f"{item!r} does not fit version {self.v} but was admitted"
        self.trace.append(entry)

    async def race(self, item: Any, yields: int, out: list[Any]) -> None:
        for _ in range(yields):
            await anyio.lowlevel.checkpoint()
        try:
            out.append(("ok", await self.p.call(item)))
        except ValidationError:
            out.append(("refused", None))

    async def change(self, kind: str, racers: list[Any], stall: int) -> None:
        """A change with racers around it; with ``stall``, the stage is first kept
        busy (its plain outputs unread for a while), so the change stays in flight."""
        a, b = self.v, self.v
        outs: list[list[Any]] = [[] for _ in racers]
        async with anyio.create_task_group() as tg:
            if stall:
                self.gate = anyio.Event()
                tg.start_soon(self.reopen, self.gate)
                for _ in range(stall):
                    await self.item(self.vs.filler(self.v), "send")
            for yields, (item, out) in enumerate(zip(racers, outs, strict=True)):
                tg.start_soon(self.race, item, yields, out)
            b = await self._change(kind)
        self.trace.append(["change", a, b, [(x, o[0]) for x, o in zip(racers, outs, strict=True)]])
        assert self.p.version(STAGE) == self.vs.machines[b].version
        self.v = b

    async def _change(self, kind: str) -> Any:
        vs, v = self.vs, self.v
        if kind == "rollback":
            if not self.stack:
                with pytest.raises(UpgradeError, match="no recorded"):
                    await self.sup.rollback(STAGE)
                return v
            await self.sup.rollback(STAGE)
            return self.stack.pop()[0]
        b = vs.up(v) if kind == "up" else vs.narrow(v)
        if b is None:
            return v
        change = code_change(
            STAGE,
            vs.machines[v].version,
            vs.machines[b],
            vs.migrations[(v, b)],
            inverse=vs.migrations[(b, v)],
            change_interface=vs.interface and kind == "up",
        )
        if kind == "refused":  # narrows the interface without saying so
            with pytest.raises(UpgradeError, match="interface"):
                await self.sup.code_change(change)
            return v
        await self.sup.code_change(change)
        self.stack.append((v, b))
        return b

    async def load(self, count: int, done: anyio.Event) -> None:
        """Submit the load item in windows of 8 (a backlog) until the driver is done."""
        while count > 0 or not done.is_set():
            count -= 8
            tickets = []
            for _ in range(8):
                with contextlib.suppress(ValidationError):  # fits only some versions
                    tickets.append(await self.p.submit(self.vs.load_item))
            for ticket in tickets:
                out = await ticket.result()
                assert any(
                    self.vs.accepts(v, self.vs.load_item) and fits(m.output, out)
                    for v, m in self.vs.machines.items()
                ), f"{self.vs.load_item!r} gave {out!r}"
            await anyio.lowlevel.checkpoint()


async def _run(vs: Versions, ops: list[Any], loads: list[int]) -> None:
    with anyio.fail_after(30):
        spec = supervisor("iface", stage(STAGE, vs.machines[vs.first], capacity=4, batch_limit=2))
        async with open_supervisor(spec, output_capacity=1) as sup:
            r = Run(vs, sup)
            outputs: list[Any] = []

            async with anyio.create_task_group() as tg:
                tg.start_soon(r.consume, outputs)
                done = anyio.Event()
                async with anyio.create_task_group() as load:
                    for count in loads:
                        load.start_soon(r.load, count, done)
                    for kind, arg in ops:
                        await (r.item(*arg) if kind == "item" else r.change(kind, *arg))
                        validate(r.p.machine(STAGE).state, r.p.state(STAGE), "state")
                    done.set()
                for entry, ticket in r.tickets:
                    entry[2] = await ticket.result()
                assert not sup.stopped
                await r.p.close()
            state = r.p.state(STAGE)
            validate(r.p.machine(STAGE).state, state, "state")
    assert sup.exit_reason is None
    assert len(outputs) == len(r.plain)
    for entry, out in zip(r.plain, outputs, strict=True):
        entry[2] = out
    assert vs.key(r.v, state) in replay(vs, r.trace)


@PROPS
@example(  # rollbacks that narrow the input while the stage is busy, racers all along
    ops=[
        ("up", ([], 0)),
        ("up", ([], 0)),
        ("rollback", ([ToggleCount(), ReadCount()] * 4, 6)),
        ("rollback", ([ResetCount(), IncrCount()] * 4, 6)),
    ],
    loads=[8],
)
@given(
    ops=script(st.sampled_from(KINDS)),
    loads=st.lists(st.integers(0, 20), max_size=2),
)
async def test_counter_versions_under_changes(ops: list[Any], loads: list[int]) -> None:
    """Counter v1/v2/v3: items fit the version that steps them; the model explains all."""
    await _run(COUNTER, ops, loads)


@PROPS
@example(  # switches while the stage is busy, with int and str racers all along
    ops=[("up", ([1, "a"] * 4, 6)), ("up", (["b", 2] * 4, 6)), ("rollback", ([3, "c"] * 4, 6))],
    loads=[8],
)
@given(
    ops=script(PAIR_ITEMS),
    loads=st.lists(st.integers(0, 20), max_size=2),
)
async def test_int_str_versions_under_changes(ops: list[Any], loads: list[int]) -> None:
    """int/int and str/str versions: no item or state of the wrong type, ever."""
    await _run(INT_STR, ops, loads)


@pytest.mark.parametrize("mode", ["send", "call"])
async def test_int_item_behind_a_str_upgrade_never_reaches_the_state(mode: str) -> None:
    """Regression: an int item right behind an int->str upgrade never reaches the str state."""
    with anyio.fail_after(10):
        async with open_pipeline(stage(STAGE, summing)) as p:
            for yields in range(6):
                await p.call(2)
                async with anyio.create_task_group() as tg:
                    tg.start_soon(partial(p.upgrade, change_interface=True), STAGE, latest, a_to_b)
                    for _ in range(yields):
                        await anyio.lowlevel.checkpoint()
                    try:
                        if mode == "call":
                            out = await p.call(5)
                        else:
                            await p.send(5)
                            out = await p.receive()
                        assert isinstance(out, int), f"the str version stepped 5 (gave {out!r})"
                    except ValidationError:
                        pass
                assert p.version(STAGE) == latest.version
                assert isinstance(p.state(STAGE), str), f"state {p.state(STAGE)!r}"
                validate(p.machine(STAGE).state, p.state(STAGE), "state")
                await p.upgrade(STAGE, summing, b_to_a, change_interface=True)


async def _resets_racing_a_rollback(yields: int) -> None:
    v1m, v2m = v1.machine.machine, v2.machine.machine
    spec = supervisor("counter", stage("count", v1m, capacity=4, batch_limit=2))
    async with open_supervisor(spec) as sup:
        p = sup.pipeline
        await sup.code_change(
            code_change("count", v1m.version, v2m, v2.migrate, inverse=v2.inverse)
        )
        stop = anyio.Event()
        results: list[str] = []

        async def load() -> None:
            while not stop.is_set():
                await p.call(IncrCount())

        async def reset() -> None:
            try:
                results.append(repr(await (await p.submit(ResetCount())).result()))
            except ValidationError as exc:
                results.append(str(exc))

        async def roll_back() -> None:
            assert await sup.rollback("count") == {"count": v1m.version}
            stop.set()

        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(load)
            await anyio.lowlevel.checkpoint()
            tg.start_soon(roll_back)
            for _ in range(yields):
                await anyio.lowlevel.checkpoint()
            tg.start_soon(reset)
            tg.start_soon(reset)
        # processed by v2 (an Ack), or refused because v1 does not take it
        assert all(r == "Ack()" or "found ResetCount" in r for r in results), results
        assert len(results) == 2
        assert not sup.stopped
        assert all(c.running for c in (await sup.status()).children)
        assert isinstance(await sup.call(ReadCount()), Count)
    assert sup.exit_reason is None


async def test_resets_racing_a_rollback_under_load_do_not_escalate() -> None:
    """Regression: ResetCounts racing a v2->v1 rollback under load are served or refused."""
    for round_ in range(16):
        with anyio.fail_after(10):
            await _resets_racing_a_rollback(round_ % 8)


async def test_rollbacks_after_a_round_trip_undo_the_latest_changes() -> None:
    """A->B, B->A, A->B, then rollbacks: back to A, to B, to A (the undo steps are distinct)."""
    a, b = summing.machine, latest.machine
    with anyio.fail_after(10):
        async with open_supervisor(supervisor("pair", stage(STAGE, a))) as sup:
            for old, new, migrate, inverse in [
                (a, b, a_to_b, b_to_a),
                (b, a, b_to_a, a_to_b),
                (a, b, a_to_b, b_to_a),
            ]:
                change = code_change(
                    STAGE, old.version, new, migrate, inverse=inverse, change_interface=True
                )
                await sup.code_change(change)
            assert await sup.rollback(STAGE) == {STAGE: a.version}
            assert await sup.rollback(STAGE) == {STAGE: b.version}
            assert await sup.rollback(STAGE) == {STAGE: a.version}
