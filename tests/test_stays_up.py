"""The service stays up: a failing item ends that item, not the service.

Regression tests for the ways ordinary events used to stop a pipeline, a
supervisor or the server, or lose work: a poison item erasing state and
exhausting the restart intensity, a bug while planning a change, items
accepted at close and never processed, outputs dropped uncounted, a client
view lagging behind an applied change, a restart on the machine a change
just replaced, errors of anyio's leaking through the API, a stage failing
while the supervisor stops, and two readers of plain outputs.
(tests/test_iface_properties.py and tests/test_soak_model.py hold the
property tests; tests/test_server_protocol.py the rest of the server.)
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from arrowloop.errors import (
    InternalError,
    PipelineClosed,
    StepError,
    SupervisorError,
)
from arrowloop.machine import native
from arrowloop.runtime import DeadLetters, Ticket, open_pipeline, stage
from arrowloop.server import Token, as_supervisor_spec, load_object
from arrowloop.supervisor import child, code_change, open_supervisor, supervisor
from arrowloop.supervisor._changes import ChangeBook
from examples.counter import Ack, Count, IncrCount, ReadCount, ResetCount, v1, v2
from tests import poison_counter

pytestmark = pytest.mark.anyio

TOKEN = Token("a-test-token-of-enough-length", "test")


def _step(x: int, n: int) -> tuple[int, int]:
    if x < 0:
        raise ValueError("poison")
    return n + 1, n + 1


def counter(**kw: Any) -> Any:
    """A native stage counting its items; a negative item raises."""
    return stage("c", native(_step, 0), **kw)


# -- a failing step is an item-level fault ---------------------------------------------


async def test_poison_items_keep_the_count_under_a_supervisor() -> None:
    """5 increments, 8 poison items: each poison gets StepError, the count stays 5, no restart."""
    dead = DeadLetters()
    spec = supervisor("sup", v1_stage(), intensity=1, period=10.0)
    async with open_supervisor(spec, dead_letters=dead) as sup:
        await sup.code_change(
            code_change("counter", v1.machine.machine.version, poison_counter.machine)
        )
        for _ in range(5):
            assert await sup.call(IncrCount()) == Ack()
        for _ in range(8):
            with pytest.raises(StepError, match="ZeroDivisionError"):
                await sup.call(ResetCount())
        assert await sup.call(ReadCount()) == Count(5)
        status = await sup.status()
        assert status.children[0].restarts == 0
        assert status.children[0].failed == 8
        assert not sup.stopped
    assert len(dead) == 8


def v1_stage() -> Any:
    """The counter's v1 stage (as the service runs it)."""
    return stage("counter", v1.machine)


async def test_restart_policy_still_restarts_and_counts() -> None:
    """on_step_error="restart" keeps OTP's behaviour: the stage restarts from its initial state."""
    spec = supervisor("sup", counter(on_step_error="restart"), intensity=3, period=10.0)
    async with open_supervisor(spec) as sup:
        assert await sup.call(1) == 1
        assert await sup.call(1) == 2
        with pytest.raises(StepError):
            await sup.call(-1)
        assert await sup.call(1) == 1  # the state was reset by the restart
        status = await sup.status()
        assert status.children[0].restarts == 1


async def test_restart_policy_without_a_supervisor_resets_in_place() -> None:
    """Alone, a stage with the restart policy resets its state after a failing item."""
    async with open_pipeline(counter(on_step_error="restart")) as p:
        assert await p.call(1) == 1
        with pytest.raises(StepError):
            await p.call(-1)
        assert await p.call(1) == 1
        assert p.statistics()[0].restarts == 1


def test_on_step_error_is_checked() -> None:
    """A policy that is neither keep nor restart is refused with the choices."""
    with pytest.raises(ValueError, match="'keep' or 'restart'"):
        counter(on_step_error="ignore")


