"""Local HTTP stand-ins for the services SAI's workflow calls: YOLO inference and Telegram.

The YOLO stand-in answers like SAI's inference service (request_id, version,
detections with boxes, image_size, …), deterministically from the frame
number and scenario the camera simulator put in the form, so a test knows the
exact detections each execution must end up with. `fail=1` answers 500 (the
n8n run then ends in error); `delay_ms` makes that run finish later than the
ones posted after it.
"""

from __future__ import annotations

import asyncio
import io
import random
import re
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.etl.stage2.n8n_run import alert_level_for

MODEL_VERSION = "yolov8s-sai-standin-1"
TELEGRAM_MESSAGE_BASE = 500_000
SCENARIOS = ("clear", "smoke", "fire", "fire-and-smoke")


def painted_boxes(text: str) -> list[dict[str, int]]:
    """The camera simulator's "x,y,w,h;…" (where it painted smoke/fire) as bboxes."""
    boxes = []
    for part in filter(None, text.split(";")):
        x, y, w, h = (int(v) for v in part.split(","))
        boxes.append({"x": x, "y": y, "width": w, "height": h})
    return boxes


def expected_detections(
    frame: int, scenario: str, width: int, height: int, boxes: str = ""
) -> list[dict[str, Any]]:
    """What the stand-in detects in frame `frame`: the same answer every time (boxes at
    the painted places when the camera said where they are)."""
    rng = random.Random(frame * 7919 + len(scenario))
    classes = {
        "clear": [],
        "smoke": ["smoke"],
        "fire": ["fire"],
        "fire-and-smoke": ["smoke", "fire"],
    }[scenario]
    painted = painted_boxes(boxes)
    found = []
    for index, detection_class in enumerate(classes):
        w = rng.randint(width // 8, width // 3)
        h = rng.randint(height // 8, height // 3)
        found.append(
            {
                "class": detection_class,
                "confidence": round(rng.uniform(0.35, 0.97), 3),
                "bbox": {
                    "x": rng.randint(0, width - w),
                    "y": rng.randint(0, height - h),
                    "width": w,
                    "height": h,
                },
            }
        )
        if index < len(painted):
            found[-1]["bbox"] = painted[index]
    return found


def inference_answer(
    frame: int,
    scenario: str,
    camera_id: str,
    image: bytes,
    *,
    omit_alert_level: bool,
    boxes: str = "",
) -> dict[str, Any]:
    with Image.open(io.BytesIO(image)) as picture:
        width, height = picture.size
    detections = expected_detections(frame, scenario, width, height, boxes)
    classes = sorted({d["class"] for d in detections})
    answer: dict[str, Any] = {
        "request_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"smokesignal/frame/{frame}")),
        "version": MODEL_VERSION,
        "detection_count": len(detections),
        "has_smoke": "smoke" in classes,
        "has_fire": "fire" in classes,
        "alert_level": alert_level_for(max((d["confidence"] for d in detections), default=None)),
        "detection_mode": "fire-and-smoke",
        "active_classes": ["smoke", "fire"],
        "detections": detections,
        "confidence_scores": {
            c: max(d["confidence"] for d in detections if d["class"] == c) for c in classes
        },
        "image_size": {"width": width, "height": height},
        "processing_time_ms": 12.5,
        "camera_id": camera_id,
    }
    if omit_alert_level:  # SAI's service sometimes leaves it out: the ETL derives it
        del answer["alert_level"]
    return answer


@dataclass
class StandinCounters:
    inferences: int = 0
    failures: int = 0
    telegrams: int = 0


def standin_app(counters: StandinCounters) -> Starlette:
    async def infer(request: Request) -> JSONResponse:
        params = request.query_params
        frame = int(params.get("frame") or 0)
        delay_ms = int(params.get("delay_ms") or 0)
        body = await request.body()
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if params.get("fail") == "1":
            counters.failures += 1
            return JSONResponse({"error": "inference backend unavailable (stand-in)"}, 500)
        counters.inferences += 1
        answer = inference_answer(
            frame,
            params.get("scenario") or "clear",
            params.get("camera_id") or "",
            body,
            omit_alert_level=frame % 5 == 0,
            boxes=params.get("boxes") or "",
        )
        return JSONResponse(answer)

    async def telegram(request: Request) -> JSONResponse:
        message = await request.json()
        counters.telegrams += 1
        match = re.search(r"frame=(\d+)", str(message.get("text", "")))
        message_id = TELEGRAM_MESSAGE_BASE + int(match[1]) if match else TELEGRAM_MESSAGE_BASE
        result = {"message_id": message_id, "chat": {"id": message.get("chat_id")}, "date": 0}
        return JSONResponse({"ok": True, "result": result})

    return Starlette(
        routes=[
            Route("/infer", infer, methods=["POST"]),
            Route("/sendMessage", telegram, methods=["POST"]),
        ]
    )


@dataclass
class Standins:
    base_url: str
    counters: StandinCounters

    @property
    def yolo_url(self) -> str:
        return f"{self.base_url}/infer"

    @property
    def telegram_url(self) -> str:
        return f"{self.base_url}/sendMessage"


@asynccontextmanager
async def running_standins() -> AsyncIterator[Standins]:
    """Both stand-ins on one free local port, in this event loop."""
    counters = StandinCounters()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        standin_app(counters), log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield Standins(f"http://127.0.0.1:{port}", counters)
    finally:
        server.should_exit = True
        await task
