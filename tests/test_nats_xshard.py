"""A change across segments with a part in a sharded stage's segments, on
a broker: ``number`` (the segment routing to the shards), ``per_key`` (its
three shards) and ``tally`` (the segment reading them merged) changed in
one change, with a migration of the sharded stage's state and new item
types of the channels into and out of the shards. It commits on every
segment and shard at one cut, or, when a shard's migration raises or the
stage after the shards refuses, nowhere; and the same with a shard's
process killed with SIGKILL after it prepared and voted. Nothing is lost
or duplicated, per key the outputs are the sequential model's in its
order, and the committed states and versions are the model's."""

from __future__ import annotations

import json
import os
import signal
from contextlib import suppress
from pathlib import Path
from typing import Any

import anyio
import pytest

from arrowloop.distributed import change_frame, connect, open_segment, open_sink, open_source
from arrowloop.distributed._decisions import Decisions
from arrowloop.runtime import EndMsg
from arrowloop.supervisor import CodeChange, code_change
from arrowloop.typesys import INT
from arrowloop.upgrade import encode_change
from arrowloop.wire import decode_value
from tests.nats_pipeline import CONFIG
from tests.nats_shards_pipeline import (
    PIPELINE,
    SHARDS,
    SPEC,
    count_badly,
    mark,
    mark_badly,
    model,
    number,
    number_wide,
    per_key,
    per_key_wide,
    tally,
    tally_wide,
)
from tests.natsserver import NatsServer, nats_server
from tests.test_nats_shards import PROCESSES, Processes, _check_outputs, _marked, _stores

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.anyio]

__all__ = ["nats_server"]  # the fixture, imported for pytest

OUT_TYPE = SPEC.stages[-1].machine.output
V1 = [s.machine.version for s in SPEC.stages]
NEW = {
    "number": number_wide.machine.version,
    "per_key": per_key_wide.machine.version,
    "tally": tally_wide.machine.version,
}


def _wide(migrate: Any = mark, tally_migrate: Any = None) -> dict[str, Any]:
    """The change of the three stages (``per_key`` migrated by ``migrate``)."""
    return encode_change(
        CodeChange(
            (
                *code_change("number", V1[0], number_wide).upgrades,
                *code_change("per_key", V1[1], per_key_wide, migrate).upgrades,
                *code_change("tally", V1[2], tally_wide, tally_migrate).upgrades,
            )
        )
    )


def _expected(items: list[int], at: int | None) -> tuple[list[Any], dict[int, Any]]:
    """The sequential model's outputs and per-key states, the change after
    item ``at`` (``per_key_wide`` hashes as ``per_key_twice``, and the items
    after it reach ``tally_wide`` tagged 2: marked 3)."""
    out, states = model(items, twice_from=at)
    if at is None:
        return out, states
    return [(x, n, c, h, 3 if n > at else m) for x, n, c, h, m in out], states


