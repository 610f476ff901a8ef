"""Reading executions as ExecutionSummary: one query shape for the poller and the gateway."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import asyncpg

from shared.contracts import ExecutionDetail, ExecutionSummary

# Column list for SELECTs that feed summary_from_row (table alias `e`).
SUMMARY_COLUMNS = """
    e.id, e.workflow_id, e.camera_id, e.location, e.camera_type, e.status,
    e.started_at, e.stopped_at, e.processing_stage, e.has_smoke, e.has_fire,
    e.alert_level, e.detection_count, e.confidence,
    (e.image_path IS NOT NULL) AS has_image,
    e.telegram_sent, e.extracted_at, e.stage2_error, e.retry_count,
    e.captured_at, e.device_id,
    e.false_positive, e.false_positive_reason, e.false_positive_by, e.false_positive_at,
    e.acknowledged_by, e.acknowledged_at, e.triage_revision
"""

# SUMMARY_COLUMNS plus what the detail view needs (migration 0005).
DETAIL_COLUMNS = (
    SUMMARY_COLUMNS
    + """,
    e.detections, e.model_version, e.request_id, e.image_width, e.image_height,
    e.telegram_message_id, e.source_status, (e.webp_path IS NOT NULL) AS has_webp
"""
)


def summary_from_row(row: Mapping[str, Any] | asyncpg.Record) -> ExecutionSummary:
    return ExecutionSummary.model_validate(dict(row))


def detail_from_row(row: Mapping[str, Any] | asyncpg.Record) -> ExecutionDetail:
    fields = dict(row)
    # JSONB arrives as text (no codec registered); validated like any contract field.
    detections = fields.pop("detections")
    fields["detections"] = None if detections is None else json.loads(detections)
    return ExecutionDetail.model_validate(fields, by_alias=True)
