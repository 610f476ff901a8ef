"""Benchmark harness: infra, machine facts, stats, targets, profiling, renderer, nchan peer."""
