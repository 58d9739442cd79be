"""A load generator for the data port, run as a process of its own.

``clients`` connections each keep ``window`` ``IncrCount`` requests in
flight: the first ``window`` lines go out in one write, and every batch of
replies read is answered by as many new requests in one write. A request's
latency runs from the write that sent it to the read that returned its
reply (replies come in request order). After ``warmup`` seconds it measures
for ``duration`` seconds, then stops sending, waits for every reply still
due, reads the count with ``ReadCount`` and prints one JSON object:
requests/s and latency quantiles over the measured window, and the totals
that show nothing was lost (``acked`` must equal ``count``).

It is written as plainly and cheaply as the servers it loads (an
``asyncio.Protocol`` on uvloop, replies compared as bytes, not parsed), so
the client is not what limits the figures.

With ``--keys`` every request carries a request key of its own
(``"key":"<connection>-<n>"``), as an exactly-once client sends them.

With ``--requests N`` it sends ``N`` requests in all (split evenly over
the connections) instead of loading for a time, and measures from the
first to the last reply: a fixed amount of work, for counting the
instructions a server spends on it (``server_instructions.py``).

Run: ``python benchmarks/loadgen.py HOST PORT [--clients N] [--window W]
[--warmup S] [--duration S] [--keys] [--requests N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import sys
import time
from array import array
from typing import Any, Final, cast

import orjson

__all__ = ["Connection", "measure", "main"]

REQUEST: Final = b'{"item":{"tag":"IncrCount"}}\n'
ACK_REPLY: Final = b'{"output":{"tag":"Ack","value":{}}}'


class Connection(asyncio.Protocol):
    """One data connection keeping ``window`` requests in flight."""

    def __init__(self, window: int, keys: str | None = None, total: int | None = None) -> None:
        self.window = window
        #: Most requests to send (None: until stopped).
        self.total = total
        #: With request keys: this connection's prefix for them.
        self.keys = None if keys is None else keys.encode()
        self.sent_at: array[float] = array("d")
        self.replied_at: array[float] = array("d")
        self.acked = 0
        self.failed = 0
        self.errors: list[bytes] = []
        self.sending = True
        self.drained = asyncio.Event()
        self.closed = asyncio.Event()
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    @property
    def lost(self) -> int:
        """Requests sent without a reply so far."""
        return len(self.sent_at) - len(self.replied_at)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self._transport = cast(asyncio.Transport, transport)
        self._send(self.window)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()
        self.drained.set()

    def _send(self, n: int) -> None:
        assert self._transport is not None
        if self.total is not None:
            n = min(n, self.total - len(self.sent_at))
            if n <= 0:
                self.stop()
                return
        self.sent_at.extend([time.perf_counter()] * n)
        if self.keys is None:
            self._transport.write(REQUEST * n)
            return
        first, prefix = len(self.sent_at) - n, self.keys
        self._transport.write(
            b"".join(
                b'{"item":{"tag":"IncrCount"},"key":"%s-%d"}\n' % (prefix, i)
                for i in range(first, first + n)
            )
        )

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        lines = (self._buf + data).split(b"\n")
        self._buf = lines.pop()
        n = len(lines)
        self.replied_at.extend([now] * n)
        ok = lines.count(ACK_REPLY)
        self.acked += ok
        if ok != n:
            bad = [line for line in lines if line != ACK_REPLY]
            self.failed += len(bad)
            self.errors += bad[: max(0, 5 - len(self.errors))]
        if self.sending:
            self._send(n)
        elif self.lost == 0:
            self.drained.set()

    def stop(self) -> None:
        """Send no more requests; ``drained`` is set once every reply is in."""
        self.sending = False
        if self.lost == 0:
            self.drained.set()


async def _read_count(host: str, port: int) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(b'{"item":{"tag":"ReadCount"}}\n')
    reply = orjson.loads(await reader.readline())
    writer.close()
    n = reply["output"]["value"]["n"]
    assert type(n) is int, reply
    return n


def _quantile_ms(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    return round(xs[min(len(xs) - 1, int(len(xs) * q))] * 1000, 3)


async def measure(
    host: str,
    port: int,
    clients: int,
    window: int,
    warmup: float,
    duration: float,
    keys: bool = False,
    requests: int | None = None,
) -> dict[str, Any]:
    """Load the server and return the figures (see the module's docstring)."""
    loop = asyncio.get_running_loop()
    conns: list[Connection] = []
    each = None if requests is None else max(1, requests // clients)
    t0 = time.perf_counter()
    for i in range(clients):
        prefix = f"c{i}" if keys else None
        _, proto = await loop.create_connection(
            functools.partial(Connection, window, prefix, each), host, port
        )
        conns.append(proto)
    if each is None:
        await asyncio.sleep(warmup)
        t0 = time.perf_counter()
        await asyncio.sleep(duration)
    else:  # a fixed amount of work: all of it is measured
        await asyncio.gather(*(c.drained.wait() for c in conns))
    t1 = time.perf_counter()
    for c in conns:
        c.stop()
    with contextlib.suppress(TimeoutError):  # what is still missing counts as lost
        await asyncio.wait_for(asyncio.gather(*(c.drained.wait() for c in conns)), 60)
    lat: list[float] = []
    replies = 0
    for c in conns:
        sent, replied = c.sent_at, c.replied_at
        idx = [i for i in range(len(replied)) if t0 <= replied[i] <= t1 or each is not None]
        replies += len(idx)
        lat += [replied[i] - sent[i] for i in idx]
    lat.sort()
    count = await _read_count(host, port)
    for c in conns:
        assert c._transport is not None
        c._transport.close()
    return {
        "clients": clients,
        "window": window,
        "duration_s": round(t1 - t0, 3),
        "rps": round(replies / (t1 - t0)),
        "p50_ms": _quantile_ms(lat, 0.5),
        "p99_ms": _quantile_ms(lat, 0.99),
        "max_ms": _quantile_ms(lat, 1.0),
        "requests": sum(len(c.sent_at) for c in conns),
        "acked": sum(c.acked for c in conns),
        "failed": sum(c.failed for c in conns),
        "lost": sum(c.lost for c in conns),
        "count": count,
        "errors": [e.decode(errors="replace")[:200] for c in conns for e in c.errors][:5],
    }


def main() -> None:
    """Parse the command line, measure, print the figures as one JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--keys", action="store_true", help="a request key on every request")
    ap.add_argument("--requests", type=int, help="send this many requests in all, then stop")
    a = ap.parse_args()
    args = (a.host, a.port, a.clients, a.window, a.warmup, a.duration, a.keys, a.requests)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        result = asyncio.run(measure(*args))
    else:
        result = uvloop.run(measure(*args))
    sys.stdout.write(orjson.dumps(result).decode() + "\n")


if __name__ == "__main__":
    main()
