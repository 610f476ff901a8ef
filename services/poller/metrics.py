"""Prometheus metrics of the poller (default registry, served by shared.lifecycle)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CYCLE_SECONDS = Histogram(
    "smokesignal_poller_cycle_seconds",
    "Duration of one poll cycle (claim, publish, commit).",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EXECUTIONS_BROADCAST = Counter(
    "smokesignal_poller_executions_broadcast_total",
    "Executions published in executions.new batches.",
)
BATCH_SIZE = Histogram(
    "smokesignal_poller_batch_size",
    "Executions per published executions.new batch.",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
CYCLE_ERRORS = Counter(
    "smokesignal_poller_cycle_errors_total",
    "Poll cycles that failed and were rolled back, by cause.",
    ["cause"],
)
REJECTED = Counter(
    "smokesignal_poller_rejected_total",
    "Claimed executions whose row does not satisfy ExecutionSummary (recorded, not sent).",
)
TRIMMED = Counter(
    "smokesignal_poller_trimmed_total",
    "Rows removed by age: broadcast ids, and completions that expired unbroadcast.",
    ["table"],
)
