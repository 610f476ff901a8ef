"""Stage 2 end to end inside one process: ingest → worker → outbox → relay → bus."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

import asyncpg
import pytest
from PIL import Image
from prometheus_client import REGISTRY

from services.etl.stage2 import jobs
from services.etl.stage2.jobs import RetryPolicy
from services.etl.stage2.worker import Stage2Worker, WorkerConfig
from shared.contracts import ExtractedData, RoutingKey, Stage2Complete, Stage2Failed
from shared.db import create_pool
from shared.settings import EtlSettings
from testkit.etl import EventLog, ingest, running_etl
from testkit.waiting import wait_until


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_valid_execution_completes_with_the_exact_event(
    db_pool: asyncpg.Pool, etl_settings: EtlSettings, events: EventLog, image_dir: Path
) -> None:
    completed_before = sample("smokesignal_etl_jobs_completed_total")
    raw = await ingest(db_pool, 1, camera=1, scenario="fire-and-smoke", telegram_sent=True)
    async with running_etl(etl_settings) as service:
        await events.wait_completed([1], alive=[service])

    row = await db_pool.fetchrow("SELECT * FROM executions WHERE id = 1")
    assert row is not None
    inference = raw["inference"]
    assert row["processing_stage"] == "stage2"
    assert row["has_smoke"] is True and row["has_fire"] is True
    assert row["alert_level"] == inference["alert_level"]
    assert row["detection_count"] == 2
    assert row["confidence"] == max(d["confidence"] for d in inference["detections"])
    assert row["telegram_sent"] is True
    assert row["stage2_error"] is None and row["retry_count"] == 0
    assert row["image_path"] == "originals/0/1.jpg"
    assert row["thumbnail_path"] == "thumbnails/0/1.jpg"
    with Image.open(image_dir / row["thumbnail_path"]) as thumbnail:
        assert max(thumbnail.size) == etl_settings.etl_thumbnail_px
    assert (image_dir / row["image_path"]).stat().st_size > 1000
    # Migration 0005: what operators need, kept from the raw format.
    assert json.loads(row["detections"]) == inference["detections"]
    assert row["model_version"] == inference["model_version"]
    assert row["request_id"] == inference["request_id"]
    assert (row["image_width"], row["image_height"]) == (
        inference["image_width"],
        inference["image_height"],
    )
    assert row["telegram_message_id"] == raw["telegram"]["message_id"]
    assert row["device_id"] == raw["metadata"]["device_id"]
    assert row["captured_at"] == datetime.fromisoformat(raw["metadata"]["captured_at"])
    assert row["source_status"] == raw["status"]

    (delivery,) = events.deliveries
    assert delivery.routing_key == RoutingKey.STAGE2_COMPLETE
    assert delivery.message_id is not None and delivery.message_id.startswith("outbox-")
    event = delivery.message
    assert isinstance(event, Stage2Complete)
    assert event == Stage2Complete(
        execution_id=1,
        processing_time_ms=event.processing_time_ms,
        extracted_data=ExtractedData(
            has_smoke=True,
            alert_level=inference["alert_level"],
            detection_count=2,
            has_image=True,
            telegram_sent=True,
        ),
        timestamp=row["extracted_at"],  # the completing worker's clock, stored with it
        camera_id=row["camera_id"],  # filtered SSE streams route by it
    )
    assert event.camera_id
    assert event.processing_time_ms > 0
    job = await db_pool.fetchrow("SELECT * FROM stage2_jobs WHERE execution_id = 1")
    assert job is not None
    assert (job["status"], job["attempts"], job["locked_by"]) == ("completed", 1, None)
    assert await db_pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
    assert sample("smokesignal_etl_jobs_completed_total") == completed_before + 1


async def test_execution_without_image_completes_with_has_image_false(
    db_pool: asyncpg.Pool, etl_settings: EtlSettings, events: EventLog
) -> None:
    await ingest(db_pool, 2, scenario="clear", with_image=False)
    async with running_etl(etl_settings) as service:
        await events.wait_completed([2], alive=[service])
    event = events.deliveries[0].message
    assert isinstance(event, Stage2Complete)
    assert event.extracted_data.has_image is False
    assert event.extracted_data.alert_level == "none"
    assert await db_pool.fetchval("SELECT image_path FROM executions WHERE id = 2") is None


@pytest.mark.parametrize(
    ("defect", "cause"),
    [
        ("bad_base64", "image.data_base64 is not valid base64"),
        ("not_an_image", "image.data_base64 is not an image"),
        ("missing_field", "malformed raw execution: inference.alert_level: Field required"),
    ],
)
async def test_bad_execution_fails_fast_naming_the_cause(
    db_pool: asyncpg.Pool,
    etl_settings: EtlSettings,
    events: EventLog,
    defect: str,
    cause: str,
) -> None:
    await ingest(db_pool, 3, scenario="smoke", defect=defect)
    await ingest(db_pool, 4)  # a good one alongside: the bad one stops nothing
    async with running_etl(etl_settings) as service:
        await events.wait_for(
            lambda ds: len(ds) == 2 and RoutingKey.STAGE2_FAILED in {d.routing_key for d in ds},
            "one failure and one completion",
            alive=[service],
        )
    (failed,) = events.for_execution(3)
    assert failed.routing_key == RoutingKey.STAGE2_FAILED
    event = failed.message
    assert isinstance(event, Stage2Failed)
    assert cause in event.error
    assert event.retry_count == 1
    assert events.kinds(4) == [RoutingKey.STAGE2_COMPLETE]

    row = await db_pool.fetchrow("SELECT * FROM executions WHERE id = 3")
    assert row is not None
    assert row["processing_stage"] == "failed"
    assert row["stage2_error"] == event.error
    assert row["retry_count"] == 1
    assert row["extracted_at"] is None
    job = await db_pool.fetchrow("SELECT * FROM stage2_jobs WHERE execution_id = 3")
    assert job is not None
    assert (job["status"], job["attempts"], job["last_error"]) == ("failed", 1, event.error)


async def test_transient_failures_are_retried_and_retry_count_rises(
    db_pool: asyncpg.Pool, etl_settings: EtlSettings, events: EventLog
) -> None:
    await ingest(db_pool, 5, transient_failures=2)  # max attempts is 3
    async with running_etl(etl_settings) as service:
        await events.wait_completed([5], alive=[service])
    deliveries = events.for_execution(5)
    assert [d.routing_key for d in deliveries] == [
        RoutingKey.STAGE2_FAILED,
        RoutingKey.STAGE2_FAILED,
        RoutingKey.STAGE2_COMPLETE,
    ]
    failures = [d.message for d in deliveries[:2]]
    assert [f.retry_count for f in failures] == [1, 2]  # type: ignore[union-attr]
    assert "demo transient failure (attempt 1 of 2" in failures[0].error  # type: ignore[union-attr]
    row = await db_pool.fetchrow("SELECT * FROM executions WHERE id = 5")
    assert row is not None
    assert (row["processing_stage"], row["retry_count"], row["stage2_error"]) == ("stage2", 2, None)
    assert await db_pool.fetchval("SELECT attempts FROM stage2_jobs WHERE execution_id = 5") == 3


async def test_transient_failure_on_the_last_attempt_fails_the_execution(
    db_pool: asyncpg.Pool, etl_settings: EtlSettings, events: EventLog
) -> None:
    await ingest(db_pool, 6, transient_failures=10)
    async with running_etl(etl_settings) as service:
        await events.wait_for(lambda ds: len(ds) == 3, "three failures", alive=[service])
        # No fourth attempt is ever made.
        assert await db_pool.fetchval("SELECT status FROM stage2_jobs") == "failed"
    failures = [d.message for d in events.deliveries]
    assert all(isinstance(f, Stage2Failed) for f in failures)
    assert [f.retry_count for f in failures] == [1, 2, 3]  # type: ignore[union-attr]
    assert failures[-1].error.endswith("(gave up after 3 attempts)")  # type: ignore[union-attr]
    row = await db_pool.fetchrow("SELECT processing_stage, retry_count FROM executions")
    assert row is not None
    assert (row["processing_stage"], row["retry_count"]) == ("failed", 3)


async def test_slow_stage2_completes_out_of_order(
    db_pool: asyncpg.Pool, etl_settings: EtlSettings, events: EventLog
) -> None:
    await ingest(db_pool, 10, stage2_delay_ms=1500)
    await ingest(db_pool, 11)
    async with running_etl(etl_settings) as service:
        await events.wait_completed([10, 11], alive=[service])
    order = [d.message.execution_id for d in events.deliveries]  # type: ignore[union-attr]
    assert order == [11, 10]


async def test_two_workers_never_process_the_same_job(
    database_url: str, db_pool: asyncpg.Pool, etl_settings: EtlSettings
) -> None:
    count = 40
    for execution_id in range(1, count + 1):
        await ingest(db_pool, execution_id, stage2_delay_ms=(execution_id * 37) % 60)
    config = WorkerConfig.from_settings(etl_settings)
    pools = [await create_pool(database_url, 1, 5) for _ in range(2)]
    workers = [Stage2Worker(pool, config, worker_id=f"w{i}") for i, pool in enumerate(pools)]
    stop = asyncio.Event()
    tasks = [asyncio.create_task(w.run(stop)) for w in workers]
    try:

        async def all_done() -> bool:
            return bool(
                await db_pool.fetchval(
                    "SELECT count(*) = $1 FROM stage2_jobs WHERE status = 'completed'", count
                )
            )

        await wait_until(all_done, "all jobs completed", alive=tasks)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for pool in pools:
            await pool.close()
    assert await db_pool.fetchval("SELECT max(attempts) FROM stage2_jobs") == 1
    per_execution = await db_pool.fetch(
        """SELECT execution_id, count(*) AS n FROM outbox
           WHERE routing_key = 'stage2.complete' GROUP BY execution_id"""
    )
    assert len(per_execution) == count and {r["n"] for r in per_execution} == {1}


async def test_crashed_workers_job_is_reclaimed_after_its_lease(
    db_pool: asyncpg.Pool, etl_settings: EtlSettings, events: EventLog
) -> None:
    await ingest(db_pool, 20)
    # A worker that claims the job and then vanishes (never renews, never finishes).
    (claimed,) = await jobs.claim_jobs(db_pool, "ghost", 1, lease_s=0.5)
    assert claimed.attempts == 1
    async with running_etl(etl_settings) as service:
        await events.wait_completed([20], alive=[service])
    failed, completed = events.for_execution(20)
    assert isinstance(failed.message, Stage2Failed)
    assert failed.message.retry_count == 1
    assert "worker ghost stopped before finishing (lease expired)" in failed.message.error
    assert completed.routing_key == RoutingKey.STAGE2_COMPLETE
    assert await db_pool.fetchval("SELECT attempts FROM stage2_jobs") == 2
    assert await db_pool.fetchval("SELECT retry_count FROM executions") == 1


async def test_a_worker_that_lost_its_lease_cannot_finish_the_job(
    db_pool: asyncpg.Pool, etl_settings: EtlSettings
) -> None:
    await ingest(db_pool, 30)
    policy = RetryPolicy(3, 0.0, 0.0)
    (slow,) = await jobs.claim_jobs(db_pool, "slow", 1, lease_s=0.01)
    await asyncio.sleep(0.05)
    async with db_pool.acquire() as conn:
        assert len(await jobs.expire_leases(conn, policy)) == 1
    (fresh,) = await jobs.claim_jobs(db_pool, "fresh", 1, lease_s=30)
    result = jobs.Stage2Result(True, False, "low", 1, 0.4, False, None)
    async with db_pool.acquire() as conn:
        assert await jobs.complete_job(conn, slow, "slow", result, 1.0) is None
        # ...and changed nothing: no execution result, no stage2.complete event.
        assert await conn.fetchval("SELECT extracted_at FROM executions") is None
        assert (
            await conn.fetchval("SELECT count(*) FROM outbox WHERE routing_key = 'stage2.complete'")
            == 0
        )
        assert await jobs.fail_job(conn, slow, "slow", "x", permanent=True, policy=policy) is None
        assert await jobs.renew_leases(conn, "slow", [30], 30) == set()
        assert await jobs.complete_job(conn, fresh, "fresh", result, 1.0) is not None
    assert await db_pool.fetchval("SELECT processing_stage FROM executions") == "stage2"


async def test_a_completion_racing_a_lease_expiry_loses_cleanly(
    db_pool: asyncpg.Pool,
) -> None:
    """The completion waits on the expiry's row lock, re-checks ownership, and does nothing."""
    await ingest(db_pool, 31)
    policy = RetryPolicy(3, 0.0, 0.0)
    (job,) = await jobs.claim_jobs(db_pool, "late", 1, lease_s=0.01)
    await asyncio.sleep(0.05)
    result = jobs.Stage2Result(True, False, "low", 1, 0.4, False, None)
    async with db_pool.acquire() as expiring, expiring.transaction():
        # The expiry holds the job's row lock until it commits...
        await expiring.execute("SELECT 1 FROM stage2_jobs WHERE execution_id = 31 FOR UPDATE")
        completion = asyncio.create_task(jobs.complete_job(db_pool, job, "late", result, 1.0))
        await asyncio.sleep(0.2)
        assert not completion.done()  # ...so the completion waits for it
        assert len(await jobs.expire_leases(expiring, policy)) == 1
    assert await completion is None
    row = await db_pool.fetchrow(
        "SELECT status, locked_by FROM stage2_jobs WHERE execution_id = 31"
    )
    assert row is not None and (row["status"], row["locked_by"]) == ("pending", None)
    assert await db_pool.fetchval("SELECT extracted_at FROM executions") is None
    keys = await db_pool.fetch("SELECT routing_key FROM outbox ORDER BY id")
    assert [r["routing_key"] for r in keys] == ["stage2.failed"]


