"""Benchmarks: scripts that print figures and write JSON under benchmarks/results/."""
