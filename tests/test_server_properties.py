"""No loss over TCP, as a property: random interleavings of pipelined client
requests with live upgrades and rollbacks through the control port.

For any such schedule every request gets exactly one reply, in its
connection's order; every increment is acknowledged; a read never sees the
count go down (the counter only counts up here) and never sees an increment
its own connection had not yet sent answered; the final count is the number
of increments; and the stage runs the version the sequence of changes
leaves it at.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arrowloop.cli import ControlClient, DataClient
from arrowloop.server import ServerConfig, Token, as_supervisor_spec, load_object, open_server
from arrowloop.supervisor import code_change
from arrowloop.upgrade import encode_change
from examples.counter import v1, v2, v3
from tests.profiles import examples

pytestmark = pytest.mark.e2e

TOKEN = Token("a-test-token-of-enough-length", "test")
INCR = {"tag": "IncrCount"}
READ = {"tag": "ReadCount"}
VERSIONS = (v1, v2, v3)

# One step of a schedule: a client sends a pipelined batch of requests
# without waiting (True = increment, False = read), or the operator moves
# the counter one version up (upgrade) or back (rollback), when it can.
Step = tuple[str, int, list[bool]]
steps: st.SearchStrategy[Step] = st.one_of(
    st.tuples(
        st.just("send"),
        st.integers(0, 2),
        st.lists(st.booleans(), min_size=1, max_size=40),
    ),
    st.tuples(st.sampled_from(["upgrade", "rollback"]), st.just(0), st.just([])),
)


def _change(level: int) -> dict[str, Any]:
    new, old = VERSIONS[level + 1], VERSIONS[level]
    change = code_change(
        "counter", old.machine.version, new.machine, new.migrate, inverse=new.inverse
    )
    return encode_change(change)


async def _run(schedule: list[Step]) -> None:
    spec = as_supervisor_spec(*load_object("examples.counter.service:pipeline"))
    with anyio.fail_after(60):
        async with open_server(spec, TOKEN, ServerConfig(port=0, control_port=0)) as server:
            clients = [DataClient(*server.data_address) for _ in range(3)]
            sent: list[list[bool]] = [[] for _ in clients]
            level = 0
            async with (
                clients[0],
                clients[1],
                clients[2],
                ControlClient(*server.control_address, TOKEN.value) as ctl,
            ):
                for kind, who, batch in schedule:
                    if kind == "send":
                        await clients[who].send([INCR if b else READ for b in batch])
                        sent[who].extend(batch)
                    elif kind == "upgrade" and level < 2:
                        await ctl.request("upgrade", change=_change(level))
                        level += 1
                    elif kind == "rollback" and level > 0:
                        await ctl.request("rollback", stage="counter")
                        level -= 1
                replies = [[await c.reply() for _ in s] for c, s in zip(clients, sent, strict=True)]
                final = await clients[0].call(READ)
                status = await ctl.request("status")
    total = sum(b for s in sent for b in s)
    for requests, answers in zip(sent, replies, strict=True):
        seen = 0  # reads on one connection never go down
        mine = 0  # this connection's increments answered so far
        for is_incr, reply in zip(requests, answers, strict=True):
            assert "error" not in reply, reply
            out = reply["output"]
            if is_incr:
                assert out == {"tag": "Ack", "value": {}}
                mine += 1
            else:
                n = out["value"]["n"]
                assert seen <= n <= total
                assert n >= mine  # its own earlier increments were applied first
                seen = n
    assert final == {"tag": "Count", "value": {"n": total}}
    assert status["children"][0]["version"] == VERSIONS[level].machine.version


@settings(max_examples=examples(100), deadline=None)
@given(st.lists(steps, min_size=1, max_size=12))
def test_pipelined_requests_across_live_changes_lose_nothing(schedule: list[Step]) -> None:
    anyio.run(_run, schedule, backend="asyncio", backend_options={"use_uvloop": True})
