"""Benchmark cases: one module per benchmark, each with `async def run(...) -> dict`."""
