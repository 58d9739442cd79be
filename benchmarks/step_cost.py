"""Cost of one step: compiled vs interpreted vs hand-written.

All run in the same process on the same message sequence, so the ratios
(compiled / hand-written, interpreted / hand-written) are meaningful on a
shared, noisy machine even when the absolute numbers are not. Each figure
is the best of several repeats. ``frontend`` is the counter v3 written in
plain Python (examples/counter_py.py) and compiled by the front end: its
ratio shows what is left of the environment passing after the simplifier
and the code generator.

The stateful machines of benchmarks/stateful_machines.py (a per-key
aggregator, a sessionizer and a token bucket, each over 10^5 keys, written
in the Python subset with in-place changes) run as a stage runs them
(``Machine.owned_step``: the state is changed in place, each write logged
for undo, the log cleared every 256 items as a stage clears it per batch),
against the same functions run as plain Python: ``<name>_ratio``.
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

from arrowloop import Machine  # noqa: E402
from benchmarks import stateful_machines as sm  # noqa: E402
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


def _per_item_ns(run: Callable[[], float], items: int, repeat: int) -> float:
    return min(run() for _ in range(repeat)) / items * 1e9


def measure_stateful(repeat: int = 5, items: int = 200_000) -> dict[str, float]:
    """ns per item of each stateful machine (benchmarks/stateful_machines.py)
    as a stage runs it, against the same code by hand, and their ratio."""
    results: dict[str, float] = {}
    for case in sm.CASES:
        messages = case.messages(items)
        machine = case.machine.machine

        def by_hand(case: sm.Case = case, messages: list[Any] = messages) -> float:
            state = case.state()
            fn = case.by_hand
            t = timeit.default_timer()
            for m in messages:
                state, _ = fn(m, state)
            return timeit.default_timer() - t

        def owned(
            case: sm.Case = case, messages: list[Any] = messages, machine: Machine = machine
        ) -> float:
            step, log = machine.owned_step()
            state = machine.copy_state(case.state())
            t = timeit.default_timer()
            for start in range(0, len(messages), 256):
                for m in messages[start : start + 256]:
                    state, _ = step(m, state)
                if log is not None:
                    log.clear()
            return timeit.default_timer() - t

        hand, own = [], []
        for _ in range(repeat):  # interleaved: drifting load hits both alike
            hand.append(by_hand())
            own.append(owned())
        h, o = min(hand) / items * 1e9, min(own) / items * 1e9
        results[f"{case.name}_handwritten_ns"] = round(h, 1)
        results[f"{case.name}_ns"] = round(o, 1)
        results[f"{case.name}_ratio"] = round(o / h, 3)
    # The plain step copies the state it changes: a few items of the aggregator.
    agg = sm.CASES[0]
    few = agg.messages(50)

    def copying() -> float:
        state = agg.state()
        t = timeit.default_timer()
        for m in few:
            state, _ = agg.machine.machine.step(m, state)
        return timeit.default_timer() - t

    results["aggregate_copying_ns"] = round(_per_item_ns(copying, len(few), 1), 1)
    return results


def main() -> None:
    """Print the figures and write them to benchmarks/results/step_cost.json."""
    results = measure() | measure_stateful()
    out = ROOT / "benchmarks" / "results" / "step_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        print(f"{key:>20}: {value}")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
