"""Cost of one step: compiled vs interpreted vs hand-written.

All run in the same process on the same message sequence, so the ratios
(compiled / hand-written, interpreted / hand-written) are meaningful on a
shared, noisy machine even when the absolute numbers are not. Each figure
is the best of several repeats. ``frontend`` is the counter v3 written in
plain Python (examples/counter_py.py) and compiled by the front end: its
ratio shows what is left of the environment passing after the simplifier
and the code generator.

``aggregate`` is a per-key aggregator over 10^5 keys written in the Python
subset (a dict of records, updated by ``{**stats, key: new}``), run as a
stage runs it (``Machine.owned_step``: the dict is updated in place, each
write logged for undo, the log cleared every 256 items as a stage clears it
per batch), against the same code written by hand with ``stats[key] = new``.
``aggregate_copying_ns`` is the plain step (``Machine.step``, which never
changes its arguments, so it copies the dict), on a few items only.

Run: ``.venv/bin/python benchmarks/step_cost.py`` (or ``make bench``);
writes ``benchmarks/results/step_cost.json``.
"""

from __future__ import annotations

import json
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import random  # noqa: E402

import attrs  # noqa: E402

import arrowloop  # noqa: E402
from arrowloop import Machine  # noqa: E402
from examples import counter as c  # noqa: E402
from examples import counter_py  # noqa: E402

State = tuple[int, bool]


def handwritten_v3(msg: Any, state: State) -> tuple[State, Any]:
    """The counter v3 as a person would write it in plain Python."""
    n, down = state
    t = type(msg)
    if t is c.IncrCount:
        return ((n - 1 if down else n + 1), down), _ACK
    if t is c.ReadCount:
        return state, c.Count(n)
    if t is c.ResetCount:
        return (0, down), _ACK
    return (n, not down), _ACK


_ACK = c.Ack()

MESSAGES: list[Any] = [
    c.IncrCount(),
    c.ReadCount(),
    c.IncrCount(),
    c.ToggleCount(),
    c.IncrCount(),
    c.ReadCount(),
    c.ResetCount(),
    c.IncrCount(),
] * 128


def drive(step: Callable[[Any, Any], tuple[Any, Any]]) -> Callable[[], None]:
    """A closure that runs ``step`` over MESSAGES from the initial state."""
    messages = MESSAGES

    def run() -> None:
        state: Any = (0, False)
        for m in messages:
            state, _ = step(m, state)

    return run


def ns_per_step(step: Callable[[Any, Any], tuple[Any, Any]], repeat: int, number: int) -> float:
    """Best-of-``repeat`` nanoseconds per step."""
    best = min(timeit.repeat(drive(step), repeat=repeat, number=number))
    return best / (number * len(MESSAGES)) * 1e9


def measure(repeat: int = 7, number: int = 50) -> dict[str, float]:
    """Measure the variants and their ratios."""
    machine = Machine.build(c.counter_v3, c.InputV3, c.Output)
    frontend = counter_py.counter_v3.machine
    results: dict[str, float] = {}
    # Interleave the variants so drifting machine load hits them alike.
    runs: dict[str, list[float]] = {
        "handwritten": [],
        "compiled": [],
        "frontend": [],
        "interpreted": [],
    }
    for _ in range(3):
        runs["handwritten"].append(ns_per_step(handwritten_v3, repeat, number))
        runs["compiled"].append(ns_per_step(machine.step, repeat, number))
        runs["frontend"].append(ns_per_step(frontend.step, repeat, number))
        runs["interpreted"].append(ns_per_step(machine.interpret, max(2, repeat // 3), 2))
    for key, values in runs.items():
        results[f"{key}_ns"] = round(min(values), 2)
    results["compiled_ratio"] = round(results["compiled_ns"] / results["handwritten_ns"], 3)
    results["interpreted_ratio"] = round(results["interpreted_ns"] / results["handwritten_ns"], 3)
    results["frontend_ratio"] = round(results["frontend_ns"] / results["handwritten_ns"], 3)
    return results


@attrs.frozen
class Stats:
    """Per key: how many readings, and their sum."""

    count: int
    total: int


@attrs.frozen
class Reading:
    """One reading of a key."""

    key: str
    value: int


@arrowloop.statemachine(init={})
def aggregate(msg: Reading, stats: dict[str, Stats]) -> tuple[dict[str, Stats], Stats]:
    """The per-key aggregator in the Python subset."""
    old = stats.get(msg.key)
    # An if statement: the subset does not narrow ``old`` in a conditional
    # expression yet.
    if old is None:  # noqa: SIM108
        new = Stats(1, msg.value)
    else:
        new = Stats(old.count + 1, old.total + msg.value)
    return {**stats, msg.key: new}, new


def aggregate_by_hand(msg: Reading, stats: dict[str, Stats]) -> tuple[dict[str, Stats], Stats]:
    """The same, as a person would write it, updating the dict in place."""
    old = stats.get(msg.key)
    new = Stats(1, msg.value) if old is None else Stats(old.count + 1, old.total + msg.value)
    stats[msg.key] = new
    return stats, new


KEYS = 100_000


def _readings(n: int, seed: int = 7) -> list[Reading]:
    rnd = random.Random(seed)
    return [Reading(f"key{rnd.randrange(KEYS)}", rnd.randrange(100)) for _ in range(n)]


def _full() -> dict[str, Stats]:
    return {f"key{k}": Stats(1, k) for k in range(KEYS)}


def measure_aggregate(repeat: int = 5, items: int = 200_000) -> dict[str, float]:
    """ns per item of the aggregator: by hand, as a stage runs it, and copying."""
    readings = _readings(items)
    machine = aggregate.machine

    def by_hand() -> float:
        stats = _full()
        t = timeit.default_timer()
        for r in readings:
            stats, _ = aggregate_by_hand(r, stats)
        return timeit.default_timer() - t

    def owned() -> float:
        step, log = machine.owned_step()
        stats = machine.copy_state(_full())
        t = timeit.default_timer()
        for start in range(0, len(readings), 256):
            for r in readings[start : start + 256]:
                stats, _ = step(r, stats)
            if log is not None:
                log.clear()
        return timeit.default_timer() - t

    def copying() -> float:
        stats = _full()
        t = timeit.default_timer()
        for r in readings[:50]:
            stats, _ = machine.step(r, stats)
        return (timeit.default_timer() - t) / 50 * len(readings)

    runs: dict[str, list[float]] = {"hand": [], "owned": [], "copying": []}
    for _ in range(repeat):
        runs["hand"].append(by_hand())
        runs["owned"].append(owned())
    runs["copying"].append(copying())
    hand, own, copy = (min(runs[k]) / items * 1e9 for k in ("hand", "owned", "copying"))
    return {
        "aggregate_handwritten_ns": round(hand, 1),
        "aggregate_ns": round(own, 1),
        "aggregate_copying_ns": round(copy, 1),
        "aggregate_ratio": round(own / hand, 3),
        "aggregate_copying_ratio": round(copy / hand, 1),
    }


def main() -> None:
    """Print the figures and write them to benchmarks/results/step_cost.json."""
    results = measure() | measure_aggregate()
    out = ROOT / "benchmarks" / "results" / "step_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        print(f"{key:>20}: {value}")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
