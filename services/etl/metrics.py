"""Prometheus metrics of the ETL service (exposed via shared.lifecycle.serve_metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INGESTED = Counter(
    "smokesignal_etl_ingested_total",
    "Raw executions offered to Stage 1 ingest, by result.",
    ["result"],  # stored | duplicate | rejected
)
JOBS_COMPLETED = Counter(
    "smokesignal_etl_jobs_completed_total", "Stage 2 jobs completed successfully."
)
JOBS_FAILED = Counter(
    "smokesignal_etl_jobs_failed_total",
    "Failed Stage 2 attempts, by kind and whether the job was given up.",
    ["kind", "final"],  # kind: malformed | transient | lease_expired
)
DEMO_HOOKS_IGNORED = Counter(
    "smokesignal_etl_demo_hooks_ignored_total",
    "Raw executions whose demo block was ignored because ETL_DEMO_MODE is off.",
)
JOBS_IN_FLIGHT = Gauge("smokesignal_etl_jobs_in_flight", "Stage 2 jobs being processed now.")
PROCESSING_SECONDS = Histogram(
    "smokesignal_etl_processing_seconds",
    "Wall time of one Stage 2 attempt, claim to commit.",
    ["outcome"],  # completed | failed
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
OUTBOX_PUBLISHED = Counter(
    "smokesignal_etl_outbox_published_total", "Outbox events published (broker confirmed)."
)
OUTBOX_PUBLISH_ERRORS = Counter(
    "smokesignal_etl_outbox_publish_errors_total", "Failed outbox publish attempts (retried)."
)
OUTBOX_LAG_SECONDS = Gauge(
    "smokesignal_etl_outbox_lag_seconds",
    "Age of the oldest unpublished outbox event (0 when the outbox is drained).",
)
OUTBOX_PUBLISH_DELAY = Histogram(
    "smokesignal_etl_outbox_publish_delay_seconds",
    "Time from an event's outbox insert to its confirmed publication.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
)
OUTBOX_RELAY_ACTIVE = Gauge(
    "smokesignal_etl_outbox_relay_active",
    "1 while this process holds the relay lock and publishes, 0 on standby.",
)

N8N_SOURCE_UP = Gauge(
    "smokesignal_etl_n8n_source_up",
    "1 while the n8n source is connected to n8n's database (0: down or not configured).",
)
STAGE2_STEP_CPU_SECONDS = Counter(
    "smokesignal_etl_stage2_step_cpu_seconds_total",
    "CPU time of the thread running each Stage 2 step (where a job's CPU goes; the "
    "rest of the process's CPU is the event loop: claims, commits, the relay).",
    ["step"],  # services.etl.stage2.steps.STEPS
)
