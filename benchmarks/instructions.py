"""Instructions per item through the 4-stage pipeline, against an older revision.

Wall-clock figures on a shared machine move by tens of percent from run to
run; instruction counts (valgrind's callgrind) do not. This script checks
out ``--baseline`` (a git revision) into a temporary worktree, and for it
and for the working tree runs the pipeline benchmark's arrowloop workload
(``benchmarks/pipeline.py``'s ``_arrowloop``, on uvloop) under callgrind
with two item counts; the difference divided by the difference in items is
the cost per item, free of start-up and import costs. Used to check that a
change (per-batch metrics, say) costs the hot path little: the closing
figure is ``ratio`` per mode, the working tree's instructions per item over
the baseline's.

Run: ``.venv/bin/python benchmarks/instructions.py --baseline REV``; needs
valgrind and git; writes ``benchmarks/results/instructions.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["per_item", "checkout", "main"]

_WORKLOAD = """
import sys
root = sys.argv[1]
sys.path.insert(0, root)
import anyio
import benchmarks.pipeline as bp
assert bp.__file__.startswith(root), bp.__file__
anyio.run(bp._arrowloop, sys.argv[3] == "batched", int(sys.argv[2]),
          backend="asyncio", backend_options={"use_uvloop": True})
"""


def _instructions(script: Path, tree: Path, items: int, mode: str) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0"}  # the same dict layouts every run
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            str(script),
            str(tree),
            str(items),
            mode,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count from callgrind: {done.stderr[-400:]}")
    return int(found.group(1))


def per_item(script: Path, tree: Path, mode: str, small: int, large: int) -> float:
    """Instructions per item of ``tree``'s pipeline in ``mode``."""
    _instructions(script, tree, small, mode)  # warm the bytecode caches
    a = _instructions(script, tree, small, mode)
    b = _instructions(script, tree, large, mode)
    return (b - a) / (large - small)


@contextmanager
def checkout(revision: str) -> Iterator[Path]:
    """``revision`` checked out in a temporary worktree, removed after."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision],
            check=True,
            capture_output=True,
        )
        try:
            yield tree
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )


def main() -> None:
    """Measure both trees, print, write the results; exit 1 without valgrind."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="git revision to compare with")
    ap.add_argument("--items", type=int, default=20_000, help="the smaller item count")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (Debian: apt-get install valgrind)")
    results: dict[str, object] = {"baseline": args.baseline, "modes": {}}
    with checkout(args.baseline) as base:
        script = base.parent / "workload.py"
        script.write_text(_WORKLOAD)
        modes: dict[str, dict[str, float]] = {}
        for mode in ("unbatched", "batched"):
            old = per_item(script, base, mode, args.items, 3 * args.items)
            new = per_item(script, ROOT, mode, args.items, 3 * args.items)
            modes[mode] = {
                "baseline_per_item": round(old),
                "per_item": round(new),
                "ratio": round(new / old, 4),
            }
            print(f"{mode}: {old:.0f} -> {new:.0f} instructions per item (x{new / old:.3f})")
        results["modes"] = modes
    out = ROOT / "benchmarks" / "results" / "instructions.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
