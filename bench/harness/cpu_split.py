"""Where Stage 2's CPU goes, per execution, over a steady-state window.

Two samples — at the first completion seen and when the queue is drained —
each with the executions finished so far, the worker processes' CPU seconds
(/proc), their per-step thread CPU counters
(`smokesignal_etl_stage2_step_cpu_seconds_total{step}`, scraped from
ETL_METRICS_PORT) and the CPU of the bench database's PostgreSQL backends.
The difference divided by the executions finished in between is CPU ms per
execution: per step, the rest of the worker (its event loop: claims, commits,
the relay, logs — what no step counts), and PostgreSQL's share. CPU time, not
wall time: it is what a loaded machine distorts least, and it does not depend
on how many other processes were runnable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.harness.infra import cpu_seconds

STEP_METRIC = "smokesignal_etl_stage2_step_cpu_seconds"  # the parser drops "_total"


@dataclass(frozen=True)
class Sample:
    finished: int  # executions completed or failed for good
    worker_cpu_s: float
    steps_s: dict[str, float]
    postgres_cpu_s: dict[int, float]  # by backend pid


async def postgres_backends(pool: asyncpg.Pool) -> list[int]:
    """The bench database's backends (the worker's connections and the bench's own)."""
    rows = await pool.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid IS NOT NULL"
    )
    return [r["pid"] for r in rows]


def _cpu_or_none(pid: int) -> float | None:
    try:
        return cpu_seconds(pid)
    except (FileNotFoundError, ProcessLookupError):  # a backend that just ended
        return None


async def scrape_steps(http: httpx.AsyncClient, port: int) -> dict[str, float]:
    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    steps: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == STEP_METRIC:
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    step = sample.labels["step"]
                    steps[step] = steps.get(step, 0.0) + sample.value
    return steps


async def take_sample(
    pool: asyncpg.Pool, http: httpx.AsyncClient, pids: list[int], ports: list[int]
) -> Sample:
    finished = await pool.fetchval(
        "SELECT count(*) FROM stage2_jobs WHERE status IN ('completed', 'failed')"
    )
    steps: dict[str, float] = {}
    for port in ports:
        for step, value in (await scrape_steps(http, port)).items():
            steps[step] = steps.get(step, 0.0) + value
    backends = {pid: _cpu_or_none(pid) for pid in await postgres_backends(pool)}
    return Sample(
        finished=finished,
        worker_cpu_s=sum(cpu_seconds(pid) for pid in pids),
        steps_s=steps,
        postgres_cpu_s={pid: cpu for pid, cpu in backends.items() if cpu is not None},
    )


# Fewer executions between the samples than this say nothing: a job's steps are
# charged before its commit counts it, and /proc counts process CPU in clock ticks
# (10 ms), so a short window misplaces whole jobs (`--quick` gets no split).
MIN_WINDOW = 100


def split(before: Sample, after: Sample) -> dict[str, Any] | None:
    """CPU ms per execution between two samples (None: too few finished in between)."""
    done = after.finished - before.finished
    if done < MIN_WINDOW:
        return None

    def per_execution(seconds: float) -> float:
        return round(seconds * 1000 / done, 3)

    steps = {
        step: per_execution(value - before.steps_s.get(step, 0.0))
        for step, value in sorted(after.steps_s.items())
    }
    worker = per_execution(after.worker_cpu_s - before.worker_cpu_s)
    # Backends present in both samples (a pool may have opened or closed one between).
    postgres = sum(
        cpu - before.postgres_cpu_s[pid]
        for pid, cpu in after.postgres_cpu_s.items()
        if pid in before.postgres_cpu_s
    )
    return {
        "executions": done,
        "worker_total": worker,
        "steps": steps,
        "worker_rest": round(worker - sum(steps.values()), 3),
        "postgres": per_execution(postgres),
    }
