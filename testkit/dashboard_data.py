"""Play the pipeline's part for the dashboard tests.

The tests write executions rows as Stage 1 and Stage 2 would and build the bus
messages the ETL outbox and the poller would publish; the gateway only forwards
what is on the bus, so the browser sees exactly what production would send.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from shared.contracts import (
    AlertLevel,
    ExecutionBatch,
    ExecutionSummary,
    Stage2Complete,
    Stage2Failed,
)
from shared.executions import SUMMARY_COLUMNS, summary_from_row
from testkit.factories import stage2_complete
from testkit.images import write_execution_images

CAMERAS = {
    "sai-cam-node-03": ("Cerro Catedral", "rtsp"),
    "sai-cam-node-07": ("Valle Encantado", "ip"),
    "sai-cam-node-12": ("Lago Gutiérrez", "usb"),
}


@dataclass(frozen=True)
class Outcome:
    """What Stage 2 extracted from one execution."""

    alert_level: AlertLevel = "none"
    has_smoke: bool = False
    has_fire: bool = False
    detection_count: int = 0
    confidence: float | None = None
    telegram_sent: bool = False
    has_image: bool = True


class Executions:
    def __init__(self, pool: asyncpg.Pool, image_dir: Path) -> None:
        self.pool = pool
        self.image_dir = image_dir
        self._epoch = datetime(2025, 1, 15, 14, 0, tzinfo=UTC)

    async def add_pending(self, execution_id: int, camera_id: str = "sai-cam-node-07") -> None:
        """Stage 1: the metadata row (the trigger queues its Stage 2 job)."""
        location, camera_type = CAMERAS.get(camera_id, (None, None))
        started = self._epoch + timedelta(minutes=execution_id)
        await self.pool.execute(
            """
            INSERT INTO executions
                (id, workflow_id, camera_id, location, camera_type, status,
                 started_at, stopped_at, processing_stage)
            VALUES ($1, 'wf-smoke-detection', $2, $3, $4, 'success', $5, $6, 'stage1')
            """,
            execution_id,
            camera_id,
            location,
            camera_type,
            started,
            started + timedelta(seconds=4),
        )

    async def store_completion(self, execution_id: int, outcome: Outcome) -> None:
        """Stage 2 success as the ETL commits it (results, image files, extracted_at)."""
        if outcome.has_image:
            write_execution_images(
                self.image_dir, execution_id, smoke=outcome.has_smoke, fire=outcome.has_fire
            )
        await self.pool.execute(
            """
            UPDATE executions SET
                processing_stage = 'stage2', has_smoke = $2, has_fire = $3, alert_level = $4,
                detection_count = $5, confidence = $6, telegram_sent = $7,
                image_path = $8, thumbnail_path = $9, extracted_at = now(), stage2_error = NULL
            WHERE id = $1
            """,
            execution_id,
            outcome.has_smoke,
            outcome.has_fire,
            outcome.alert_level,
            outcome.detection_count,
            outcome.confidence,
            outcome.telegram_sent,
            f"{execution_id}.jpg" if outcome.has_image else None,
            f"{execution_id}_thumb.jpg" if outcome.has_image else None,
        )

    async def store_failure(self, execution_id: int, error: str, retry_count: int) -> None:
        await self.pool.execute(
            """
            UPDATE executions
            SET processing_stage = 'failed', stage2_error = $2, retry_count = $3
            WHERE id = $1
            """,
            execution_id,
            error,
            retry_count,
        )

    async def summaries(self, *execution_ids: int) -> list[ExecutionSummary]:
        rows = await self.pool.fetch(
            f"SELECT {SUMMARY_COLUMNS} FROM executions e WHERE e.id = ANY($1) ORDER BY e.id DESC",
            list(execution_ids),
        )
        return [summary_from_row(dict(row.items())) for row in rows]

    async def batch(self, *execution_ids: int) -> ExecutionBatch:
        """The poller's `executions.new` for these (completed) executions."""
        return ExecutionBatch(
            executions=await self.summaries(*execution_ids), timestamp=datetime.now(UTC)
        )


def completion_event(execution_id: int, outcome: Outcome) -> Stage2Complete:
    return stage2_complete(
        execution_id,
        has_smoke=outcome.has_smoke,
        alert_level=outcome.alert_level,
        detection_count=outcome.detection_count,
        has_image=outcome.has_image,
        telegram_sent=outcome.telegram_sent,
        processing_time_ms=1234.0,
    )


def failure_event(execution_id: int, error: str, retry_count: int) -> Stage2Failed:
    return Stage2Failed(
        execution_id=execution_id,
        error=error,
        retry_count=retry_count,
        timestamp=datetime.now(UTC),
    )
