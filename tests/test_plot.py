"""benchmarks/plot.py draws a PNG per chart from the results files."""

from __future__ import annotations

from pathlib import Path

from benchmarks import plot


def test_every_chart_is_drawn_from_the_committed_results(tmp_path: Path) -> None:
    written = plot.main(tmp_path)
    assert sorted(p.name for p in written) == sorted(plot.CHARTS)
    for p in written:
        assert p.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert p.stat().st_size > 5000  # a chart, not an empty canvas
