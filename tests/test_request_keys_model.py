"""Request keys against a sequential model: random schedules of batches of
keyed items (with duplicates inside a batch, resends in later batches and
items whose step fails), upgrades that change the last stage's output type
while items are queued ahead of them, and restarts from the store, through
a two-stage supervised pipeline. Each key is applied at most once by each
stage among its most recent keys, and every reply (output or error) is the
model's.
"""

from __future__ import annotations

from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arrowloop import statemachine
from arrowloop.errors import ReplyUnavailable, StepError
from arrowloop.runtime import Ticket, stage
from arrowloop.store import MemoryStore
from arrowloop.supervisor import Supervisor, code_change, open_supervisor, supervisor
from tests.profiles import examples

#: Keys each stage remembers in these tests: small, so eviction happens.
WINDOW = 4


@statemachine(init=0)
def adder(x: int, total: int) -> tuple[int, int]:
    """Adds ``x`` and returns the total; fails on 0 (``x // x``)."""
    n = total + x * (x // x)
    return n, n


@statemachine(init=0)
def doubler(x: int, seen: int) -> tuple[int, int]:
    """Counts its items and returns twice the input."""
    return seen + 1, 2 * x


@statemachine(init=0)
def labeller(x: int, seen: int) -> tuple[int, str]:
    """Counts its items and returns the input as a string (another output type)."""
    return seen + 1, "n" + str(x)


class _Stage:
    """The model of one stage: its state and its window of keys."""

    def __init__(self) -> None:
        self.state = 0
        self.window: dict[str, tuple[str, Any]] = {}  # key -> (output kind, output)

    def remember(self, key: str | None, kind: str, out: Any) -> None:
        if key is None:
            return
        self.window[key] = (kind, out)
        if len(self.window) > WINDOW:
            del self.window[next(iter(self.window))]


class Model:
    """The two stages applied one item at a time."""

    def __init__(self) -> None:
        self.a = _Stage()
        self.b = _Stage()
        self.labels = False  # whether b runs the labeller

    def apply(self, x: int, key: str | None) -> Any:
        a, b = self.a, self.b
        if key is not None and key in a.window:
            out: Any = a.window[key][1]
        elif x == 0:
            return "StepError"
        else:
            a.state += x
            out = a.state
            a.remember(key, "int", out)
        kind = "str" if self.labels else "int"
        if key is not None and key in b.window:
            was, reply = b.window[key]
            return reply if was == kind else "ReplyUnavailable"
        b.state += 1
        reply = "n" + str(out) if self.labels else 2 * out
        b.remember(key, kind, reply)
        return reply


Batch = list[tuple[int, str | None]]
Op = tuple[str, Batch]

items = st.tuples(st.integers(0, 3), st.none() | st.sampled_from([f"k{i}" for i in range(7)]))
ops = st.lists(
    st.one_of(
        st.tuples(st.just("batch"), st.lists(items, min_size=1, max_size=8)),
        st.tuples(st.just("upgrade"), st.just([])),
        st.tuples(st.just("restart"), st.just([])),
    ),
    max_size=12,
)


def _spec() -> Any:
    return supervisor("svc", stage("a", adder), stage("b", doubler))


async def _outcome(t: Ticket | Exception) -> Any:
    if not isinstance(t, Ticket):
        return type(t).__name__
    try:
        return await t.result()
    except (StepError, ReplyUnavailable) as exc:
        return type(exc).__name__


async def _run(script: list[Op]) -> None:
    model = Model()
    store = MemoryStore()
    replies: list[Any] = []
    expected: list[Any] = []
    runs: list[list[Op]] = [[]]  # what each incarnation of the supervisor does
    for op in script:
        if op[0] == "restart":
            runs.append([])
        else:
            runs[-1].append(op)
    for run in runs:
        async with open_supervisor(_spec(), store=store, request_keys=WINDOW) as sup:
            tickets: list[Ticket | Exception] = []
            for kind, batch in run:
                if kind == "upgrade":
                    await _toggle(sup, model)
                    continue
                xs = [x for x, _ in batch]
                keys = [k for _, k in batch]
                # Not awaited: later batches and upgrades queue up behind them.
                tickets += await sup.submit_many(xs, keys=keys)
                expected += [model.apply(x, k) for x, k in batch]
            replies += [await _outcome(t) for t in tickets]
            assert sup.pipeline.state("a") == model.a.state
            assert sup.pipeline.state("b") == model.b.state
    assert replies == expected


async def _toggle(sup: Supervisor, model: Model) -> None:
    p = sup.pipeline
    new = doubler if model.labels else labeller
    await sup.code_change(
        code_change("b", p.version("b"), new.machine, requested_by="model", change_interface=True)
    )
    model.labels = not model.labels


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(script=ops)
def test_keys_apply_at_most_once_as_the_sequential_model_says(script: list[Op]) -> None:
    """Every reply and both states match the model, whatever the schedule."""
    anyio.run(_bounded, script)


async def _bounded(script: list[Op]) -> None:
    with anyio.fail_after(60):
        await _run(script)
