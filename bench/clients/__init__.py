"""Benchmark clients: SSE load and receipt recorders, and the old design's polling loop."""
