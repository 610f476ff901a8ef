"""The raw execution: the detection workflow's JSON, as Stage 1 and Stage 2 read it.

Stage 1 (ingest) validates only the envelope (ids, status, times, camera
metadata); Stage 2 validates the whole document. Unknown fields are ignored so
the workflow may add data, but every documented field is checked strictly (no
string-to-number coercion). The format is documented in docs/ETL.md.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, Self
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from services.etl.errors import MalformedExecution
from shared.contracts import AlertLevel, Confidence, Count, ExecutionId

CameraType = Literal["rtsp", "usb", "ip"]
DetectionClass = Literal["fire", "smoke"]
DetectionMode = Literal["smoke-only", "fire-only", "fire-and-smoke"]
# n8n execution statuses.
ExecutionStatus = Literal["success", "error", "canceled", "crashed", "running", "waiting", "new"]
ImageMimeType = Literal["image/jpeg", "image/png", "image/webp"]

# Text PostgreSQL can store: no NUL character (a JSON "\u0000" passes JSON parsing).
NonEmptyStr = Annotated[str, Field(min_length=1, max_length=500, pattern=r"^[^\x00]*$")]


def _storable(value: datetime) -> datetime:
    """A time PostgreSQL's driver can send: one that exists in UTC, years 1-9999.

    `0001-01-01T00:00:00+05:00` is valid ISO 8601 but falls in year 0 in UTC.
    """
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            "time is outside the range that can be stored (years 1-9999 UTC)"
        ) from None


StorableTime = Annotated[AwareDatetime, AfterValidator(_storable)]
Pixels = Annotated[float, Field(ge=0)]
PositivePixels = Annotated[float, Field(gt=0)]


class RawModel(BaseModel):
    # No NaN / Infinity / 1e999: they are not JSON, and would travel on into events.
    model_config = ConfigDict(
        strict=True, extra="ignore", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class ExecutionMetadata(RawModel):
    device_id: NonEmptyStr
    location: NonEmptyStr | None = None
    camera_type: CameraType
    captured_at: StorableTime


class RawEnvelope(RawModel):
    """What Stage 1 checks before it stores an execution."""

    execution_id: ExecutionId
    workflow_id: NonEmptyStr
    status: ExecutionStatus
    started_at: StorableTime
    stopped_at: StorableTime | None = None
    metadata: ExecutionMetadata

    @model_validator(mode="after")
    def _stopped_after_started(self) -> Self:
        if self.stopped_at is not None and self.stopped_at < self.started_at:
            raise ValueError("stopped_at is before started_at")
        return self


class BoundingBox(RawModel):
    """Pixels, origin top-left."""

    x: Pixels
    y: Pixels
    width: PositivePixels
    height: PositivePixels


class Detection(RawModel):
    class_: DetectionClass = Field(alias="class")
    confidence: Confidence
    bbox: BoundingBox


class Inference(RawModel):
    """YOLO output for the execution's image."""

    request_id: UUID
    detections: Annotated[list[Detection], Field(max_length=1000)]
    detection_count: Count
    has_fire: bool
    has_smoke: bool
    alert_level: AlertLevel
    detection_mode: DetectionMode
    # Highest confidence per detected class.
    confidences: dict[DetectionClass, Confidence]
    image_width: Annotated[int, Field(ge=1)]
    image_height: Annotated[int, Field(ge=1)]
    inference_time_ms: Annotated[float, Field(ge=0)]
    model_version: NonEmptyStr

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.detection_count != len(self.detections):
            raise ValueError(
                f"detection_count is {self.detection_count} but detections has "
                f"{len(self.detections)} entries"
            )
        classes = {d.class_ for d in self.detections}
        if self.has_smoke != ("smoke" in classes):
            raise ValueError(f"has_smoke is {self.has_smoke} but detections disagree")
        if self.has_fire != ("fire" in classes):
            raise ValueError(f"has_fire is {self.has_fire} but detections disagree")
        return self

    @property
    def confidence(self) -> float | None:
        """The execution's confidence: its best detection (None without detections)."""
        return max((d.confidence for d in self.detections), default=None)


class RawImage(RawModel):
    mime_type: ImageMimeType
    data_base64: Annotated[str, Field(min_length=1)]


class Telegram(RawModel):
    sent: bool
    chat_id: NonEmptyStr | None = None
    message_id: int | None = None
    sent_at: StorableTime | None = None


class DemoOptions(RawModel):
    """Demo/test only: makes Stage 2 slow or flaky on purpose, deterministically."""

    stage2_delay_ms: Annotated[int, Field(ge=0, le=600_000)] = 0
    transient_failures: Annotated[int, Field(ge=0, le=100)] = 0


class RawExecution(RawEnvelope):
    """The whole document, as Stage 2 reads it."""

    image: RawImage | None = None
    inference: Inference
    telegram: Telegram = Telegram(sent=False)
    demo: DemoOptions | None = None


def describe_validation_error(exc: ValidationError, limit: int = 5) -> str:
    """`field.path: problem; …` — short enough for a dashboard, precise enough to fix."""
    parts = []
    for error in exc.errors()[:limit]:
        location = ".".join(str(part) for part in error["loc"]) or "(document)"
        parts.append(f"{location}: {error['msg']}")
    if exc.error_count() > limit:
        parts.append(f"and {exc.error_count() - limit} more")
    return "; ".join(parts)


def parse_envelope(raw: str | bytes) -> RawEnvelope:
    """Stage 1 validation; raises MalformedExecution naming the bad field."""
    try:
        return RawEnvelope.model_validate_json(raw)
    except ValidationError as exc:
        raise MalformedExecution(
            f"malformed raw execution: {describe_validation_error(exc)}"
        ) from None


def parse_execution(raw: str | bytes) -> RawExecution:
    """Stage 2 validation of the whole document; raises MalformedExecution."""
    try:
        return RawExecution.model_validate_json(raw)
    except ValidationError as exc:
        raise MalformedExecution(
            f"malformed raw execution: {describe_validation_error(exc)}"
        ) from None
