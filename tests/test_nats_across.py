"""Changes across segments: a change whose stages run in different segment
processes commits in all of them at the same place in the stream, or in
none; one that changes the type of the channel between them switches the
codec at exactly that place. (Segments here are in this process, each on a
connection of its own, as they would be in their own processes.)"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest

from arrowloop.distributed import (
    change_frame,
    connect,
    open_segment,
    open_sink,
    open_source,
    pipeline_status,
)
from arrowloop.runtime import EndMsg
from arrowloop.supervisor import CodeChange, code_change
from arrowloop.typesys import INT
from arrowloop.upgrade import encode_change
from tests.nats_pipeline import CONFIG, PIPELINE, SPEC, as_tuples, model, total_twice
from tests.nats_versions import (
    check_again,
    check_wide,
    count_again,
    count_pairs,
    model_wide,
    raises,
    rehash,
    rehash_badly,
    total_wide,
    widen,
)
from tests.natsserver import NatsServer, nats_server

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

__all__ = ["nats_server"]  # the fixture, imported for pytest

OUT_TYPE = SPEC.stages[-1].machine.output
TOTAL = SPEC.stages[1].machine.version
CHECK = SPEC.stages[2].machine.version


def _wide(check_expect: str = CHECK, migrate: Any = rehash) -> CodeChange:
    return CodeChange(
        code_change("total", TOTAL, total_wide, widen).upgrades
        + code_change("check", check_expect, check_wide, migrate).upgrades
    )


async def _drain(sink: Any) -> list[Any]:
    got: list[Any] = []
    try:
        while True:
            for m in await sink.receive(1024):
                if type(m) is list:
                    got.extend(m)
    except anyio.EndOfStream:
        pass
    return got


async def _change_between(
    nc: Any, src: Any, change: CodeChange, before: list[int], after: list[int]
) -> dict[str, Any]:
    """Send ``before``, the change, ``after`` (without waiting for the change
    in between: the items after it queue up behind it) and end of stream;
    the change's result."""
    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, max_msgs=1)
    await src.send(before)
    await src.flush()
    await src.publish_frame(change_frame(encode_change(change), inbox, uuid.uuid4().hex))
    await src.send(after)
    await src.send(EndMsg())
    msg = await sub.next_msg(timeout=60)  # a bound against a loaded machine
    result: dict[str, Any] = orjson.loads(msg.data)
    return result


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_change_across_segments_changes_the_channel_type_at_its_place(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    url = nats_server.url
    first, second = list(range(1, 301)), list(range(-50, 250))
    kw: dict[str, Any] = {"pipeline": PIPELINE, "state_dir": tmp_path, "config": CONFIG}
    async with (
        open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
        open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
        connect(url) as nc,
    ):
        async with (
            open_segment(SPEC, ["count", "total"], url, **kw) as a,
            open_segment(SPEC, ["check"], url, **kw) as b,
        ):
            result = await _change_between(nc, src, _wide(), first, second[:100])
            assert result == {
                "versions": {
                    "total": total_wide.machine.version,
                    "check": check_wide.machine.version,
                }
            }
            await b.finished.wait()
            assert a.actors[1].machine.version == total_wide.machine.version
            assert b.actors[0].machine.version == check_wide.machine.version
        got = await _drain(sink)
    assert as_tuples(got) == model_wide(first + second[:100], wide_from=len(first))
    # Both started again on their stores: they run the new versions, the
    # channel between them in the new type, and end of stream was committed.
    async with (
        open_segment(SPEC, ["count", "total"], url, **kw) as a,
        open_segment(SPEC, ["check"], url, **kw) as b,
    ):
        assert a.ended
        assert b.ended
        assert a.actors[1].machine.version == total_wide.machine.version
        assert b.actors[0].machine.version == check_wide.machine.version
        state = a.store.load()
        assert state is not None
        assert state.stages["total"].state == [sum(first + second[:100]), 100]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (_wide(migrate=rehash_badly), "migration failed"),
        (_wide(check_expect="0" * 64), "version mismatch"),
    ],
    ids=["migration raises", "version mismatch"],
)
async def test_a_refusal_in_the_second_segment_leaves_the_first_unchanged(
    nats_server: NatsServer, change: CodeChange, reason: str
) -> None:
    url = nats_server.url
    first, second = list(range(1, 201)), list(range(200))
    kw: dict[str, Any] = {"pipeline": PIPELINE, "config": CONFIG}
    async with (
        open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
        open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
        connect(url) as nc,
        open_segment(SPEC, ["count", "total"], url, **kw) as a,
        open_segment(SPEC, ["check"], url, **kw) as b,
    ):
        result = await _change_between(nc, src, change, first, second)
        assert result["error"]["reason"] == reason, result
        got = await _drain(sink)
        await b.finished.wait()
        assert [x.machine.version for x in a.actors] == [s.machine.version for s in SPEC.stages[:2]]
        assert b.actors[0].machine.version == CHECK
    assert as_tuples(got) == model(first + second)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_changes_that_would_break_a_channel_between_segments_are_refused(
    nats_server: NatsServer,
) -> None:
    url = nats_server.url
    kw: dict[str, Any] = {"pipeline": PIPELINE, "config": CONFIG}
    alone = code_change("total", TOTAL, total_wide, widen)  # check would not read it
    reader = code_change("check", CHECK, check_wide, rehash)  # nothing writes it
    same = CodeChange(
        code_change("total", TOTAL, total_twice).upgrades
        + code_change("check", CHECK, check_wide, rehash).upgrades
    )
    items = list(range(1, 51))
    async with (
        open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
        open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
        connect(url) as nc,
        open_segment(SPEC, ["count", "total"], url, **kw) as a,
        open_segment(SPEC, ["check"], url, **kw) as b,
    ):
        for change in (alone, reader, same):
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox, max_msgs=1)
            await src.publish_frame(change_frame(encode_change(change), inbox, uuid.uuid4().hex))
            msg = await sub.next_msg(timeout=60)
            result = orjson.loads(msg.data)
            assert result["error"]["reason"] == "interface change", result
        await src.send(items)
        await src.send(EndMsg())
        got = await _drain(sink)
        await b.finished.wait()
        assert a.actors[1].machine.version == TOTAL
    assert as_tuples(got) == model(items)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_segment_stopped_with_its_part_prepared_reads_the_decision_when_back(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """The first segment prepares and passes the change on while the second
    is not running, and is stopped there (its input at the change not yet
    committed); the second decides; the first, started again on its store,
    prepares again, reads the decision from the broker and commits."""
    url = nats_server.url
    first, second = list(range(1, 101)), list(range(100))
    kw: dict[str, Any] = {"pipeline": PIPELINE, "state_dir": tmp_path, "config": CONFIG}
    async with (
        open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
        open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
        connect(url) as nc,
    ):
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, max_msgs=1)
        passed_on = await nc.subscribe(f"arrowloop.{PIPELINE}.check")  # what goes to check
        async with open_segment(SPEC, ["count", "total"], url, **kw) as a:
            await src.send(first)
            await src.flush()
            await src.publish_frame(change_frame(encode_change(_wide()), inbox, "c1"))
            await src.send(second)
            await src.send(EndMsg())
            # Until the change is passed on (a bound against a loaded machine).
            while b'"u"' not in (await passed_on.next_msg(timeout=60)).data:
                pass
            assert a.actors[1].machine.version == TOTAL
            status = await pipeline_status(nc, PIPELINE, within=30, expect=1)
            assert status[0]["awaiting"] == ["c1"]
        async with open_segment(SPEC, ["check"], url, **kw) as b:
            msg = await sub.next_msg(timeout=60)
            assert "versions" in orjson.loads(msg.data)
            async with open_segment(SPEC, ["count", "total"], url, **kw) as a:
                await b.finished.wait()
                assert a.actors[1].machine.version == total_wide.machine.version
        got = await _drain(sink)
    assert as_tuples(got) == model_wide(first + second, wide_from=len(first))


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("middle_fails", [False, True], ids=["commits", "middle refuses"])
async def test_a_change_across_three_segments(nats_server: NatsServer, middle_fails: bool) -> None:
    """One segment per stage. ``count`` and ``check`` changed with ``total``
    between them unchanged (it passes the change on): both commit. Or
    ``total`` changed too, with a migration that raises: the middle segment
    refuses after the first prepared, publishes the abort and answers; no
    segment changes."""
    url = nats_server.url
    kw: dict[str, Any] = {"pipeline": PIPELINE, "config": CONFIG}
    parts = code_change("count", SPEC.stages[0].machine.version, count_again).upgrades
    if middle_fails:
        parts += code_change("total", TOTAL, total_twice, raises).upgrades
    parts += code_change("check", CHECK, check_again).upgrades
    first, second = list(range(1, 101)), list(range(100))
    async with (
        open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
        open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
        connect(url) as nc,
        open_segment(SPEC, ["count"], url, **kw) as a,
        open_segment(SPEC, ["total"], url, **kw) as m,
        open_segment(SPEC, ["check"], url, **kw) as b,
    ):
        result = await _change_between(nc, src, CodeChange(parts), first, second)
        got = await _drain(sink)
        await b.finished.wait()
        versions = [a.actors[0].machine.version, m.actors[0].machine.version]
        versions.append(b.actors[0].machine.version)
    if middle_fails:
        assert result["error"]["reason"] == "migration failed", result
        assert versions == [s.machine.version for s in SPEC.stages]
    else:
        assert result == {
            "versions": {
                "count": count_again.machine.version,
                "check": check_again.machine.version,
            }
        }
        assert versions == [count_again.machine.version, TOTAL, check_again.machine.version]
    assert as_tuples(got) == model(first + second)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_change_of_the_pipelines_input_type_decodes_by_position(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    """``count`` changed to take pairs (``change_interface``): the frames
    after the change, already queued in the first channel, are read as pairs,
    those before as numbers, whatever the timing; started again on its store,
    the segment reads pairs."""
    url = nats_server.url
    kw: dict[str, Any] = {"pipeline": PIPELINE, "state_dir": tmp_path, "config": CONFIG}
    pair = count_pairs.machine.input
    change = code_change(
        "count", SPEC.stages[0].machine.version, count_pairs, change_interface=True
    )
    first = list(range(1, 101))
    pairs = [(i, 2 * i) for i in range(100)]
    more = [(i, -i) for i in range(50)]
    async with (
        open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
        open_source(url, PIPELINE, "count", pair, producer="pairs", config=CONFIG) as src2,
        open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
        connect(url) as nc,
    ):
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, max_msgs=1)
        # Everything is in the channel before any segment runs.
        await src.send(first)
        await src.flush()
        await src.publish_frame(change_frame(encode_change(change), inbox, "in"))
        await src2.send(pairs)
        await src2.flush()
        async with open_segment(SPEC, ["check"], url, **kw):
            async with open_segment(SPEC, ["count", "total"], url, **kw) as a:
                msg = await sub.next_msg(timeout=60)
                assert orjson.loads(msg.data) == {
                    "versions": {"count": count_pairs.machine.version}
                }
            async with open_segment(SPEC, ["count", "total"], url, **kw) as a:
                assert a.actors[0].machine.version == count_pairs.machine.version
                await src2.send(more)
                await src2.send(EndMsg())
                await a.finished.wait()
            got = await _drain(sink)
    sums = first + [x + y for x, y in pairs + more]
    assert as_tuples(got) == model(sums)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_deciding_segment_crashing_after_its_decision_decides_again_alike(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The segment running ``check`` publishes the decision and then fails to
    write the change (a crash between the two); the first segment applies
    the decision and goes on. Started again on its store, the second
    replays the change, decides the same, and reads what the first wrote
    after it in the new type: the outputs are exactly the model's."""
    url = nats_server.url
    first, second = list(range(1, 151)), list(range(150))
    kw: dict[str, Any] = {"pipeline": PIPELINE, "state_dir": tmp_path, "config": CONFIG}
    async with (
        open_source(url, PIPELINE, "count", INT, config=CONFIG) as src,
        open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
        open_segment(SPEC, ["count", "total"], url, **kw) as a,
    ):
        with pytest.raises(BaseExceptionGroup) as info:  # noqa: PT012
            async with open_segment(SPEC, ["check"], url, **kw) as b:

                def crash(records: Any) -> None:
                    raise RuntimeError("the process died here")

                monkeypatch.setattr(b.store, "save_stages", crash)
                await src.send(first)
                await src.flush()
                await src.publish_frame(change_frame(encode_change(_wide()), None, "k1"))
                await src.send(second)
                await src.send(EndMsg())
                await b.finished.wait()  # never: the write fails first
        assert info.group_contains(RuntimeError, match="the process died here")
        async with open_segment(SPEC, ["check"], url, **kw) as b:
            assert b.actors[0].machine.version == CHECK  # the write never happened
            await b.finished.wait()
            assert b.actors[0].machine.version == check_wide.machine.version
        assert a.actors[1].machine.version == total_wide.machine.version
        got = await _drain(sink)
    assert as_tuples(got) == model_wide(first + second, wide_from=len(first))
