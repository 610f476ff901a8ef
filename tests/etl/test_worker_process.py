"""`python -m services.etl worker` as a real process: kill -9 mid-job, and SIGTERM."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import httpx
import pytest

from shared.contracts import RoutingKey, Stage2Failed
from shared.settings import EtlSettings
from testkit.etl import EventLog, fast_env, ingest
from testkit.net import free_port
from testkit.processes import ServiceProcess
from testkit.waiting import wait_until

WorkerStarter = Callable[..., ServiceProcess]


@pytest.fixture
def start_worker(
    etl_settings: EtlSettings,
    service_env: dict[str, str],
    service_process: Callable[..., ServiceProcess],
) -> WorkerStarter:
    """Factory: `start_worker(name, **environment)` -> a started `services.etl worker` with
    the fast test settings (stopped by `service_process` at teardown)."""

    def start(name: str = "etl", **environment: str) -> ServiceProcess:
        env = {**service_env, **fast_env(etl_settings), **environment}
        return service_process(["services.etl", "worker"], env, name=name)

    return start


async def logged(worker: ServiceProcess, line: str) -> None:
    """Wait until the worker has logged `line` (it fails at once if the worker exits)."""
    await asyncio.to_thread(worker.wait_for_output, line)


async def test_kill_9_mid_job_then_another_worker_completes_it_after_the_lease(
    db_pool: asyncpg.Pool, start_worker: WorkerStarter, events: EventLog
) -> None:
    await ingest(db_pool, 1, stage2_delay_ms=1500)
    first = start_worker("etl-1")
    await logged(first, '"stage2 job claimed"')
    first.kill()
    job = await db_pool.fetchrow("SELECT * FROM stage2_jobs")
    assert job is not None
    assert (job["status"], job["attempts"]) == ("processing", 1)

    second = start_worker("etl-2")
    await events.wait_completed([1])
    failed, completed = events.for_execution(1)
    assert isinstance(failed.message, Stage2Failed)
    assert "lease expired" in failed.message.error
    assert failed.message.retry_count == 1
    assert completed.routing_key == RoutingKey.STAGE2_COMPLETE
    row = await db_pool.fetchrow("SELECT * FROM stage2_jobs")
    assert row is not None
    assert (row["status"], row["attempts"]) == ("completed", 2)
    assert await db_pool.fetchval("SELECT processing_stage FROM executions") == "stage2"
    assert await asyncio.to_thread(second.terminate) == 0


async def test_sigterm_finishes_the_in_flight_job_and_exits_cleanly(
    db_pool: asyncpg.Pool, start_worker: WorkerStarter, events: EventLog
) -> None:
    port = free_port()
    # Long enough that the gauge read and the SIGTERM land inside the job on a loaded machine
    # (800 ms was not: the job had finished before the metrics were read).
    await ingest(db_pool, 7, stage2_delay_ms=3000)
    worker = start_worker(ETL_METRICS_PORT=str(port))
    await logged(worker, '"stage2 job claimed"')
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
    assert "smokesignal_etl_jobs_in_flight 1.0" in metrics
    assert "smokesignal_etl_outbox_lag_seconds" in metrics
    assert await asyncio.to_thread(worker.terminate) == 0
    assert await db_pool.fetchval("SELECT status FROM stage2_jobs") == "completed"
    assert await db_pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
    await events.wait_completed([7])
    assert '"etl worker stopped"' in worker.output()


async def test_worker_applies_migrations_at_start_up(
    empty_database_url: str, start_worker: WorkerStarter
) -> None:
    worker = start_worker(DATABASE_URL=empty_database_url)
    await logged(worker, '"etl worker started"')
    conn = await asyncpg.connect(empty_database_url)
    try:

        async def migrated() -> bool:
            return bool(await conn.fetchval("SELECT to_regclass('stage2_jobs') IS NOT NULL"))

        await wait_until(migrated, "migrations applied")
    finally:
        await conn.close()
    assert await asyncio.to_thread(worker.terminate) == 0
