"""Stage 2 of n8n executions: real n8n run data, the binary store, and every bad input."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from prometheus_client import REGISTRY

from services.etl.errors import InvalidImage, MalformedExecution
from services.etl.stage2 import steps
from services.etl.stage2.images import ImageLimits
from services.etl.stage2.n8n_extraction import (
    N8nRunFailed,
    N8nStage2Config,
    detections_json,
    process_n8n_execution,
    read_to_end,
)
from services.etl.stage2.n8n_run import NodeNames
from testkit.n8n import runs

SAI = NodeNames()
LIMITS = ImageLimits(max_bytes=5_000_000, max_pixels=40_000_000, thumbnail_px=160)


@pytest.fixture
def binary_dir(tmp_path: Path) -> Path:
    return tmp_path / "n8n-binary"


@pytest.fixture
def image_dir(tmp_path: Path) -> Path:
    return tmp_path / "images"


def process(
    root: dict[str, Any] | str,
    binary_dir: Path,
    image_dir: Path,
    status: str = "success",
    names: NodeNames = SAI,
) -> Any:
    text = root if isinstance(root, str) else runs.text_of(root)
    config = N8nStage2Config(names, binary_dir, webp_max_px=320)
    return process_n8n_execution(7, text, status, config, image_dir, LIMITS)


def test_real_run_data_with_the_frame_in_the_binary_store(
    binary_dir: Path, image_dir: Path
) -> None:
    root = runs.fixture_root()
    runs.place_frame(binary_dir, root, runs.jpeg(640, 480))
    # The fixture's own text, as n8n stored it (not re-encoded).
    run, image = process(runs.fixture_text(runs.SUCCESS), binary_dir, image_dir)
    expected = runs.item(root, "YOLO Inference")["json"]
    assert json.loads(detections_json(run)) == expected["detections"]
    assert (run.has_smoke, run.has_fire, run.alert_level) == (True, True, "low")
    assert run.request_id == expected["request_id"]
    assert run.model_version == "yolov8s-sai-standin-1"
    assert (run.image_width, run.image_height) == (640, 480)
    assert (run.device_id, run.camera_id) == ("sai-cam-node-01", "cam-01-north")
    assert (run.location, run.camera_type) == ("Cerro Negro", "rtsp")
    assert run.captured_at == datetime(2025, 10, 10, 4, 33, 52, tzinfo=UTC)
    assert (run.telegram_sent, run.telegram_message_id) == (False, None)
    assert image is not None
    assert (image_dir / image.image_path).read_bytes() == runs.jpeg(640, 480)
    with Image.open(image_dir / image.webp_path) as webp:
        assert (webp.format, webp.size) == ("WEBP", (320, 240))
    with Image.open(image_dir / image.thumbnail_path) as thumbnail:
        assert max(thumbnail.size) == 160


def test_inline_base64_frame_and_a_telegram_alert(binary_dir: Path, image_dir: Path) -> None:
    root = runs.with_telegram(runs.inline_frame(runs.fixture_root(), runs.jpeg(320, 240)), 4711)
    run, image = process(root, binary_dir, image_dir)
    assert (run.telegram_sent, run.telegram_message_id) == (True, 4711)
    assert image is not None and (image.width, image.height) == (320, 240)


def test_absent_alert_level_is_derived_and_optional_fields_are_null(
    binary_dir: Path, image_dir: Path
) -> None:
    root = runs.inline_frame(runs.fixture_root(), runs.jpeg())
    inference = runs.item(root, "YOLO Inference")["json"]
    for absent in ("alert_level", "request_id", "version", "image_size", "detection_count"):
        del inference[absent]
    del runs.item(root, "Metadata")["json"]["metadata"]["timestamp"]
    run, _ = process(root, binary_dir, image_dir)
    assert run.alert_level == "low"  # best confidence 0.45
    assert (run.request_id, run.model_version, run.image_width, run.captured_at) == (
        None,
        None,
        None,
        None,
    )


def test_node_names_are_configurable(binary_dir: Path, image_dir: Path) -> None:
    root = runs.inline_frame(runs.fixture_root(), runs.jpeg())
    run_data = root["resultData"]["runData"]
    run_data["Detector"] = run_data.pop("YOLO Inference")
    names = NodeNames(inference="Detector")
    run, _ = process(root, binary_dir, image_dir, names=names)
    assert run.has_smoke
    with pytest.raises(MalformedExecution, match="required node 'YOLO Inference' has no output"):
        process(root, binary_dir, image_dir)


@pytest.mark.parametrize(
    ("node", "setting"),
    [
        ("Metadata", "N8N_METADATA_NODE"),
        ("YOLO Inference", "N8N_INFERENCE_NODE"),
        ("Webhook", "N8N_WEBHOOK_NODE"),
    ],
)
def test_a_missing_required_node_is_named(
    binary_dir: Path, image_dir: Path, node: str, setting: str
) -> None:
    root = runs.inline_frame(runs.fixture_root(), runs.jpeg())
    del root["resultData"]["runData"][node]
    with pytest.raises(MalformedExecution) as caught:
        process(root, binary_dir, image_dir)
    assert f"required node {node!r} has no output ({setting} names it)" in str(caught.value)


def test_n8n_error_run_is_a_failure_with_n8ns_status_and_reason(
    binary_dir: Path, image_dir: Path
) -> None:
    with pytest.raises(N8nRunFailed) as caught:
        process(runs.fixture_text(runs.ERROR), binary_dir, image_dir, status="error")
    assert str(caught.value) == (
        "n8n execution ended with status 'error' at node 'YOLO Inference': The service was not "
        "able to process your request (inference backend unavailable (stand-in))"
    )


@pytest.mark.parametrize(
    ("mutate", "error", "message"),
    [
        (
            lambda text, root, bd: text[: len(text) // 2],
            MalformedExecution,
            "n8n run data: flatted: not JSON",
        ),
        (lambda text, root, bd: "", MalformedExecution, "n8n stored none for this execution"),
        (
            lambda text, root, bd: None,
            MalformedExecution,
            "the frame's file is missing from n8n's binary store",
        ),
        (
            lambda text, root, bd: runs.place_frame(bd, root, b"not a jpeg at all") and None,
            InvalidImage,
            "is not an image",
        ),
        (
            lambda text, root, bd: runs.place_frame(bd, root, runs.jpeg()[:600]) and None,
            InvalidImage,
            "image data is corrupt",
        ),
    ],
    ids=["truncated", "empty", "missing-file", "not-an-image", "corrupt-jpeg"],
)
def test_bad_input_is_a_clear_permanent_error(
    binary_dir: Path, image_dir: Path, mutate: Any, error: type[Exception], message: str
) -> None:
    root = runs.fixture_root()
    text = runs.fixture_text(runs.SUCCESS)
    changed = mutate(text, root, binary_dir)
    with pytest.raises(error) as caught:
        process(changed if changed is not None else text, binary_dir, image_dir)
    assert message in str(caught.value)


def test_a_binary_id_naming_a_directory_or_an_oversized_file_is_refused(
    binary_dir: Path, image_dir: Path
) -> None:
    root = runs.fixture_root()
    frame = runs.place_frame(binary_dir, root, runs.jpeg())
    frame.unlink()
    frame.mkdir()
    with pytest.raises(MalformedExecution, match="the frame's binary id names a directory"):
        process(root, binary_dir, image_dir)
    frame.rmdir()
    runs.place_frame(binary_dir, root, b"\xff" * (LIMITS.max_bytes + 1))
    with pytest.raises(InvalidImage, match=r"over the limit of .* \(ETL_MAX_IMAGE_BYTES\)"):
        process(root, binary_dir, image_dir)


def test_read_to_end_reads_a_file_that_grew_after_its_fstat(tmp_path: Path) -> None:
    path = tmp_path / "frame"
    path.write_bytes(b"x" * 3000)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert read_to_end(fd, 3000) == b"x" * 3000
        os.lseek(fd, 0, os.SEEK_SET)
        assert read_to_end(fd, 10) == b"x" * 3000  # a stale, smaller size
    finally:
        os.close(fd)


def test_bad_detection_names_the_field(binary_dir: Path, image_dir: Path) -> None:
    root = runs.inline_frame(runs.fixture_root(), runs.jpeg())
    runs.item(root, "YOLO Inference")["json"]["detections"][1]["confidence"] = 1.5
    with pytest.raises(MalformedExecution) as caught:
        process(root, binary_dir, image_dir)
    assert (
        "node 'YOLO Inference': json.detections.1: confidence: "
        + "Input should be less than or equal to 1"
        in str(caught.value)
    )


def test_binary_ids_cannot_leave_the_store(binary_dir: Path, image_dir: Path) -> None:
    root = runs.fixture_root()
    runs.item(root, "Webhook")["binary"]["image"]["id"] = "filesystem-v2:../../etc/passwd"
    with pytest.raises(MalformedExecution, match="points outside N8N_BINARY_DATA_DIR"):
        process(root, binary_dir, image_dir)


def test_each_step_is_charged_its_cpu_time(binary_dir: Path, image_dir: Path) -> None:
    def charged() -> dict[str, float]:
        return {
            step: REGISTRY.get_sample_value(
                "smokesignal_etl_stage2_step_cpu_seconds_total", {"step": step}
            )
            or 0.0
            for step in steps.STEPS
        }

    root = runs.fixture_root()
    runs.place_frame(binary_dir, root, runs.jpeg(640, 480))
    before = charged()
    process(root, binary_dir, image_dir)
    after = charged()
    # Every step of an n8n execution ran on this thread; the image steps take real CPU.
    assert all(after[step] >= before[step] for step in steps.STEPS)
    assert all(after[step] > before[step] for step in (steps.DECODE, steps.WEBP))
