from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.contracts import (
    EVENTS,
    SCHEMA_VERSION,
    ContractError,
    ExecutionBatch,
    ExecutionSummary,
    ExecutionUpdated,
    RoutingKey,
    Stage2Complete,
    Stage2Failed,
    TriageState,
    decode,
    encode,
)
from testkit.factories import stage2_complete

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def summary(**overrides: object) -> ExecutionSummary:
    fields: dict[str, object] = {
        "id": 200,
        "workflow_id": "sai-smoke-detection",
        "camera_id": "sai-cam-node-07",
        "location": "Cerro Catedral",
        "camera_type": "rtsp",
        "status": "success",
        "started_at": NOW,
        "stopped_at": NOW,
        "processing_stage": "stage2",
        "has_smoke": True,
        "has_fire": False,
        "alert_level": "high",
        "detection_count": 2,
        "confidence": 0.91,
        "has_image": True,
        "telegram_sent": True,
        "extracted_at": NOW,
    }
    fields.update(overrides)
    return ExecutionSummary(**fields)  # type: ignore[arg-type]


def complete() -> Stage2Complete:
    return stage2_complete(201, alert_level="critical", detection_count=3, timestamp=NOW)


@pytest.mark.parametrize(
    "message",
    [
        ExecutionBatch(executions=[summary(), summary(id=201, alert_level=None)], timestamp=NOW),
        complete(),
        Stage2Failed(execution_id=7, error="image is not a JPEG", retry_count=2, timestamp=NOW),
        ExecutionUpdated(
            action="mark_false_positive",
            actor="ana",
            reason="fog",
            executions=[
                TriageState(
                    execution_id=7,
                    false_positive=True,
                    false_positive_reason="fog",
                    false_positive_by="ana",
                    false_positive_at=NOW,
                    triage_revision=1,
                )
            ],
            timestamp=NOW,
        ),
    ],
)
def test_round_trip_through_the_bus_encoding(message) -> None:
    key = next(k for k, spec in EVENTS.items() if spec.model is type(message))
    assert decode(key, encode(message), SCHEMA_VERSION) == message


def test_stage2_payloads_have_exactly_the_seed_fields() -> None:
    body = json.loads(encode(complete()))
    # camera_id is the one addition: optional, for routing filtered SSE streams.
    assert set(body) - {"camera_id"} == {
        "execution_id",
        "stage",
        "processing_time_ms",
        "extracted_data",
        "timestamp",
    }
    assert body["stage"] == "stage2"
    assert set(body["extracted_data"]) == {
        "has_smoke",
        "alert_level",
        "detection_count",
        "has_image",
        "telegram_sent",
    }
    failed = json.loads(
        encode(Stage2Failed(execution_id=1, error="x", retry_count=0, timestamp=NOW))
    )
    assert set(failed) - {"camera_id"} == {
        "execution_id",
        "stage",
        "error",
        "retry_count",
        "timestamp",
    }


def test_routing_keys_map_to_the_sse_event_names() -> None:
    assert {k.value: s.sse_event for k, s in EVENTS.items()} == {
        "executions.new": "execution:batch",
        "stage2.complete": "etl:stage2:complete",
        "stage2.failed": "etl:stage2:failed",
        "execution.updated": "execution:updated",
    }


def _complete_json(**changes: object) -> bytes:
    body = json.loads(encode(complete()))
    for path, value in changes.items():
        target = body
        *parents, leaf = path.split("__")
        for parent in parents:
            target = target[parent]
        target[leaf] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (_complete_json(extracted_data__alert_level="extreme"), "alert_level"),
        (_complete_json(extracted_data__detection_count=-1), "detection_count"),
        (_complete_json(execution_id="201"), "execution_id"),
        (_complete_json(extracted_data__has_smoke="yes"), "has_smoke"),
        (_complete_json(stage="stage1"), "stage"),
        (_complete_json(surprise=1), "surprise"),
        (_complete_json(timestamp="yesterday"), "timestamp"),
        (b"not json at all", "invalid"),
        (b"[]", "invalid"),
    ],
)
def test_bad_payloads_are_rejected_naming_the_problem(body: bytes, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        decode(RoutingKey.STAGE2_COMPLETE, body, SCHEMA_VERSION)


def test_unknown_schema_version_and_routing_key_are_rejected() -> None:
    with pytest.raises(ContractError, match="schema_version"):
        decode(RoutingKey.STAGE2_COMPLETE, encode(complete()), 99)
    with pytest.raises(ContractError, match="routing key"):
        decode("stage3.complete", encode(complete()), SCHEMA_VERSION)


def test_batch_must_not_be_empty_and_summaries_are_strict() -> None:
    with pytest.raises(ValueError):
        ExecutionBatch(executions=[], timestamp=NOW)
    with pytest.raises(ValueError):
        summary(retry_count=-1)
    with pytest.raises(ValueError):
        summary(confidence=1.5)
    with pytest.raises(ValueError):
        summary(processing_stage="stage3")
