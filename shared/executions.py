"""Reading executions as ExecutionSummary: one query shape for the poller and the gateway."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from shared.contracts import ExecutionSummary

# Column list for SELECTs that feed summary_from_row (table alias `e`).
SUMMARY_COLUMNS = """
    e.id, e.workflow_id, e.camera_id, e.location, e.camera_type, e.status,
    e.started_at, e.stopped_at, e.processing_stage, e.has_smoke, e.has_fire,
    e.alert_level, e.detection_count, e.confidence,
    (e.image_path IS NOT NULL) AS has_image,
    e.telegram_sent, e.extracted_at, e.stage2_error, e.retry_count
"""


def summary_from_row(row: Mapping[str, Any] | asyncpg.Record) -> ExecutionSummary:
    return ExecutionSummary.model_validate(dict(row))
