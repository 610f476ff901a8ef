"""Contract messages for tests: one factory per message, values overridable."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.contracts import AlertLevel, ExtractedData, Stage2Complete


def stage2_complete(
    execution_id: int,
    *,
    has_smoke: bool = True,
    alert_level: AlertLevel | None = "high",
    detection_count: int = 2,
    has_image: bool = True,
    telegram_sent: bool = False,
    processing_time_ms: float = 12.5,
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
        timestamp=datetime.now(UTC),
    )
