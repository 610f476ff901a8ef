"""Contract messages for tests: one factory per message, values overridable."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.contracts import AlertLevel, ExecutionSummary, ExtractedData, Stage2Complete


def stage2_complete(
    execution_id: int,
    *,
    has_smoke: bool = True,
    alert_level: AlertLevel | None = "high",
    detection_count: int = 2,
    has_image: bool = True,
    telegram_sent: bool = False,
    processing_time_ms: float = 12.5,
    timestamp: datetime | None = None,
) -> Stage2Complete:
    return Stage2Complete(
        execution_id=execution_id,
        processing_time_ms=processing_time_ms,
        extracted_data=ExtractedData(
            has_smoke=has_smoke,
            alert_level=alert_level,
            detection_count=detection_count,
            has_image=has_image,
            telegram_sent=telegram_sent,
        ),
        timestamp=timestamp or datetime.now(UTC),
    )


def execution_summary(execution_id: int, **overrides: Any) -> ExecutionSummary:
    """A completed execution as REST and `executions.new` show it; any field overridable."""
    now = datetime.now(UTC)
    fields: dict[str, Any] = {
        "id": execution_id,
        "workflow_id": "wf-smoke",
        "camera_id": "sai-cam-node-07",
        "status": "success",
        "started_at": now,
        "processing_stage": "stage2",
        "has_smoke": False,
        "alert_level": "none",
        "detection_count": 0,
        "has_image": True,
        "telegram_sent": False,
        "extracted_at": now,
    }
    fields.update(overrides)
    return ExecutionSummary(**fields)
