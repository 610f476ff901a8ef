"""Message contracts: the only definition of what travels on the bus and over SSE.

The AMQP body of each message is exactly the SSE ``data:`` payload of the event
contracts table in README.md; the schema version travels in the ``schema_version`` AMQP header,
so the gateway can forward the validated body untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1

AlertLevel = Literal["none", "low", "medium", "high", "critical"]
ALERT_LEVELS: tuple[AlertLevel, ...] = ("none", "low", "medium", "high", "critical")
ProcessingStage = Literal["stage1", "stage2", "failed"]
PROCESSING_STAGES: tuple[ProcessingStage, ...] = ("stage1", "stage2", "failed")

# Byte bounds (docs/RELIABILITY.md, "Limits"): a message is checked against
# MAX_MESSAGE_BYTES before it is parsed, and every text field has a length bound,
# so no valid message can be large enough to hurt a consumer or its replay buffer.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_TEXT_CHARS = 500  # ids, names, statuses (the raw format's own bound)
MAX_ERROR_CHARS = 1000  # a Stage 2 error as users see it
MAX_REASON_CHARS = 2000  # an operator's false-positive reason
MAX_BATCH_EXECUTIONS = 500  # one executions.new batch (POLLER_BATCH_SIZE is at most this)

# PostgreSQL's BIGINT: an id beyond it can name no execution.
MAX_EXECUTION_ID = 2**63 - 1
ExecutionId = Annotated[int, Field(ge=1, le=MAX_EXECUTION_ID)]
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]
Confidence = Annotated[float, Field(ge=0.0, le=1.0)]
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
Reason = Annotated[str, Field(max_length=MAX_REASON_CHARS)]


class Contract(BaseModel):
    """Strict base: wrong types are errors (no coercion), unknown fields are errors,
    and so are non-finite numbers (NaN, Infinity, 1e999): they are not JSON, and a
    browser would drop the whole event."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


class ExecutionSummary(Contract):
    """One execution as the dashboard renders it (REST and `execution:batch`)."""

    id: ExecutionId
    workflow_id: Text
    camera_id: Text
    location: Text | None = None
    camera_type: Text | None = None
    status: Text
    started_at: datetime
    stopped_at: datetime | None = None
    processing_stage: ProcessingStage
    has_smoke: bool | None = None
    has_fire: bool | None = None
    alert_level: AlertLevel | None = None
    detection_count: Count | None = None
    confidence: Confidence | None = None
    has_image: bool = False
    telegram_sent: bool | None = None
    extracted_at: datetime | None = None
    stage2_error: Annotated[str, Field(max_length=MAX_ERROR_CHARS)] | None = None
    retry_count: Count = 0
    # Migration 0005; null for sources (or old rows) that lack them.
    captured_at: datetime | None = None
    device_id: Text | None = None
    # Operator triage (migration 0020): the current mark and acknowledgement.
    false_positive: bool = False
    false_positive_reason: Reason | None = None
    false_positive_by: Text | None = None
    false_positive_at: datetime | None = None
    acknowledged_by: Text | None = None
    acknowledged_at: datetime | None = None
    # Counts triage changes; a higher revision is newer knowledge of the fields above.
    triage_revision: Count = 0


class BoundingBox(Contract):
    """Pixels, origin top-left of the original image."""

    x: Annotated[float, Field(ge=0)]
    y: Annotated[float, Field(ge=0)]
    width: Annotated[float, Field(gt=0)]
    height: Annotated[float, Field(gt=0)]


class Detection(Contract):
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True
    )

    class_: Literal["fire", "smoke"] = Field(alias="class")
    confidence: Confidence
    bbox: BoundingBox


class ExecutionDetail(ExecutionSummary):
    """One execution with everything operators need (REST `GET /api/executions/{id}`)."""

    detections: Annotated[list[Detection], Field(max_length=1000)] | None = None
    model_version: Text | None = None
    request_id: Text | None = None
    image_width: Annotated[int, Field(ge=1)] | None = None
    image_height: Annotated[int, Field(ge=1)] | None = None
    telegram_message_id: int | None = None
    # The source workflow's own status (n8n: success, error, canceled, crashed, …).
    source_status: Text | None = None
    has_webp: bool = False


class ExecutionBatch(Contract):
    """`executions.new` → SSE `execution:batch`."""

    executions: Annotated[
        list[ExecutionSummary], Field(min_length=1, max_length=MAX_BATCH_EXECUTIONS)
    ]
    timestamp: datetime


class ExtractedData(Contract):
    has_smoke: bool
    alert_level: AlertLevel | None
    detection_count: Count
    has_image: bool
    telegram_sent: bool


