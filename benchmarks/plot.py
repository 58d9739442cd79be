"""Charts of the benchmark results: ``benchmarks/results/*.json`` to PNGs in ``docs/img/``.

* ``throughput.png`` - arrowloop against the hand-written baselines measured
  in the same runs: the 4-stage pipeline (items sent one by one and in
  batches, on uvloop) and the counter server over TCP (separate processes);
* ``step_cost.png`` - one step of counter v3: hand-written, compiled,
  compiled from the Python front end (the interpreter is off the scale and
  written as a number);
* ``upgrade_pauses.png`` - the distribution of the pause an in-band upgrade
  causes a stage under load;
* ``server_latency.png`` - the counter server's latency percentiles, steady
  and while 20 code changes are made.

Run: ``.venv/bin/python benchmarks/plot.py`` (after ``make bench``); a chart
whose results file is missing is skipped with a note.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "img"

__all__ = ["main", "CHARTS"]

_OURS = "#2d5fb3"
_BASE = "#9aa3b5"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _pairs(ax: Any, rows: list[tuple[str, float, float]], unit: str) -> None:
    """Bars of (baseline, arrowloop) per row, each pair labelled with its ratio."""
    for i, (_, base, ours) in enumerate(rows):
        ax.bar(i - 0.2, base, 0.4, color=_BASE, label="hand-written" if i == 0 else None)
        ax.bar(i + 0.2, ours, 0.4, color=_OURS, label="arrowloop" if i == 0 else None)
        ax.text(i + 0.2, ours, f"x{ours / base:.2f}", ha="center", va="bottom", fontsize=9)
    ax.set_xticks(range(len(rows)), [r[0] for r in rows])
    ax.set_ylabel(unit)
    ax.legend(frameon=False)


def throughput(path: Path) -> bool:
    """Arrowloop against its hand-written baselines."""
    pipe, server = _load("pipeline"), _load("server")
    if pipe is None:
        return False
    loop = pipe["loops"].get("uvloop") or next(iter(pipe["loops"].values()))
    fig, axes = plt.subplots(1, 2 if server and "handwritten_rps" in server else 1, figsize=(10, 4))
    axes = axes if hasattr(axes, "__len__") else [axes]
    _pairs(
        axes[0],
        [
            ("one by one", loop["handwritten_fast_mps"], loop["unbatched_mps"]),
            ("in batches", loop["handwritten_batched_mps"], loop["batched_mps"]),
        ],
        "items per second",
    )
    axes[0].set_title("4-stage pipeline (uvloop)")
    if len(axes) > 1 and server is not None:
        _pairs(
            axes[1],
            [("counter over TCP", server["handwritten_rps"], server["external_rps"])],
            "requests per second",
        )
        axes[1].set_title("server, separate processes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def step_cost(path: Path) -> bool:
    """Nanoseconds per step of counter v3."""
    r = _load("step_cost")
    if r is None:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = ["hand-written", "compiled", "front end"]
    values = [r["handwritten_ns"], r["compiled_ns"], r["frontend_ns"]]
    ax.bar(names, values, color=[_BASE, _OURS, _OURS])
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.0f} ns", ha="center", va="bottom", fontsize=9)
    ax.set_ylabel("nanoseconds per step")
    ax.set_title(f"one step of counter v3 (the interpreter: {r['interpreted_ns']:.0f} ns)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def upgrade_pauses(path: Path) -> bool:
    """The distribution of upgrade pauses."""
    r = _load("pipeline")
    if r is None:
        return False
    pause = r["upgrade_pause_us"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if pause.get("all"):
        ax.hist(pause["all"], bins=30, color=_OURS)
        ax.set_ylabel("upgrades")
    else:  # an older results file: only the summary
        ax.bar(["median", "p99"], [pause["median"], pause["p99"]], color=_OURS)
        ax.set_ylabel("microseconds")
    ax.set_xlabel("pause of the upgraded stage (microseconds)")
    ax.set_title(
        f"upgrade pauses under load: median {pause['median']} us, p99 {pause['p99']} us, "
        f"{r['lost']} items lost"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def server_latency(path: Path) -> bool:
    """Latency percentiles, steady against upgrading."""
    r = _load("server")
    if r is None:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.5))
    quantiles = ["p50", "p99", "max"]
    for j, phase in enumerate(("steady", "upgrading")):
        values = [r[f"{q}_ms_{phase}"] for q in quantiles]
        xs = [i + (j - 0.5) * 0.4 for i in range(len(quantiles))]
        ax.bar(xs, values, 0.4, color=_BASE if phase == "steady" else _OURS, label=phase)
    ax.set_xticks(range(len(quantiles)), quantiles)
    ax.set_ylabel("milliseconds")
    ax.set_title(f"counter server latency ({r['upgrades']} changes while upgrading)")
    ax.legend(frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


#: Each chart's file name and the function drawing it (False: no results).
CHARTS: dict[str, Callable[[Path], bool]] = {
    "throughput.png": throughput,
    "step_cost.png": step_cost,
    "upgrade_pauses.png": upgrade_pauses,
    "server_latency.png": server_latency,
}


def main(out: Path = OUT) -> list[Path]:
    """Draw every chart whose results exist; the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, draw in CHARTS.items():
        if draw(out / name):
            written.append(out / name)
            print(f"wrote {out / name}")
        else:
            print(f"skipped {name}: no results yet (run make bench)", file=sys.stderr)
    return written


if __name__ == "__main__":
    main()
