"""Instructions per request of the counter server, next to the hand-written one.

The wall-clock figures of ``server.py`` move by tens of percent on a
shared machine; instruction counts (valgrind's callgrind) do not. For each
server (the hand-written baseline, arrowloop, and arrowloop at
``--baseline REV`` if given) this starts the server process under
callgrind with counting off, turns counting on once it is serving
(``callgrind_control -i on``), loads it with ``loadgen.py --requests`` (8
connections x 32 in flight) with two request counts, and divides the
difference by the difference in requests: the server's user-space
instructions per request, free of start-up. (The kernel's share, the same
for both servers, is not counted: the wall-clock ratio is closer to 1 than
the instruction ratio.)

Run: ``.venv/bin/python benchmarks/server_instructions.py [--baseline REV]
[--requests N]``; needs valgrind; writes
``benchmarks/results/server_instructions.json``.
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.instructions import checkout  # noqa: E402
from benchmarks.server import _server_command  # noqa: E402

__all__ = ["served_instructions", "per_request", "main"]


def served_instructions(kind: str, tree: Path, requests: int) -> int:
    """Instructions the ``kind`` server of ``tree`` spends serving ``requests``."""
    with tempfile.TemporaryDirectory() as tmp:
        ready, token = Path(tmp) / "ready.json", Path(tmp) / "token"
        command = _server_command(kind, ready, token)
        if kind == "handwritten":
            command[1] = str(tree / "benchmarks" / "handwritten.py")
        errors = Path(tmp) / "stderr"
        with (
            errors.open("wb") as err,
            subprocess.Popen(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--instr-atstart=no",
                    "--callgrind-out-file=/dev/null",
                    *command,
                ],
                cwd=tree,  # python -m arrowloop imports the tree's package
                env={**os.environ, "PYTHONHASHSEED": "0"},
                stdout=subprocess.DEVNULL,
                stderr=err,
            ) as server,
        ):
            try:
                deadline = time.monotonic() + 300
                while not ready.exists():
                    if server.poll() is not None or time.monotonic() > deadline:
                        said = errors.read_text(errors="replace")[-400:]
                        raise RuntimeError(f"the {kind} server did not start: {said}")
                    time.sleep(0.2)
                port = json.loads(ready.read_text())["data"]["port"]
                subprocess.run(
                    ["callgrind_control", "-i", "on", str(server.pid)],
                    check=True,
                    capture_output=True,
                )
                load = subprocess.run(
                    [
                        sys.executable,
                        str(ROOT / "benchmarks" / "loadgen.py"),
                        "127.0.0.1",
                        str(port),
                        f"--requests={requests}",
                    ],
                    capture_output=True,
                    check=True,
                    timeout=600,
                )
                figures = json.loads(load.stdout)
                if figures["failed"] or figures["lost"]:
                    raise RuntimeError(f"the {kind} server failed requests: {figures}")
            finally:
                server.terminate()
                server.wait(120)
        found = re.search(r"Collected : (\d+)", errors.read_text(errors="replace"))
        if found is None:
            raise RuntimeError(f"no instruction count from callgrind for {kind}")
        return int(found.group(1))


def per_request(kind: str, tree: Path, requests: int) -> float:
    """Instructions per request of the ``kind`` server of ``tree``."""
    a = served_instructions(kind, tree, requests)
    b = served_instructions(kind, tree, 3 * requests)
    return (b - a) / (2 * requests)


def main() -> None:
    """Measure, print, write the results; exit 1 without valgrind."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", help="also measure arrowloop at this git revision")
    ap.add_argument("--requests", type=int, default=8000, help="the smaller request count")
    args = ap.parse_args()
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed (Debian: apt-get install valgrind)")
    results: dict[str, object] = {"requests": args.requests}
    hand = per_request("handwritten", ROOT, args.requests)
    ours = per_request("arrowloop", ROOT, args.requests)
    results.update(
        handwritten_per_request=round(hand),
        arrowloop_per_request=round(ours),
        arrowloop_vs_handwritten=round(ours / hand, 3),
    )
    print(f"handwritten: {hand:.0f}, arrowloop: {ours:.0f} instructions per request")
    if args.baseline:
        with checkout(args.baseline) as base:
            old = per_request("arrowloop", base, args.requests)
        results.update(
            baseline=args.baseline, baseline_per_request=round(old), ratio=round(ours / old, 4)
        )
        print(f"arrowloop at {args.baseline}: {old:.0f} -> {ours:.0f} (x{ours / old:.3f})")
    out = ROOT / "benchmarks" / "results" / "server_instructions.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