class Stage2Complete(Contract):
    """`stage2.complete` → SSE `etl:stage2:complete` (seed: SSEStage2CompletionEvent)."""

    execution_id: ExecutionId
    stage: Literal["stage2"] = "stage2"
    processing_time_ms: Annotated[float, Field(ge=0, le=7 * 24 * 3600 * 1000)]
    extracted_data: ExtractedData
    # Commit time of the Stage 2 transaction; the latency benchmark measures from here.
    timestamp: datetime
    # The execution's camera, so filtered SSE streams (?camera=) can route the event.
    camera_id: str | None = None


class Stage2Failed(Contract):
    """`stage2.failed` → SSE `etl:stage2:failed` (seed: SSEStage2FailureEvent)."""

    execution_id: ExecutionId
    stage: Literal["stage2"] = "stage2"
    error: Annotated[str, Field(min_length=1, max_length=MAX_ERROR_CHARS)]
    retry_count: Count
    timestamp: datetime
    # The execution's camera when known (filtered SSE streams route by it).
    camera_id: str | None = None


TriageAction = Literal["mark_false_positive", "unmark_false_positive", "acknowledge"]
TRIAGE_ACTIONS: tuple[TriageAction, ...] = (
    "mark_false_positive",
    "unmark_false_positive",
    "acknowledge",
)
# Bulk requests (and so one `execution.updated` message) cover at most this many.
MAX_BULK_EXECUTIONS = 500


class TriageState(Contract):
    """An execution's operator state after a change (the columns of migration 0020)."""

    execution_id: ExecutionId
    false_positive: bool
    false_positive_reason: Reason | None = None
    false_positive_by: Text | None = None
    false_positive_at: datetime | None = None
    acknowledged_by: Text | None = None
    acknowledged_at: datetime | None = None
    triage_revision: Count


class ExecutionUpdated(Contract):
    """`execution.updated` → SSE `execution:updated`: one operator action on executions.

    Written to the outbox in the transaction that changes the rows, so it has
    the same delivery, replay and resume guarantees as the Stage 2 events.
    """

    action: TriageAction
    actor: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
    reason: Reason | None = None
    executions: Annotated[list[TriageState], Field(min_length=1, max_length=MAX_BULK_EXECUTIONS)]
    timestamp: datetime


BusMessage = ExecutionBatch | Stage2Complete | Stage2Failed | ExecutionUpdated


class RoutingKey(StrEnum):
    EXECUTIONS_NEW = "executions.new"
    STAGE2_COMPLETE = "stage2.complete"
    STAGE2_FAILED = "stage2.failed"
    EXECUTION_UPDATED = "execution.updated"


@dataclass(frozen=True, slots=True)
class EventSpec:
    routing_key: RoutingKey
    sse_event: str
    model: type[BusMessage]


# The one place that maps routing keys to SSE event names and payload models.
EVENTS: dict[RoutingKey, EventSpec] = {
    spec.routing_key: spec
    for spec in (
        EventSpec(RoutingKey.EXECUTIONS_NEW, "execution:batch", ExecutionBatch),
        EventSpec(RoutingKey.STAGE2_COMPLETE, "etl:stage2:complete", Stage2Complete),
        EventSpec(RoutingKey.STAGE2_FAILED, "etl:stage2:failed", Stage2Failed),
        EventSpec(RoutingKey.EXECUTION_UPDATED, "execution:updated", ExecutionUpdated),
    )
}
ROUTING_KEY_BY_MODEL: dict[type[BusMessage], RoutingKey] = {
    spec.model: key for key, spec in EVENTS.items()
}

# SSE-only control events (never on the bus).
SSE_CONNECTION = "connection"
SSE_HEARTBEAT = "heartbeat"
SSE_RESET = "reset"
# The stream's last event when the viewer's session (or bearer JWT) expires: sign in again,
# then reconnect with Last-Event-ID to miss nothing.
SSE_SESSION_EXPIRED = "session:expired"


class ContractError(ValueError):
    """A message that does not satisfy its contract (goes to the dead-letter queue)."""


def spec_for(routing_key: str) -> EventSpec:
    try:
        return EVENTS[RoutingKey(routing_key)]
    except ValueError:
        raise ContractError(f"unknown routing key {routing_key!r}") from None


def decode(routing_key: str, body: bytes, schema_version: object) -> BusMessage:
    """Validate a bus message; raise ContractError naming what is wrong."""
    spec = spec_for(routing_key)
    if len(body) > MAX_MESSAGE_BYTES:
        raise ContractError(
            f"{routing_key} message of {len(body)} bytes is over the {MAX_MESSAGE_BYTES} byte bound"
        )
    if schema_version != SCHEMA_VERSION:
        raise ContractError(
            f"unsupported schema_version {schema_version!r} (expected {SCHEMA_VERSION})"
        )
    try:
        return spec.model.model_validate_json(body)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise ContractError(f"invalid {routing_key} payload: {exc}") from exc


def encode(message: BusMessage) -> bytes:
    return message.model_dump_json().encode()
