"""The budget of a code change: how much work building it may cost.

A change document of a few kilobytes can stand for far more work than its
size says: a program that doubles a tuple forty times has a type of a
trillion nodes. The decoder, the checker and the compiler are linear in what
they are given, and a :class:`ChangeBudget` bounds what they may be given
once shared parts are expanded: the program nodes checked, the size of
every type inferred, the generated source, and the wall time of the whole.

A budget is enforced by a :class:`Meter`, made by :func:`metered` for the
duration of one change (decoding it, or checking and compiling it) and
found by the layers that do the work through :func:`current_meter` (a
context variable, so it follows the work into a worker thread started with
the context, and concurrent changes have meters of their own). Without a
meter nothing is counted: programs built in-process are the user's own.
While a meter is active, full garbage collections wait (see
:func:`deferred_full_collections`), and if its change is refused, the caches
forget what the change put in them (:meth:`Meter.on_refusal`).
Part of layer 2; the checker (3), compiler (4) and wire decoder (5) spend
from it.
"""

from __future__ import annotations

import contextvars
import gc
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

import attrs

from arrowloop.errors import BudgetError

__all__ = [
    "ChangeBudget",
    "DEFAULT_BUDGET",
    "Meter",
    "metered",
    "current_meter",
    "deferred_full_collections",
]


def _positive(instance: Any, attribute: Any, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ValueError(f"expected {attribute.name} > 0, found {value!r}")


@attrs.frozen
class ChangeBudget:
    """How much work one code change may cost before it is refused.

    Attributes:
        max_nodes: program nodes the checker types, a sub-program shared by
            several parents counted once per parent (as if expanded).
        max_type_size: nodes of the largest type inferred for any program
            node, a shared part counted once per occurrence. A type this
            size is far beyond any real program's; a document doubling a
            tuple reaches it within twenty steps.
        max_source_bytes: bytes of Python source generated for the change.
        max_seconds: wall time for decoding, or for checking and compiling,
            a change; checked as the work goes (not preemptively), so the
            last step may run a little over.
    """

    max_nodes: int = attrs.field(default=1_000_000, validator=_positive)
    max_type_size: int = attrs.field(default=1_000_000, validator=_positive)
    max_source_bytes: int = attrs.field(default=16 * 1024 * 1024, validator=_positive)
    max_seconds: float = attrs.field(default=30.0, validator=_positive)


#: The budget applied to changes received over the wire unless told otherwise.
DEFAULT_BUDGET: Final = ChangeBudget()

#: How many nodes go by between two looks at the clock.
_CLOCK_EVERY: Final = 256


class Meter:
    """What one change has spent of its budget; raises :class:`BudgetError`
    at the first limit passed."""

    def __init__(self, budget: ChangeBudget) -> None:
        self.budget = budget
        self.nodes = 0
        self.source_bytes = 0
        self.started = time.monotonic()
        self.deadline = self.started + budget.max_seconds
        self._ticks = 0
        self._undo: list[Callable[[], None]] = []

    def on_refusal(self, undo: Callable[[], None]) -> None:
        """Call ``undo`` if the change is refused (its block raises): a cache
        forgets what only this change put in it."""
        self._undo.append(undo)

    def node(self, path: str) -> None:
        """Count one program node checked at ``path``."""
        self.nodes += 1
        if self.nodes > self.budget.max_nodes:
            raise BudgetError(
                limit="max_nodes",
                value=self.budget.max_nodes,
                found=f"more program nodes once shared parts are expanded (over {self.nodes - 1})",
                path=path,
            )
        self.tick(path)

    def type_size(self, size: int, path: str) -> None:
        """Refuse a type of ``size`` nodes inferred at ``path`` if too big."""
        if size > self.budget.max_type_size:
            raise BudgetError(
                limit="max_type_size",
                value=self.budget.max_type_size,
                found=f"a type of {_count(size)} nodes",
                path=path,
            )

    def source(self, size: int, path: str) -> None:
        """Count ``size`` bytes of generated source."""
        self.source_bytes += size
        if self.source_bytes > self.budget.max_source_bytes:
            raise BudgetError(
                limit="max_source_bytes",
                value=self.budget.max_source_bytes,
                found=f"{self.source_bytes} bytes of generated source so far",
                path=path,
            )

    def tick(self, path: str) -> None:
        """A unit of work: look at the clock now and then."""
        self._ticks += 1
        if self._ticks % _CLOCK_EVERY == 0:
            self.check_time(path)

    def check_time(self, path: str) -> None:
        """Refuse if the change has run past its wall-time budget."""
        now = time.monotonic()
        if now > self.deadline:
            raise BudgetError(
                limit="max_seconds",
                value=self.budget.max_seconds,
                found=f"{now - self.started:.1f} s spent",
                path=path,
            )


def _count(n: int) -> str:
    # Sizes of shared types can have hundreds of digits: say how big.
    return str(n) if n < 10**12 else f"about 10^{math.floor(math.log10(n))}"


_meter: contextvars.ContextVar[Meter | None] = contextvars.ContextVar(
    "arrowloop_meter", default=None
)


def current_meter() -> Meter | None:
    """The meter of the change being built in this context, if any."""
    return _meter.get()


_deferring = [0]
_deferring_lock = threading.Lock()
_saved_threshold = [0]


@contextmanager
def deferred_full_collections() -> Iterator[None]:
    """Only young generations are collected inside the block (in every thread).

    Reading and building a big change allocates millions of objects, and
    every so many allocations CPython runs a full collection, whichever
    thread allocates: it holds the interpreter for as long as the whole heap
    takes to scan (hundreds of ms), stopping the event loop a worker thread
    was meant to spare. What a change leaves is mostly freed by reference
    counting; the rest waits for the first full collection after the block.
    Blocks may overlap, in any threads.
    """
    with _deferring_lock:
        _deferring[0] += 1
        if _deferring[0] == 1:
            t0, t1, t2 = gc.get_threshold()
            _saved_threshold[0] = t2
            gc.set_threshold(t0, t1, 1 << 30)
    try:
        yield
    finally:
        with _deferring_lock:
            _deferring[0] -= 1
            if _deferring[0] == 0:
                t0, t1, _ = gc.get_threshold()
                gc.set_threshold(t0, t1, _saved_threshold[0])


@contextmanager
def metered(budget: ChangeBudget | None) -> Iterator[Meter | None]:
    """Spend from ``budget`` inside the block (no limit with ``None``).

    A block inside another one spends from the outer meter: one change has
    one budget, however its parts are built. Full garbage collections wait
    until the block ends. When the block raises (the change is refused),
    what the change left in caches is forgotten (see
    :meth:`Meter.on_refusal`).
    """
    outer = _meter.get()
    if outer is not None or budget is None:
        yield outer
        return
    meter = Meter(budget)
    token = _meter.set(meter)
    try:
        with deferred_full_collections():
            yield meter
    except BaseException:
        for undo in reversed(meter._undo):
            undo()
        raise
    finally:
        _meter.reset(token)
