"""Poller: broadcast every completed execution exactly once as `executions.new` batches.

See docs/POLLER.md for the algorithm and why it cannot skip an execution.
"""
