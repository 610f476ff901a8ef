"""Stage 2 job queue in PostgreSQL: claim, renew, release, and finish (complete / fail).

Finishing a job is one transaction that updates the execution, the job and
inserts the event into the outbox, so a state change and its event are never
apart. Every finish first re-checks that this worker still owns the job, so a
worker that lost its lease can never complete a job another worker now holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from services.etl import queries
from services.etl.stage2.images import StoredImage
from shared.contracts import (
    MAX_ERROR_CHARS,
    AlertLevel,
    ExtractedData,
    RoutingKey,
    Stage2Complete,
    Stage2Failed,
    encode,
)
from shared.outbox import OUTBOX_CHANNEL, write_event

# A connection of its own or one borrowed from a pool.
Connection = asyncpg.Connection | PoolConnectionProxy
# Anything that runs single statements.
Executor = asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    execution_id: int
    attempts: int  # including this one
    # The raw execution, fetched by the claim (saves a query per job); None: not
    # fetched or not stored, the worker then asks `load_raw`.
    raw: str | None = field(default=None, repr=False, compare=False)
    # 'raw' (the raw execution JSON) or 'n8n' (n8n's flatted run data).
    source_format: str = "raw"
    # The source's status of the run (n8n: success, error, canceled, crashed).
    source_status: str | None = None
    # The execution's camera as Stage 1 stored it (put on the events for filtered streams).
    camera_id: str | None = None


@dataclass(frozen=True, slots=True)
class Stage2Details:
    # JSON text of [{class, confidence, bbox: {x, y, width, height}}, ...].
    detections_json: str | None = None
    model_version: str | None = None
    request_id: str | None = None
    image_width: int | None = None
    image_height: int | None = None
    telegram_message_id: int | None = None
    # Sources whose Stage 1 cannot know these (n8n) set them here; None keeps Stage 1's.
    captured_at: datetime | None = None
    device_id: str | None = None
    camera_id: str | None = None
    location: str | None = None
    camera_type: str | None = None


@dataclass(frozen=True, slots=True)
class Stage2Result:
    has_smoke: bool
    has_fire: bool
    alert_level: AlertLevel
    detection_count: int
    confidence: float | None
    telegram_sent: bool
    image: StoredImage | None
    # What operators need beyond the summary (migration 0005); None = the source lacks it.
    details: Stage2Details = field(default_factory=lambda: Stage2Details())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    base_s: float
    max_s: float

    def backoff_s(self, attempts: int) -> float:
        """Exponential: base, 2·base, 4·base, … capped at max."""
        return float(min(self.base_s * 2 ** (attempts - 1), self.max_s))


async def claim_jobs(
    conn: Executor, worker_id: str, limit: int, lease_s: float
) -> list[ClaimedJob]:
    """Claim up to `limit` due jobs with their raw executions.

    SKIP LOCKED lets any number of workers do this at once.
    """
    rows = await conn.fetch(
        queries.CLAIM_JOBS,
        limit,
        worker_id,
        lease_s,
    )
    return [
        ClaimedJob(
            r["execution_id"],
            r["attempts"],
            r["payload"],
            r["source_format"] or "raw",
            r["status"],
            r["camera_id"],
        )
        for r in rows
    ]


async def seconds_until_next_due(conn: Executor) -> float | None:
    """When the earliest pending job becomes due (retries wait in the future)."""
    value = await conn.fetchval(queries.SECONDS_UNTIL_NEXT_DUE)
    return None if value is None else max(0.0, float(value))


async def renew_leases(
    conn: Executor,
    worker_id: str,
    execution_ids: list[int],
    lease_s: float,
) -> set[int]:
    """Extend this worker's leases; returns the ids it still owns."""
    rows = await conn.fetch(
        queries.RENEW_LEASES,
        execution_ids,
        worker_id,
        lease_s,
    )
    return {r["execution_id"] for r in rows}


async def release_jobs(conn: Executor, worker_id: str, execution_ids: list[int]) -> int:
    """Hand unfinished jobs back at shutdown; the interrupted attempt does not count."""
    result = await conn.execute(
        queries.RELEASE_JOBS,
        execution_ids,
        worker_id,
    )
    return int(result.split()[-1])


async def load_raw(conn: Executor, job: ClaimedJob) -> ClaimedJob | None:
    """The job with its stored payload (None: nothing stored)."""
    row = await conn.fetchrow(queries.LOAD_RAW, job.execution_id)
    if row is None:
        return None
    return ClaimedJob(
        job.execution_id,
        job.attempts,
        str(row["payload"]),
        row["source_format"],
        row["status"],
        row["camera_id"],
    )


