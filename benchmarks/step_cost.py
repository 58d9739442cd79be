"""Cost of one step of the counter v3: compiled vs interpreted vs hand-written.

All run in the same process on the same message sequence, so the ratios
(compiled / hand-written, interpreted / hand-written) are meaningful on a
shared, noisy machine even when the absolute numbers are not. Each figure
is the best of several repeats. ``frontend`` is the counter v3 written in
plain Python (examples/counter_py.py) and compiled by the front end: its
ratio shows what is left of the environment passing after the simplifier
and the code generator.

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


def main() -> None:
    """Print the figures and write them to benchmarks/results/step_cost.json."""
    results = measure()
    out = ROOT / "benchmarks" / "results" / "step_cost.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for key, value in results.items():
        print(f"{key:>20}: {value}")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
