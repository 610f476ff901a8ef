"""Statistics API and export at 1M executions, through the real gateway process.

The table is bulk-filled (triggers off) with `size` executions over 30 days, 24
cameras in 8 locations, every alert level, ~2 % false positives; the roll-ups are
rebuilt with `execution_stats_rebuild()`, then `pending` more Stage 2 completions go
through the real triggers and stay uncompacted (the gateway's compactor is
running, as in production), so reads cover both roll-up tables and the live edges.

Each case is one HTTP GET timed end to end (`repeats` after 3 warm-ups). The peer in
the same run: the plain `count(*)` over `executions` that a count without roll-ups
would run, for the same filters. Export: the whole table as CSV, streamed; the
gateway's RSS is sampled while it streams.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

from bench.harness.infra import bench_database, delete_exchange, exchange_name, rss_kib, service_env
from bench.harness.stats import summary_ms
from testkit.gateway import GatewayProcess as Gateway

FILL_SQL = """
    INSERT INTO executions (id, workflow_id, camera_id, location, camera_type, status,
                            started_at, stopped_at, processing_stage, has_smoke, has_fire,
                            alert_level, detection_count, confidence, telegram_sent,
                            extracted_at, false_positive)
    SELECT i, 'sai-smoke-detection', 'sai-cam-node-' || lpad((i % 24)::text, 2, '0'),
           'Lugar ' || (i % 8), 'rtsp', 'success', t, t + interval '4 seconds',
           CASE WHEN i % 200 = 0 THEN 'failed' ELSE 'stage2' END,
           i % 3 = 0, i % 11 = 0,
           CASE WHEN i % 200 = 0 THEN NULL
                ELSE (ARRAY['none','none','none','low','medium','high','critical'])[i % 7 + 1]
           END,
           i % 4, 0.3 + (i % 70) / 100.0, i % 7 = 0, t + interval '9 seconds', i % 50 = 0
    FROM (SELECT i, $3::timestamptz - interval '30 days' * (1 - i::float8 / $2) AS t
          FROM generate_series($1::bigint, $2::bigint) AS i) AS s
"""
PENDING_SQL = """
    INSERT INTO executions (id, workflow_id, camera_id, location, status, started_at)
    SELECT i, 'sai-smoke-detection', 'sai-cam-node-' || lpad((i % 24)::text, 2, '0'),
           'Lugar ' || (i % 8), 'success', $3::timestamptz - interval '1 minute' * (i - $1)
    FROM generate_series($1::bigint, $2::bigint) AS i
"""
COMPLETE_SQL = """
    UPDATE executions SET processing_stage = 'stage2', alert_level = 'high', has_smoke = true,
           detection_count = 2, confidence = 0.8, extracted_at = now()
    WHERE id BETWEEN $1 AND $2
