"""A progress bar for long benchmark runs, shown only on a terminal.

Benchmarks run for minutes; on a terminal a bar says how far they are
(rich). Piped to a file or run by CI, nothing is drawn, so the output stays
the figures alone.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import Progress

__all__ = ["progress"]


@contextmanager
def progress(total: int, description: str) -> Iterator[Callable[[str], None]]:
    """A function to call after each of ``total`` steps (with what comes next)."""
    if not sys.stderr.isatty():
        yield lambda _next: None
        return
    with Progress(transient=True) as bar:
        task = bar.add_task(description, total=total)

        def advance(next_step: str) -> None:
            bar.update(task, advance=1, description=f"{description}: {next_step}")

        yield advance
