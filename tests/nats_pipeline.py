"""A three-stage pipeline for the distributed tests, ``tests.nats_pipeline:SPEC``
(its segments served by ``python -m arrowloop serve ... --nats URL --segment``),
and its sequential model.

- ``count``: ``int -> (x, n)``, ``n`` counts the items so far;
- ``total``: ``(x, n) -> (x, n, t)``, ``t`` the running sum of the ``x``;
- ``check``: ``(x, n, t) -> (x, n, t, h)``, ``h`` a running hash of
  everything before it, so an item lost, repeated or reordered anywhere
  upstream changes every later output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import anyio

from arrowloop import pipeline, stage, statemachine
from arrowloop.distributed import ChannelConfig

#: The pipeline's name on the broker: the supervisor name `serve` gives it.
PIPELINE = "SPEC"


@statemachine(init=0)
def count(x: int, n: int) -> tuple[int, tuple[int, int]]:
    """Number the items."""
    return n + 1, (x, n + 1)


@statemachine(init=0)
def total(item: tuple[int, int], t: int) -> tuple[int, tuple[int, int, int]]:
    """The running sum."""
    x, n = item
    return t + x, (x, n, t + x)


@statemachine(init=0)
def total_twice(item: tuple[int, int], t: int) -> tuple[int, tuple[int, int, int]]:
    """The next version of ``total``: each item counts twice (same types)."""
    x, n = item
    return t + 2 * x, (x, n, t + 2 * x)


@statemachine(init=7)
def check(item: tuple[int, int, int], h: int) -> tuple[int, tuple[int, int, int, int]]:
    """A running hash of the items so far."""
    x, n, t = item
    h2 = (h * 31 + x * 7 + n * 3 + t) % 1000000007
    return h2, (x, n, t, h2)


SPEC = pipeline(stage("count", count), stage("total", total), stage("check", check))

#: Small frames and windows, so a short stream is many broker messages, and
#: a quick redelivery after a kill (``SERVE_ARGS`` for the CLI).
CONFIG = ChannelConfig(frame_items=16, max_ack_pending=8, ack_wait=1.0, fetch_timeout=0.2)
SERVE_ARGS = ["--nats-frame-items", "16", "--nats-window", "8", "--nats-ack-wait", "1"]


def model(items: list[int], twice_from: int | None = None) -> list[tuple[int, int, int, int]]:
    """What the pipeline produces for ``items``, computed sequentially (with
    ``total`` changed to ``total_twice`` before item ``twice_from``)."""
    out: list[tuple[int, int, int, int]] = []
    t, h = 0, 7
    for n, x in enumerate(items, 1):
        twice = twice_from is not None and n > twice_from
        t += 2 * x if twice else x
        h = (h * 31 + x * 7 + n * 3 + t) % 1000000007
        out.append((x, n, t, h))
    return out


def as_tuples(outputs: list[Any]) -> list[tuple[int, int, int, int]]:
    """Outputs read from a sink (JSON arrays) as tuples."""
    return [tuple(o) for o in outputs]


class Restartable(Protocol):
    """Processes a kill test can kill (``SIGKILL``) and start again by name."""

    def kill(self, name: str) -> None: ...
    def start(self, name: str) -> None: ...


async def collect_killing(
    sink: Any,
    got: list[Any],
    kill_at: dict[int, str],
    procs: Restartable,
    seen: Callable[[int], None] | None = None,
) -> None:
    """Read the sink's items into ``got`` until end of stream; once ``got``
    holds ``at`` items for a key of ``kill_at``, kill that process with
    SIGKILL and start it again (each once). ``seen`` is told the count after
    every read."""
    try:
        while True:
            for m in await sink.receive(1024):
                if type(m) is list:
                    got.extend(m)
            if seen is not None:
                seen(len(got))
            for at in sorted(kill_at):
                if len(got) >= at:
                    name = kill_at.pop(at)
                    procs.kill(name)
                    procs.start(name)
    except anyio.EndOfStream:
        pass
