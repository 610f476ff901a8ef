"""Poller cycle time with 10k / 100k / 1M executions in the table.

The table is filled with generate_series (triggers off for the bulk load) to
the steady state a long-running system is in: every execution completed,
spread over the last 20 hours (all inside the 24 h look-back, the worst case
for a look-back scan) and already in broadcast_ids. Then, at each size:
  - idle cycles: `poll_once` (the poller's real cycle, bus publish included)
    with nothing new to broadcast;
  - busy cycles: `batch` new completions committed (through the real
    triggers) before each cycle, which claims and publishes them.
EXPLAIN (ANALYZE, BUFFERS) of the claim statement at each size shows the plan.
For reference, the plain anti-join the design started from is timed too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg

from bench.harness.infra import bench_database, delete_exchange, exchange_name, service_env
from bench.harness.stats import summary_ms
from services.poller.queries import CLAIM_SQL
from services.poller.tick import poll_once
from shared.bus import Bus
from shared.db import create_pool
from shared.settings import PollerSettings
from testkit.explain import explain

FILL_SQL = """
    INSERT INTO executions (id, workflow_id, camera_id, location, camera_type, status,
                            started_at, stopped_at, processing_stage, has_smoke, has_fire,
                            alert_level, detection_count, confidence, image_path,
                            thumbnail_path, telegram_sent, extracted_at, created_at)
    SELECT i, 'sai-smoke-detection', 'sai-cam-node-0' || (i % 6 + 1), 'Lago Puelo', 'rtsp',
           'success', t - interval '2 seconds', t - interval '1 second', 'stage2',
           i % 3 = 0, i % 11 = 0,
           (ARRAY['none','low','medium','high','critical'])[i % 5 + 1],
           i % 4, 0.5 + (i % 50) / 100.0, 'images/' || i || '.jpg',
           'images/' || i || '_thumb.jpg', i % 7 = 0, t, t
    FROM (SELECT i, now() - interval '20 hours' * (1 - i::float8 / $2) AS t
          FROM generate_series($1::bigint, $2::bigint) AS i) AS s
"""
FILL_BROADCAST_SQL = """
    INSERT INTO broadcast_ids (execution_id, broadcast_at)
    SELECT id, extracted_at + interval '1 second' FROM executions WHERE id BETWEEN $1 AND $2
"""
NEW_COMPLETION_SQL = """
    INSERT INTO executions (id, workflow_id, camera_id, status, started_at, stopped_at,
                            processing_stage, has_smoke, alert_level, detection_count,
                            telegram_sent, extracted_at)
    SELECT i, 'sai-smoke-detection', 'sai-cam-node-01', 'success', now(), now(), 'stage2',
           false, 'none', 0, false, clock_timestamp()
    FROM generate_series($1::bigint, $2::bigint) AS i
"""
# The anti-join without the backlog table (what a poller without it would run).
NAIVE_ANTI_JOIN_SQL = """
    SELECT e.id FROM executions e
    WHERE e.extracted_at >= now() - make_interval(secs => $1)
      AND NOT EXISTS (SELECT 1 FROM broadcast_ids b WHERE b.execution_id = e.id)
    ORDER BY e.extracted_at, e.id
    LIMIT $2
"""


async def fill(pool: asyncpg.Pool, first: int, last: int) -> float:
    started = time.monotonic()
    async with pool.acquire() as conn:
        # Bulk load of the steady state: no Stage 2 jobs, no backlog, no NOTIFY.
        await conn.execute("SET session_replication_role = replica")
        try:
            await conn.execute(FILL_SQL, first, last)
            await conn.execute(FILL_BROADCAST_SQL, first, last)
        finally:
            await conn.execute("SET session_replication_role = DEFAULT")
        await conn.execute("VACUUM ANALYZE executions")
        await conn.execute("VACUUM ANALYZE broadcast_ids")
        await conn.execute("VACUUM ANALYZE broadcast_backlog")
    return time.monotonic() - started


async def explain_on(pool: asyncpg.Pool, sql: str, *args: object) -> list[str]:
    async with pool.acquire() as conn:
        return await explain(conn, sql, *args)


async def timed_cycles(
    pool: asyncpg.Pool,
    bus: Bus,
    settings: PollerSettings,
    cycles: int,
    new_per_cycle: int,
    next_id: int,
) -> tuple[list[float], int]:
    times: list[float] = []
    for _ in range(cycles):
        if new_per_cycle:
            await pool.execute(NEW_COMPLETION_SQL, next_id, next_id + new_per_cycle - 1)
            next_id += new_per_cycle
        started = time.perf_counter()
        published = await poll_once(pool, bus, settings)
        times.append(time.perf_counter() - started)
        assert len(published) == new_per_cycle, (len(published), new_per_cycle)
    return times, next_id


async def run(
    sizes: tuple[int, ...] = (10_000, 100_000, 1_000_000), cycles: int = 40, batch: int = 20
) -> dict[str, Any]:
    exchange = exchange_name("poller")
    settings = PollerSettings(exchange_name=exchange)
    results = []
    async with bench_database("poller") as database_url:
        pool = await create_pool(database_url, min_size=1, max_size=4)
        bus = Bus(service_env(database_url, exchange)["AMQP_URL"], exchange)
        await bus.connect()
        try:
            filled = 0
            next_id = 10_000_000  # new completions: above every filled id
            for size in sizes:
                fill_s = await fill(pool, filled + 1, size)
                filled = size
                idle, next_id = await timed_cycles(pool, bus, settings, cycles, 0, next_id)
                busy, next_id = await timed_cycles(pool, bus, settings, cycles, batch, next_id)
                await pool.execute(NEW_COMPLETION_SQL, next_id, next_id + batch - 1)
                next_id += batch
                plan = await explain_on(
                    pool, CLAIM_SQL, float(settings.poller_lookback_s), settings.poller_batch_size
                )
                await poll_once(pool, bus, settings)  # claim those for real
                naive_started = time.perf_counter()
                await pool.fetch(
                    NAIVE_ANTI_JOIN_SQL,
                    float(settings.poller_lookback_s),
                    settings.poller_batch_size,
                )
                naive_s = time.perf_counter() - naive_started
                results.append(
                    {
                        "executions": size,
                        "fill_s": round(fill_s, 1),
                        "idle_cycle": summary_ms(idle),
                        "cycle_with_batch": summary_ms(busy),
                        "batch": batch,
                        "claim_plan": plan,
                        "naive_anti_join_ms": round(naive_s * 1000, 2),
                    }
                )
        finally:
            await bus.close()
            await pool.close()
            await delete_exchange(exchange)
    return {"cycles_per_size": cycles, "sizes": results}


if __name__ == "__main__":
    import json

    print(json.dumps(asyncio.run(run(sizes=(10_000,), cycles=5)), indent=1))