async def test_slow_jobs_filling_most_slots_do_not_hold_back_the_next_job(
    db_pool: asyncpg.Pool, etl_settings: EtlSettings, events: EventLog
) -> None:
    """A busy worker gathers free slots to claim several jobs at once, but only briefly."""
    # Four slots, claimed two at a time; at the end the slow jobs are released.
    settings = etl_settings.model_copy(update={"etl_concurrency": 4, "etl_shutdown_grace_s": 0.1})
    for execution_id in (50, 51, 52):  # three of the four slots, for a minute
        await ingest(db_pool, execution_id, with_image=False, stage2_delay_ms=60_000)
    async with running_etl(settings) as service:
        await wait_until(
            lambda: db_pool.fetchval(
                "SELECT count(*) = 3 FROM stage2_jobs WHERE status = 'processing'"
            ),
            "the three slow jobs to be claimed",
            alive=[service],
        )
        # One slot is free, fewer than a claim batch: the job is claimed anyway.
        await ingest(db_pool, 53, with_image=False)
        await events.wait_completed([53], alive=[service])
        assert (
            await db_pool.fetchval("SELECT count(*) FROM stage2_jobs WHERE status = 'processing'")
            == 3
        )


async def test_shutdown_releases_jobs_that_do_not_finish_within_the_grace_period(
    db_pool: asyncpg.Pool, etl_settings: EtlSettings
) -> None:
    await ingest(db_pool, 40, stage2_delay_ms=60_000)
    config = WorkerConfig.from_settings(
        etl_settings.model_copy(update={"etl_shutdown_grace_s": 0.2})
    )
    worker = Stage2Worker(db_pool, config)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))

    async def claimed() -> bool:
        return bool(await db_pool.fetchval("SELECT status = 'processing' FROM stage2_jobs"))

    await wait_until(claimed, "job claimed", alive=[task])
    stop.set()
    await asyncio.wait_for(task, 30)
    job = await db_pool.fetchrow("SELECT * FROM stage2_jobs")
    assert job is not None
    # Back in the queue, and the interrupted attempt does not count.
    assert (job["status"], job["attempts"], job["locked_by"]) == ("pending", 0, None)
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_shutdown_lets_in_flight_jobs_finish_and_publishes_their_events(
    db_pool: asyncpg.Pool, etl_settings: EtlSettings, events: EventLog
) -> None:
    await ingest(db_pool, 50, stage2_delay_ms=500)
    async with running_etl(etl_settings) as service:

        async def claimed() -> bool:
            return bool(await db_pool.fetchval("SELECT status = 'processing' FROM stage2_jobs"))

        await wait_until(claimed, "job claimed", alive=[service])
    # Leaving the block stopped the service; it finished the job and flushed the outbox.
    assert await db_pool.fetchval("SELECT status FROM stage2_jobs") == "completed"
    assert await db_pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
    await events.wait_completed([50])
