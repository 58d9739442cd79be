"""``python -m arrowloop``: the command line.

For now one command, ``demo``: the counter of DESIGN.md on a running
pipeline in this process, its machines shipped through the wire format and
re-checked before they are installed by in-band upgrades, then upgraded
again under load (the TCP server demo replaces this once the server exists).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m arrowloop")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the counter transcript with live upgrades, in-process")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from arrowloop._demo import run_demo

        return run_demo(print)
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
