"""Benchmarks (`make bench`); figures are written down in docs/BENCHMARKS.md."""