async def test_poison_over_tcp_keeps_the_count_and_the_server() -> None:
    """Poison items from a data client get StepError replies; the count and the server survive."""
    from arrowloop.cli import ControlClient, DataClient
    from arrowloop.server import ServerConfig, open_server
    from arrowloop.upgrade import encode_change

    spec = as_supervisor_spec(*load_object("examples.counter.service:pipeline"))
    with anyio.fail_after(60):
        async with open_server(spec, TOKEN, ServerConfig(port=0, control_port=0)) as server:
            change = code_change("counter", v1.machine.machine.version, poison_counter.machine)
            async with ControlClient(*server.control_address, TOKEN.value) as ctl:
                await ctl.request("upgrade", change=encode_change(change))
            async with DataClient(*server.data_address) as client:
                incr, reset = {"tag": "IncrCount"}, {"tag": "ResetCount"}
                await client.send([incr] * 5 + [reset] * 8)
                replies = [await client.reply() for _ in range(13)]
                assert all(r["output"] == {"tag": "Ack", "value": {}} for r in replies[:5])
                assert [r["error"]["type"] for r in replies[5:]] == ["StepError"] * 8
                assert await client.call({"tag": "ReadCount"}) == {
                    "tag": "Count",
                    "value": {"n": 5},
                }
            assert not server.supervisor.stopped


# -- a bug while planning refuses that change only ------------------------------------------