async def _owns(conn: Connection, execution_id: int, worker_id: str) -> bool:
    owned = await conn.fetchval(
        queries.LOCK_OWNED_JOB,
        execution_id,
        worker_id,
    )
    return bool(owned)


async def complete_job(
    conn: Executor,
    job: ClaimedJob,
    worker_id: str,
    result: Stage2Result,
    processing_time_ms: float,
) -> Stage2Complete | None:
    """Mark execution + job completed and queue stage2.complete, atomically.

    Returns None (and changes nothing) when this worker no longer owns the job.
    The event's timestamp (= the execution's extracted_at) is this worker's
    clock just before the statement is sent.
    """
    now = datetime.now(UTC)
    image = result.image
    details = result.details
    event = Stage2Complete(
        execution_id=job.execution_id,
        processing_time_ms=round(processing_time_ms, 3),
        extracted_data=ExtractedData(
            has_smoke=result.has_smoke,
            alert_level=result.alert_level,
            detection_count=result.detection_count,
            has_image=image is not None,
            telegram_sent=result.telegram_sent,
        ),
        timestamp=now,
        camera_id=result.details.camera_id or job.camera_id,
    )
    completed = await conn.fetchval(
        queries.COMPLETE_JOB,
        job.execution_id,
        result.has_smoke,
        result.has_fire,
        result.alert_level,
        result.detection_count,
        result.confidence,
        image.image_path if image else None,
        image.thumbnail_path if image else None,
        result.telegram_sent,
        now,
        job.attempts - 1,  # every earlier attempt failed
        worker_id,
        RoutingKey.STAGE2_COMPLETE.value,
        encode(event).decode(),
        OUTBOX_CHANNEL,
        details.detections_json,
        details.model_version,
        details.request_id,
        details.image_width,
        details.image_height,
        details.telegram_message_id,
        details.captured_at,
        details.device_id,
        details.camera_id,
        details.location,
        details.camera_type,
        image.webp_path if image else None,
    )
    return None if completed is None else event


async def record_failure(
    conn: Connection,
    job: ClaimedJob,
    error: str,
    *,
    permanent: bool,
    policy: RetryPolicy,
) -> tuple[Stage2Failed, bool]:
    """Inside the caller's transaction: schedule a retry or give up; queue stage2.failed.

    Returns the event and whether the job was given up (execution now 'failed').
    """
    final = permanent or job.attempts >= policy.max_attempts
    if final and not permanent:
        error = f"{error} (gave up after {job.attempts} attempts)"
    error = error[:MAX_ERROR_CHARS]
    if final:
        await conn.execute(
            queries.GIVE_UP_JOB,
            job.execution_id,
            error,
        )
    else:
        await conn.execute(
            queries.RETRY_JOB_LATER,
            job.execution_id,
            error,
            policy.backoff_s(job.attempts),
        )
    await conn.execute(
        queries.RECORD_EXECUTION_FAILURE,
        job.execution_id,
        error,
        job.attempts,
        final,
    )
    event = Stage2Failed(
        execution_id=job.execution_id,
        error=error,
        retry_count=job.attempts,
        timestamp=datetime.now(UTC),  # the worker's clock, as for stage2.complete
        camera_id=job.camera_id,
    )
    await write_event(conn, event, job.execution_id)
    return event, final


async def fail_job(
    conn: Connection,
    job: ClaimedJob,
    worker_id: str,
    error: str,
    *,
    permanent: bool,
    policy: RetryPolicy,
) -> tuple[Stage2Failed, bool] | None:
    """A worker's failed attempt; None when it no longer owns the job."""
    async with conn.transaction():
        if not await _owns(conn, job.execution_id, worker_id):
            return None
        return await record_failure(conn, job, error, permanent=permanent, policy=policy)


async def expire_leases(
    conn: Connection, policy: RetryPolicy, limit: int = 100
) -> list[tuple[Stage2Failed, bool]]:
    """Jobs whose worker vanished (crash, kill -9): a failed attempt; back to the queue."""
    async with conn.transaction():
        rows = await conn.fetch(
            queries.EXPIRED_LEASES,
            limit,
        )
        outcomes = []
        for row in rows:
            job = ClaimedJob(row["execution_id"], row["attempts"], camera_id=row["camera_id"])
            error = f"worker {row['locked_by']} stopped before finishing (lease expired)"
            outcomes.append(await record_failure(conn, job, error, permanent=False, policy=policy))
        return outcomes