"""


def cases(now: datetime) -> list[tuple[str, str, dict[str, Any]]]:
    day_ago = (now - timedelta(hours=24, minutes=17)).isoformat()
    week_ago = (now - timedelta(days=7, minutes=3)).isoformat()
    levels = {"alert_level": ["high", "critical"]}
    return [
        ("count, no filter", "/api/stats/count", {}),
        ("count, last 24 h (partial hours)", "/api/stats/count", {"since": day_ago}),
        (
            "count, 2 levels + camera, 30 d",
            "/api/stats/count",
            {**levels, "camera": "sai-cam-node-05"},
        ),
        ("summary, 30 d", "/api/stats/summary", {}),
        (
            "summary, false positives, 7 d",
            "/api/stats/summary",
            {"false_positive": "true", "since": week_ago},
        ),
        (
            "timeseries per hour, 7 d",
            "/api/stats/timeseries",
            {"interval": "hour", "since": week_ago},
        ),
        (
            "timeseries per day, 30 d, tz",
            "/api/stats/timeseries",
            {"interval": "day", "tz": "America/Argentina/Cordoba"},
        ),
        (
            "timeseries per week, 30 d, smoke",
            "/api/stats/timeseries",
            {"interval": "week", "has_smoke": "true"},
        ),
        ("ranking cameras by smoke, 30 d", "/api/stats/ranking", {"by": "camera"}),
        (
            "ranking locations by FP, 7 d",
            "/api/stats/ranking",
            {"by": "location", "order": "false_positives", "since": week_ago},
        ),
    ]


PEER_SQL = {
    "count, no filter": ("SELECT count(*) FROM executions", []),
    "count, 2 levels + camera, 30 d": (
        "SELECT count(*) FROM executions WHERE alert_level = ANY($1) AND camera_id = $2",
        [["high", "critical"], "sai-cam-node-05"],
    ),
}


async def timed_get(http: httpx.AsyncClient, path: str, params: dict[str, Any]) -> float:
    started = time.perf_counter()
    response = await http.get(path, params=params)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


async def export_run(http: httpx.AsyncClient, pid: int) -> dict[str, Any]:
    rss_before = rss_kib(pid)
    peak = rss_before
    rows = 0
    started = time.perf_counter()
    async with http.stream("GET", "/api/export", params={"format": "csv"}) as response:
        response.raise_for_status()
        async for chunk in response.aiter_bytes():
            rows += chunk.count(b"\n")
            peak = max(peak, rss_kib(pid))
    elapsed = time.perf_counter() - started
    return {
        "rows": rows - 1,
        "seconds": round(elapsed, 1),
        "rows_per_s": round((rows - 1) / elapsed),
        "gateway_rss_before_mib": round(rss_before / 1024, 1),
        "gateway_rss_peak_mib": round(peak / 1024, 1),
    }


async def run(
    size: int = 1_000_000, pending: int = 2_000, repeats: int = 20, export: bool = True
) -> dict[str, Any]:
    now = datetime.now(UTC)
    exchange = exchange_name("stats")
    async with bench_database("stats") as url:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
        fill_started = time.monotonic()
        async with pool.acquire() as conn:
            await conn.execute("SET session_replication_role = replica")
            try:
                await conn.execute(FILL_SQL, 1, size, now)
            finally:
                await conn.execute("SET session_replication_role = DEFAULT")
            groups = await conn.fetchval("SELECT execution_stats_rebuild()")
            await conn.execute("VACUUM ANALYZE executions")
            await conn.execute("VACUUM ANALYZE execution_stats_hourly")
            fill_s = time.monotonic() - fill_started
            # Recent activity through the real triggers, left for the compactor/readers.
            await conn.execute(PENDING_SQL, size + 1, size + pending, now)
            await conn.execute(COMPLETE_SQL, size + 1, size + pending // 2)
        gateway = await Gateway(service_env(url, exchange)).start()
        results: list[dict[str, Any]] = []
        try:
            async with httpx.AsyncClient(base_url=gateway.base_url, timeout=600) as http:
                for name, path, params in cases(now):
                    for _ in range(3):
                        await timed_get(http, path, params)
                    samples = [await timed_get(http, path, params) for _ in range(repeats)]
                    entry: dict[str, Any] = {"case": name, "api": summary_ms(samples)}
                    if name in PEER_SQL:
                        sql, args = PEER_SQL[name]
                        peer = []
                        for _ in range(max(3, repeats // 4)):
                            started = time.perf_counter()
                            await pool.fetchval(sql, *args)
                            peer.append(time.perf_counter() - started)
                        entry["peer_plain_count_sql"] = summary_ms(peer)
                    results.append(entry)
                    print(f"[bench stats] {name}: {entry['api']}", flush=True)
                exported = await export_run(http, gateway.pid) if export else None
        finally:
            gateway.stop()
            await pool.close()
            await delete_exchange(exchange)
    return {
        "executions": size + pending,
        "rollup_groups": groups,
        "fill_and_rebuild_s": round(fill_s, 1),
        "repeats": repeats,
        "cases": results,
        "export_csv": exported,
    }
