"""Worked examples for arrowloop (importable so tests and benchmarks share them)."""
