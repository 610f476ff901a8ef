"""Ours versus the old polling design, on one out-of-order workload, in one run.

Workload: `count` executions ingested at `rate`/s through Stage 1
(`services.etl.stage1.ingest.ingest_execution`), each with a random demo Stage 2
delay of 0..`max_delay_ms` ms, so Stage 2 completions (real ETL worker
process, real images) finish out of id order.

Ours: ETL worker (outbox relay) + poller + gateway as subprocesses; an SSE
client (separate process) records when each execution first arrives, by
`etl:stage2:complete` or inside an `execution:batch`.
Old: bench/baseline_old_polling.py, run against the same database at the same
time, once with the original 3 s interval and once at 1 s (our poller's).
Latency for both = arrival (or broadcast) - executions.extracted_at (written by
the Stage 2 completion, equal to Stage2Complete.timestamp). Missed = never
delivered by the end of a drain period after the last completion.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from typing import Any

import asyncpg

from bench.clients.old_polling import OldPollingBaseline
from bench.clients.recorder import Recorder
from bench.harness.infra import (
    CpuMeter,
    bench_database,
    delete_exchange,
    exchange_name,
    service_env,
)
from bench.harness.stats import summary_ms
from services.demo.generator import make_raw_execution
from services.etl.stage1.ingest import ingest_execution
from shared.db import create_pool
from testkit.gateway import GatewayProcess as Gateway
from testkit.pipeline import etl_worker, poller
from testkit.processes import ProcessGroup

OURS_EVENTS = ("etl:stage2:complete", "execution:batch")
WARM_UP_ID = 1  # proves ETL, relay, poller and gateway are all live before measuring
FIRST_ID = 2


async def warm_up(pool: asyncpg.Pool, recorder: Recorder) -> None:
    await ingest_execution(pool, json.dumps(make_raw_execution(WARM_UP_ID)))
    for event in OURS_EVENTS:
        if not await recorder.wait_for_ids({WARM_UP_ID}, (event,), within_s=60):
            raise TimeoutError(f"warm-up execution never arrived as {event}")


async def ingest_at_rate(
    pool: asyncpg.Pool, count: int, rate: float, max_delay_ms: int, seed: int
) -> None:
    rng = random.Random(seed)
    # Built up front so JPEG rendering does not disturb the pacing.
    raws = [
        json.dumps(make_raw_execution(i, stage2_delay_ms=rng.randint(0, max_delay_ms), seed=seed))
        for i in range(FIRST_ID, FIRST_ID + count)
    ]
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, raw in enumerate(raws):
        await asyncio.sleep(max(0.0, start + i / rate - loop.time()))
        await ingest_execution(pool, raw)


async def wait_all_completed(pool: asyncpg.Pool, count: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        done = await pool.fetchval(
            "SELECT count(*) FROM stage2_jobs WHERE status IN ('completed', 'failed')"
        )
        if done >= count + 1:  # and the warm-up
            return
        await asyncio.sleep(0.2)
    states = await pool.fetch("SELECT status, count(*) FROM stage2_jobs GROUP BY status")
    raise TimeoutError(f"Stage 2 did not finish {count} executions: {[tuple(r) for r in states]}")


def report(delivered: dict[int, float], completed: dict[int, float]) -> dict[str, Any]:
    latencies = [delivered[i] - t for i, t in completed.items() if i in delivered]
    missed = sorted(set(completed) - set(delivered))
    return {
        "completed": len(completed),
        "delivered": len(latencies),
        "missed": len(missed),
        "miss_rate_pct": round(100 * len(missed) / len(completed), 2),
        "missed_ids_sample": missed[:20],
        "latency": summary_ms(latencies),
    }


async def run(
    count: int = 200,
    rate: float = 10.0,
    max_delay_ms: int = 2000,
    baseline_intervals: tuple[float, ...] = (3.0, 1.0),
    drain_s: float = 8.0,
    seed: int = 7,
) -> dict[str, Any]:
    exchange = exchange_name("versus")
    async with bench_database("versus") as database_url:
        pool = await create_pool(database_url, min_size=2, max_size=8)
        env = service_env(database_url, exchange)
        try:
            with ProcessGroup() as group:
                gateway = Gateway(env, heartbeat_interval_s=300)
                group.processes.append(gateway.process)
                await gateway.start()
                etl = group.start(etl_worker(env, etl_concurrency=64))
                poll = group.start(poller(env))
                baselines = [OldPollingBaseline(pool, interval) for interval in baseline_intervals]
                stop = asyncio.Event()
                async with Recorder(f"{gateway.base_url}/api/events") as recorder:
                    await warm_up(pool, recorder)
                    loops = [asyncio.create_task(b.run(stop)) for b in baselines]
                    pids = {"gateway": gateway.pid, "etl": etl.pid, "poller": poll.pid}
                    try:
                        with CpuMeter(pids) as cpu:
                            await ingest_at_rate(pool, count, rate, max_delay_ms, seed)
                            await wait_all_completed(pool, count, within_s=120)
                            await asyncio.sleep(drain_s)
                    finally:
                        stop.set()
                        await asyncio.gather(*loops)
                failed = await pool.fetchval(
                    "SELECT count(*) FROM stage2_jobs WHERE status = 'failed'"
                )
                rows = await pool.fetch(
                    "SELECT id, extract(epoch FROM extracted_at)::float8 AS t FROM executions"
                )
                completed = {r["id"]: r["t"] for r in rows if r["id"] != WARM_UP_ID}
                claimed_by_poller = await pool.fetchval(
                    "SELECT count(*) FROM broadcast_ids WHERE execution_id <> $1", WARM_UP_ID
                )
                out_of_order = await pool.fetchval(
                    """SELECT count(*) FROM (
                           SELECT id, extracted_at,
                                  max(extracted_at) OVER (ORDER BY id ROWS BETWEEN UNBOUNDED
                                      PRECEDING AND 1 PRECEDING) AS newest_before
                           FROM executions WHERE id <> $1) s
                       WHERE extracted_at < newest_before""",
                    WARM_UP_ID,
                )
        finally:
            await pool.close()
            await delete_exchange(exchange)
    ours = report(recorder.first_receipt(OURS_EVENTS), completed)
    ours["by_event"] = {
        event: report(recorder.first_receipt((event,)), completed)["latency"]
        for event in OURS_EVENTS
    }
    old = {f"interval_{b.interval_s:g}s": report(b.broadcast_at, completed) for b in baselines}
    ratios = {
        name: round(result["latency"]["p50_ms"] / ours["latency"]["p50_ms"], 1)
        for name, result in old.items()
        if result["latency"]["count"] and ours["latency"]["p50_ms"]
    }
    return {
        "workload": {
            "executions": count,
            "ingest_rate_per_s": rate,
            "stage2_delay_ms": [0, max_delay_ms],
            "completed_out_of_id_order": out_of_order,
            "claimed_by_poller": claimed_by_poller,
            "stage2_failed": failed,
            "drain_s": drain_s,
        },
        "ours": ours,
        "old_polling": old,
        "median_latency_ratio_old_over_ours": ratios,
        "cpu_pct": cpu.percent,
    }
