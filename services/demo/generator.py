"""Demo executions: what the detection workflow would post, from several cameras.

`make_raw_execution` builds one raw execution (a JSON-ready dict) with a real
JPEG; `run_generator` ingests a stream of them at a given rate, optionally slow
(out-of-order Stage 2), flaky (transient failures) or permanently broken.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import asyncpg

from services.demo.scenes import SCENARIOS, Picture, Scenario, render_picture
from services.etl.stage1.ingest import ingest_execution, next_execution_id

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Camera:
    device_id: str
    location: str
    camera_type: Literal["rtsp", "usb", "ip"]
    detection_mode: Literal["smoke-only", "fire-only", "fire-and-smoke"]


CAMERAS: tuple[Camera, ...] = (
    Camera("sai-cam-node-01", "Cerro Catedral", "rtsp", "smoke-only"),
    Camera("sai-cam-node-02", "Valle de Uco", "ip", "fire-and-smoke"),
    Camera("sai-cam-node-03", "Sierra de la Ventana", "usb", "smoke-only"),
    Camera("sai-cam-node-04", "Lago Puelo", "rtsp", "fire-and-smoke"),
    Camera("sai-cam-node-05", "Quebrada de Humahuaca", "ip", "smoke-only"),
    Camera("sai-cam-node-07", "Bosque Peralta Ramos", "rtsp", "fire-and-smoke"),
)
WORKFLOW_ID = "sai-smoke-detection"
MODEL_VERSION = "yolov8s-smoke-2024.06"

# Permanently bad inputs: each passes Stage 1 and fails Stage 2 with a clear error.
Defect = Literal["bad_base64", "not_an_image", "truncated_image", "missing_field", "bad_value"]
DEFECTS: tuple[Defect, ...] = (
    "bad_base64",
    "not_an_image",
    "truncated_image",
    "missing_field",
    "bad_value",
)
ALERT_ORDER = ("none", "low", "medium", "high", "critical")


def _camera(camera: int | str | None, execution_id: int) -> tuple[int, Camera]:
    if camera is None:
        index = execution_id % len(CAMERAS)
    elif isinstance(camera, int):
        index = camera % len(CAMERAS)
    else:
        matches = [i for i, c in enumerate(CAMERAS) if c.device_id == camera]
        if not matches:
            known = ", ".join(c.device_id for c in CAMERAS)
            raise ValueError(f"unknown camera {camera!r} (known: {known})")
        index = matches[0]
    return index, CAMERAS[index]


def _scenario(camera: Camera, rng: random.Random) -> Scenario:
    if camera.detection_mode == "smoke-only":
        return rng.choices(("clear", "smoke"), weights=(6, 4))[0]
    return rng.choices(SCENARIOS, weights=(5, 3, 1, 1))[0]


def alert_level_for(detections: list[dict[str, Any]]) -> str:
    """The workflow's rule: best confidence sets the level; fire raises it one step."""
    if not detections:
        return "none"
    best = max(d["confidence"] for d in detections)
    level = 1 if best < 0.5 else 2 if best < 0.7 else 3 if best < 0.85 else 4
    if any(d["class"] == "fire" for d in detections):
        level = min(level + 1, 4)
    return ALERT_ORDER[level]


def _inference(picture: Picture, camera: Camera, rng: random.Random) -> dict[str, Any]:
    detections: list[dict[str, Any]] = [
        {
            "class": box.cls,
            "confidence": round(rng.uniform(0.3, 0.98), 3),
            "bbox": {"x": box.x, "y": box.y, "width": box.width, "height": box.height},
        }
        for box in picture.boxes
    ]
    confidences: dict[str, float] = {}
    for d in detections:
        confidences[d["class"]] = max(confidences.get(d["class"], 0.0), d["confidence"])
    return {
        "request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "detections": detections,
        "detection_count": len(detections),
        "has_fire": "fire" in confidences,
        "has_smoke": "smoke" in confidences,
        "alert_level": alert_level_for(detections),
        "detection_mode": camera.detection_mode,
        "confidences": confidences,
        "image_width": picture.width,
        "image_height": picture.height,
        "inference_time_ms": round(rng.uniform(35, 220), 1),
        "model_version": MODEL_VERSION,
    }


