"""Executions rows written with plain SQL, as Stage 1 / Stage 2 would leave them (REST tests)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

T0 = datetime(2025, 8, 1, 12, 0, tzinfo=UTC)


async def insert_execution(pool: asyncpg.Pool, execution_id: int, **fields: Any) -> None:
    row: dict[str, Any] = {
        "id": execution_id,
        "workflow_id": "wf-smoke",
        "camera_id": "sai-cam-node-01",
        "status": "success",
        "started_at": T0 + timedelta(minutes=execution_id),
        "processing_stage": "stage1",
    }
    row.update(fields)
    columns = ", ".join(row)
    params = ", ".join(f"${i}" for i in range(1, len(row) + 1))
    await pool.execute(f"INSERT INTO executions ({columns}) VALUES ({params})", *row.values())


def completed(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "processing_stage": "stage2",
        "has_smoke": False,
        "has_fire": False,
        "alert_level": "none",
        "detection_count": 0,
        "confidence": 0.0,
        "telegram_sent": False,
        "extracted_at": T0 + timedelta(hours=1),
    }
    base.update(fields)
    return base
