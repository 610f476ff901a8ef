from __future__ import annotations

import json
from typing import Any

import pytest

from services.demo.generator import CAMERAS, make_raw_execution
from services.etl.errors import MalformedExecution
from services.etl.stage1.raw_format import parse_envelope, parse_execution


def dumps(raw: dict[str, Any]) -> str:
    return json.dumps(raw)


def test_generated_execution_is_a_valid_raw_execution() -> None:
    raw = make_raw_execution(7, camera=1, scenario="fire-and-smoke")
    execution = parse_execution(dumps(raw))
    assert execution.execution_id == 7
    assert execution.metadata.device_id == CAMERAS[1].device_id
    assert execution.inference.has_smoke and execution.inference.has_fire
    assert execution.inference.detection_count == 2
    assert execution.inference.confidence == max(
        d["confidence"] for d in raw["inference"]["detections"]
    )
    assert execution.image is not None
    assert execution.demo is None


def test_unknown_fields_are_ignored() -> None:
    raw = make_raw_execution(1)
    raw["n8n_extra"] = {"anything": True}
    raw["inference"]["extra"] = 1
    assert parse_execution(dumps(raw)).execution_id == 1


def test_envelope_validation_ignores_the_stage2_part() -> None:
    raw = make_raw_execution(3)
    del raw["inference"]
    raw["image"] = "garbage"
    assert parse_envelope(dumps(raw)).execution_id == 3
    with pytest.raises(MalformedExecution, match=r"inference: Field required"):
        parse_execution(dumps(raw))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["metadata"].pop("device_id"), r"metadata\.device_id: Field required"),
        (lambda r: r.update(execution_id=0), r"execution_id: Input should be greater than"),
        (lambda r: r["metadata"].update(camera_type="webcam"), r"metadata\.camera_type"),
        (lambda r: r.update(started_at="2024-05-01T10:00:00"), r"started_at: .*timezone"),
        (lambda r: r.update(status="exploded"), r"status: Input should be"),
        (lambda r: r.update(stopped_at="2000-01-01T00:00:00Z"), r"stopped_at is before"),
    ],
)
def test_bad_envelope_names_the_field(mutate: Any, message: str) -> None:
    raw = make_raw_execution(5)
    mutate(raw)
    with pytest.raises(MalformedExecution, match=message):
        parse_envelope(dumps(raw))


def smoky() -> dict[str, Any]:
    return make_raw_execution(9, camera=0, scenario="smoke")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda r: r["inference"]["detections"][0].update(confidence=1.5),
            r"inference\.detections\.0\.confidence: Input should be less than or equal to 1",
        ),
        (
            lambda r: r["inference"]["detections"][0].update(confidence="0.5"),
            r"inference\.detections\.0\.confidence: Input should be a valid number",
        ),
        (
            lambda r: r["inference"]["detections"][0].update({"class": "fog"}),
            r"inference\.detections\.0\.class: Input should be 'fire' or 'smoke'",
        ),
        (
            lambda r: r["inference"].update(alert_level="severe"),
            r"inference\.alert_level: Input should be 'none', 'low'",
        ),
        (lambda r: r["inference"].update(detection_count=3), r"detection_count is 3 but"),
        (lambda r: r["inference"].update(has_smoke=False), r"has_smoke is False but"),
        (lambda r: r["image"].update(mime_type="image/gif"), r"image\.mime_type"),
        (lambda r: r["telegram"].update(sent="yes"), r"telegram\.sent: Input should be"),
        (lambda r: r.update(demo={"transient_failures": -1}), r"demo\.transient_failures"),
    ],
)
def test_bad_stage2_data_names_the_field(mutate: Any, message: str) -> None:
    raw = smoky()
    mutate(raw)
    with pytest.raises(MalformedExecution, match=message):
        parse_execution(dumps(raw))


def test_invalid_json_is_a_clear_error() -> None:
    with pytest.raises(MalformedExecution, match=r"\(document\): Invalid JSON"):
        parse_envelope('{"execution_id": 1')
    with pytest.raises(MalformedExecution, match=r"\(document\): Input should be an object"):
        parse_envelope("[1, 2]")


def test_telegram_block_is_optional_and_defaults_to_not_sent() -> None:
    raw = make_raw_execution(4)
    del raw["telegram"]
    assert parse_execution(dumps(raw)).telegram.sent is False
