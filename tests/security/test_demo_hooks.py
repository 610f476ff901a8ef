"""Issue 19 #3: the raw `demo` block is honoured only by a worker in demo mode.

Before: `demo.stage2_delay_ms` / `demo.transient_failures` in an ordinary
ingested file were honoured: 16 executions with a 90 s delay filled a worker's
slots and a normal execution behind them waited 90 s. Now a worker without
ETL_DEMO_MODE ignores the block (processes the execution normally) and records
that: a warning naming the execution and a metric.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import asyncpg

from services.demo.generator import make_raw_execution
from services.etl.stage1.ingest import ingest_execution
from testkit.processes import ServiceProcess

WAIT_S = 60.0  # deadlock guard: with the hooks honoured this would take ten minutes


async def _processed(pool: asyncpg.Pool, ids: list[int]) -> list[asyncpg.Record]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while True:
        rows = await pool.fetch(
            "SELECT id, processing_stage, retry_count FROM executions"
            " WHERE id = ANY($1) AND processing_stage <> 'stage1' ORDER BY id",
            ids,
        )
        if len(rows) == len(ids):
            return rows
        assert loop.time() < deadline, f"only {[r['id'] for r in rows]} of {ids} processed"
        await asyncio.sleep(0.1)


def _worker_env(service_env: dict[str, str], tmp_path: Path, demo_mode: str) -> dict[str, str]:
    return {
        **service_env,
        "IMAGE_DIR": str(tmp_path / "images"),
        "METRICS_PORT": "0",
        "ETL_CONCURRENCY": "4",
        "ETL_RETRY_BASE_S": "0.05",
        "ETL_RETRY_MAX_S": "0.1",
        "ETL_POLL_INTERVAL_S": "0.2",
        "ETL_DEMO_MODE": demo_mode,
    }


async def test_without_demo_mode_the_demo_block_is_ignored_and_recorded(
    service_env: dict[str, str],
    service_process: Callable[..., ServiceProcess],
    db_pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    # More stalling executions than the worker has slots, then a normal one.
    hostile = list(range(1, 9))
    for execution_id in hostile:
        raw = make_raw_execution(execution_id, stage2_delay_ms=600_000, transient_failures=2)
        await ingest_execution(db_pool, json.dumps(raw))
    await ingest_execution(db_pool, json.dumps(make_raw_execution(100)))
    env = {**_worker_env(service_env, tmp_path, demo_mode="")}
    del env["ETL_DEMO_MODE"]  # the default: off
    worker = service_process(["services.etl", "worker"], env, name="etl")

    rows = await _processed(db_pool, [*hostile, 100])

    # Processed as ordinary executions: completed at the first attempt, no delay.
    assert {(r["processing_stage"], r["retry_count"]) for r in rows} == {("stage2", 0)}
    output = worker.output()
    assert output.count("demo block ignored: ETL_DEMO_MODE is off") == len(hostile), output[-3000:]


async def test_in_demo_mode_the_demo_block_is_honoured(
    service_env: dict[str, str],
    service_process: Callable[..., ServiceProcess],
    db_pool: asyncpg.Pool,
    tmp_path: Path,
) -> None:
    raw = make_raw_execution(7, stage2_delay_ms=50, transient_failures=2)
    await ingest_execution(db_pool, json.dumps(raw))
    service_process(
        ["services.etl", "worker"], _worker_env(service_env, tmp_path, "true"), name="etl"
    )
    [row] = await _processed(db_pool, [7])
    assert (row["processing_stage"], row["retry_count"]) == ("stage2", 2)  # two planned failures
