"""A local n8n running a SAI-shaped workflow: for `make run-n8n`, the tests and the benchmarks."""