def make_raw_execution(
    execution_id: int,
    *,
    camera: int | str | None = None,
    scenario: Scenario | None = None,
    started_at: datetime | None = None,
    image_size: tuple[int, int] = (640, 480),
    image_bytes: int | None = None,
    with_image: bool = True,
    telegram_sent: bool | None = None,
    stage2_delay_ms: int = 0,
    transient_failures: int = 0,
    defect: Defect | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """One raw execution as the workflow posts it (JSON-ready; see docs/ETL.md).

    Deterministic for a given execution_id (and seed). `camera` is an index or a
    device id; `scenario` picks clear/smoke/fire (random by default);
    `image_bytes` makes the JPEG about that big (benchmarks: ~100_000);
    `stage2_delay_ms` / `transient_failures` fill the demo block; `defect`
    breaks the execution on purpose so Stage 2 rejects it.
    """
    rng = random.Random(execution_id if seed is None else f"{seed}:{execution_id}")
    camera_index, cam = _camera(camera, execution_id)
    scenario = scenario or _scenario(cam, rng)
    picture = render_picture(
        camera_index, scenario, cam.device_id, image_size[0], image_size[1], image_bytes
    )
    started = started_at or datetime.now(UTC)
    inference = _inference(picture, cam, rng)
    sent = (
        inference["alert_level"] in ("high", "critical") if telegram_sent is None else telegram_sent
    )
    raw: dict[str, Any] = {
        "execution_id": execution_id,
        "workflow_id": WORKFLOW_ID,
        "status": "success",
        "started_at": started.isoformat(),
        "stopped_at": (started + timedelta(milliseconds=rng.randint(400, 2500))).isoformat(),
        "metadata": {
            "device_id": cam.device_id,
            "location": cam.location,
            "camera_type": cam.camera_type,
            "captured_at": (started - timedelta(milliseconds=rng.randint(50, 900))).isoformat(),
        },
        "inference": inference,
        "telegram": {
            "sent": sent,
            "chat_id": "-100123456789" if sent else None,
            "message_id": rng.randint(1000, 99999) if sent else None,
            "sent_at": started.isoformat() if sent else None,
        },
    }
    if with_image:
        raw["image"] = {
            "mime_type": "image/jpeg",
            "data_base64": base64.b64encode(picture.jpeg).decode(),
        }
    if stage2_delay_ms or transient_failures:
        raw["demo"] = {
            "stage2_delay_ms": stage2_delay_ms,
            "transient_failures": transient_failures,
        }
    if defect is not None:
        break_execution(raw, defect, picture.jpeg)
    return raw


def break_execution(raw: dict[str, Any], defect: Defect, jpeg: bytes) -> None:
    """Make `raw` permanently bad for Stage 2 (its envelope stays valid)."""
    image = raw.setdefault("image", {"mime_type": "image/jpeg", "data_base64": ""})
    if defect == "bad_base64":
        image["data_base64"] = "this is *not* base64!"
    elif defect == "not_an_image":
        image["data_base64"] = base64.b64encode(b"%PDF-1.4 definitely not a picture").decode()
    elif defect == "truncated_image":
        image["data_base64"] = base64.b64encode(jpeg[: len(jpeg) // 2]).decode()
    elif defect == "missing_field":
        del raw["inference"]["alert_level"]
    elif defect == "bad_value":
        raw["inference"]["inference_time_ms"] = -1
    else:  # pragma: no cover - Literal exhausted
        raise ValueError(f"unknown defect {defect!r}")


@dataclass(frozen=True, slots=True)
class GeneratorOptions:
    rate: float = 5.0  # executions per second
    count: int = 0  # 0 = until stopped
    start_id: int | None = None  # default: max(id) + 1 in the database
    cameras: int = len(CAMERAS)
    max_delay_ms: int = 0  # random Stage 2 delay in [0, max] → out-of-order completion
    failure_rate: float = 0.0  # share of permanently bad executions
    transient_rate: float = 0.0  # share that fail transiently 1..max_transient_failures times
    max_transient_failures: int = 2
    image_bytes: int | None = None
    seed: int | None = None
    output_dir: Path | None = None  # write JSON files instead of ingesting


def generated_execution(execution_id: int, options: GeneratorOptions) -> dict[str, Any]:
    rng = random.Random(f"gen:{options.seed}:{execution_id}")
    delay = rng.randint(0, options.max_delay_ms) if options.max_delay_ms else 0
    transient = (
        rng.randint(1, options.max_transient_failures)
        if rng.random() < options.transient_rate
        else 0
    )
    defect = rng.choice(DEFECTS) if rng.random() < options.failure_rate else None
    return make_raw_execution(
        execution_id,
        camera=rng.randrange(options.cameras),
        image_bytes=options.image_bytes,
        stage2_delay_ms=delay,
        transient_failures=transient,
        defect=defect,
        seed=options.seed,
    )


async def run_generator(
    pool: asyncpg.Pool | None, options: GeneratorOptions, stop: asyncio.Event
) -> list[int]:
    """Produce executions at options.rate until count is reached or stop is set."""
    if options.start_id is not None:
        first_id = options.start_id
    elif pool is not None:
        first_id = await next_execution_id(pool)
    else:
        first_id = 1
    loop = asyncio.get_running_loop()
    started = loop.time()
    produced: list[int] = []
    while not stop.is_set() and (options.count == 0 or len(produced) < options.count):
        execution_id = first_id + len(produced)
        raw = generated_execution(execution_id, options)
        body = json.dumps(raw)
        if options.output_dir is not None:
            path = options.output_dir / f"execution-{execution_id}.json"
            await asyncio.to_thread(path.write_text, body)
        else:
            assert pool is not None
            await ingest_execution(pool, body, source="generator")
        produced.append(execution_id)
        log.info("generated execution", extra={"execution_id": execution_id})
        # Fixed schedule (not fixed sleeps) so slow iterations don't lower the rate.
        due = started + len(produced) / options.rate
        delay = due - loop.time()
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
    return produced
