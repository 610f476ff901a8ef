"""A camera simulator: posts frames to the workflow's webhook as SAI's cameras do (multipart)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx

CAMERAS = (
    ("sai-cam-node-01", "cam-01-north", "Cerro Negro", "rtsp"),
    ("sai-cam-node-02", "cam-02-east", "Bosque Peralta Ramos", "ip"),
    ("sai-cam-node-07", "cam-07-south", "Laguna de los Padres", "usb"),
)


# SAI's cameras stamp a frame like this, in UTC: "2025-10-10_04-33-52".
SAI_TIMESTAMP = "%Y-%m-%d_%H-%M-%S"


@dataclass(frozen=True, slots=True)
class Frame:
    number: int
    jpeg: bytes
    scenario: str = "clear"  # what the YOLO stand-in will detect
    delay_ms: int = 0  # the stand-in answers this late: runs finish out of order
    fail: bool = False  # the stand-in answers 500: the n8n run ends in error
    captured_at: str = "2025-10-10_04-33-52"  # SAI's camera format
    # Where the painted plume/fire is ("x,y,w,h;…", smoke first): the stand-in puts its
    # boxes there. Empty: it places them at random (what the tests check against).
    boxes: str = ""

    @property
    def camera(self) -> tuple[str, str, str, str]:
        return CAMERAS[self.number % len(CAMERAS)]


# n8n answers 503 when it cannot take the frame right now (its database pool is busy):
# nothing was started, so the camera sends the frame again, as SAI's cameras do.
RETRIES = 8


async def post_frame(client: httpx.AsyncClient, webhook_url: str, frame: Frame) -> None:
    for attempt in range(RETRIES):
        response = await _post(client, webhook_url, frame)
        if response.status_code != 503 or attempt == RETRIES - 1:
            break
        await asyncio.sleep(0.5 * 2**attempt)
    response.raise_for_status()


async def _post(client: httpx.AsyncClient, webhook_url: str, frame: Frame) -> httpx.Response:
    device_id, camera_id, location, camera_type = frame.camera
    return await client.post(
        webhook_url,
        data={
            "device_id": device_id,
            "camera_id": camera_id,
            "location": location,
            "camera_type": camera_type,
            "timestamp": frame.captured_at,
            "frame": str(frame.number),
            "scenario": frame.scenario,
            "delay_ms": str(frame.delay_ms),
            "fail": "1" if frame.fail else "0",
            "boxes": frame.boxes,
        },
        files={"image": (f"frame-{frame.number}.jpg", frame.jpeg, "image/jpeg")},
    )
