"""Guards keyed by the client's address: connections per address, and
slowing down an address that keeps sending wrong tokens.

Both are bounded tables: an attacker cycling through addresses cannot grow
them without limit (the oldest entries go first, and an address with no
connection and no recent failure holds no entry).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

__all__ = ["AddressCounts", "AuthThrottle", "LOOPBACK"]

#: The loopback addresses, which per-address connection limits leave alone
#: by default: every local client has the same one, so a limit on it is only
#: a lower global limit.
LOOPBACK: Final = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})


class AddressCounts:
    """Open connections per client address, with a limit.

    ``limit`` is the most connections one address may hold (``None``: no
    limit); addresses in ``exempt`` (a load balancer, loopback) are not
    limited. ``refused`` counts the connections turned away.
    """

    def __init__(self, limit: int | None, exempt: frozenset[str] = LOOPBACK) -> None:
        self.limit = limit
        self.exempt = exempt
        self.refused = 0
        self._open: dict[str, int] = {}

    def enter(self, address: str | None) -> bool:
        """Count a new connection from ``address``; False (and not counted)
        if that address is at its limit."""
        if address is None or self.limit is None or address in self.exempt:
            return True
        n = self._open.get(address, 0)
        if n >= self.limit:
            self.refused += 1
            return False
        self._open[address] = n + 1
        return True

    def leave(self, address: str | None) -> None:
        """A connection counted by :meth:`enter` has closed."""
        if address is None or self.limit is None or address in self.exempt:
            return
        n = self._open.get(address, 0) - 1
        if n > 0:
            self._open[address] = n
        else:
            self._open.pop(address, None)

    def open_from(self, address: str) -> int:
        """Connections counted from ``address`` now."""
        return self._open.get(address, 0)


class AuthThrottle:
    """Slows down the refusals of an address that keeps sending wrong tokens.

    Each address has a failure score that decays by half every
    ``half_life`` seconds. Up to ``free`` failures cost nothing; beyond,
    each refusal is delayed by ``base`` seconds doubled per failure over
    ``free``, at most ``max_delay``. A right token is never delayed (it is
    checked first), so an operator is not locked out by someone guessing
    from the same address: only the guesses slow down (from thousands a
    second to a few per connection slot). At most ``max_addresses`` are
    remembered, the oldest forgotten first.
    """

    def __init__(
        self,
        *,
        free: int = 5,
        base: float = 0.05,
        max_delay: float = 2.0,
        half_life: float = 60.0,
        max_addresses: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free = free
        self.base = base
        self.max_delay = max_delay
        self.half_life = half_life
        self.max_addresses = max_addresses
        self._clock = clock
        self._scores: OrderedDict[str, tuple[float, float]] = OrderedDict()
        #: Wrong tokens seen, in all.
        self.failures = 0

    def _score(self, address: str, now: float) -> float:
        got = self._scores.get(address)
        if got is None:
            return 0.0
        score, at = got
        return score * math.pow(0.5, (now - at) / self.half_life)

    def failed(self, address: str | None) -> float:
        """Record a wrong token from ``address``; the seconds to wait before
        answering it."""
        self.failures += 1
        if address is None:
            return 0.0
        now = self._clock()
        score = self._score(address, now) + 1.0
        self._scores[address] = (score, now)
        self._scores.move_to_end(address)
        while len(self._scores) > self.max_addresses:
            self._scores.popitem(last=False)
        over = score - self.free
        if over <= 0:
            return 0.0
        return min(self.max_delay, self.base * math.pow(2.0, min(over - 1, 64)))

    def failures_of(self, address: str) -> float:
        """The decayed failure score of ``address`` now."""
        return self._score(address, self._clock())