async def _read(sink: Any, got: list[Any]) -> None:
    with suppress(anyio.EndOfStream):
        while True:
            for m in await sink.receive(1024):
                if type(m) is list:
                    got.extend(m)


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("outcome", ["commits", "a-shard-refuses", "after-the-shards-refuses"])
async def test_a_change_across_the_shards_segments_commits_everywhere_or_nowhere(
    nats_server: NatsServer, outcome: str
) -> None:
    """Segments in this process (the three shards as tasks, states in the
    broker's key-value store), 300 items, the change and 300 items more,
    all queued in the first channel before any segment starts. It commits
    at its place on the router, every shard and after them, with one
    answer; or it is refused (shard 1's migration raises, or ``tally``'s),
    with one answer, and every segment keeps its code and state."""
    url, name = nats_server.url, f"xshard_{outcome.replace('-', '_')}"
    doc = {
        "commits": _wide(),
        "a-shard-refuses": _wide(mark_badly),
        "after-the-shards-refuses": _wide(mark, count_badly),
    }[outcome]
    items = [(i * 7919) % 1000 for i in range(600)]
    got: list[Any] = []
    with anyio.fail_after(90):
        async with connect(url) as nc:
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            async with open_source(url, name, "number", INT, config=CONFIG) as src:
                await src.send(items[:300])
                await src.flush()
                await src.publish_frame(change_frame(doc, inbox))
                await src.send(items[300:])
                await src.send(EndMsg())
            async with (
                open_segment(SPEC, ["number"], url, pipeline=name, config=CONFIG) as first,
                open_segment(SPEC, ["per_key"], url, pipeline=name, config=CONFIG, shard=0) as s0,
                open_segment(SPEC, ["per_key"], url, pipeline=name, config=CONFIG, shard=1) as s1,
                open_segment(SPEC, ["per_key"], url, pipeline=name, config=CONFIG, shard=2) as s2,
                open_segment(SPEC, ["tally"], url, pipeline=name, config=CONFIG) as last,
                open_sink(url, name, "out", OUT_TYPE, config=CONFIG) as sink,
            ):
                await _read(sink, got)
                await last.finished.wait()
                answer = json.loads((await sub.next_msg(timeout=10)).data)
                with pytest.raises(TimeoutError):  # one answer for the change
                    await sub.next_msg(timeout=0.5)
                shards = [s0, s1, s2]
                versions = {
                    "number": first.actors[0].machine.version,
                    "per_key": {s.actors[0].machine.version for s in shards},
                    "tally": last.actors[0].machine.version,
                }
                counts = (first.actors[0].state, last.actors[0].state)
                merged: dict[int, Any] = {}
                for s in shards:
                    merged.update(s.actors[0].state)
    at = 300 if outcome == "commits" else None
    expected, states = _expected(items, at)
    _check_outputs(got, expected)
    assert counts == (600, 600)
    if outcome == "commits":
        assert answer == {"versions": NEW}
        assert versions == {**NEW, "per_key": {NEW["per_key"]}}
        assert merged == _marked(states)
        return
    assert answer["error"]["reason"] == "migration failed", answer
    if outcome == "a-shard-refuses":
        assert "shard 1" in answer["error"]["message"]
    assert versions == {
        "number": number.machine.version,
        "per_key": {per_key.machine.version},
        "tally": tally.machine.version,
    }
    assert merged == states


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("killed", ["s2", "a"], ids=["a-shard", "the-router"])
async def test_a_shard_killed_after_it_prepared_a_change_across_segments_ends_the_same(
    nats_server: NatsServer, tmp_path: Path, killed: str
) -> None:
    """Served with the CLI on state directories: the process of shards 0
    and 1 stopped (SIGSTOP) before the change, so nothing can be decided;
    once shard 2 has prepared, voted and passed the change on, its process
    (or the router's, prepared too) is killed with SIGKILL and started
    again (it replays the change, prepares again, reuses its vote and
    passes the change on under the same IDs), then the other goes on. The
    change commits everywhere at its place, as without the kill."""
    change_at = 320
    items = [(i * 7919) % 1000 for i in range(1200)]
    change_id = f"xshard-kill-{killed}"
    url = nats_server.url
    procs = Processes(url, tmp_path)
    got: list[Any] = []
    for proc in PROCESSES:
        procs.start(proc)
    pause = procs.procs["s01"]
    os.kill(pause.pid, signal.SIGSTOP)
    try:
        with anyio.fail_after(180):
            async with (
                connect(url) as nc,
                open_source(url, PIPELINE, "number", INT, config=CONFIG) as src,
                open_sink(url, PIPELINE, "out", OUT_TYPE, config=CONFIG) as sink,
                anyio.create_task_group() as tg,
            ):
                inbox = nc.new_inbox()
                sub = await nc.subscribe(inbox)
                decisions = Decisions(nc.jetstream(), PIPELINE)
                await decisions.ensure()

                async def produce() -> None:
                    for i in range(0, len(items), CONFIG.frame_items):
                        if i == change_at:
                            await src.flush()
                            await src.publish_frame(change_frame(_wide(), inbox, change_id))
                        await src.send(items[i : i + CONFIG.frame_items])
                    await src.send(EndMsg())

                tg.start_soon(produce)
                tg.start_soon(_read, sink, got)
                vote = decisions.vote_subject(change_id, 2)
                while await decisions.look(vote) is None:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
                assert await decisions.look(decisions.subject(change_id)) is None
                procs.kill(killed)
                procs.start(killed)
                os.kill(pause.pid, signal.SIGCONT)
                answer = json.loads((await sub.next_msg(timeout=60)).data)
    finally:
        os.kill(pause.pid, signal.SIGCONT)
        procs.stop_all()
    assert {n: p.returncode for n, p in procs.procs.items()} == dict.fromkeys(PROCESSES, 0)
    assert procs.live_kills == 1
    assert answer == {"versions": NEW}
    expected, states = _expected(items, change_at)
    _check_outputs(got, expected)
    stores = _stores(tmp_path)
    assert stores[f"{PIPELINE}.number"]["number"][0] == NEW["number"]
    assert stores[f"{PIPELINE}.tally"]["tally"][0] == NEW["tally"]
    merged: dict[int, Any] = {}
    for k in range(SHARDS):
        version, state = stores[f"{PIPELINE}.per_key.shard{k}"]["per_key"]
        assert version == NEW["per_key"]
        merged.update(decode_value(per_key_wide.machine.state, state))
    assert merged == _marked(states)