async def test_a_planning_bug_fails_that_request_and_the_supervisor_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An internal error while planning is an InternalError reply; nothing changes."""
    real = ChangeBook.plan_change

    def broken(self: ChangeBook, *args: Any) -> Any:
        raise RuntimeError("a bug in planning")

    async with open_supervisor(supervisor("sup", v1_stage())) as sup:
        await sup.call(IncrCount())
        monkeypatch.setattr(ChangeBook, "plan_change", broken)
        change = code_change("counter", v1.machine.machine.version, v2.machine, v2.migrate)
        with pytest.raises(InternalError, match="a bug in planning"):
            await sup.code_change(change)
        assert not sup.stopped
        assert await sup.call(ReadCount()) == Count(1)
        monkeypatch.setattr(ChangeBook, "plan_change", real)
        versions = await sup.code_change(change)
        assert versions == {"counter": v2.machine.machine.version}


# -- nothing admitted is lost at close --------------------------------------------------------


async def _blocked(p: Any) -> None:
    """Wait until every task is blocked (the stage on its full output channel)."""
    await anyio.wait_all_tasks_blocked()


async def _hold_last_stage(p: Any) -> None:
    """Block the last stage on its full output channel (capacity 1, nobody reading)."""
    for _ in range(2):  # one output fills the channel, the next is held
        await p.send(1)
        await anyio.wait_all_tasks_blocked()


@pytest.mark.parametrize("how", ["send", "call"])
async def test_senders_waiting_at_close_are_processed_or_refused(how: str) -> None:
    """A send or call waiting for room when close begins is processed or gets PipelineClosed."""
    results: list[str] = []
    outputs: list[int] = []

    async def one(p: Any) -> None:
        try:
            if how == "send":
                await p.send(1)
                results.append("ok")
            else:
                outputs.append(await p.call(1))
                results.append("ok")
        except PipelineClosed:
            results.append("closed")

    with anyio.fail_after(10):
        async with open_pipeline(counter(capacity=1), output_capacity=1) as p:
            # Fill the output channel (nobody reads) and the stage's inbox.
            await p.send(1)
            await p.send(1)
            await p.send(1)
            async with anyio.create_task_group() as tg:
                for _ in range(4):
                    tg.start_soon(one, p)
                await _blocked(p)
                tg.start_soon(p.close)
                await _blocked(p)
                while True:  # read plain outputs until the end of the stream
                    try:
                        outputs.extend(await p.receive_batch())
                    except anyio.EndOfStream:
                        break
    accepted = 3 + results.count("ok")
    assert len(results) == 4
    assert len(outputs) == accepted
    assert p.statistics()[0].processed == accepted
    assert p.state("c") == accepted


async def test_outputs_dropped_at_shutdown_are_all_counted() -> None:
    """Outputs nobody reads are counted in discarded_outputs, including those a stage held."""
    with anyio.fail_after(10):
        async with open_pipeline(counter(), output_capacity=1) as p:
            for _ in range(8):
                await p.send(1)
            await anyio.wait_all_tasks_blocked()
    assert p.statistics()[0].processed == 8
    assert p.discarded_outputs == 8


async def test_a_reader_waiting_at_shutdown_sees_the_end() -> None:
    """Discarding at shutdown with a reader waiting ends that reader cleanly."""
    got: list[Any] = []

    async def reader(p: Any) -> None:
        try:
            while True:
                got.extend(await p.receive_batch())
        except anyio.EndOfStream:
            got.append("end")

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg, open_pipeline(counter()) as p:
            tg.start_soon(reader, p)
            await anyio.wait_all_tasks_blocked()
    assert got[-1] == "end"
    assert p.discarded_outputs + len(got) - 1 == p.statistics()[0].processed


async def test_two_readers_share_the_outputs_without_loss() -> None:
    """Two readers of plain outputs each get some; none is lost or duplicated."""
    seen: list[list[int]] = [[], []]

    async def reader(p: Any, i: int) -> None:
        try:
            while True:
                seen[i].extend(await p.receive_batch())
        except anyio.EndOfStream:
            return

    with anyio.fail_after(20):
        async with (
            anyio.create_task_group() as tg,
            open_pipeline(counter(batch_limit=5), output_capacity=8) as p,
        ):
            tg.start_soon(reader, p, 0)
            tg.start_soon(reader, p, 1)
            for i in range(200):
                await p.send_batch([1] * 5)
                if i % 7 == 0:
                    await anyio.lowlevel.checkpoint()
            await p.close()
    assert sorted(seen[0] + seen[1]) == list(range(1, 1001))


# -- anyio's errors stay inside ---------------------------------------------------------------


async def test_a_producer_waiting_when_the_pipeline_dies_gets_pipeline_closed() -> None:
    """A send waiting for room when the supervisor is torn down raises PipelineClosed."""
    outcome: list[str] = []

    async def producer(p: Any) -> None:
        try:
            while True:
                await p.send(1)
        except PipelineClosed:
            outcome.append("closed")

    class Boom(Exception):
        pass

    async def doomed(tg: Any) -> None:
        spec = supervisor("sup", counter(capacity=2))
        async with open_supervisor(spec, output_capacity=1) as sup:
            tg.start_soon(producer, sup.pipeline)
            await anyio.wait_all_tasks_blocked()
            raise Boom

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            with pytest.raises(Boom):
                await doomed(tg)
    assert outcome == ["closed"]


async def test_reading_after_stop_is_end_of_stream() -> None:
    """Reading plain outputs after stop() raises EndOfStream, and async for just ends."""
    async with open_supervisor(supervisor("sup", counter())) as sup:
        p = sup.pipeline
        await p.send(1)
    with pytest.raises(anyio.EndOfStream):
        await p.receive()
    assert [x async for x in p] == []
    with pytest.raises(PipelineClosed):
        await p.send(1)


# -- records never lag behind what runs ------------------------------------------------------


async def test_clients_of_the_old_version_are_served_across_the_change() -> None:
    """Calls naming v1 while v1 -> v2 applies are all served (no adapter is needed)."""
    old = v1.machine.machine.version
    errors: list[BaseException] = []
    served = 0

    async def client(sup: Any) -> None:
        nonlocal served
        for _ in range(300):
            try:
                await sup.call(IncrCount(), version=old)
                served += 1
            except SupervisorError as exc:
                errors.append(exc)
            await anyio.lowlevel.checkpoint()

    with anyio.fail_after(20):
        async with open_supervisor(supervisor("sup", v1_stage())) as sup:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client, sup)
                tg.start_soon(client, sup)
                for _ in range(20):
                    await anyio.lowlevel.checkpoint()
                await sup.code_change(code_change("counter", old, v2.machine, v2.migrate))
            assert await sup.call(ReadCount()) == Count(600)
    assert errors == []
    assert served == 600


async def test_a_restart_right_behind_an_upgrade_restores_with_the_new_machine() -> None:
    """A stage crashing on the item right behind an upgrade is restored with the new machine."""
    from tests.machines import migration
    from tests.test_supervisor import counting

    given: list[str] = []

    def restore(m: Any) -> Any:
        given.append(m.version)
        return m.init

    spec = supervisor(
        "sup",
        child(stage("a", counting(0), on_step_error="restart"), restore=restore),
        intensity=5,
        period=10.0,
    )
    with anyio.fail_after(10):
        async with open_supervisor(spec, output_capacity=1) as sup:
            p = sup.pipeline
            await _hold_last_stage(p)
            change = code_change("a", counting(0).version, counting(1), migration(0, 1))
            async with anyio.create_task_group() as tg:
                tg.start_soon(sup.code_change, change)
                await anyio.wait_all_tasks_blocked()
                poison: Ticket = await p.submit(0)
                after: Ticket = await p.submit(1)
                await p.receive_batch()  # room again: the stage goes on
            with pytest.raises(StepError):
                await poison.result()
            assert (await after.result())[0] == 1  # stepped by version 1
            assert given == [counting(1).version]
            status = await sup.status()
            assert status.children[0].restarts == 1


# -- stopping while a stage fails ---------------------------------------------------------


async def test_stop_answers_what_is_behind_a_stage_that_crashes_while_stopping() -> None:
    """A restart-policy stage failing during stop's drain is done (as in OTP): the
    items behind it get PipelineClosed, are counted, and stop does not wait."""
    with anyio.fail_after(20):
        async with open_supervisor(
            supervisor("sup", counter(on_step_error="restart")), output_capacity=1
        ) as sup:
            p = sup.pipeline
            await _hold_last_stage(p)
            poison = await p.submit(-1)
            behind = [await p.submit(1) for _ in range(5)]
            await sup.stop()
    with pytest.raises(StepError):
        await poison.result()
    for t in behind:
        with pytest.raises(PipelineClosed):
            await t.result()
    (stats,) = p.statistics()
    assert stats.abandoned == 5
    assert stats.restarts == 0


async def test_a_refused_upgrade_in_a_closing_pipeline_says_closed() -> None:
    """An upgrade of a closed pipeline is refused with PipelineClosed, not a hang."""
    async with open_pipeline(counter()) as p:
        await p.close()
        with pytest.raises(PipelineClosed, match="no more upgrades"):
            await p.upgrade("c", native(_step, 0))


async def test_auto_rollback_counts_failing_items_of_a_fresh_change() -> None:
    """A fresh change whose step keeps failing (no restarts) is rolled back automatically."""
    from arrowloop.supervisor import AutoRollback

    spec = supervisor("sup", child(v1_stage(), auto_rollback=AutoRollback(crashes=1, period=60.0)))
    old = v1.machine.machine.version
    with anyio.fail_after(10):
        async with open_supervisor(spec) as sup:
            await sup.code_change(code_change("counter", old, poison_counter.machine))
            await sup.call(IncrCount())
            for _ in range(2):
                with pytest.raises(StepError):
                    await sup.call(ResetCount())
            await anyio.wait_all_tasks_blocked()  # the rollback runs in the background
            assert sup.pipeline.version("counter") == old
            kinds = [(r.kind, r.result) for r in await sup.history()]
            assert kinds[-1] == ("auto-rollback", "succeeded")
            assert await sup.call(ReadCount()) == Count(1)
